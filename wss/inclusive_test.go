package wss

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/beevik/etree"
)

// inclusivePrefixes lists, for el, the prefixes whose declarations
// Canonical XML 1.0 renders in el's subtree: those in scope at el and those
// declared inside it ("#default" for a non-empty default namespace).
func inclusivePrefixes(el *etree.Element) []string {
	set := map[string]bool{}
	add := func(e *etree.Element) {
		for _, a := range e.Attr {
			switch {
			case a.Space == "xmlns":
				set[a.Key] = true
			case a.Space == "" && a.Key == "xmlns" && a.Value != "":
				set["#default"] = true
			}
		}
	}
	for p := el.Parent(); p != nil; p = p.Parent() {
		add(p)
	}
	for _, e := range allElements(el) {
		add(e)
	}
	var out []string
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// checkSignatureNoTransforms is checkSignature for References without
// Transforms: their digests are over Canonical XML 1.0, computed here on the
// etree document (SignedInfo stays exclusive).
func checkSignatureNoTransforms(signed []byte, cred Credential) error {
	return checkSignatureWith(signed, cred.Chain[0].PublicKey, func(_ *etree.Document, w io.Writer, el *etree.Element, pl []string) error {
		if el.Tag == "SignedInfo" && el.NamespaceURI() == NSDSig {
			return CanonicalizeExclusive(w, el, C14NOptions{InclusivePrefixes: pl})
		}
		return CanonicalizeExclusive(w, el, C14NOptions{InclusivePrefixes: inclusivePrefixes(el)})
	})
}

// FuzzSignNoTransforms: with References without Transforms (and a
// SignatureConfirmation), Sign refuses any input with a client error code
// or returns an envelope whose digests, recomputed over Canonical XML 1.0
// from the parsed output, and signature verify.
func FuzzSignNoTransforms(f *testing.F) {
	fuzzSeeds(f, func(b []byte) { f.Add(b) })
	cred := loadCredential(f, "ecp256")
	f.Fuzz(func(t *testing.T, raw []byte) {
		opts := SignOptions{NoTransforms: true, SignatureConfirmation: true, ConfirmValues: [][]byte{{1, 2, 3}},
			Parts:  []Part{PartTimestamp(), PartBody(), {Space: NSWSA, Local: "To", Optional: true}},
			Now:    func() time.Time { return time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC) },
			Limits: Limits{MaxBytes: 1 << 16, MaxDepth: 64, MaxElements: 4096}}
		res, err := Sign(context.Background(), raw, cred, opts)
		if err != nil {
			if c := CodeOf(err); c == "" || c == CodeInternal || c == CodeSigningFailed {
				t.Fatalf("error %v on input %q", err, raw)
			}
			return
		}
		if hasLiteralAttrWhitespace(res.Envelope) {
			return // etree does not normalise attribute values (see FuzzSign)
		}
		if err := checkSignatureNoTransforms(res.Envelope, cred); err != nil {
			t.Fatalf("output does not verify: %v\n%s", err, res.Envelope)
		}
	})
}

package wss

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/beevik/etree"
)

// hasLiteralAttrWhitespace reports whether some attribute value of data (as
// the tokenizer reads it) holds a literal TAB, CR or LF: there XML 1.0
// §3.3.3 attribute-value normalisation makes the streaming canonicaliser
// (which applies it) and CanonicalizeExclusive (encoding/xml does not)
// legitimately differ; libxml2 agrees with the streaming one
// (TestC14NStreamLibxml2 covers such documents).
func hasLiteralAttrWhitespace(data []byte) bool {
	t := &xmlTokenizer{raw: data}
	for {
		k, err := t.next()
		if err != nil || k == tokEOF {
			return false
		}
		if k != tokStart {
			continue
		}
		for _, a := range t.attrs {
			if a.litWS {
				return true
			}
		}
	}
}

// FuzzC14NDifferential checks the streaming canonicaliser of Sign and
// Verify against CanonicalizeExclusive (the etree canonicaliser, itself
// checked against libxml2): for any input that etree parses and the
// tokenizer accepts, the canonical forms of the root and of several
// subtrees, without and with an InclusiveNamespaces PrefixList (the visibly
// used prefixes, and "#default" with them), must be byte-identical where no
// attribute value holds literal whitespace (there XML 1.0 §3.3.3
// normalisation, which the tokenizer applies and encoding/xml does not,
// makes them legitimately differ: see hasLiteralAttrWhitespace and
// TestC14NStreamLibxml2). Where the tokenizer with goNames (the envelope
// scan of Sign and Verify) accepts a document, etree must accept it too, so
// that Sign never produces an envelope the verifier cannot read, and the
// tokenizer without it (Verify's canonicalisation) must accept it as well.
// The one-pass canonicalisation of several elements (canonicalizeRawMany,
// Verify's) must give each element the bytes canonicalizeRawNth gives it.
//
//	go test ./wss -run '^$' -fuzz FuzzC14NDifferential -fuzztime 10m
func FuzzC14NDifferential(f *testing.F) {
	for _, data := range readFiles(f, filepath.Join(c14nCorpusDir, "*.xml")) {
		f.Add(data)
	}
	for _, s := range append(slices.Clone(c14nSeedDocs),
		`<?xml version="1.0" encoding="utf-8"?><a:b xmlns:a="urn:a" a:z="1" y="2" xmlns:c="urn:c" c:y="3"><c:d a:x="&gt;">x&#x10000;y</c:d></a:b>`,
		`<a xmlns:p="urn:1"><b xmlns:p="urn:2" p:x="1"><p:c xmlns:p="urn:1"/></b></a>`,
		`<e xml:lang="en" xmlns="urn:d"><f xml:space="preserve"> <g xmlns=""/> </f></e>`,
	) {
		f.Add([]byte(s))
	}
	f.Add(genEnvelope(3))

	f.Fuzz(func(t *testing.T, data []byte) {
		// The tokenizer must never panic, whatever etree thinks; with
		// goNames it must accept only what etree accepts.
		tokErr := streamSinks(&xmlTokenizer{raw: data, goNames: true}, nil)
		specErr := streamSinks(&xmlTokenizer{raw: data}, nil)
		if tokErr == nil && specErr != nil {
			t.Fatalf("the tokenizer accepts with goNames what it refuses without (%v): %q", specErr, data)
		}

		doc := etree.NewDocument()
		doc.ReadSettings.PreserveCData = true
		if err := doc.ReadFromBytes(data); err != nil || doc.Root() == nil {
			if tokErr == nil {
				t.Fatalf("the tokenizer accepts what etree refuses (%v): %q", err, data)
			}
			return
		}
		if tokErr != nil {
			return // stricter than etree (e.g. a name of the 5th edition, a reserved PI target, xmlns:p="")
		}
		// Compared with etree only where no attribute value holds literal
		// whitespace (§3.3.3 attribute-value normalisation).
		compare := !hasLiteralAttrWhitespace(data)
		var targets []*c14nTarget
		var singles [][]byte
		all := allElements(doc.Root())
		idx := []int{0}
		if n := len(all); n > 1 {
			step := max(1, n/4)
			for i := 1; i < n; i += step {
				idx = append(idx, i)
			}
			if idx[len(idx)-1] != n-1 {
				idx = append(idx, n-1)
			}
		}
		for _, i := range idx {
			el := all[i]
			used := VisiblyUsedPrefixes(el)
			if got := rawUsedPrefixes(t, data, i); !equalStrings(got, used) {
				t.Fatalf("used prefixes of element %d <%s>: stream %q, etree %q", i, el.FullTag(), got, used)
			}
			for _, pl := range [][]string{nil, used, append([]string{"#default"}, used...)} {
				var want bytes.Buffer
				if err := CanonicalizeExclusive(&want, el, C14NOptions{InclusivePrefixes: pl}); err != nil {
					t.Fatalf("etree canonicaliser fails where the tokenizer accepts: element %d <%s>: %v", i, el.FullTag(), err)
				}
				for _, goNames := range []bool{true, false} {
					var got bytes.Buffer
					ok, err := canonicalizeRawNth(&got, data, i, pl, goNames)
					if err != nil || !ok {
						t.Fatalf("stream canonicaliser (goNames=%v): element %d: ok=%v err=%v", goNames, i, ok, err)
					}
					if compare && !bytes.Equal(got.Bytes(), want.Bytes()) {
						t.Fatalf("element %d <%s> PrefixList %q goNames=%v:\nstream %q\n etree %q", i, el.FullTag(), pl, goNames, got.Bytes(), want.Bytes())
					}
					if !goNames {
						singles = append(singles, got.Bytes())
						targets = append(targets, &c14nTarget{n: i, w: new(bytes.Buffer), inclusive: pl})
					}
				}
			}
		}
		if err := canonicalizeRawMany(context.Background(), data, Limits{}, targets); err != nil {
			t.Fatalf("canonicalizeRawMany: %v", err)
		}
		for j, tg := range targets {
			if got := tg.w.(*bytes.Buffer).Bytes(); !tg.found || tg.err != nil || !bytes.Equal(got, singles[j]) {
				t.Fatalf("canonicalizeRawMany target %d (element %d, PrefixList %q): found=%v err=%v\n many %q\n  nth %q", j, tg.n, tg.inclusive, tg.found, tg.err, got, singles[j])
			}
		}
	})
}

func rawUsedPrefixes(t *testing.T, data []byte, n int) []string {
	t.Helper()
	tk := &xmlTokenizer{raw: data}
	var u *usedPrefixSink
	i := 0
	if err := streamSinks(tk, func(*xmlTokenizer) tokenSink {
		i++
		if i-1 == n {
			u = &usedPrefixSink{set: map[string]struct{}{}}
			return u
		}
		return nil
	}); err != nil || u == nil {
		t.Fatalf("used prefixes: %v", err)
	}
	return u.sorted()
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

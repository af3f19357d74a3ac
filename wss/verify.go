package wss

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// Verdict codes: why Verify found a message invalid. They are stable and
// documented in docs/errors.md. CodeNotSOAP, CodeInvalidSOAP,
// CodeDuplicateID and CodeMissingPart are verdicts too.
const (
	CodeUnsigned              Code = "unsigned"                // no Security header for us, or no Signature in it
	CodeUnsignedFault         Code = "unsigned-fault"          // an unsigned SOAP Fault (accepted only when the profile says so, and flagged)
	CodeSecurityHeader        Code = "invalid-security-header" // two Security headers for the same actor, two Signatures in it
	CodeSignatureStructure    Code = "invalid-signature"       // Signature/SignedInfo/Reference not as XML-DSig requires
	CodeAlgorithmNotAllowed   Code = "algorithm-not-allowed"   // signature, digest or c14n algorithm unknown or not allowed
	CodeTransformNotAllowed   Code = "transform-not-allowed"   // a Reference transform outside the allow-list
	CodeReferenceURI          Code = "reference-uri"           // a Reference URI that is not a same-document "#id"
	CodeReferenceNotFound     Code = "reference-not-found"     // no element carries the referenced Id
	CodeDigestMismatch        Code = "digest-mismatch"         // a Reference's digest does not match its element
	CodeSignatureInvalid      Code = "signature-invalid"       // the SignatureValue does not verify with the key
	CodeKeyNotFound           Code = "key-not-found"           // KeyInfo does not lead to a certificate in the Security header or the trust store
	CodeUntrustedKey          Code = "untrusted-key"           // the signing certificate is not trusted (pin, chain, DN pattern, validity)
	CodeNotSigned             Code = "part-not-signed"         // a required part is present but the signature does not cover that node
	CodeTimestampMissing      Code = "timestamp-missing"       // the profile requires a Timestamp and there is none
	CodeTimestampDuplicate    Code = "timestamp-duplicate"     // more than one Timestamp
	CodeTimestampMisplaced    Code = "timestamp-misplaced"     // the Timestamp is not a child of our Security header
	CodeTimestampMalformed    Code = "timestamp-malformed"     // Created/Expires missing, repeated or not xsd:dateTime
	CodeTimestampFuture       Code = "timestamp-future"        // Created later than now + future skew
	CodeTimestampExpired      Code = "timestamp-expired"       // Expires passed, or Created older than the maximum age
	CodeTimestampLifetime     Code = "timestamp-lifetime"      // Expires − Created over the maximum lifetime, or Expires before Created
	CodeReplay                Code = "replay"                  // the same Created and SignatureValue were seen before
	CodeSignatureConfirmation Code = "signature-confirmation"  // a required SignatureConfirmation is missing, wrong or unsigned
)

// Verification defaults.
const (
	DefaultFutureSkew    = 60 * time.Second
	DefaultMaxAge        = 300 * time.Second
	DefaultMaxLifetime   = 3600 * time.Second
	DefaultMaxReferences = 64
)

// WS-Addressing 1.0 and submission (2004/08) namespaces.
const (
	nsWSA10     = "http://www.w3.org/2005/08/addressing"
	nsWSA200408 = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
	nsExcC14N   = "http://www.w3.org/2001/10/xml-exc-c14n#"
)

// Unsigned-Fault policies.
const (
	UnsignedFaultsReject = "reject" // default: an unsigned Fault is invalid (code unsigned)
	UnsignedFaultsAccept = "accept" // an unsigned Fault is valid, flagged UnsignedFault and code unsigned-fault
)

// VerifyOptions configures Verify. The zero value (with a Trust) requires a
// signed Body and a signed, fresh Timestamp, SHA-2 algorithms, exclusive
// C14N and a trusted signer.
type VerifyOptions struct {
	// Trust decides which signing certificates are accepted; nil trusts none.
	Trust *TrustStore
	// RequiredParts must be present and signed. Body means the Envelope's
	// own Body; Timestamp the Timestamp of our Security header; any other
	// QName is looked for among the SOAP header blocks and the children of
	// our Security header, and every occurrence must be signed. Empty means
	// Body, Timestamp. WS-Addressing header blocks are always required to be
	// signed when present unless AllowUnsignedAddressing.
	RequiredParts           []Part
	AllowUnsignedAddressing bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// FutureSkew tolerates a Created in the future (default 60 s); MaxAge
	// bounds now − Created (default 300 s); MaxLifetime bounds
	// Expires − Created (default 3600 s).
	FutureSkew, MaxAge, MaxLifetime time.Duration
	// RequireTimestamp requires a Timestamp even when RequiredParts does not name one.
	RequireTimestamp bool
	// Replay, when set, rejects a message seen before.
	Replay *ReplayCache
	// Allowed algorithm URIs; empty means every SHA-2 one wss knows
	// (signature, digest) and exclusive C14N without comments.
	AllowedSignatureMethods, AllowedDigestMethods, AllowedC14NMethods []string
	// AllowSHA1 admits RSA-SHA1 and SHA-1 digests (they must still be in the
	// allow-lists when those are set). MD5 is never accepted.
	AllowSHA1 bool
	// MaxReferences bounds the References of the SignedInfo (default 64).
	MaxReferences int
	// Limits bound the envelope before any cryptography.
	Limits Limits
	// UnsignedFaults is UnsignedFaultsReject ("" too) or UnsignedFaultsAccept.
	UnsignedFaults string
	// Explain fills VerifyResult.Explain.
	Explain bool
	// Actor selects the Security header by its SOAP 1.1 actor / 1.2 role;
	// "" is the one without (or for the ultimate receiver).
	Actor string
	// ExpectSignatureConfirmation holds the SignatureValue(s) of the request
	// we sent: each must come back in a signed wsse11:SignatureConfirmation.
	ExpectSignatureConfirmation [][]byte
}

// SignerInfo describes the certificate that made a valid signature.
type SignerInfo struct {
	Subject     string            `json:"subject"`
	Issuer      string            `json:"issuer"`
	Serial      string            `json:"serial"` // hex
	NotAfter    time.Time         `json:"not_after"`
	SHA256      string            `json:"sha256"`          // of the DER certificate, hex
	KeyRef      string            `json:"token_reference"` // how KeyInfo named it: bst-x509v3, bst-pkipath, issuer-serial, ski, thumbprint-sha1, keyid-x509v3
	Certificate *x509.Certificate `json:"-"`
}

// TimestampInfo is the message's Timestamp.
type TimestampInfo struct {
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires,omitempty"`
}

// AlgorithmInfo lists the algorithms the signature used.
type AlgorithmInfo struct {
	Canonicalization string   `json:"canonicalization"`
	Signature        string   `json:"signature"`
	Digests          []string `json:"digests"`
}

// RefExplain is the per-Reference debugging record of explain mode.
type RefExplain struct {
	URI             string `json:"uri"`
	Path            string `json:"path,omitempty"`
	CanonicalSHA256 string `json:"canonical_sha256,omitempty"` // hex, of the canonical octets
	CanonicalLength int    `json:"canonical_length"`
	DigestMethod    string `json:"digest_method"`
	Expected        string `json:"expected"`           // DigestValue, as sent
	Computed        string `json:"computed,omitempty"` // base64
	Match           bool   `json:"match"`
	// Canonical is the canonical octets themselves (not serialised).
	Canonical []byte `json:"-"`
}

// VerifyResult is Verify's verdict.
type VerifyResult struct {
	Valid bool `json:"valid"`
	// Code and Detail say why the message is invalid (or, for an accepted
	// unsigned Fault, flag it); Reference names the Reference URI or rule at fault.
	Code          Code           `json:"code,omitempty"`
	Detail        string         `json:"detail,omitempty"`
	Reference     string         `json:"reference,omitempty"`
	UnsignedFault bool           `json:"unsigned_fault,omitempty"`
	Signer        *SignerInfo    `json:"signer,omitempty"`
	Signed        []string       `json:"signed"` // paths of the signed elements, e.g. /Envelope/Body
	Timestamp     *TimestampInfo `json:"timestamp,omitempty"`
	Algorithms    *AlgorithmInfo `json:"algorithms,omitempty"`
	Explain       []RefExplain   `json:"explain,omitempty"`
}

// verdict is an internal error carrying a verdict code.
type verdict struct {
	code Code
	ref  string
	msg  string
}

func (v *verdict) Error() string { return string(v.code) + ": " + v.msg }

func fail(code Code, ref, format string, args ...any) *verdict {
	return &verdict{code: code, ref: ref, msg: fmt.Sprintf(format, args...)}
}

// Verify checks the WS-Security signature of the SOAP envelope raw. The
// error is non-nil (an *Error) only when raw is unusable: not well-formed,
// a DTD, over the limits. Otherwise the result is a verdict: Valid, or the
// Code of the first rule that failed.
//
// Verify resolves the key only from the Security header (BinarySecurityToken
// by direct reference; issuer/serial, SKI and thumbprint also against the
// pinned certificates of opts.Trust), checks the signature, then the trust
// in the certificate, then that every required part is covered by node
// identity (the element the envelope really uses, not a copy elsewhere),
// then the Timestamp rules, SignatureConfirmation and the replay cache.
//
// A ctx that ends during the work makes Verify return a CodeTimeout error
// (wrapping ctx.Err()) instead of a verdict.
func Verify(ctx context.Context, raw []byte, opts VerifyOptions) (*VerifyResult, error) {
	env, err := scanEnvelope(ctx, raw, opts.Limits)
	if err != nil {
		switch CodeOf(err) {
		case CodeNotSOAP, CodeInvalidSOAP, CodeDuplicateID:
			e := err.(*Error)
			return &VerifyResult{Code: e.Code, Detail: e.Msg, Signed: []string{}}, nil
		}
		return nil, err
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return nil, &Error{Code: CodeMalformedXML, Msg: "not well-formed", Err: err}
	}
	v := &verifier{opts: opts, env: env, doc: doc, res: &VerifyResult{Signed: []string{}}}
	v.defaults()
	err = v.run()
	if cerr := ctxError(ctx); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		vd, ok := err.(*verdict)
		if !ok {
			return nil, err
		}
		v.res.Valid = false
		v.res.Code, v.res.Detail, v.res.Reference = vd.code, vd.msg, vd.ref
		return v.res, nil
	}
	return v.res, nil
}

type verifier struct {
	opts VerifyOptions
	env  *envelope
	doc  *etree.Document
	res  *VerifyResult

	now                      time.Time
	root, header, body, sec  *etree.Element
	ids                      map[string]*etree.Element
	signed                   map[*etree.Element]bool
	sigValue                 []byte
	sigAllowed, digAllowed   []string
	c14nAllowed              []string
	futureSkew, maxAge, life time.Duration
}

func (v *verifier) defaults() {
	o := &v.opts
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	v.now = now()
	v.futureSkew, v.maxAge, v.life = o.FutureSkew, o.MaxAge, o.MaxLifetime
	if v.futureSkew <= 0 {
		v.futureSkew = DefaultFutureSkew
	}
	if v.maxAge <= 0 {
		v.maxAge = DefaultMaxAge
	}
	if v.life <= 0 {
		v.life = DefaultMaxLifetime
	}
	if o.MaxReferences <= 0 {
		o.MaxReferences = DefaultMaxReferences
	}
	if len(o.RequiredParts) == 0 {
		o.RequiredParts = []Part{PartBody, PartTimestamp}
	}
	v.sigAllowed = o.AllowedSignatureMethods
	if len(v.sigAllowed) == 0 {
		for uri := range signatureAlgs {
			v.sigAllowed = append(v.sigAllowed, uri)
		}
	}
	v.digAllowed = o.AllowedDigestMethods
	if len(v.digAllowed) == 0 {
		for uri := range digestAlgs {
			v.digAllowed = append(v.digAllowed, uri)
		}
	}
	v.c14nAllowed = o.AllowedC14NMethods
	if len(v.c14nAllowed) == 0 {
		v.c14nAllowed = []string{AlgExcC14N}
	}
}

func (v *verifier) run() error {
	v.root = v.doc.Root()
	for _, c := range v.root.ChildElements() {
		if c.NamespaceURI() != v.env.version.ns {
			continue
		}
		switch c.Tag {
		case "Header":
			v.header = c
		case "Body":
			v.body = c
		}
	}
	if v.body == nil {
		return errorf(CodeInternal, "Body lost between scan and parse")
	}
	v.ids = indexIDs(v.root)
	v.signed = map[*etree.Element]bool{}

	if err := v.findSecurity(); err != nil {
		return err
	}
	var sig *etree.Element
	if v.sec != nil {
		var sigs []*etree.Element
		for _, c := range v.sec.ChildElements() {
			if c.Tag == "Signature" && c.NamespaceURI() == NSDSig {
				sigs = append(sigs, c)
			}
		}
		if len(sigs) > 1 {
			return fail(CodeSecurityHeader, "", "the Security header holds %d Signatures; one is accepted", len(sigs))
		}
		if len(sigs) == 1 {
			sig = sigs[0]
		}
	}
	if sig == nil {
		return v.unsigned()
	}
	ts, err := v.findTimestamp()
	if err != nil {
		return err
	}
	if err := v.checkSignature(sig); err != nil {
		return err
	}
	if err := v.checkParts(ts); err != nil {
		return err
	}
	if err := v.checkTimestamp(ts); err != nil {
		return err
	}
	if err := v.checkConfirmation(); err != nil {
		return err
	}
	if v.opts.Replay != nil {
		// Until the message could no longer pass the Timestamp rules; a
		// message without Timestamp is remembered for MaxAge.
		created, exp := "", v.now.Add(v.maxAge)
		if ts := v.res.Timestamp; ts != nil {
			created = ts.Created.UTC().Format(time.RFC3339Nano)
			exp = ts.Created.Add(v.maxAge)
			if e := ts.Expires; e != nil && e.Before(exp) {
				exp = *e
			}
		}
		key := created + "|" + hexSHA256(v.sigValue)
		if !v.opts.Replay.Add(key, exp.Add(v.futureSkew), v.now) {
			return fail(CodeReplay, "", "this message (same Created and SignatureValue) was seen before")
		}
	}
	v.res.Valid = true
	return nil
}

// findSecurity selects the Security header addressed to us.
func (v *verifier) findSecurity() error {
	if v.header == nil {
		return nil
	}
	attr := actorAttr(v.env.version)
	for _, c := range v.header.ChildElements() {
		if c.Tag != "Security" || c.NamespaceURI() != NSWSSE {
			continue
		}
		actor := ""
		for _, a := range c.Attr {
			if a.Key == attr && a.Space != "" && a.NamespaceURI() == v.env.version.ns {
				actor = a.Value
			}
		}
		if actor == "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver" {
			actor = ""
		}
		if actor != v.opts.Actor {
			continue
		}
		if v.sec != nil {
			return fail(CodeSecurityHeader, "", "two Security headers for the same actor")
		}
		v.sec = c
	}
	return nil
}

func (v *verifier) unsigned() error {
	if isFault(v.body, v.env.version.ns) && v.opts.UnsignedFaults == UnsignedFaultsAccept {
		v.res.Valid = true
		v.res.UnsignedFault = true
		v.res.Code = CodeUnsignedFault
		v.res.Detail = "an unsigned SOAP Fault, accepted by the profile's policy"
		return nil
	}
	if v.sec == nil {
		return fail(CodeUnsigned, "", "no Security header for this receiver")
	}
	return fail(CodeUnsigned, "", "the Security header holds no Signature")
}

func isFault(body *etree.Element, soapNS string) bool {
	cs := body.ChildElements()
	return len(cs) == 1 && cs[0].Tag == "Fault" && cs[0].NamespaceURI() == soapNS
}

// findTimestamp enforces: at most one Timestamp in the document, and that
// one a child of our Security header.
func (v *verifier) findTimestamp() (*etree.Element, error) {
	var all []*etree.Element
	var walk func(el *etree.Element)
	walk = func(el *etree.Element) {
		if el.Tag == "Timestamp" && el.NamespaceURI() == NSWSU {
			all = append(all, el)
		}
		for _, c := range el.ChildElements() {
			walk(c)
		}
	}
	walk(v.root)
	switch {
	case len(all) > 1:
		return nil, fail(CodeTimestampDuplicate, "", "the envelope holds %d Timestamps; at most one is accepted", len(all))
	case len(all) == 0:
		return nil, nil
	case all[0].Parent() != v.sec:
		return nil, fail(CodeTimestampMisplaced, "", "the Timestamp is at %s, not in the Security header", pathOf(all[0]))
	}
	return all[0], nil
}

// checkSignature checks the Signature's structure and algorithms, resolves
// and checks the key, the SignatureValue over SignedInfo and every
// Reference, and records the signed elements.
func (v *verifier) checkSignature(sig *etree.Element) error {
	kids := sig.ChildElements()
	for _, c := range kids {
		if c.NamespaceURI() != NSDSig {
			return fail(CodeSignatureStructure, "", "unexpected element {%s}%s in Signature", c.NamespaceURI(), c.Tag)
		}
	}
	if len(kids) < 2 || kids[0].Tag != "SignedInfo" || kids[1].Tag != "SignatureValue" {
		return fail(CodeSignatureStructure, "", "a Signature must start with one SignedInfo and one SignatureValue")
	}
	var keyInfo *etree.Element
	for i, c := range kids[2:] {
		switch {
		case c.Tag == "KeyInfo" && i == 0:
			keyInfo = c
		case c.Tag == "Object":
		default:
			return fail(CodeSignatureStructure, "", "unexpected ds:%s in Signature", c.Tag)
		}
	}
	si, svEl := kids[0], kids[1]
	svText, err := textOf(svEl)
	if err != nil {
		return fail(CodeSignatureStructure, "", "SignatureValue: %v", err)
	}
	sv, err := decodeB64(svText)
	if err != nil || len(sv) == 0 {
		return fail(CodeSignatureStructure, "", "SignatureValue is not base64")
	}
	v.sigValue = sv

	sik := si.ChildElements()
	for _, c := range sik {
		if c.NamespaceURI() != NSDSig {
			return fail(CodeSignatureStructure, "", "unexpected element {%s}%s in SignedInfo", c.NamespaceURI(), c.Tag)
		}
	}
	if len(sik) < 3 || sik[0].Tag != "CanonicalizationMethod" || sik[1].Tag != "SignatureMethod" {
		return fail(CodeSignatureStructure, "", "SignedInfo must hold CanonicalizationMethod, SignatureMethod and at least one Reference, in that order")
	}
	refs := sik[2:]
	for _, r := range refs {
		if r.Tag != "Reference" {
			return fail(CodeSignatureStructure, "", "unexpected ds:%s in SignedInfo", r.Tag)
		}
	}
	if len(refs) > v.opts.MaxReferences {
		return fail(CodeSignatureStructure, "", "%d References; the limit is %d", len(refs), v.opts.MaxReferences)
	}
	c14nURI := attrValue(sik[0], "Algorithm")
	if !slices.Contains(v.c14nAllowed, c14nURI) || (c14nURI != AlgExcC14N && c14nURI != AlgExcC14NWithComments) {
		return fail(CodeAlgorithmNotAllowed, "", "canonicalization method %q is not allowed", c14nURI)
	}
	siC14N, err := c14nParams(sik[0], c14nURI)
	if err != nil {
		return err
	}
	smURI := attrValue(sik[1], "Algorithm")
	sa, ok := signatureAlgs[smURI]
	if !ok || !slices.Contains(v.sigAllowed, smURI) || (sa.legacy && !v.opts.AllowSHA1) {
		return fail(CodeAlgorithmNotAllowed, "", "signature method %q is not allowed", smURI)
	}
	if len(sik[1].ChildElements()) > 0 {
		return fail(CodeSignatureStructure, "", "SignatureMethod parameters are not accepted")
	}
	v.res.Algorithms = &AlgorithmInfo{Canonicalization: c14nURI, Signature: smURI, Digests: []string{}}

	// Reference structure and algorithms, before any cryptography.
	plans := make([]*plannedRef, 0, len(refs))
	for _, r := range refs {
		p, err := v.planReference(r)
		if err != nil {
			return err
		}
		plans = append(plans, p)
		if !slices.Contains(v.res.Algorithms.Digests, p.dmURI) {
			v.res.Algorithms.Digests = append(v.res.Algorithms.Digests, p.dmURI)
		}
	}

	// The key, from the Security header only.
	cert, chain, kind, err := v.resolveKey(keyInfo)
	if err != nil {
		return err
	}
	kk, err := kindOf(cert.PublicKey)
	if err != nil || kk != sa.kind {
		return fail(CodeAlgorithmNotAllowed, "", "signature method %s does not fit the certificate's %s key", smURI, cert.PublicKeyAlgorithm)
	}

	// Every Reference and the SignedInfo are canonicalised from the raw
	// message in one pass of the spec-mode tokenizer (attribute values
	// normalised per XML 1.0 §3.3.3, as libxml2, xmlsec1 and WSS4J read
	// them; encoding/xml, hence etree, does not). The etree element each
	// Reference resolved to is found by its document-order index: both
	// parsers see the same elements in the same order. References may
	// overlap (each may name the whole Body); bound the total work to a few
	// times the message size.
	order := elementOrder(v.doc.Root())
	budget := &c14nBudget{left: 4*len(v.env.raw) + 1<<20}
	outs := make([]*refOut, len(plans))
	targets := make([]*c14nTarget, 0, len(plans)+1)
	for i, p := range plans {
		n, ok := order[p.el]
		if !ok {
			return fail(CodeSignatureStructure, p.uri, "the element of %s is not in the document", p.uri)
		}
		o := &refOut{h: p.da.hash.New(), budget: budget}
		if v.opts.Explain {
			o.buf = new(bytes.Buffer)
			o.sha = sha256.New()
		}
		outs[i] = o
		targets = append(targets, &c14nTarget{n: n, w: o, inclusive: p.c14n.InclusivePrefixes, comments: p.c14n.WithComments})
	}
	siN, ok := order[si]
	if !ok {
		return fail(CodeSignatureStructure, "", "SignedInfo is not in the document")
	}
	h := sa.hash.New()
	siTarget := &c14nTarget{n: siN, w: h, inclusive: siC14N.InclusivePrefixes, comments: siC14N.WithComments}
	targets = append(targets, siTarget)
	if err := canonicalizeRawMany(v.env.ctx, v.env.raw, v.env.lim, targets); err != nil {
		return fail(CodeSignatureStructure, "", "the message cannot be canonicalised: %v", err)
	}
	total := 0
	for i, p := range plans {
		tg := targets[i]
		if total += outs[i].n; total > budget.limit() || errors.Is(tg.err, errC14NBudget) {
			return fail(CodeSignatureStructure, p.uri, "the References cover more than four times the message")
		}
		if !tg.found || tg.err != nil {
			return fail(CodeSignatureStructure, p.uri, "the element of %s cannot be canonicalised: %v", p.uri, tg.err)
		}
	}
	var firstBad *verdict
	for i, p := range plans {
		o := outs[i]
		computed := o.h.Sum(nil)
		expected, derr := decodeB64(p.digest)
		match := derr == nil && subtle.ConstantTimeCompare(computed, expected) == 1
		if v.opts.Explain {
			v.res.Explain = append(v.res.Explain, RefExplain{
				URI: p.uri, Path: pathOf(p.el), CanonicalSHA256: hex.EncodeToString(o.sha.Sum(nil)), CanonicalLength: o.n,
				DigestMethod: p.dmURI, Expected: p.digest, Computed: base64.StdEncoding.EncodeToString(computed), Match: match,
				Canonical: o.buf.Bytes(),
			})
		}
		if !match && firstBad == nil {
			firstBad = fail(CodeDigestMismatch, p.uri, "the digest of %s (%s) does not match its DigestValue", p.uri, pathOf(p.el))
			if !v.opts.Explain {
				break
			}
		}
	}
	if firstBad != nil {
		// With explain, every Reference was digested for the record.
		return firstBad
	}

	// SignatureValue over the canonical SignedInfo, with its own PrefixList
	// (checked after the References, as XML-DSig core validation orders
	// them, so that explain shows the References of a signature that fails).
	if !siTarget.found || siTarget.err != nil {
		return fail(CodeSignatureStructure, "", "SignedInfo cannot be canonicalised: %v", siTarget.err)
	}
	if err := verifyDigest(cert.PublicKey, sa, h.Sum(nil), sv); err != nil {
		return fail(CodeSignatureInvalid, "", "the SignatureValue does not verify with the key of %s", cert.Subject)
	}

	for _, p := range plans {
		v.signed[p.el] = true
		v.res.Signed = append(v.res.Signed, pathOf(p.el))
	}

	// Trust in the certificate comes after the cryptography, so that the
	// caller learns a tampered message is tampered whoever signed it.
	if err := v.opts.Trust.check(cert, chain, v.now); err != nil {
		return fail(CodeUntrustedKey, "", "%v", err)
	}
	sum := sha256.Sum256(cert.Raw)
	v.res.Signer = &SignerInfo{
		Subject: cert.Subject.String(), Issuer: cert.Issuer.String(), Serial: fmt.Sprintf("%x", cert.SerialNumber),
		NotAfter: cert.NotAfter.UTC(), SHA256: hex.EncodeToString(sum[:]), KeyRef: kind, Certificate: cert,
	}
	return nil
}

// elementOrder maps every element under root (root included) to its index
// in document order, 0 being root.
func elementOrder(root *etree.Element) map[*etree.Element]int {
	order := make(map[*etree.Element]int)
	var walk func(el *etree.Element)
	walk = func(el *etree.Element) {
		order[el] = len(order)
		for _, c := range el.ChildElements() {
			walk(c)
		}
	}
	if root != nil {
		walk(root)
	}
	return order
}

// errC14NBudget stops a Reference's canonicalisation once the References
// together have produced more than the budget allows.
var errC14NBudget = errors.New("the canonicalisation budget is exhausted")

// c14nBudget is the number of canonical bytes all References may still produce.
type c14nBudget struct{ left, spent int }

func (b *c14nBudget) limit() int { return b.left + b.spent }

// refOut receives a Reference's canonical bytes: it hashes and counts them
// (and, for explain, keeps them and their SHA-256), within the budget.
type refOut struct {
	h, sha hash.Hash
	buf    *bytes.Buffer
	n      int
	budget *c14nBudget
}

func (o *refOut) Write(p []byte) (int, error) {
	if len(p) > o.budget.left {
		return 0, errC14NBudget
	}
	o.budget.left -= len(p)
	o.budget.spent += len(p)
	o.n += len(p)
	o.h.Write(p)
	if o.buf != nil {
		o.buf.Write(p)
		o.sha.Write(p)
	}
	return len(p), nil
}

type plannedRef struct {
	uri    string
	el     *etree.Element
	da     digestAlg
	dmURI  string
	c14n   C14NOptions
	digest string
}

func (v *verifier) planReference(r *etree.Element) (*plannedRef, error) {
	uri, ok := r.SelectAttrValue("URI", ""), r.SelectAttr("URI") != nil
	// Only "#id" with a bare NCName-like id: no external documents, no
	// XPointer, no whole-document "".
	id, isFrag := strings.CutPrefix(uri, "#")
	if !ok || !isFrag || id == "" || strings.ContainsAny(id, "()/ \t\r\n\"'#:") {
		return nil, fail(CodeReferenceURI, uri, "Reference URI %q is not a same-document \"#id\" reference", uri)
	}
	for _, a := range r.Attr {
		if a.Space == "" && a.Key != "URI" && a.Key != "Id" && a.Key != "Type" {
			return nil, fail(CodeSignatureStructure, uri, "unexpected attribute %s on Reference", a.Key)
		}
	}
	kids := r.ChildElements()
	for _, c := range kids {
		if c.NamespaceURI() != NSDSig {
			return nil, fail(CodeSignatureStructure, uri, "unexpected element {%s}%s in Reference", c.NamespaceURI(), c.Tag)
		}
	}
	var transforms *etree.Element
	if len(kids) > 0 && kids[0].Tag == "Transforms" {
		transforms, kids = kids[0], kids[1:]
	}
	if len(kids) != 2 || kids[0].Tag != "DigestMethod" || kids[1].Tag != "DigestValue" {
		return nil, fail(CodeSignatureStructure, uri, "a Reference must hold Transforms?, DigestMethod, DigestValue")
	}
	if transforms == nil {
		return nil, fail(CodeTransformNotAllowed, uri, "the Reference names no transform; an exclusive C14N transform is required")
	}
	ts := transforms.ChildElements()
	if len(ts) != 1 || ts[0].Tag != "Transform" || ts[0].NamespaceURI() != NSDSig {
		return nil, fail(CodeTransformNotAllowed, uri, "exactly one Transform (exclusive C14N) is accepted")
	}
	talg := attrValue(ts[0], "Algorithm")
	if talg != AlgExcC14N && talg != AlgExcC14NWithComments || !slices.Contains(v.c14nAllowed, talg) {
		return nil, fail(CodeTransformNotAllowed, uri, "transform %q is not allowed", talg)
	}
	c14n, err := c14nParams(ts[0], talg)
	if err != nil {
		err.(*verdict).ref = uri
		return nil, err
	}
	// A "#id" reference selects the element without comments (XML-DSig
	// §4.4.3.3), whatever the transform says.
	c14n.WithComments = false
	dmURI := attrValue(kids[0], "Algorithm")
	da, ok := digestAlgs[dmURI]
	if !ok || !slices.Contains(v.digAllowed, dmURI) || (da.legacy && !v.opts.AllowSHA1) {
		return nil, fail(CodeAlgorithmNotAllowed, uri, "digest method %q is not allowed", dmURI)
	}
	dv, terr := textOf(kids[1])
	if terr != nil {
		return nil, fail(CodeSignatureStructure, uri, "DigestValue: %v", terr)
	}
	el := v.ids[id]
	if el == nil {
		return nil, fail(CodeReferenceNotFound, uri, "no element has the Id %q", id)
	}
	return &plannedRef{uri: uri, el: el, da: da, dmURI: dmURI, c14n: c14n, digest: strings.TrimSpace(dv)}, nil
}

// c14nParams reads the InclusiveNamespaces PrefixList of a
// CanonicalizationMethod or Transform.
func c14nParams(el *etree.Element, alg string) (C14NOptions, error) {
	opts := C14NOptions{WithComments: alg == AlgExcC14NWithComments}
	kids := el.ChildElements()
	if len(kids) > 1 {
		return opts, fail(CodeTransformNotAllowed, "", "%s takes at most one InclusiveNamespaces parameter", el.Tag)
	}
	for _, k := range kids {
		if k.Tag != "InclusiveNamespaces" || k.NamespaceURI() != nsExcC14N {
			return opts, fail(CodeTransformNotAllowed, "", "unexpected parameter {%s}%s of %s", k.NamespaceURI(), k.Tag, el.Tag)
		}
		opts.InclusivePrefixes = strings.Fields(k.SelectAttrValue("PrefixList", ""))
	}
	return opts, nil
}

// checkParts checks, by node identity, that the required parts are signed.
func (v *verifier) checkParts(ts *etree.Element) error {
	requireTS := v.opts.RequireTimestamp
	for _, p := range v.opts.RequiredParts {
		switch {
		case p.Local == "Body" && (p.Space == "" || p.Space == NSSOAP11 || p.Space == NSSOAP12):
			if !v.signed[v.body] {
				return fail(CodeNotSigned, "Body", "the SOAP Body at %s is not covered by the signature", pathOf(v.body))
			}
		case p.Space == NSWSU && p.Local == "Timestamp":
			if ts == nil {
				if !p.Optional {
					return fail(CodeTimestampMissing, "Timestamp", "the Security header holds no Timestamp")
				}
				continue
			}
			if !v.signed[ts] {
				return fail(CodeNotSigned, "Timestamp", "the Timestamp is not covered by the signature")
			}
		default:
			found := v.headerBlocks(p.Space, p.Local)
			if len(found) == 0 && !p.Optional {
				return fail(CodeMissingPart, "{"+p.Space+"}"+p.Local, "required part {%s}%s is not in the envelope", p.Space, p.Local)
			}
			for _, el := range found {
				if !v.signed[el] {
					return fail(CodeNotSigned, "{"+p.Space+"}"+p.Local, "%s is not covered by the signature", pathOf(el))
				}
			}
		}
	}
	if requireTS && ts == nil {
		return fail(CodeTimestampMissing, "Timestamp", "the Security header holds no Timestamp")
	}
	if !v.opts.AllowUnsignedAddressing && v.header != nil {
		for _, c := range v.header.ChildElements() {
			if ns := c.NamespaceURI(); (ns == nsWSA10 || ns == nsWSA200408) && !v.signed[c] {
				return fail(CodeNotSigned, "{"+ns+"}"+c.Tag, "the WS-Addressing header %s is not covered by the signature", pathOf(c))
			}
		}
	}
	return nil
}

// headerBlocks returns the SOAP header blocks and children of our Security
// header named {space}local.
func (v *verifier) headerBlocks(space, local string) []*etree.Element {
	var out []*etree.Element
	var cands []*etree.Element
	if v.header != nil {
		cands = append(cands, v.header.ChildElements()...)
	}
	if v.sec != nil {
		cands = append(cands, v.sec.ChildElements()...)
	}
	for _, c := range cands {
		if c.Tag == local && c.NamespaceURI() == space {
			out = append(out, c)
		}
	}
	return out
}

// checkTimestamp applies the Timestamp rules.
func (v *verifier) checkTimestamp(ts *etree.Element) error {
	if ts == nil {
		return nil
	}
	var created, expires []*etree.Element
	for _, c := range ts.ChildElements() {
		if c.NamespaceURI() != NSWSU {
			continue
		}
		switch c.Tag {
		case "Created":
			created = append(created, c)
		case "Expires":
			expires = append(expires, c)
		}
	}
	if len(created) != 1 || len(expires) > 1 {
		return fail(CodeTimestampMalformed, "Timestamp", "a Timestamp needs exactly one Created and at most one Expires")
	}
	ct, err := parseDateTime(created[0])
	if err != nil {
		return fail(CodeTimestampMalformed, "Timestamp", "Created: %v", err)
	}
	info := &TimestampInfo{Created: ct}
	v.res.Timestamp = info
	if ct.After(v.now.Add(v.futureSkew)) {
		return fail(CodeTimestampFuture, "Timestamp", "Created %s is more than %s in the future", ct.Format(time.RFC3339), v.futureSkew)
	}
	if v.now.Sub(ct) > v.maxAge {
		return fail(CodeTimestampExpired, "Timestamp", "Created %s is older than %s", ct.Format(time.RFC3339), v.maxAge)
	}
	if len(expires) == 1 {
		et, err := parseDateTime(expires[0])
		if err != nil {
			return fail(CodeTimestampMalformed, "Timestamp", "Expires: %v", err)
		}
		info.Expires = &et
		if !et.After(ct) {
			return fail(CodeTimestampLifetime, "Timestamp", "Expires is not after Created")
		}
		if et.Sub(ct) > v.life {
			return fail(CodeTimestampLifetime, "Timestamp", "the Timestamp lives %s; the limit is %s", et.Sub(ct), v.life)
		}
		if !v.now.Before(et) {
			return fail(CodeTimestampExpired, "Timestamp", "the Timestamp expired at %s", et.Format(time.RFC3339))
		}
	}
	return nil
}

func parseDateTime(el *etree.Element) (time.Time, error) {
	s, err := textOf(el)
	if err != nil {
		return time.Time{}, err
	}
	s = strings.TrimSpace(s)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an xsd:dateTime with a time zone", s)
	}
	return t.UTC(), nil
}

// checkConfirmation requires a signed SignatureConfirmation for each
// SignatureValue we sent.
func (v *verifier) checkConfirmation() error {
	if len(v.opts.ExpectSignatureConfirmation) == 0 {
		return nil
	}
	var confs []*etree.Element
	for _, c := range v.sec.ChildElements() {
		if c.Tag == "SignatureConfirmation" && c.NamespaceURI() == NSWSSE11 {
			confs = append(confs, c)
		}
	}
	for i, want := range v.opts.ExpectSignatureConfirmation {
		ok := false
		for _, c := range confs {
			val, err := decodeB64(c.SelectAttrValue("Value", ""))
			if err != nil || c.SelectAttr("Value") == nil || !bytes.Equal(val, want) {
				continue
			}
			if !v.signed[c] {
				return fail(CodeSignatureConfirmation, "SignatureConfirmation", "the SignatureConfirmation of our signature %d is not signed", i+1)
			}
			ok = true
		}
		if !ok {
			return fail(CodeSignatureConfirmation, "SignatureConfirmation", "no SignatureConfirmation of our signature %d", i+1)
		}
	}
	return nil
}

// textOf returns all the character data of a leaf element; an element
// child is an error. Comments are skipped, so a comment cannot truncate.
func textOf(el *etree.Element) (string, error) {
	var b strings.Builder
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.CharData:
			b.WriteString(t.Data)
		case *etree.Element:
			return "", fmt.Errorf("unexpected child element <%s>", t.Tag)
		}
	}
	return b.String(), nil
}

// decodeB64 decodes base64 with any XML whitespace in it.
func decodeB64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.DecodeString(s)
}

func attrValue(el *etree.Element, key string) string {
	for _, a := range el.Attr {
		if a.Space == "" && a.Key == key {
			return a.Value
		}
	}
	return ""
}

// pathOf returns /Envelope/Header/... : local names from the root.
func pathOf(el *etree.Element) string {
	var parts []string
	for e := el; e != nil && e.Tag != ""; e = e.Parent() {
		parts = append(parts, e.Tag)
	}
	slices.Reverse(parts)
	return "/" + strings.Join(parts, "/")
}

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// indexIDs maps every wsu:Id, Id, ID and xml:id value in the tree to its
// element. The verifier uses it; Sign no longer parses into a tree.
func indexIDs(root *etree.Element) map[string]*etree.Element {
	m := map[string]*etree.Element{}
	var walk func(el *etree.Element)
	walk = func(el *etree.Element) {
		for i := range el.Attr {
			a := &el.Attr[i]
			switch {
			case a.Space == "" && (a.Key == "Id" || a.Key == "ID"):
				m[a.Value] = el
			case a.Space == "xml" && a.Key == "id":
				m[a.Value] = el
			case a.Space != "" && a.Key == "Id" && a.NamespaceURI() == NSWSU:
				m[a.Value] = el
			}
		}
		for _, c := range el.ChildElements() {
			walk(c)
		}
	}
	walk(root)
	return m
}

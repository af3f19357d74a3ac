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
	"io"
	"slices"
	"strings"
	"time"
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
	// SOAPVersion "1.1" or "1.2" refuses envelopes of the other version
	// (invalid-soap); "" accepts both. The api sets it from the request's
	// media type.
	SOAPVersion string
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
	// AllowInclusiveC14N admits Canonical XML 1.0 (AlgC14N10 and
	// AlgC14N10WithComments) for the SignedInfo and as the transform of a
	// Reference; when AllowedC14NMethods is empty both are added to it.
	// Without it they are refused even when listed.
	AllowInclusiveC14N bool
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
// pinned and the known signer certificates of opts.Trust), checks the
// References (exclusive C14N, Canonical XML 1.0 when opts allow it, or the
// STR-Transform to a BinarySecurityToken of the Security header) and the
// signature, then the trust
// in the certificate, then that every required part is covered by node
// identity (the element the envelope really uses, not a copy elsewhere),
// then the Timestamp rules, SignatureConfirmation and the replay cache.
//
// A ctx that ends during the work makes Verify return a CodeTimeout error
// (wrapping ctx.Err()) instead of a verdict.
func Verify(ctx context.Context, raw []byte, opts VerifyOptions) (*VerifyResult, error) {
	tree, version, err := parseEnvelopeTree(ctx, raw, opts.Limits)
	if err == nil {
		err = checkSOAPVersion(opts.SOAPVersion, version)
	}
	if err != nil {
		switch CodeOf(err) {
		case CodeNotSOAP, CodeInvalidSOAP, CodeDuplicateID:
			e := err.(*Error)
			return &VerifyResult{Code: e.Code, Detail: e.Msg, Signed: []string{}}, nil
		}
		return nil, err
	}
	v := &verifier{opts: opts, version: version, tree: tree, res: &VerifyResult{Signed: []string{}}}
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
	opts    VerifyOptions
	tree    *spanTree // the message, parsed once
	version soapVersion
	res     *VerifyResult

	now                      time.Time
	root, header, body, sec  elemRef // the zero elemRef when absent
	signed                   map[elemRef]bool
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
		o.RequiredParts = []Part{PartBody(), PartTimestamp()}
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
		if o.AllowInclusiveC14N {
			v.c14nAllowed = append(v.c14nAllowed, AlgC14N10, AlgC14N10WithComments)
		}
	}
}

func (v *verifier) run() error {
	v.root = v.tree.root()
	for _, c := range v.root.children() {
		if c.space() != v.version.ns {
			continue
		}
		switch c.local() {
		case "Header":
			v.header = c
		case "Body":
			v.body = c
		}
	}
	if !v.body.ok() {
		return errorf(CodeInternal, "Body lost between scan and parse")
	}
	v.signed = map[elemRef]bool{}

	if err := v.findSecurity(); err != nil {
		return err
	}
	var sig elemRef
	if v.sec.ok() {
		var sigs []elemRef
		for _, c := range v.sec.children() {
			if c.is(NSDSig, "Signature") {
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
	if !sig.ok() {
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
	if !v.header.ok() {
		return nil
	}
	attr := actorAttr(v.version)
	for _, c := range v.header.children() {
		if !c.is(NSWSSE, "Security") {
			continue
		}
		actor, _ := c.attr(v.version.ns, attr)
		if actor == "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver" {
			actor = ""
		}
		if actor != v.opts.Actor {
			continue
		}
		if v.sec.ok() {
			return fail(CodeSecurityHeader, "", "two Security headers for the same actor")
		}
		v.sec = c
	}
	return nil
}

func (v *verifier) unsigned() error {
	if isFault(v.body, v.version.ns) && v.opts.UnsignedFaults == UnsignedFaultsAccept {
		v.res.Valid = true
		v.res.UnsignedFault = true
		v.res.Code = CodeUnsignedFault
		v.res.Detail = "an unsigned SOAP Fault, accepted by the profile's policy"
		return nil
	}
	if !v.sec.ok() {
		return fail(CodeUnsigned, "", "no Security header for this receiver")
	}
	return fail(CodeUnsigned, "", "the Security header holds no Signature")
}

func isFault(body elemRef, soapNS string) bool {
	return body.childCount() == 1 && body.child(soapNS, "Fault").ok()
}

// findTimestamp enforces: at most one Timestamp in the document, and that
// one a child of our Security header.
func (v *verifier) findTimestamp() (elemRef, error) {
	var all []elemRef
	for i := range v.tree.elems.n {
		if el := v.tree.ref(int32(i)); el.is(NSWSU, "Timestamp") {
			all = append(all, el)
		}
	}
	switch {
	case len(all) > 1:
		return elemRef{}, fail(CodeTimestampDuplicate, "", "the envelope holds %d Timestamps; at most one is accepted", len(all))
	case len(all) == 0:
		return elemRef{}, nil
	case all[0].parent() != v.sec:
		return elemRef{}, fail(CodeTimestampMisplaced, "", "the Timestamp is at %s, not in the Security header", all[0].path())
	}
	return all[0], nil
}

// checkSignature checks the Signature's structure and algorithms, resolves
// and checks the key, the SignatureValue over SignedInfo and every
// Reference, and records the signed elements.
func (v *verifier) checkSignature(sig elemRef) error {
	kids := sig.children()
	for _, c := range kids {
		if c.space() != NSDSig {
			return fail(CodeSignatureStructure, "", "unexpected element {%s}%s in Signature", c.space(), c.local())
		}
	}
	if len(kids) < 2 || kids[0].local() != "SignedInfo" || kids[1].local() != "SignatureValue" {
		return fail(CodeSignatureStructure, "", "a Signature must start with one SignedInfo and one SignatureValue")
	}
	var keyInfo elemRef
	for i, c := range kids[2:] {
		switch {
		case c.local() == "KeyInfo" && i == 0:
			keyInfo = c
		case c.local() == "Object":
		default:
			return fail(CodeSignatureStructure, "", "unexpected ds:%s in Signature", c.local())
		}
	}
	si, svEl := kids[0], kids[1]
	svText, err := svEl.text()
	if err != nil {
		return fail(CodeSignatureStructure, "", "SignatureValue: %v", err)
	}
	sv, err := decodeB64(svText)
	if err != nil || len(sv) == 0 {
		return fail(CodeSignatureStructure, "", "SignatureValue is not base64")
	}
	v.sigValue = sv

	sik := si.children()
	for _, c := range sik {
		if c.space() != NSDSig {
			return fail(CodeSignatureStructure, "", "unexpected element {%s}%s in SignedInfo", c.space(), c.local())
		}
	}
	if len(sik) < 3 || sik[0].local() != "CanonicalizationMethod" || sik[1].local() != "SignatureMethod" {
		return fail(CodeSignatureStructure, "", "SignedInfo must hold CanonicalizationMethod, SignatureMethod and at least one Reference, in that order")
	}
	refs := sik[2:]
	for _, r := range refs {
		if r.local() != "Reference" {
			return fail(CodeSignatureStructure, "", "unexpected ds:%s in SignedInfo", r.local())
		}
	}
	if len(refs) > v.opts.MaxReferences {
		return fail(CodeSignatureStructure, "", "%d References; the limit is %d", len(refs), v.opts.MaxReferences)
	}
	c14nURI := sik[0].attrValue("Algorithm")
	if !v.c14nKnown(c14nURI) {
		return fail(CodeAlgorithmNotAllowed, "", "canonicalization method %q is not allowed", c14nURI)
	}
	siC14N, err := readC14NParams(sik[0], c14nURI)
	if err != nil {
		return err
	}
	smURI := sik[1].attrValue("Algorithm")
	sa, ok := signatureAlgs[smURI]
	if !ok || !slices.Contains(v.sigAllowed, smURI) || (sa.legacy && !v.opts.AllowSHA1) {
		return fail(CodeAlgorithmNotAllowed, "", "signature method %q is not allowed", smURI)
	}
	if sik[1].hasChildren() {
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

	// Every Reference's element and the SignedInfo are canonicalised from
	// the raw bytes of their spans in the message, read by the same
	// tokenizer that built the tree (attribute values normalised per XML
	// 1.0 §3.3.3, as libxml2, xmlsec1 and WSS4J read them) with the
	// namespace declarations of their ancestors in force. References may
	// overlap (each may name the whole Body); bound the total work to a few
	// times the message size.
	budget := &c14nBudget{left: 4*len(v.tree.raw) + 1<<20}
	outs := make([]*refOut, len(plans))
	for i, p := range plans {
		o := &refOut{h: p.da.hash.New(), budget: budget}
		if v.opts.Explain {
			o.buf = new(bytes.Buffer)
			o.sha = sha256.New()
		}
		outs[i] = o
		if err := p.canonicalize(o); err != nil {
			if errors.Is(err, errC14NBudget) {
				return fail(CodeSignatureStructure, p.uri, "the References cover more than four times the message")
			}
			return fail(CodeSignatureStructure, p.uri, "the element of %s cannot be canonicalised: %v", p.uri, err)
		}
	}
	h := sa.hash.New()
	siErr := canonicalizeWith(si, h, siC14N)
	var firstBad *verdict
	for i, p := range plans {
		o := outs[i]
		computed := o.h.Sum(nil)
		expected, derr := decodeB64(p.digest)
		match := derr == nil && subtle.ConstantTimeCompare(computed, expected) == 1
		if v.opts.Explain {
			v.res.Explain = append(v.res.Explain, RefExplain{
				URI: p.uri, Path: p.el.path(), CanonicalSHA256: hex.EncodeToString(o.sha.Sum(nil)), CanonicalLength: o.n,
				DigestMethod: p.dmURI, Expected: p.digest, Computed: base64.StdEncoding.EncodeToString(computed), Match: match,
				Canonical: o.buf.Bytes(),
			})
		}
		if !match && firstBad == nil {
			firstBad = fail(CodeDigestMismatch, p.uri, "the digest of %s (%s) does not match its DigestValue", p.uri, p.el.path())
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
	if siErr != nil {
		return fail(CodeSignatureStructure, "", "SignedInfo cannot be canonicalised: %v", siErr)
	}
	if err := verifyDigest(cert.PublicKey, sa, h.Sum(nil), sv); err != nil {
		return fail(CodeSignatureInvalid, "", "the SignatureValue does not verify with the key of %s", cert.Subject)
	}

	for _, p := range plans {
		v.signed[p.el] = true
		v.res.Signed = append(v.res.Signed, p.el.path())
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

// errC14NBudget stops a Reference's canonicalisation once the References
// together have produced more than the budget allows.
var errC14NBudget = errors.New("the canonicalisation budget is exhausted")

// c14nBudget is the number of canonical bytes all References may still produce.
type c14nBudget struct{ left, spent int }

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
	el     elemRef // the element the digest covers: for an STR-Transform, the token
	da     digestAlg
	dmURI  string
	c14n   c14nParams
	str    bool // the STR-Transform: el is the dereferenced token
	digest string
}

// canonicalize writes the octets the Reference's digest covers.
func (p *plannedRef) canonicalize(w io.Writer) error {
	if p.str {
		return canonicalizeSTRToken(p.el, w)
	}
	return canonicalizeWith(p.el, w, p.c14n)
}

// canonicalizeWith writes the canonical form of el's subtree that c
// selects (exclusive or inclusive C14N, with or without comments).
func canonicalizeWith(el elemRef, w io.Writer, c c14nParams) error {
	if c.Inclusive {
		return el.canonicalizeInclusive(w, c.WithComments)
	}
	return el.canonicalize(w, c.InclusivePrefixes, c.WithComments)
}

// c14nKnown reports whether uri is a canonicalisation algorithm Verify
// implements and the options allow.
func (v *verifier) c14nKnown(uri string) bool {
	switch {
	case !slices.Contains(v.c14nAllowed, uri):
		return false
	case uri == AlgExcC14N || uri == AlgExcC14NWithComments:
		return true
	case isInclusiveC14N(uri):
		return v.opts.AllowInclusiveC14N
	}
	return false
}

func (v *verifier) planReference(r elemRef) (*plannedRef, error) {
	uri, ok := r.attrAnyNS("URI")
	// Only "#id" with a bare NCName-like id: no external documents, no
	// XPointer, no whole-document "".
	id, isFrag := strings.CutPrefix(uri, "#")
	if !ok || !isFrag || id == "" || strings.ContainsAny(id, "()/ \t\r\n\"'#:") {
		return nil, fail(CodeReferenceURI, uri, "Reference URI %q is not a same-document \"#id\" reference", uri)
	}
	// Only URI, Id and Type without a prefix; a default namespace
	// declaration on the Reference counts as an unexpected attribute.
	for _, a := range r.attrList() {
		if a.prefix() == "" && a.local() != "URI" && a.local() != "Id" && a.local() != "Type" {
			return nil, fail(CodeSignatureStructure, uri, "unexpected attribute %s on Reference", a.local())
		}
	}
	if r.declaresDefault() {
		return nil, fail(CodeSignatureStructure, uri, "unexpected attribute xmlns on Reference")
	}
	kids := r.children()
	for _, c := range kids {
		if c.space() != NSDSig {
			return nil, fail(CodeSignatureStructure, uri, "unexpected element {%s}%s in Reference", c.space(), c.local())
		}
	}
	var transforms elemRef
	if len(kids) > 0 && kids[0].local() == "Transforms" {
		transforms, kids = kids[0], kids[1:]
	}
	if len(kids) != 2 || kids[0].local() != "DigestMethod" || kids[1].local() != "DigestValue" {
		return nil, fail(CodeSignatureStructure, uri, "a Reference must hold Transforms?, DigestMethod, DigestValue")
	}
	if !transforms.ok() {
		return nil, fail(CodeTransformNotAllowed, uri, "the Reference names no transform; an exclusive C14N transform is required")
	}
	ts := transforms.children()
	if len(ts) != 1 || !ts[0].is(NSDSig, "Transform") {
		return nil, fail(CodeTransformNotAllowed, uri, "exactly one Transform (a canonicalisation or the STR-Transform) is accepted")
	}
	talg := ts[0].attrValue("Algorithm")
	var c14n c14nParams
	isSTR := talg == AlgSTRTransform
	if isSTR {
		if err := readSTRTransformParams(ts[0]); err != nil {
			err.(*verdict).ref = uri
			return nil, err
		}
	} else {
		if !v.c14nKnown(talg) {
			return nil, fail(CodeTransformNotAllowed, uri, "transform %q is not allowed", talg)
		}
		var err error
		c14n, err = readC14NParams(ts[0], talg)
		if err != nil {
			err.(*verdict).ref = uri
			return nil, err
		}
		// A "#id" reference selects the element without comments (XML-DSig
		// §4.4.3.3), whatever the transform says.
		c14n.WithComments = false
	}
	dmURI := kids[0].attrValue("Algorithm")
	da, ok := digestAlgs[dmURI]
	if !ok || !slices.Contains(v.digAllowed, dmURI) || (da.legacy && !v.opts.AllowSHA1) {
		return nil, fail(CodeAlgorithmNotAllowed, uri, "digest method %q is not allowed", dmURI)
	}
	dv, terr := kids[1].text()
	if terr != nil {
		return nil, fail(CodeSignatureStructure, uri, "DigestValue: %v", terr)
	}
	el := v.tree.byID(id)
	if !el.ok() {
		return nil, fail(CodeReferenceNotFound, uri, "no element has the Id %q", id)
	}
	if isSTR {
		tok, err := v.dereferenceSTR(uri, el)
		if err != nil {
			return nil, err
		}
		el = tok
	}
	return &plannedRef{uri: uri, el: el, da: da, dmURI: dmURI, c14n: c14n, str: isSTR, digest: strings.TrimSpace(dv)}, nil
}

// c14nParams selects the canonicalisation of a CanonicalizationMethod or
// Transform: Exclusive XML Canonicalization 1.0 or, with Inclusive,
// Canonical XML 1.0.
type c14nParams struct {
	// Inclusive selects Canonical XML 1.0 (which takes no parameters).
	Inclusive bool
	// InclusivePrefixes is the InclusiveNamespaces PrefixList; "#default" names the default namespace.
	InclusivePrefixes []string
	// WithComments selects http://www.w3.org/2001/10/xml-exc-c14n#WithComments.
	WithComments bool
}

// readC14NParams reads the InclusiveNamespaces PrefixList of a
// CanonicalizationMethod or Transform.
func readC14NParams(el elemRef, alg string) (c14nParams, error) {
	opts := c14nParams{WithComments: alg == AlgExcC14NWithComments || alg == AlgC14N10WithComments, Inclusive: isInclusiveC14N(alg)}
	kids := el.children()
	if opts.Inclusive && len(kids) > 0 {
		return opts, fail(CodeTransformNotAllowed, "", "Canonical XML 1.0 takes no parameters")
	}
	if len(kids) > 1 {
		return opts, fail(CodeTransformNotAllowed, "", "%s takes at most one InclusiveNamespaces parameter", el.local())
	}
	for _, k := range kids {
		if !k.is(nsExcC14N, "InclusiveNamespaces") {
			return opts, fail(CodeTransformNotAllowed, "", "unexpected parameter {%s}%s of %s", k.space(), k.local(), el.local())
		}
		pl, _ := k.attrAnyNS("PrefixList")
		opts.InclusivePrefixes = strings.Fields(pl)
	}
	return opts, nil
}

// checkParts checks, by node identity, that the required parts are signed.
func (v *verifier) checkParts(ts elemRef) error {
	requireTS := v.opts.RequireTimestamp
	for _, p := range v.opts.RequiredParts {
		switch {
		case p.Local == "Body" && (p.Space == "" || p.Space == NSSOAP11 || p.Space == NSSOAP12):
			if !v.signed[v.body] {
				return fail(CodeNotSigned, "Body", "the SOAP Body at %s is not covered by the signature", v.body.path())
			}
		case p.Space == NSWSU && p.Local == "Timestamp":
			if !ts.ok() {
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
					return fail(CodeNotSigned, "{"+p.Space+"}"+p.Local, "%s is not covered by the signature", el.path())
				}
			}
		}
	}
	if requireTS && !ts.ok() {
		return fail(CodeTimestampMissing, "Timestamp", "the Security header holds no Timestamp")
	}
	if !v.opts.AllowUnsignedAddressing && v.header.ok() {
		for _, c := range v.header.children() {
			if ns := c.space(); (ns == nsWSA10 || ns == nsWSA200408) && !v.signed[c] {
				return fail(CodeNotSigned, "{"+ns+"}"+c.local(), "the WS-Addressing header %s is not covered by the signature", c.path())
			}
		}
	}
	return nil
}

// headerBlocks returns the SOAP header blocks and children of our Security
// header named {space}local.
func (v *verifier) headerBlocks(space, local string) []elemRef {
	var out []elemRef
	var cands []elemRef
	if v.header.ok() {
		cands = append(cands, v.header.children()...)
	}
	if v.sec.ok() {
		cands = append(cands, v.sec.children()...)
	}
	for _, c := range cands {
		if c.is(space, local) {
			out = append(out, c)
		}
	}
	return out
}

// checkTimestamp applies the Timestamp rules.
func (v *verifier) checkTimestamp(ts elemRef) error {
	if !ts.ok() {
		return nil
	}
	var created, expires []elemRef
	for _, c := range ts.children() {
		if c.space() != NSWSU {
			continue
		}
		switch c.local() {
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

func parseDateTime(el elemRef) (time.Time, error) {
	s, err := el.text()
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
	var confs []elemRef
	for _, c := range v.sec.children() {
		if c.is(NSWSSE11, "SignatureConfirmation") {
			confs = append(confs, c)
		}
	}
	for i, want := range v.opts.ExpectSignatureConfirmation {
		ok := false
		for _, c := range confs {
			sv, present := c.attrAnyNS("Value")
			val, err := decodeB64(sv)
			if err != nil || !present || !bytes.Equal(val, want) {
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

func hexSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

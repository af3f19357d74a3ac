package wss

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"slices"
	"time"

	"github.com/wssignd/wssignd/internal/defs"
)

// Credential is a private key, reachable only through its Signer, and its
// certificate chain, leaf first.
type Credential struct {
	Signer crypto.Signer
	Chain  []*x509.Certificate
}

// Part names an element to sign. Body, Timestamp, BinarySecurityToken and
// UsernameToken are found by meaning ({soap-ns}Body for either SOAP version;
// the Timestamp and BinarySecurityToken that Sign adds; the UsernameToken
// that Sign adds, else the caller's in the Security header Sign extends);
// any other QName is looked up among the SOAP header blocks and the
// children of the Security header Sign extends (Space AnyNamespace matches
// the local name in any namespace).
type Part struct {
	Space    string // namespace URI
	Local    string // local name
	Optional bool   // a missing optional part is skipped; a missing required one is an error
}

// The parts every WS-Security profile signs by default. Each call returns a
// new value, so no caller can change another's.

// PartBody is the SOAP Body; it matches the Body of either SOAP version.
func PartBody() Part { return Part{Space: NSSOAP11, Local: "Body"} }

// PartTimestamp is the wsu:Timestamp of the Security header.
func PartTimestamp() Part { return Part{Space: NSWSU, Local: "Timestamp"} }

// PartBST is the wsse:BinarySecurityToken of the Security header.
func PartBST() Part { return Part{Space: NSWSSE, Local: "BinarySecurityToken"} }

// Layout orders the elements Sign adds to the Security header.
type Layout string

const (
	// LayoutStrict (the default): every token before the Signature that
	// uses or signs it: UsernameToken, BinarySecurityToken, Timestamp,
	// Signature.
	LayoutStrict Layout = defs.LayoutStrict
	// LayoutTimestampFirst: the Timestamp is the first child of the
	// Security header (WS-SecurityPolicy LaxTsFirst), then the tokens and
	// the Signature.
	LayoutTimestampFirst Layout = defs.LayoutTimestampFirst
	// LayoutTimestampLast: the Timestamp is the last child of the Security
	// header (WS-SecurityPolicy LaxTsLast).
	LayoutTimestampLast Layout = defs.LayoutTimestampLast
)

// Layouts lists every Layout, for configuration checks; the slice is the
// caller's.
func Layouts() []Layout { return []Layout{LayoutStrict, LayoutTimestampFirst, LayoutTimestampLast} }

// SOAP 1.2 role that means the same as no role at all.
const roleUltimateReceiver = "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver"

// SignOptions configures Sign. The zero value signs the Body and the
// Timestamp with the key's default algorithm, SHA-256 digests, a 300 s
// Timestamp and a direct reference to an X.509v3 BinarySecurityToken.
type SignOptions struct {
	// Parts to sign, in Reference order. Empty means Body, Timestamp.
	Parts []Part
	// SignatureMethod is an algorithm URI (AlgRSASHA256, ...); "" picks
	// DefaultSignatureMethod for the key.
	SignatureMethod string
	// DigestMethod is an algorithm URI; "" means AlgSHA256.
	DigestMethod string
	// AllowSHA1 permits AlgRSASHA1 and AlgSHA1, which some legacy services demand.
	AllowSHA1 bool
	// TTL is the Timestamp lifetime (Expires − Created); 0 means 300 s.
	TTL time.Duration
	// TimestampMillis writes Created and Expires with milliseconds
	// (2006-01-02T15:04:05.000Z) instead of whole seconds.
	TimestampMillis bool
	// NoExpires leaves wsu:Expires out of the Timestamp.
	NoExpires bool
	// TimestampZone is how Created and Expires, always in UTC, name their
	// zone: "" or "Z" (the usual form), or "+00:00" (the same instant as
	// an offset, which some services' clients write).
	TimestampZone string
	// NoTimestamp sends no wsu:Timestamp (a Timestamp part must then be
	// optional).
	NoTimestamp bool
	// NoSignature sends the Security header without a Signature: only the
	// UsernameToken and, unless NoTimestamp, the Timestamp. Parts must be
	// empty, and Sign needs no credential.
	NoSignature bool
	// NoTransforms writes References without Transforms. XML-DSig
	// §4.3.3.2 then digests each referenced element's Canonical XML 1.0
	// (inclusive) form, which Sign computes (ancestors of the signed
	// elements must carry no xml:* attribute). WS-I BSP 1.1 R5416 requires
	// Transforms: this is for services whose clients send none.
	NoTransforms bool
	// NoMustUnderstand leaves the mustUnderstand attribute off a new
	// Security header.
	NoMustUnderstand bool
	// SignatureConfirmation adds, before the Signature, one signed
	// wsse11:SignatureConfirmation (WS-Security 1.1 §8.5) per value of
	// ConfirmValues, or a single one without Value when ConfirmValues is
	// empty (the request answered was unsigned).
	SignatureConfirmation bool
	// ConfirmValues are the ds:SignatureValue octets of the request's
	// signatures (see RequestSignatureValues); per request, at most
	// MaxConfirmations.
	ConfirmValues [][]byte
	// TokenReference is how KeyInfo references the certificate; "" means RefDirect.
	TokenReference TokenReference
	// IncludeBST adds the BinarySecurityToken even when TokenReference does
	// not point at it (it always does for RefDirect).
	IncludeBST bool
	// BSTValueType is ValueTypeX509v3 (the leaf certificate, the default)
	// or ValueTypeX509PKIPath (the whole chain).
	BSTValueType string
	// InclusivePrefixes adds an ec:InclusiveNamespaces PrefixList, computed
	// with VisiblyUsedPrefixes, to the SignedInfo CanonicalizationMethod and
	// to each Reference's exclusive C14N transform. Without it a Reference
	// gets a PrefixList only when its element holds xsi:type values, naming
	// their prefixes (WS-I BSP 1.1 R5405, R5407).
	InclusivePrefixes bool
	// Actor is the SOAP 1.1 actor / SOAP 1.2 role of the Security header;
	// "" means none (the ultimate receiver). A Security header already in
	// the envelope for the same actor is extended.
	Actor string
	// Layout orders the Security header; "" means LayoutStrict.
	Layout Layout
	// NoCopy leaves SignResult.Envelope nil: the result refers to the
	// input's bytes, which must not change until it is written with
	// SignResult.WriteTo. It saves a copy of the envelope.
	NoCopy bool
	// SOAPVersion "1.1" or "1.2" refuses envelopes of the other version;
	// "" accepts both.
	SOAPVersion string
	// UsernameToken, if set, is added to the Security header.
	UsernameToken *UsernameToken
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the source for Ids, nonces and the signer; nil means crypto/rand.
	Rand io.Reader
	// Limits bound the input envelope.
	Limits Limits
}

// SignResult describes what Sign produced, for audit and metrics.
type SignResult struct {
	// Envelope is the signed envelope; nil with SignOptions.NoCopy (use
	// WriteTo or Bytes).
	Envelope       []byte
	parts          [][]byte // with NoCopy: the input's bytes and the inserted ones, in order
	SignedInfoHash []byte   // the digest that the private key signed
	// SignedInfoSHA256 is the SHA-256 of the canonical SignedInfo whatever
	// the signature's hash, so audit records compare across profiles.
	SignedInfoSHA256 []byte
	SignatureMethod  string
	References       []string // the Reference URIs, in order
}

const defaultTTL = 300 * time.Second

// methods returns the signature and digest methods opts resolves to for pub.
func (opts *SignOptions) methods(pub crypto.PublicKey) (sm, dm string, err error) {
	sm = opts.SignatureMethod
	if sm == "" {
		if sm, err = DefaultSignatureMethod(pub); err != nil {
			return "", "", &Error{Code: CodeUnsupported, Msg: "signing key", Err: err}
		}
	}
	dm = opts.DigestMethod
	if dm == "" {
		dm = AlgSHA256
	}
	return sm, dm, nil
}

func (opts *SignOptions) includeBST() bool { return opts.TokenReference.needsBST() || opts.IncludeBST }

// CheckSignOptions reports whether opts can work with cred: algorithms known,
// allowed and fitting the key, the token reference possible with the
// certificate (a SubjectKeyIdentifier reference needs the extension), and
// the other options known. Daemons call it at startup and on reload so
// that mismatches are configuration errors, not request errors; Sign calls
// it too.
func CheckSignOptions(opts SignOptions, cred Credential) error {
	if err := checkHeaderOptions(&opts); err != nil {
		return err
	}
	if opts.NoSignature {
		return nil
	}
	if cred.Signer == nil || len(cred.Chain) == 0 || cred.Chain[0] == nil {
		return errorf(CodeInternal, "credential without signer or certificate")
	}
	pub := cred.Signer.Public()
	sm, dm, err := opts.methods(pub)
	if err != nil {
		return err
	}
	if err := CheckAlgorithms(pub, sm, dm, opts.AllowSHA1); err != nil {
		return err
	}
	if err := checkTokenReference(&opts, cred.Chain); err != nil {
		return err
	}
	for _, p := range opts.Parts {
		if p == PartBST() && !opts.includeBST() {
			return errorf(CodeUnsupported, "the BinarySecurityToken is a required part, but token reference %q does not include it (set IncludeBST or mark the part optional)", opts.TokenReference)
		}
	}
	return nil
}

// Sign adds a wsse:Security header to the SOAP envelope raw holding an X.509
// BinarySecurityToken (unless the token reference makes it unnecessary), a
// Timestamp, an optional UsernameToken and an XML Signature over opts.Parts
// made with cred.Signer. Bytes of raw outside the added header and the added
// wsu:Id attributes are returned unchanged. raw is not modified.
//
// The XML work stops with a CodeTimeout error once ctx ends; the private
// key is not used after that.
func Sign(ctx context.Context, raw []byte, cred Credential, opts SignOptions) (*SignResult, error) {
	if err := CheckSignOptions(opts, cred); err != nil {
		return nil, err
	}
	if opts.NoSignature {
		return addHeader(ctx, raw, opts)
	}
	sm, dm, _ := opts.methods(cred.Signer.Public())
	parts := opts.Parts
	if len(parts) == 0 {
		parts = []Part{PartBody(), PartTimestamp()}
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = defaultTTL
	}

	// The Body, signed by nearly every profile, is canonicalised into its
	// hash during the scan's one pass over the input (with InclusivePrefixes
	// its PrefixList must be known first, so it is not).
	var body *bodyDigest
	if !opts.InclusivePrefixes && !opts.NoTransforms && slices.ContainsFunc(parts, isBodyPart) {
		body = &bodyDigest{h: digestAlgs[dm].hash.New(), rnd: rnd}
		defer body.release()
	}
	env, err := scanEnvelopeBody(ctx, raw, opts.Limits, body.hook())
	if err != nil {
		return nil, err
	}
	if err := body.settle(env); errors.Is(err, errBodyIDTaken) || err == nil && body != nil && len(body.qnames.set) > 0 {
		// The Body's Id was taken, or its xsi:type values need a
		// PrefixList: digest it the usual way.
		body.release()
		body = nil
	} else if err != nil {
		return nil, err
	}
	if err := checkVersion(&opts, env); err != nil {
		return nil, err
	}
	s := &signer{env: env, rnd: rnd, opts: &opts, leaf: cred.Chain[0], body: body}
	if err := s.plan(parts); err != nil {
		return nil, err
	}
	if opts.includeBST() {
		if s.bstID, err = s.newID("X509-"); err != nil {
			return nil, err
		}
	}
	if opts.UsernameToken != nil {
		if s.utID, err = s.newID("UsernameToken-"); err != nil {
			return nil, err
		}
		if opts.UsernameToken.Digest {
			s.nonce = make([]byte, 16)
			if _, err := io.ReadFull(rnd, s.nonce); err != nil {
				return nil, &Error{Code: CodeInternal, Msg: "random source", Err: err}
			}
		}
	}
	if !opts.NoTimestamp {
		if s.tsID, err = s.newID("TS-"); err != nil {
			return nil, err
		}
	}
	if opts.SignatureConfirmation {
		for i := range max(1, len(opts.ConfirmValues)) {
			id, err := s.newID("SC-")
			if err != nil {
				return nil, err
			}
			s.scIDs = append(s.scIDs, id)
			s.refs = append(s.refs, &reference{kind: refSigConf, n: i, id: id})
		}
	}
	if s.sigID, err = s.newID("SIG-"); err != nil {
		return nil, err
	}
	if s.strID, err = s.newID("STR-"); err != nil {
		return nil, err
	}
	for _, r := range s.refs {
		switch r.kind {
		case refTimestamp:
			r.id = s.tsID
		case refBST:
			r.id = s.bstID
		case refUsernameToken:
			r.id = s.utID
		case refSigConf:
		default:
			if body != nil && r.el == env.body {
				r.id, r.addID = body.id, body.addID
			}
			if r.id == "" {
				if r.id, err = s.newID("id-"); err != nil {
					return nil, err
				}
				r.addID = true
			}
		}
	}
	s.created, s.expires = timestampTimes(&opts, now(), ttl)
	if s.bstID != "" {
		if s.bst, err = bstValue(opts.BSTValueType, cred.Chain); err != nil {
			return nil, err
		}
	}
	s.sm, s.dm = sm, dm
	s.render()

	// Digest every reference: the Body during the scan, the caller's other
	// elements straight from raw, the generated ones from the pieces
	// rendered alone; each canonical form goes straight into its hash. No
	// copy of the envelope is made (none at all with NoCopy).
	digests, err := s.digestReferences()
	if err != nil {
		return nil, err
	}

	// SignedInfo, canonicalised from the Security content as it will be
	// spliced, with the namespace context of the place it goes.
	sa := signatureAlgs[sm]
	h, h256 := sa.hash.New(), sha256.New()
	var w io.Writer = io.MultiWriter(h, h256)
	// A signer that signs whole messages gets the canonical SignedInfo for RSA PKCS #1 v1.5,
	// so that a token whose hash-and-sign mechanism is cheaper can use it; the signature is
	// still checked below against the digest computed here.
	var signedInfo *bytes.Buffer
	if _, ok := cred.Signer.(crypto.MessageSigner); ok && sa.kind == keyRSA && !sa.pss {
		signedInfo = new(bytes.Buffer)
		w = io.MultiWriter(h, h256, signedInfo)
	}
	if err := s.canonicalizeSignedInfo(w, digests); err != nil {
		return nil, err
	}
	sum := h.Sum(nil)
	if err := ctxError(ctx); err != nil {
		return nil, err
	}
	var msg []byte
	if signedInfo != nil {
		msg = signedInfo.Bytes()
	}
	sigValue, err := signDigest(cred.Signer, rnd, sa, sum, msg)
	if err != nil {
		return nil, err
	}
	if err := verifyDigest(cred.Chain[0].PublicKey, sa, sum, sigValue); err != nil {
		// A signature that does not verify must never leave: with RSA-CRT a
		// faulty signature can even reveal the key.
		return nil, &Error{Code: CodeSigningFailed, Msg: "the token's signature does not verify against the certificate", Err: err}
	}
	res := &SignResult{parts: s.splice(base64.StdEncoding.EncodeToString(sigValue)), SignedInfoHash: sum, SignedInfoSHA256: h256.Sum(nil), SignatureMethod: sm}
	if !opts.NoCopy {
		res.Envelope = bytes.Join(res.parts, nil)
		res.parts = nil
	}
	for _, r := range s.refs {
		res.References = append(res.References, "#"+r.id)
	}
	return res, nil
}

type refKind int

const (
	refElement refKind = iota // an element of the caller's envelope
	refTimestamp
	refBST
	refUsernameToken // the UsernameToken Sign adds
	refSigConf       // a SignatureConfirmation Sign adds
)

type reference struct {
	kind  refKind
	el    *element // for refElement
	id    string
	addID bool // the element gets a new wsu:Id attribute
	n     int  // for refSigConf: which one
}

type signer struct {
	env  *envelope
	rnd  io.Reader
	opts *SignOptions
	leaf *x509.Certificate
	refs []*reference

	sec                             *element // the caller's Security header we extend, or nil
	bstID, tsID, sigID, strID, utID string
	scIDs                           []string // the SignatureConfirmations' Ids
	created, expires, bst, sm, dm   string
	nonce                           []byte
	ins                             insertion
	body                            *bodyDigest // the Body's digest, made by the scan; nil if not
	refPL                           [][]string  // per reference, with InclusivePrefixes
	siPL                            []string    // for SignedInfo, with InclusivePrefixes
}

// actorOf is the actor/role an element's attribute names, normalised so
// that SOAP 1.2's ultimateReceiver equals no role.
func (s *signer) actorOf(v string) string {
	if s.env.version == soap12 && v == roleUltimateReceiver {
		return ""
	}
	return v
}

// plan resolves the parts to elements, in order.
func (s *signer) plan(parts []Part) error {
	env := s.env
	want := s.actorOf(s.opts.Actor)
	for _, sec := range env.security {
		v, _ := sec.attr(env.version.ns, actorAttr(env.version))
		if s.actorOf(v) != want {
			continue // addressed to another actor/role
		}
		if s.sec != nil {
			return errorf(CodeInvalidSOAP, "two Security headers for the same actor")
		}
		s.sec = sec
	}
	if s.sec != nil && !s.opts.NoTimestamp {
		for _, c := range s.sec.children {
			if c.space == NSWSU && c.local == "Timestamp" {
				return errorf(CodeInvalidSOAP, "the Security header for this actor already holds a Timestamp; a second one is not allowed")
			}
		}
	}
	seen := map[*element]bool{}
	add := func(el *element) {
		if !seen[el] {
			seen[el] = true
			s.refs = append(s.refs, &reference{kind: refElement, el: el, id: el.wsuID})
		}
	}
	own := map[refKind]bool{}
	addOwn := func(k refKind) {
		if !own[k] {
			own[k] = true
			s.refs = append(s.refs, &reference{kind: k})
		}
	}
	for _, p := range parts {
		switch {
		case isBodyPart(p):
			add(env.body)
		case p == PartTimestamp() || p == (Part{Space: NSWSU, Local: "Timestamp", Optional: true}):
			if !s.opts.NoTimestamp {
				addOwn(refTimestamp)
			} else if !p.Optional {
				return errorf(CodeMissingPart, "required part Timestamp is not sent (the profile sends no Timestamp)")
			}
		case p.Space == NSWSSE && p.Local == "BinarySecurityToken":
			if s.opts.includeBST() {
				addOwn(refBST)
			} else if !p.Optional {
				return errorf(CodeMissingPart, "required part BinarySecurityToken is not sent with token reference %q", s.opts.TokenReference)
			}
		case p.Space == NSWSSE && p.Local == "UsernameToken" && s.opts.UsernameToken != nil:
			addOwn(refUsernameToken)
		default:
			found := false
			var candidates []*element
			if env.header != nil {
				candidates = append(candidates, env.header.children...)
			}
			if s.sec != nil {
				candidates = append(candidates, s.sec.children...)
			}
			for _, el := range candidates {
				if (el.space == p.Space || p.Space == AnyNamespace) && el.local == p.Local {
					add(el)
					found = true
				}
			}
			if !found && !p.Optional {
				return errorf(CodeMissingPart, "required part {%s}%s is not in the envelope", p.Space, p.Local)
			}
		}
	}
	return nil
}

func actorAttr(v soapVersion) string {
	if v == soap12 {
		return "role"
	}
	return "actor"
}

func (s *signer) newID(prefix string) (string, error) {
	var b [16]byte
	for range 8 {
		if _, err := io.ReadFull(s.rnd, b[:]); err != nil {
			return "", &Error{Code: CodeInternal, Msg: "random source", Err: err}
		}
		id := prefix + hex.EncodeToString(b[:])
		if !s.env.ids[id] {
			s.env.ids[id] = true
			return id, nil
		}
	}
	return "", errorf(CodeInternal, "could not draw a unique Id")
}

// signDigest has the signer sign sum (or, when msg is not nil, the message
// msg whose digest sum is, with the signer's SignMessage) and returns the
// signature in XML-DSig form (r‖s, each left-padded to the curve size, for
// ECDSA).
func signDigest(signer crypto.Signer, rnd io.Reader, sa signatureAlg, sum, msg []byte) ([]byte, error) {
	var opts crypto.SignerOpts = sa.hash
	if sa.pss {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: sa.hash}
	}
	var sig []byte
	var err error
	if ms, ok := signer.(crypto.MessageSigner); ok && msg != nil {
		sig, err = ms.SignMessage(rnd, msg, opts)
	} else {
		sig, err = signer.Sign(rnd, sum, opts)
	}
	if err != nil {
		return nil, &Error{Code: CodeSigningFailed, Msg: "the private-key operation failed", Err: err}
	}
	if sa.kind != keyECDSA {
		return sig, nil
	}
	pub, ok := signer.Public().(*ecdsa.PublicKey)
	if !ok {
		return nil, errorf(CodeInternal, "ECDSA method with a non-EC key")
	}
	raw, err := ecdsaDERToRaw(sig, (pub.Curve.Params().BitSize+7)/8)
	if err != nil {
		return nil, &Error{Code: CodeSigningFailed, Msg: "the token returned a malformed ECDSA signature", Err: err}
	}
	return raw, nil
}

// ecdsaDERToRaw converts an ASN.1 ECDSA-Sig-Value to the fixed-width r‖s
// encoding of XML-DSig 1.1 §6.4.3, left-padding r and s to size bytes.
func ecdsaDERToRaw(der []byte, size int) ([]byte, error) {
	var v struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &v)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 || v.R == nil || v.S == nil || v.R.Sign() <= 0 || v.S.Sign() <= 0 {
		return nil, fmt.Errorf("invalid ECDSA signature encoding")
	}
	if (v.R.BitLen()+7)/8 > size || (v.S.BitLen()+7)/8 > size {
		return nil, fmt.Errorf("ECDSA signature values larger than the curve")
	}
	out := make([]byte, 2*size)
	v.R.FillBytes(out[:size])
	v.S.FillBytes(out[size:])
	return out, nil
}

// verifyDigest checks an XML-DSig signature value over sum.
func verifyDigest(pub crypto.PublicKey, sa signatureAlg, sum, sig []byte) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if sa.pss {
			return rsa.VerifyPSS(k, sa.hash, sum, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: sa.hash})
		}
		return rsa.VerifyPKCS1v15(k, sa.hash, sum, sig)
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return fmt.Errorf("ECDSA signature is %d bytes, want %d", len(sig), 2*size)
		}
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(k, sum, r, s) {
			return fmt.Errorf("ECDSA signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("unsupported public key type %T", pub)
}

// digestReferences digests every reference of s without building the
// signed envelope. The Body's digest was made by the scan when s.body is
// set; the caller's other elements are canonicalised from the input bytes
// in a pass that ends once they are read, with the wsu:Id attribute (and its
// xmlns declaration) that Sign adds injected into their start tags as they
// will be in the output; the elements Sign generates are canonicalised from
// the pieces render made, read with the namespace scope of the place they
// go. With InclusivePrefixes a first pass computes each Reference's
// PrefixList (the prefixes visibly used in the referenced subtree), which
// the canonical form depends on.
func (s *signer) digestReferences() ([]string, error) {
	byStart := map[int]int{} // the caller's elements, by offset
	var generated []int      // the ones Sign adds
	bodyRef := -1
	for i, r := range s.refs {
		if r.kind == refElement && s.body != nil && r.el == s.env.body {
			bodyRef = i
		} else if r.kind == refElement {
			byStart[r.el.start] = i
		} else {
			generated = append(generated, i)
		}
	}
	pass := func(start func(i int) tokenSink) error {
		seen := make([]bool, len(s.refs))
		if bodyRef >= 0 {
			seen[bodyRef] = true
		}
		if len(byStart) > 0 {
			// The caller's other elements are headers: the pass stops once
			// they are read, before the Body.
			t := getTokenizer(s.env.raw)
			defer putTokenizer(t)
			t.bound(s.env.ctx, s.env.lim)
			err := streamSinksN(t, len(byStart), func(t *xmlTokenizer) tokenSink {
				i, ok := byStart[t.start]
				if !ok || seen[i] {
					return nil
				}
				seen[i] = true
				if r := s.refs[i]; r.addID {
					s.injectID(t, r)
				}
				return start(i)
			})
			if err != nil {
				return internalError("re-reading the envelope failed", err)
			}
		}
		for _, i := range generated {
			// The element is the piece's root, read in the scope of the
			// Security header's children.
			piece := s.ins.ts
			switch s.refs[i].kind {
			case refBST:
				piece = s.ins.bst
			case refUsernameToken:
				piece = s.ins.ut
			case refSigConf:
				piece = s.ins.sc[s.refs[i].n]
			}
			if err := s.canonicalizePiece(piece, s.ins.scope, start(i)); err != nil {
				return internalError("reading the generated Security content failed", err)
			}
			seen[i] = true
		}
		for i, ok := range seen {
			if !ok {
				return errorf(CodeInternal, "reference #%s not found", s.refs[i].id)
			}
		}
		return nil
	}
	if s.opts.NoTransforms {
		// Each Reference's digest is its Canonical XML 1.0 form: exclusive
		// C14N with every namespace in scope or declared listed.
		if s.inheritedXMLAttrs() {
			return nil, errorf(CodeUnsupported, "References without Transforms digest inclusive C14N, which would copy the xml:* attributes of the Envelope, Header or Security header onto each signed element; remove them or use Transforms")
		}
		sinks := make([]*inclusiveSink, len(s.refs))
		if err := pass(func(i int) tokenSink {
			sinks[i] = newInclusiveSink()
			return sinks[i]
		}); err != nil {
			return nil, err
		}
		s.refPL = make([][]string, len(s.refs))
		for i, u := range sinks {
			s.refPL[i] = u.sorted()
		}
	} else if !s.opts.InclusivePrefixes {
		// Only the prefixes of QName values need listing (BSP R5405).
		qn := make([]*qnamePrefixSink, len(s.refs))
		if err := pass(func(i int) tokenSink {
			qn[i] = newQNamePrefixSink()
			return qn[i]
		}); err != nil {
			return nil, err
		}
		for i, q := range qn {
			if pl := q.sorted(); pl != nil {
				if s.refPL == nil {
					s.refPL = make([][]string, len(s.refs))
				}
				s.refPL[i] = pl
			}
		}
	} else {
		used := make([]*usedPrefixSink, len(s.refs))
		if err := pass(func(i int) tokenSink {
			used[i] = &usedPrefixSink{set: map[string]struct{}{}}
			return used[i]
		}); err != nil {
			return nil, err
		}
		s.refPL = make([][]string, len(s.refs))
		for i, u := range used {
			s.refPL[i] = u.sorted()
		}
	}
	dh := digestAlgs[s.dm].hash
	sinks := make([]*c14nSink, len(s.refs))
	hashes := make([]hash.Hash, len(s.refs))
	defer func() {
		for _, c := range sinks {
			if c != nil {
				c.release()
			}
		}
	}()
	if err := pass(func(i int) tokenSink {
		hashes[i] = dh.New()
		var pl []string
		if s.refPL != nil {
			pl = s.refPL[i]
		}
		sinks[i] = newC14NSink(hashes[i], pl)
		return sinks[i]
	}); err != nil {
		return nil, err
	}
	digests := make([]string, len(s.refs))
	for i, h := range hashes {
		if i == bodyRef {
			digests[i] = base64.StdEncoding.EncodeToString(s.body.h.Sum(nil))
			continue
		}
		if err := sinks[i].out.err; err != nil {
			return nil, &Error{Code: CodeInternal, Msg: "canonicalisation", Err: err}
		}
		digests[i] = base64.StdEncoding.EncodeToString(h.Sum(nil))
	}
	return digests, nil
}

var bNSWSU = []byte(NSWSU)

// injectID adds to the current start tag of t the wsu:Id attribute that
// splice gives r's element, and the declaration of its prefix when splice
// adds one (bound in t's scope until the element ends).
func (s *signer) injectID(t *xmlTokenizer, r *reference) {
	p, decl := r.el.wsuPrefix()
	if decl {
		t.attrs = append(t.attrs, rawAttr{qname: []byte("xmlns:" + p), prefix: bXMLNS, local: []byte(p), uri: bNSXMLNS, value: bNSWSU, decl: true})
		t.bind([]byte(p), bNSWSU)
	}
	t.attrs = append(t.attrs, rawAttr{qname: []byte(p + ":Id"), prefix: []byte(p), local: []byte("Id"), uri: bNSWSU, value: []byte(r.id)})
}

// fragmentTokenizer reads generated Security content in scope.
func (s *signer) fragmentTokenizer(frag []byte, scope *nsScope) *xmlTokenizer {
	t := getTokenizer(frag)
	// Generated content: the input's limits do not apply (its scope may be
	// at the limit already), the deadline does.
	t.ctx = s.env.ctx
	t.fragment = true
	for p, u := range scope.all() {
		if p != "xml" {
			t.bind([]byte(p), []byte(u))
		}
	}
	return t
}

// canonicalizePiece streams the generated element piece (one element,
// read with the namespaces of scope in force) into sink.
func (s *signer) canonicalizePiece(piece []byte, scope *nsScope, sink tokenSink) error {
	t := s.fragmentTokenizer(piece, scope)
	defer putTokenizer(t)
	first := true
	return streamSinks(t, func(t *xmlTokenizer) tokenSink {
		if !first {
			return nil
		}
		first = false
		return sink
	})
}

// canonicalizeSignedInfo renders SignedInfo with digests into s.ins and
// writes its exclusive canonical form, read in the namespace scope of the
// Signature it goes into, to w. With InclusivePrefixes it first computes the
// SignedInfo PrefixList (its visibly used prefixes, with the
// CanonicalizationMethod's InclusiveNamespaces present).
func (s *signer) canonicalizeSignedInfo(w io.Writer, digests []string) error {
	if s.opts.InclusivePrefixes {
		s.siPL = []string{"placeholder"}
		u := &usedPrefixSink{set: map[string]struct{}{}}
		if err := s.canonicalizePiece(s.renderSignedInfo(digests), s.ins.siScope, u); err != nil {
			return internalError("reading the generated SignedInfo failed", err)
		}
		s.siPL = u.sorted()
	}
	s.ins.signedInfo = s.renderSignedInfo(digests)
	sink := newC14NSink(w, s.siPL)
	defer sink.release()
	if err := s.canonicalizePiece(s.ins.signedInfo, s.ins.siScope, sink); err != nil {
		return internalError("reading the generated SignedInfo failed", err)
	}
	if sink.out.err != nil {
		return &Error{Code: CodeInternal, Msg: "canonicalisation of SignedInfo", Err: sink.out.err}
	}
	return nil
}

package wss

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// Credential is a private key, reachable only through its Signer, and its
// certificate chain, leaf first.
type Credential struct {
	Signer crypto.Signer
	Chain  []*x509.Certificate
}

// Part names an element to sign. Body, Timestamp and BinarySecurityToken are
// found by meaning ({soap-ns}Body for either SOAP version; the Timestamp and
// BinarySecurityToken that Sign adds); any other QName is looked up among the
// SOAP header blocks and the children of the Security header.
type Part struct {
	Space    string // namespace URI
	Local    string // local name
	Optional bool   // a missing optional part is skipped; a missing required one is an error
}

// The parts every WS-Security profile signs by default.
var (
	PartBody      = Part{Space: NSSOAP11, Local: "Body"}
	PartTimestamp = Part{Space: NSWSU, Local: "Timestamp"}
	PartBST       = Part{Space: NSWSSE, Local: "BinarySecurityToken"}
)

// SignOptions configures Sign. The zero value signs the Body and the
// Timestamp with the key's default algorithm, SHA-256 digests and a 300 s
// Timestamp.
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
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the source for Ids and the signer; nil means crypto/rand.
	Rand io.Reader
	// Limits bound the input envelope.
	Limits Limits
}

// SignResult describes what Sign produced, for audit and metrics.
type SignResult struct {
	Envelope       []byte
	SignedInfoHash []byte // the digest that the private key signed
	// SignedInfoSHA256 is the SHA-256 of the canonical SignedInfo whatever
	// the signature's hash, so audit records compare across profiles.
	SignedInfoSHA256 []byte
	SignatureMethod  string
	References       []string // the Reference URIs, in order
}

const defaultTTL = 300 * time.Second

// Sign adds a wsse:Security header to the SOAP envelope raw holding an X.509
// BinarySecurityToken, a Timestamp and an XML Signature over opts.Parts made
// with cred.Signer. Bytes of raw outside the added header and the added
// wsu:Id attributes are returned unchanged. raw is not modified.
func Sign(raw []byte, cred Credential, opts SignOptions) (*SignResult, error) {
	if cred.Signer == nil || len(cred.Chain) == 0 {
		return nil, errorf(CodeInternal, "credential without signer or certificate")
	}
	pub := cred.Signer.Public()
	sm := opts.SignatureMethod
	if sm == "" {
		var err error
		if sm, err = DefaultSignatureMethod(pub); err != nil {
			return nil, &Error{Code: CodeUnsupported, Msg: "signing key", Err: err}
		}
	}
	dm := opts.DigestMethod
	if dm == "" {
		dm = AlgSHA256
	}
	if err := CheckAlgorithms(pub, sm, dm, opts.AllowSHA1); err != nil {
		return nil, err
	}
	parts := opts.Parts
	if len(parts) == 0 {
		parts = []Part{PartBody, PartTimestamp}
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

	env, err := scanEnvelope(raw, opts.Limits)
	if err != nil {
		return nil, err
	}
	s := &signer{env: env, rnd: rnd}
	if err := s.plan(parts); err != nil {
		return nil, err
	}
	if s.bstID, err = s.newID("X509-"); err != nil {
		return nil, err
	}
	if s.tsID, err = s.newID("TS-"); err != nil {
		return nil, err
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
		default:
			if r.id == "" {
				if r.id, err = s.newID("id-"); err != nil {
					return nil, err
				}
				r.addID = true
			}
		}
	}
	created := now().UTC().Truncate(time.Second)
	s.created = created.Format("2006-01-02T15:04:05Z")
	s.expires = created.Add(ttl).Format("2006-01-02T15:04:05Z")
	s.bst = base64.StdEncoding.EncodeToString(cred.Chain[0].Raw)
	s.sm, s.dm = sm, dm

	// Pass 1: splice with empty digests, parse once, digest every reference.
	draft := s.splice(nil, "")
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(draft); err != nil {
		return nil, &Error{Code: CodeInternal, Msg: "re-parse of the prepared envelope failed", Err: err}
	}
	byID := indexIDs(doc.Root())
	dh := digestAlgs[dm].hash
	digests := make([]string, len(s.refs))
	for i, r := range s.refs {
		el := byID[r.id]
		if el == nil {
			return nil, errorf(CodeInternal, "reference #%s not found after splicing", r.id)
		}
		h := dh.New()
		if err := CanonicalizeExclusive(h, el, C14NOptions{}); err != nil {
			return nil, &Error{Code: CodeInternal, Msg: "canonicalisation", Err: err}
		}
		digests[i] = base64.StdEncoding.EncodeToString(h.Sum(nil))
	}

	// SignedInfo, canonicalised in its place in the document.
	sigEl := byID[s.sigID]
	if sigEl == nil {
		return nil, errorf(CodeInternal, "Signature not found after splicing")
	}
	si := sigEl.SelectElement("SignedInfo")
	if si == nil {
		return nil, errorf(CodeInternal, "SignedInfo not found after splicing")
	}
	dvs := si.FindElements("./Reference/DigestValue")
	if len(dvs) != len(digests) {
		return nil, errorf(CodeInternal, "SignedInfo has %d references, want %d", len(dvs), len(digests))
	}
	for i, dv := range dvs {
		dv.SetText(digests[i])
	}
	sa := signatureAlgs[sm]
	h, h256 := sa.hash.New(), sha256.New()
	if err := CanonicalizeExclusive(io.MultiWriter(h, h256), si, C14NOptions{}); err != nil {
		return nil, &Error{Code: CodeInternal, Msg: "canonicalisation of SignedInfo", Err: err}
	}
	sum := h.Sum(nil)
	sigValue, err := signDigest(cred.Signer, rnd, sa, sum)
	if err != nil {
		return nil, err
	}
	if err := verifyDigest(cred.Chain[0].PublicKey, sa, sum, sigValue); err != nil {
		// A signature that does not verify must never leave: with RSA-CRT a
		// faulty signature can even reveal the key.
		return nil, &Error{Code: CodeSigningFailed, Msg: "the token's signature does not verify against the certificate", Err: err}
	}
	out := s.splice(digests, base64.StdEncoding.EncodeToString(sigValue))
	res := &SignResult{Envelope: out, SignedInfoHash: sum, SignedInfoSHA256: h256.Sum(nil), SignatureMethod: sm}
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
)

type reference struct {
	kind  refKind
	el    *element // for refElement
	id    string
	addID bool // the element gets a new wsu:Id attribute
}

type signer struct {
	env  *envelope
	rnd  io.Reader
	refs []*reference

	sec                           *element // the caller's Security header we extend, or nil
	bstID, tsID, sigID, strID     string
	created, expires, bst, sm, dm string
}

// plan resolves the parts to elements, in order.
func (s *signer) plan(parts []Part) error {
	env := s.env
	for _, sec := range env.security {
		if _, ok := sec.attr(env.version.ns, actorAttr(env.version)); ok {
			continue // addressed to another actor/role
		}
		if s.sec != nil {
			return errorf(CodeInvalidSOAP, "two Security headers for the same actor")
		}
		s.sec = sec
	}
	seen := map[*element]bool{}
	add := func(el *element) {
		if !seen[el] {
			seen[el] = true
			s.refs = append(s.refs, &reference{kind: refElement, el: el, id: el.wsuID})
		}
	}
	for _, p := range parts {
		switch {
		case p.Local == "Body" && (p.Space == NSSOAP11 || p.Space == NSSOAP12 || p.Space == ""):
			add(env.body)
		case p.Space == NSWSU && p.Local == "Timestamp":
			s.refs = append(s.refs, &reference{kind: refTimestamp})
		case p.Space == NSWSSE && p.Local == "BinarySecurityToken":
			s.refs = append(s.refs, &reference{kind: refBST})
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
				if el.space == p.Space && el.local == p.Local {
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

// edit replaces raw[off:off+del] by ins.
type edit struct {
	off, del int
	ins      string
}

// splice returns the envelope with the Security header and the wsu:Id
// attributes inserted. With digests nil, DigestValue and SignatureValue are
// left empty.
func (s *signer) splice(digests []string, sigValue string) []byte {
	env := s.env
	var edits []edit
	for _, r := range s.refs {
		if r.kind != refElement || !r.addID {
			continue
		}
		p, decl := prefixFor(r.el.scope, NSWSU, "wsu")
		attr := " " + p + ":Id=\"" + r.id + "\""
		if decl {
			attr = " xmlns:" + p + "=\"" + NSWSU + "\"" + attr
		}
		off := r.el.startEnd - 1
		if r.el.selfClosing {
			off--
		}
		edits = append(edits, edit{off: off, ins: attr})
	}

	if s.sec != nil {
		// Extend the caller's Security header: our elements go last, each
		// declaring what its scope lacks.
		edits = append(edits, appendChild(s.sec, s.securityContent(s.sec.scope, digests, sigValue)))
	} else {
		sec := s.securityHeader(digests, sigValue)
		if h := env.header; h != nil {
			edits = append(edits, prependChild(h, sec))
		} else {
			hn := "Header"
			if env.root.prefix != "" {
				hn = env.root.prefix + ":Header"
			}
			edits = append(edits, edit{off: env.body.start, ins: "<" + hn + ">" + sec + "</" + hn + ">"})
		}
	}
	slices.SortStableFunc(edits, func(a, b edit) int { return a.off - b.off })
	var out bytes.Buffer
	grow := len(env.raw)
	for _, e := range edits {
		grow += len(e.ins)
	}
	out.Grow(grow)
	pos := 0
	for _, e := range edits {
		out.Write(env.raw[pos:e.off])
		out.WriteString(e.ins)
		pos = e.off + e.del
	}
	out.Write(env.raw[pos:])
	return out.Bytes()
}

func prependChild(parent *element, content string) edit {
	if parent.selfClosing {
		return edit{off: parent.startEnd - 2, del: 2, ins: ">" + content + "</" + parent.rawName + ">"}
	}
	return edit{off: parent.startEnd, ins: content}
}

func appendChild(parent *element, content string) edit {
	if parent.selfClosing {
		return prependChild(parent, content)
	}
	return edit{off: parent.endStart, ins: content}
}

// prefixFor returns a prefix bound to uri in scope, or a fresh one (based on
// want) with decl=true when none is.
func prefixFor(scope nsScope, uri, want string) (prefix string, decl bool) {
	if scope[want] == uri {
		return want, false
	}
	for p, u := range scope {
		if u == uri && p != "" {
			return p, false
		}
	}
	return freePrefix(scope, want, nil), true
}

// freePrefix returns want, or want1, want2, ... : the first that scope does
// not bind and taken does not hold.
func freePrefix(scope nsScope, want string, taken []string) string {
	p := want
	for i := 1; ; i++ {
		if _, bound := scope[p]; !bound && !slices.Contains(taken, p) {
			return p
		}
		p = fmt.Sprintf("%s%d", want, i)
	}
}

// securityHeader renders a new wsse:Security header block.
func (s *signer) securityHeader(digests []string, sigValue string) string {
	env := s.env
	scope := env.root.scope
	if env.header != nil {
		scope = env.header.scope
	}
	var b strings.Builder
	soapP, soapDecl := prefixFor(scope, env.version.ns, "soapenv")
	// Our declarations shadow the scope inside the header, so only the SOAP
	// prefix (used on Security itself) must not be reused.
	wsse := freePrefix(nil, "wsse", []string{soapP})
	wsu := freePrefix(nil, "wsu", []string{soapP})
	b.WriteString("<" + wsse + ":Security xmlns:" + wsse + "=\"" + NSWSSE + "\" xmlns:" + wsu + "=\"" + NSWSU + "\"")
	if soapDecl {
		b.WriteString(" xmlns:" + soapP + "=\"" + env.version.ns + "\"")
	}
	b.WriteString(" " + soapP + ":mustUnderstand=\"" + env.version.mustUnderstand + "\">")
	inner := nsScope{wsse: NSWSSE, wsu: NSWSU, soapP: env.version.ns}
	b.WriteString(s.securityContent(inner, digests, sigValue))
	b.WriteString("</" + wsse + ":Security>")
	return b.String()
}

// securityContent renders the BinarySecurityToken, the Timestamp and the
// Signature for insertion where scope is in force.
func (s *signer) securityContent(scope nsScope, digests []string, sigValue string) string {
	var b strings.Builder
	wsse, wsseDecl := prefixFor(scope, NSWSSE, "wsse")
	wsu, wsuDecl := prefixFor(scope, NSWSU, "wsu")
	if wsuDecl && wsu == wsse {
		wsu = freePrefix(scope, "wsu", []string{wsse})
	}
	decls := func(wantWSSE, wantWSU bool) string {
		d := ""
		if wantWSSE && wsseDecl {
			d += " xmlns:" + wsse + "=\"" + NSWSSE + "\""
		}
		if wantWSU && wsuDecl {
			d += " xmlns:" + wsu + "=\"" + NSWSU + "\""
		}
		return d
	}
	fmt.Fprintf(&b, `<%[1]s:BinarySecurityToken%[3]s EncodingType="%[4]s" ValueType="%[5]s" %[2]s:Id="%[6]s">%[7]s</%[1]s:BinarySecurityToken>`,
		wsse, wsu, decls(true, true), EncodingBase64, ValueTypeX509v3, s.bstID, s.bst)
	fmt.Fprintf(&b, `<%[1]s:Timestamp%[2]s %[1]s:Id="%[3]s"><%[1]s:Created>%[4]s</%[1]s:Created><%[1]s:Expires>%[5]s</%[1]s:Expires></%[1]s:Timestamp>`,
		wsu, decls(false, true), s.tsID, s.created, s.expires)
	ds := freePrefix(nil, "ds", []string{wsse, wsu})
	fmt.Fprintf(&b, `<%[1]s:Signature xmlns:%[1]s="%[2]s"%[3]s Id="%[4]s">`, ds, NSDSig, decls(true, true), s.sigID)
	fmt.Fprintf(&b, `<%[1]s:SignedInfo><%[1]s:CanonicalizationMethod Algorithm="%[2]s"/><%[1]s:SignatureMethod Algorithm="%[3]s"/>`, ds, AlgExcC14N, s.sm)
	for i, r := range s.refs {
		dv := ""
		if digests != nil {
			dv = digests[i]
		}
		fmt.Fprintf(&b, `<%[1]s:Reference URI="#%[2]s"><%[1]s:Transforms><%[1]s:Transform Algorithm="%[3]s"/></%[1]s:Transforms><%[1]s:DigestMethod Algorithm="%[4]s"/><%[1]s:DigestValue>%[5]s</%[1]s:DigestValue></%[1]s:Reference>`,
			ds, r.id, AlgExcC14N, s.dm, dv)
	}
	fmt.Fprintf(&b, `</%[1]s:SignedInfo><%[1]s:SignatureValue>%[2]s</%[1]s:SignatureValue>`, ds, sigValue)
	fmt.Fprintf(&b, `<%[1]s:KeyInfo><%[2]s:SecurityTokenReference %[3]s:Id="%[4]s"><%[2]s:Reference URI="#%[5]s" ValueType="%[6]s"/></%[2]s:SecurityTokenReference></%[1]s:KeyInfo></%[1]s:Signature>`,
		ds, wsse, wsu, s.strID, s.bstID, ValueTypeX509v3)
	return b.String()
}

// indexIDs maps every wsu:Id, Id, ID and xml:id value in the tree to its element.
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

// signDigest has the signer sign sum and returns the signature in XML-DSig
// form (r‖s, each left-padded to the curve size, for ECDSA).
func signDigest(signer crypto.Signer, rnd io.Reader, sa signatureAlg, sum []byte) ([]byte, error) {
	var opts crypto.SignerOpts = sa.hash
	if sa.pss {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: sa.hash}
	}
	sig, err := signer.Sign(rnd, sum, opts)
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

package wss

import (
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
	"hash"
	"io"
	"math/big"
	"slices"
	"strings"
	"time"
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
// children of the Security header Sign extends.
type Part struct {
	Space    string // namespace URI
	Local    string // local name
	Optional bool   // a missing optional part is skipped; a missing required one is an error
}

// The parts every WS-Security profile signs by default.
var (
	PartBody          = Part{Space: NSSOAP11, Local: "Body"}
	PartTimestamp     = Part{Space: NSWSU, Local: "Timestamp"}
	PartBST           = Part{Space: NSWSSE, Local: "BinarySecurityToken"}
	PartUsernameToken = Part{Space: NSWSSE, Local: "UsernameToken"}
)

// Layout orders the elements Sign adds to the Security header.
type Layout string

const (
	// LayoutStrict (the default): every token before the Signature that
	// uses or signs it: UsernameToken, BinarySecurityToken, Timestamp,
	// Signature.
	LayoutStrict Layout = "strict"
	// LayoutTimestampFirst: the Timestamp is the first child of the
	// Security header (WS-SecurityPolicy LaxTsFirst), then the tokens and
	// the Signature.
	LayoutTimestampFirst Layout = "timestamp-first"
	// LayoutTimestampLast: the Timestamp is the last child of the Security
	// header (WS-SecurityPolicy LaxTsLast).
	LayoutTimestampLast Layout = "timestamp-last"
)

// Layouts lists every Layout, for configuration checks.
var Layouts = []Layout{LayoutStrict, LayoutTimestampFirst, LayoutTimestampLast}

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
	// to each Reference's exclusive C14N transform.
	InclusivePrefixes bool
	// Actor is the SOAP 1.1 actor / SOAP 1.2 role of the Security header;
	// "" means none (the ultimate receiver). A Security header already in
	// the envelope for the same actor is extended.
	Actor string
	// Layout orders the Security header; "" means LayoutStrict.
	Layout Layout
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
	Envelope       []byte
	SignedInfoHash []byte // the digest that the private key signed
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
	if opts.Layout != "" && !slices.Contains(Layouts, opts.Layout) {
		return errorf(CodeUnsupported, "unknown layout %q", opts.Layout)
	}
	switch opts.SOAPVersion {
	case "", "1.1", "1.2":
	default:
		return errorf(CodeUnsupported, "unknown SOAP version %q", opts.SOAPVersion)
	}
	if opts.TTL < 0 {
		return errorf(CodeUnsupported, "negative Timestamp TTL")
	}
	if opts.UsernameToken != nil {
		if err := opts.UsernameToken.check(); err != nil {
			return err
		}
	}
	if strings.ContainsFunc(opts.Actor, func(r rune) bool { return r < 0x20 && r != '\t' && r != '\n' && r != '\r' }) {
		return errorf(CodeUnsupported, "actor holds characters XML cannot carry")
	}
	for _, p := range opts.Parts {
		if p == PartBST && !opts.includeBST() {
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
func Sign(raw []byte, cred Credential, opts SignOptions) (*SignResult, error) {
	if err := CheckSignOptions(opts, cred); err != nil {
		return nil, err
	}
	sm, dm, _ := opts.methods(cred.Signer.Public())
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
	switch {
	case opts.SOAPVersion == "1.1" && env.version != soap11:
		return nil, errorf(CodeInvalidSOAP, "the profile accepts SOAP 1.1 only; this is a SOAP 1.2 envelope")
	case opts.SOAPVersion == "1.2" && env.version != soap12:
		return nil, errorf(CodeInvalidSOAP, "the profile accepts SOAP 1.2 only; this is a SOAP 1.1 envelope")
	}
	s := &signer{env: env, rnd: rnd, opts: &opts, leaf: cred.Chain[0]}
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
		case refUsernameToken:
			r.id = s.utID
		default:
			if r.id == "" {
				if r.id, err = s.newID("id-"); err != nil {
					return nil, err
				}
				r.addID = true
			}
		}
	}
	layout, precision := "2006-01-02T15:04:05Z", time.Second
	if opts.TimestampMillis {
		layout, precision = "2006-01-02T15:04:05.000Z", time.Millisecond
	}
	created := now().UTC().Truncate(precision)
	s.created = created.Format(layout)
	if !opts.NoExpires {
		s.expires = created.Add(ttl).Format(layout)
	}
	if s.bstID != "" {
		if s.bst, err = bstValue(opts.BSTValueType, cred.Chain); err != nil {
			return nil, err
		}
	}
	s.sm, s.dm = sm, dm

	// Digest every reference: the caller's elements straight from raw in
	// one pass, the generated ones from the Security content rendered
	// alone; each canonical form goes straight into its hash. No copy of
	// the envelope is made before the output.
	digests, err := s.digestReferences()
	if err != nil {
		return nil, err
	}

	// SignedInfo, canonicalised from the Security content as it will be
	// spliced, with the namespace context of the place it goes.
	sa := signatureAlgs[sm]
	h, h256 := sa.hash.New(), sha256.New()
	if err := s.canonicalizeSignedInfo(io.MultiWriter(h, h256), digests); err != nil {
		return nil, err
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
	refUsernameToken // the UsernameToken Sign adds
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
	opts *SignOptions
	leaf *x509.Certificate
	refs []*reference

	sec                             *element // the caller's Security header we extend, or nil
	bstID, tsID, sigID, strID, utID string
	created, expires, bst, sm, dm   string
	nonce                           []byte
	refPL                           [][]string // per reference, with InclusivePrefixes
	siPL                            []string   // for SignedInfo, with InclusivePrefixes
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
	if s.sec != nil {
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
		case p.Local == "Body" && (p.Space == NSSOAP11 || p.Space == NSSOAP12 || p.Space == ""):
			add(env.body)
		case p == PartTimestamp || p == (Part{Space: NSWSU, Local: "Timestamp", Optional: true}):
			addOwn(refTimestamp)
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
// left empty and PrefixLists hold a placeholder.
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
		// Extend the caller's Security header: our elements go last (the
		// Timestamp first with LayoutTimestampFirst), each declaring what
		// its scope lacks.
		head, tail := s.securityContent(s.sec.scope, digests, sigValue)
		switch {
		case head == "":
			edits = append(edits, appendChild(s.sec, tail))
		case s.sec.selfClosing:
			edits = append(edits, prependChild(s.sec, head+tail))
		default:
			edits = append(edits, prependChild(s.sec, head), appendChild(s.sec, tail))
		}
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
	grow := len(env.raw)
	for _, e := range edits {
		grow += len(e.ins)
	}
	out := make([]byte, 0, grow)
	pos := 0
	for _, e := range edits {
		out = append(out, env.raw[pos:e.off]...)
		out = append(out, e.ins...)
		pos = e.off + e.del
	}
	return append(out, env.raw[pos:]...)
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
	b.WriteString(" " + soapP + ":mustUnderstand=\"" + env.version.mustUnderstand + "\"")
	if s.opts.Actor != "" {
		b.WriteString(" " + soapP + ":" + actorAttr(env.version) + "=\"" + escapeAttr(s.opts.Actor) + "\"")
	}
	b.WriteString(">")
	inner := nsScope{wsse: NSWSSE, wsu: NSWSU, soapP: env.version.ns}
	head, tail := s.securityContent(inner, digests, sigValue)
	b.WriteString(head)
	b.WriteString(tail)
	b.WriteString("</" + wsse + ":Security>")
	return b.String()
}

// securityContent renders the UsernameToken, the BinarySecurityToken, the
// Timestamp and the Signature for insertion where scope is in force, in
// layout order. head goes first in the Security header (the Timestamp with
// LayoutTimestampFirst, else empty), tail last.
func (s *signer) securityContent(scope nsScope, digests []string, sigValue string) (head, tail string) {
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
	var ut, bst, ts strings.Builder
	if s.utID != "" {
		ut.WriteString(renderUsernameToken(s.opts.UsernameToken, wsse, wsu, decls(true, true), s.utID, s.nonce, s.created))
	}
	bstVT := s.opts.BSTValueType
	if bstVT == "" {
		bstVT = ValueTypeX509v3
	}
	if s.bstID != "" {
		fmt.Fprintf(&bst, `<%[1]s:BinarySecurityToken%[3]s EncodingType="%[4]s" ValueType="%[5]s" %[2]s:Id="%[6]s">%[7]s</%[1]s:BinarySecurityToken>`,
			wsse, wsu, decls(true, true), EncodingBase64, bstVT, s.bstID, s.bst)
	}
	fmt.Fprintf(&ts, `<%[1]s:Timestamp%[2]s %[1]s:Id="%[3]s"><%[1]s:Created>%[4]s</%[1]s:Created>`, wsu, decls(false, true), s.tsID, s.created)
	if s.expires != "" {
		fmt.Fprintf(&ts, `<%[1]s:Expires>%[2]s</%[1]s:Expires>`, wsu, s.expires)
	}
	fmt.Fprintf(&ts, `</%s:Timestamp>`, wsu)

	var b strings.Builder
	ds := freePrefix(nil, "ds", []string{wsse, wsu})
	ec := freePrefix(nil, "ec", []string{wsse, wsu, ds})
	inclusive := func(pl []string) string {
		if !s.opts.InclusivePrefixes {
			return ""
		}
		v := "placeholder"
		if digests != nil {
			if len(pl) == 0 {
				return ""
			}
			v = strings.Join(pl, " ")
		}
		return fmt.Sprintf(`<%[1]s:InclusiveNamespaces xmlns:%[1]s="%[2]s" PrefixList="%[3]s"/>`, ec, AlgExcC14N, v)
	}
	fmt.Fprintf(&b, `<%[1]s:Signature xmlns:%[1]s="%[2]s"%[3]s Id="%[4]s">`, ds, NSDSig, decls(true, true), s.sigID)
	if s.opts.InclusivePrefixes {
		fmt.Fprintf(&b, `<%[1]s:SignedInfo><%[1]s:CanonicalizationMethod Algorithm="%[2]s">%[4]s</%[1]s:CanonicalizationMethod><%[1]s:SignatureMethod Algorithm="%[3]s"/>`, ds, AlgExcC14N, s.sm, inclusive(s.siPL))
	} else {
		fmt.Fprintf(&b, `<%[1]s:SignedInfo><%[1]s:CanonicalizationMethod Algorithm="%[2]s"/><%[1]s:SignatureMethod Algorithm="%[3]s"/>`, ds, AlgExcC14N, s.sm)
	}
	for i, r := range s.refs {
		dv := ""
		var pl []string
		if digests != nil {
			dv = digests[i]
			if s.refPL != nil {
				pl = s.refPL[i]
			}
		}
		transform := fmt.Sprintf(`<%[1]s:Transform Algorithm="%[2]s"/>`, ds, AlgExcC14N)
		if in := inclusive(pl); in != "" {
			transform = fmt.Sprintf(`<%[1]s:Transform Algorithm="%[2]s">%[3]s</%[1]s:Transform>`, ds, AlgExcC14N, in)
		}
		fmt.Fprintf(&b, `<%[1]s:Reference URI="#%[2]s"><%[1]s:Transforms>%[3]s</%[1]s:Transforms><%[1]s:DigestMethod Algorithm="%[4]s"/><%[1]s:DigestValue>%[5]s</%[1]s:DigestValue></%[1]s:Reference>`,
			ds, r.id, transform, s.dm, dv)
	}
	fmt.Fprintf(&b, `</%[1]s:SignedInfo><%[1]s:SignatureValue>%[2]s</%[1]s:SignatureValue>`, ds, sigValue)
	fmt.Fprintf(&b, `<%[1]s:KeyInfo><%[2]s:SecurityTokenReference %[3]s:Id="%[4]s">%[5]s</%[2]s:SecurityTokenReference></%[1]s:KeyInfo></%[1]s:Signature>`,
		ds, wsse, wsu, s.strID, strContent(s.opts.TokenReference, s.leaf, s.bstID, bstVT, ds, wsse))
	sig := b.String()

	switch s.opts.Layout {
	case LayoutTimestampFirst:
		return ts.String(), ut.String() + bst.String() + sig
	case LayoutTimestampLast:
		return "", ut.String() + bst.String() + sig + ts.String()
	}
	return "", ut.String() + bst.String() + ts.String() + sig
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

// idAttrValue returns the value of the Id attribute (wsu:Id, Id, ID or
// xml:id, as isIDAttr) of the current start tag that want holds, if any.
func idAttrValue(t *xmlTokenizer, want map[string]int) (int, bool) {
	for j := range t.attrs {
		a := &t.attrs[j]
		if a.decl {
			continue
		}
		switch {
		case a.uri == nil && (string(a.local) == "Id" || string(a.local) == "ID"):
		case a.uri != nil && string(a.local) == "Id" && string(a.uri) == NSWSU:
		case a.uri != nil && string(a.local) == "id" && string(a.uri) == NSXML:
		default:
			continue
		}
		if i, ok := want[string(a.value)]; ok {
			return i, true
		}
	}
	return 0, false
}

// digestReferences digests every reference of s without building the
// signed envelope: the caller's elements are canonicalised from the input
// bytes (one pass), with the wsu:Id attribute (and its xmlns declaration)
// that Sign adds injected into their start tags as they will be in the
// output; the elements Sign generates are canonicalised from the Security
// content it renders, read with the namespace scope of the place it goes.
// With InclusivePrefixes a first pass computes each Reference's PrefixList
// (the prefixes visibly used in the referenced subtree), which the
// canonical form depends on.
func (s *signer) digestReferences() ([]string, error) {
	byStart := map[int]int{} // the caller's elements, by offset
	byID := map[string]int{} // the generated ones, by Id
	for i, r := range s.refs {
		if r.kind == refElement {
			byStart[r.el.start] = i
		} else {
			byID[r.id] = i
		}
	}
	frag, scope := s.securityFragment(nil)
	pass := func(start func(i int) tokenSink) error {
		seen := make([]bool, len(s.refs))
		if len(byStart) > 0 {
			t := &xmlTokenizer{raw: s.env.raw}
			err := streamSinks(t, func(t *xmlTokenizer) tokenSink {
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
				return &Error{Code: CodeInternal, Msg: "re-reading the envelope failed", Err: err}
			}
		}
		if len(byID) > 0 {
			t := s.fragmentTokenizer(frag, scope)
			err := streamSinks(t, func(t *xmlTokenizer) tokenSink {
				i, ok := idAttrValue(t, byID)
				if !ok || seen[i] {
					return nil
				}
				seen[i] = true
				return start(i)
			})
			if err != nil {
				return &Error{Code: CodeInternal, Msg: "reading the generated Security content failed", Err: err}
			}
		}
		for i, ok := range seen {
			if !ok {
				return errorf(CodeInternal, "reference #%s not found", s.refs[i].id)
			}
		}
		return nil
	}
	if s.opts.InclusivePrefixes {
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
	p, decl := prefixFor(r.el.scope, NSWSU, "wsu")
	if decl {
		t.attrs = append(t.attrs, rawAttr{qname: []byte("xmlns:" + p), prefix: bXMLNS, local: []byte(p), uri: bNSXMLNS, value: bNSWSU, decl: true})
		t.ns = append(t.ns, nsBind{prefix: []byte(p), uri: bNSWSU})
	}
	t.attrs = append(t.attrs, rawAttr{qname: []byte(p + ":Id"), prefix: []byte(p), local: []byte("Id"), uri: bNSWSU, value: []byte(r.id)})
}

// fragmentTokenizer reads generated Security content in scope.
func (s *signer) fragmentTokenizer(frag []byte, scope nsScope) *xmlTokenizer {
	t := &xmlTokenizer{raw: frag, fragment: true}
	for p, u := range scope {
		if p != "xml" {
			t.ns = append(t.ns, nsBind{prefix: []byte(p), uri: []byte(u)})
		}
	}
	return t
}

// securityFragment renders what Sign inserts into the Security header (or
// the whole new Security header) with digests and an empty SignatureValue,
// and returns the namespace scope in force where it goes.
func (s *signer) securityFragment(digests []string) ([]byte, nsScope) {
	if s.sec != nil {
		head, tail := s.securityContent(s.sec.scope, digests, "")
		return []byte(head + tail), s.sec.scope
	}
	scope := s.env.root.scope
	if s.env.header != nil {
		scope = s.env.header.scope
	}
	return []byte(s.securityHeader(digests, "")), scope
}

// canonicalizeSignedInfo writes the exclusive canonical form of the
// SignedInfo, as it will be in the output, to w. With InclusivePrefixes it
// first computes the SignedInfo PrefixList (its visibly used prefixes, with
// the CanonicalizationMethod's InclusiveNamespaces present).
func (s *signer) canonicalizeSignedInfo(w io.Writer, digests []string) error {
	pass := func(sink tokenSink) error {
		t := s.fragmentTokenizer(s.securityFragment(digests))
		found := false
		err := streamSinks(t, func(t *xmlTokenizer) tokenSink {
			if found || string(t.local) != "SignedInfo" || string(t.uri) != NSDSig {
				return nil
			}
			found = true
			return sink
		})
		if err != nil {
			return &Error{Code: CodeInternal, Msg: "reading the generated Signature failed", Err: err}
		}
		if !found {
			return errorf(CodeInternal, "SignedInfo not found in the generated Signature")
		}
		return nil
	}
	if s.opts.InclusivePrefixes {
		s.siPL = []string{"placeholder"}
		u := &usedPrefixSink{set: map[string]struct{}{}}
		if err := pass(u); err != nil {
			return err
		}
		s.siPL = u.sorted()
	}
	sink := newC14NSink(w, s.siPL)
	defer sink.release()
	if err := pass(sink); err != nil {
		return err
	}
	if sink.out.err != nil {
		return &Error{Code: CodeInternal, Msg: "canonicalisation of SignedInfo", Err: sink.out.err}
	}
	return nil
}

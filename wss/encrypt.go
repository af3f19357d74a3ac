package wss

//lint:file-ignore SA1019 RSA PKCS #1 v1.5 key transport (XML Encryption rsa-1_5) is a deliberate, opt-in legacy algorithm here; failures are decoded in constant time with implicit rejection.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strings"
)

// EncryptOptions configures Encrypt. The zero value (with a Recipient)
// encrypts the Body content with AES-256-GCM under a fresh key transported
// with RSA-OAEP (XML Encryption 1.1, SHA-256 digest, MGF1 with SHA-256) and
// names the recipient certificate by issuer and serial number.
type EncryptOptions struct {
	// SOAPVersion "1.1" or "1.2" refuses envelopes of the other version
	// (invalid-soap); "" accepts both. The api sets it from the request's
	// media type.
	SOAPVersion string
	// Recipient is the certificate whose RSA public key the content key is
	// encrypted for (at least 2048 bits). Required.
	Recipient *x509.Certificate
	// Parts to encrypt. The Body (PartBody()) has its content encrypted
	// (EncryptedData Type=#Content); any other QName names SOAP header
	// blocks, each replaced by a wsse11:EncryptedHeader (WS-Security 1.1
	// §9.3) holding an EncryptedData of Type=#Element. Empty means the Body.
	Parts []Part
	// DataAlgorithm is AlgAES256GCM (""), AlgAES128GCM, or with AllowCBC
	// AlgAES128CBC or AlgAES256CBC.
	DataAlgorithm string
	// AllowCBC permits the CBC data algorithms (no integrity of their own:
	// use them only inside a signature, and only for peers that need them).
	AllowCBC bool
	// KeyTransport is AlgRSAOAEP (""), AlgRSAOAEPMGF1P, or with AllowRSA15
	// the legacy AlgRSA15.
	KeyTransport string
	// AllowRSA15 permits the legacy AlgRSA15 key transport.
	AllowRSA15 bool
	// OAEPDigest is the OAEP digest (ds:DigestMethod) URI; "" means AlgSHA256
	// for AlgRSAOAEP and AlgSHA1 for AlgRSAOAEPMGF1P.
	OAEPDigest string
	// MGF is the mask generation function of AlgRSAOAEP; "" means
	// AlgMGF1SHA256. AlgRSAOAEPMGF1P always uses MGF1 with SHA-1.
	MGF string
	// RecipientRef says how the EncryptedKey names the recipient
	// certificate; "" means RecipientIssuerSerial.
	RecipientRef RecipientRef
	// Rand is the source of keys, IVs and Ids; nil means crypto/rand.
	Rand io.Reader
	// Limits bound the input envelope.
	Limits Limits
}

// EncryptResult describes what Encrypt produced.
type EncryptResult struct {
	Envelope       []byte
	EncryptedKeyID string   // Id of the xenc:EncryptedKey
	DataReferences []string // "#Id" of each EncryptedData, in document order
	DataAlgorithm  string
	KeyTransport   string
}

// Encrypt encrypts parts of the SOAP envelope raw for opts.Recipient. An
// xenc:EncryptedKey with a ReferenceList goes first into the Security
// header (one is created if the envelope has none for the ultimate
// receiver); each encrypted byte range of raw is replaced by its
// EncryptedData. The plaintext is the exact bytes of the range, so a
// decrypting peer that parses it in place finds every namespace prefix
// declared on the ancestors still in scope. Bytes outside the replaced
// ranges and the inserted EncryptedKey (and Security header) are returned
// unchanged. raw is not modified.
//
// The scan stops with a CodeTimeout error once ctx ends.
func Encrypt(ctx context.Context, raw []byte, opts EncryptOptions) (*EncryptResult, error) {
	p, err := opts.plan()
	if err != nil {
		return nil, err
	}
	env, err := scanEnvelope(ctx, raw, opts.Limits)
	if err != nil {
		return nil, err
	}
	if err := checkSOAPVersion(opts.SOAPVersion, env.version); err != nil {
		return nil, err
	}
	e := &encrypter{env: env, rnd: p.rnd}
	sec, err := e.securityFor()
	if err != nil {
		return nil, err
	}
	targets, err := e.targets(opts.Parts)
	if err != nil {
		return nil, err
	}

	key := make([]byte, dataAlgs[p.data].keySize)
	if _, err := io.ReadFull(p.rnd, key); err != nil {
		return nil, &Error{Code: CodeInternal, Msg: "random source", Err: err}
	}
	pub := opts.Recipient.PublicKey.(*rsa.PublicKey)
	var wrapped []byte
	switch p.kt {
	case AlgRSA15:
		wrapped, err = rsa.EncryptPKCS1v15(p.rnd, pub, key)
	default:
		wrapped, err = rsa.EncryptOAEPWithOptions(p.rnd, pub, key, &rsa.OAEPOptions{Hash: p.oaepHash, MGFHash: p.mgfHash})
	}
	if err != nil {
		return nil, &Error{Code: CodeBadRecipient, Msg: "key transport encryption failed", Err: err}
	}
	ekID, err := e.newID("EK-")
	if err != nil {
		return nil, err
	}
	res := &EncryptResult{EncryptedKeyID: ekID, DataAlgorithm: p.data, KeyTransport: p.kt}
	var edits []edit
	for _, t := range targets {
		edID, err := e.newID("ED-")
		if err != nil {
			return nil, err
		}
		res.DataReferences = append(res.DataReferences, "#"+edID)
		ct, err := xencSeal(p.data, key, raw[t.from:t.to], p.rnd)
		if err != nil {
			return nil, err
		}
		typ := TypeContent
		if t.header {
			typ = TypeElement
		}
		ed := xencEncryptedData(edID, typ, p.data, ekID, ct)
		if t.header {
			ehID, err := e.newID("EH-")
			if err != nil {
				return nil, err
			}
			ed = e.encryptedHeader(t.el, ehID, ed)
		}
		edits = append(edits, edit{off: t.from, del: t.to - t.from, ins: ed})
	}
	ek := e.encryptedKey(sec, ekID, p, opts.Recipient, wrapped, res.DataReferences)
	edits = append(edits, e.securityEdit(sec, ek))
	// At one offset, the insertion goes before the replacement.
	slices.SortStableFunc(edits, func(a, b edit) int {
		if a.off != b.off {
			return a.off - b.off
		}
		return min(a.del, 1) - min(b.del, 1)
	})
	var out bytes.Buffer
	pos := 0
	for _, ed := range edits {
		out.Write(raw[pos:ed.off])
		out.WriteString(ed.ins)
		pos = ed.off + ed.del
	}
	out.Write(raw[pos:])
	res.Envelope = out.Bytes()
	return res, nil
}

// encPlan is EncryptOptions checked and defaulted.
type encPlan struct {
	data, kt, digest, mgf string
	oaepHash, mgfHash     crypto.Hash
	ref                   RecipientRef
	rnd                   io.Reader
}

func (o *EncryptOptions) plan() (*encPlan, error) {
	p := &encPlan{data: o.DataAlgorithm, kt: o.KeyTransport, digest: o.OAEPDigest, mgf: o.MGF, ref: o.RecipientRef, rnd: o.Rand}
	if p.rnd == nil {
		p.rnd = rand.Reader
	}
	if p.data == "" {
		p.data = AlgAES256GCM
	}
	da, ok := dataAlgs[p.data]
	if !ok {
		return nil, errorf(CodeUnsupported, "unknown data encryption algorithm %q", p.data)
	}
	if !da.gcm && !o.AllowCBC {
		return nil, errorf(CodeUnsupported, "%s needs an explicit CBC opt-in", p.data)
	}
	if p.kt == "" {
		p.kt = AlgRSAOAEP
	}
	switch p.kt {
	case AlgRSAOAEP:
		if p.digest == "" {
			p.digest = AlgSHA256
		}
		if p.mgf == "" {
			p.mgf = AlgMGF1SHA256
		}
	case AlgRSAOAEPMGF1P:
		if p.digest == "" {
			p.digest = AlgSHA1
		}
		if p.mgf != "" && p.mgf != AlgMGF1SHA1 {
			return nil, errorf(CodeUnsupported, "%s always uses MGF1 with SHA-1", p.kt)
		}
		p.mgf = ""
		p.mgfHash = crypto.SHA1
	case AlgRSA15:
		if !o.AllowRSA15 {
			return nil, errorf(CodeUnsupported, "the legacy key transport %s needs an explicit opt-in", p.kt)
		}
		if p.digest != "" || p.mgf != "" {
			return nil, errorf(CodeUnsupported, "%s takes no digest or MGF", p.kt)
		}
	default:
		return nil, errorf(CodeUnsupported, "unknown key transport algorithm %q", p.kt)
	}
	if p.kt != AlgRSA15 {
		h, ok := oaepDigests[p.digest]
		if !ok {
			return nil, errorf(CodeUnsupported, "unknown OAEP digest %q", p.digest)
		}
		p.oaepHash = h
		if p.mgf != "" {
			if p.mgfHash, ok = mgfHashes[p.mgf]; !ok {
				return nil, errorf(CodeUnsupported, "unknown mask generation function %q", p.mgf)
			}
		}
	}
	if p.ref == "" {
		p.ref = RecipientIssuerSerial
	}
	if err := CheckRecipient(o.Recipient, p.ref); err != nil {
		return nil, err
	}
	return p, nil
}

// CheckRecipient reports whether c can be the recipient of Encrypt with the
// key reference ref: an RSA key of at least 2048 bits, a key usage (when the
// certificate restricts it) that allows key encipherment, and what ref
// needs ("" is RecipientIssuerSerial). It does not check validity dates or trust: callers do.
func CheckRecipient(c *x509.Certificate, ref RecipientRef) error {
	if c == nil {
		return errorf(CodeBadRecipient, "no recipient certificate")
	}
	pub, ok := c.PublicKey.(*rsa.PublicKey)
	if !ok {
		return errorf(CodeBadRecipient, "the recipient certificate has a %s key; key transport needs RSA", c.PublicKeyAlgorithm)
	}
	if pub.N.BitLen() < 2048 {
		return errorf(CodeBadRecipient, "the recipient's RSA key has %d bits; at least 2048 are needed", pub.N.BitLen())
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		return errorf(CodeBadRecipient, "the recipient certificate's key usage does not allow key encipherment")
	}
	switch ref {
	case "", RecipientIssuerSerial, RecipientThumbprint:
	case RecipientSKI:
		if xencSKI(c) == nil {
			return errorf(CodeBadRecipient, "no subject key identifier can be derived from the recipient certificate")
		}
	default:
		return errorf(CodeUnsupported, "unknown key reference %q", ref)
	}
	return nil
}

type encrypter struct {
	env *envelope
	rnd io.Reader
}

// xencTarget is a byte range to encrypt.
type xencTarget struct {
	from, to int
	header   bool     // a header block (Type=#Element), else the Body content
	el       *element // the header block
}

func (e *encrypter) targets(parts []Part) ([]xencTarget, error) {
	env := e.env
	if len(parts) == 0 {
		parts = []Part{PartBody()}
	}
	var out []xencTarget
	seen := map[*element]bool{}
	for _, p := range parts {
		if p.Local == "Body" && (p.Space == NSSOAP11 || p.Space == NSSOAP12 || p.Space == "") {
			b := env.body
			if seen[b] {
				continue
			}
			seen[b] = true
			if b.selfClosing || b.endStart == b.startEnd {
				if p.Optional {
					continue
				}
				return nil, errorf(CodeMissingPart, "the Body is empty: there is nothing to encrypt")
			}
			out = append(out, xencTarget{from: b.startEnd, to: b.endStart})
			continue
		}
		if p.Space == NSWSSE && p.Local == "Security" {
			return nil, errorf(CodeUnsupported, "the Security header cannot be encrypted")
		}
		found := false
		if env.header != nil {
			for _, el := range env.header.children {
				if el.space != p.Space || el.local != p.Local || seen[el] {
					continue
				}
				seen[el] = true
				found = true
				out = append(out, xencTarget{from: el.start, to: xencElementEnd(env.raw, el), header: true, el: el})
			}
		}
		if !found && !p.Optional {
			return nil, errorf(CodeMissingPart, "required part {%s}%s is not a header block of the envelope", p.Space, p.Local)
		}
	}
	if len(out) == 0 {
		return nil, errorf(CodeMissingPart, "nothing to encrypt")
	}
	return out, nil
}

// xencElementEnd returns the offset just past el's end tag.
func xencElementEnd(raw []byte, el *element) int {
	if el.selfClosing {
		return el.startEnd
	}
	return el.endStart + bytes.IndexByte(raw[el.endStart:], '>') + 1
}

// securityFor returns the Security header for the ultimate receiver, or nil
// when the envelope has none.
func (e *encrypter) securityFor() (*element, error) {
	var sec *element
	for _, s := range e.env.security {
		if _, ok := s.attr(e.env.version.ns, actorAttr(e.env.version)); ok {
			continue
		}
		if sec != nil {
			return nil, errorf(CodeInvalidSOAP, "two Security headers for the same actor")
		}
		sec = s
	}
	return sec, nil
}

func (e *encrypter) newID(prefix string) (string, error) {
	var b [16]byte
	for range 8 {
		if _, err := io.ReadFull(e.rnd, b[:]); err != nil {
			return "", &Error{Code: CodeInternal, Msg: "random source", Err: err}
		}
		id := prefix + hex.EncodeToString(b[:])
		if !e.env.ids[id] {
			e.env.ids[id] = true
			return id, nil
		}
	}
	return "", errorf(CodeInternal, "could not draw a unique Id")
}

// encryptData encrypts pt with alg: GCM as IV‖ciphertext‖tag with a 96-bit
// IV, CBC as IV‖ciphertext with the XML Encryption padding (last byte is
// the padding length, the others random).
func xencSeal(alg string, key, pt []byte, rnd io.Reader) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Msg: "aes", Err: err}
	}
	if dataAlgs[alg].gcm {
		g, err := cipher.NewGCM(block)
		if err != nil {
			return nil, &Error{Code: CodeInternal, Msg: "gcm", Err: err}
		}
		out := make([]byte, g.NonceSize(), g.NonceSize()+len(pt)+g.Overhead())
		if _, err := io.ReadFull(rnd, out); err != nil {
			return nil, &Error{Code: CodeInternal, Msg: "random source", Err: err}
		}
		return g.Seal(out, out, pt, nil), nil
	}
	bs := block.BlockSize()
	n := bs - len(pt)%bs
	buf := make([]byte, bs+len(pt)+n)
	if _, err := io.ReadFull(rnd, buf[:bs]); err != nil {
		return nil, &Error{Code: CodeInternal, Msg: "random source", Err: err}
	}
	copy(buf[bs:], pt)
	if _, err := io.ReadFull(rnd, buf[bs+len(pt):]); err != nil {
		return nil, &Error{Code: CodeInternal, Msg: "random source", Err: err}
	}
	buf[len(buf)-1] = byte(n)
	cipher.NewCBCEncrypter(block, buf[:bs]).CryptBlocks(buf[bs:], buf[bs:])
	return buf, nil
}

// encryptedData renders an EncryptedData. It declares every prefix it
// uses, so it can stand anywhere. Its KeyInfo refers to the EncryptedKey
// (WS-Security 1.1 §7.x EncryptedKey token reference).
func xencEncryptedData(id, typ, alg, ekID string, ct []byte) string {
	return `<xenc:EncryptedData xmlns:xenc="` + NSXEnc + `" Id="` + id + `" Type="` + typ + `">` +
		`<xenc:EncryptionMethod Algorithm="` + alg + `"/>` +
		`<ds:KeyInfo xmlns:ds="` + NSDSig + `"><wsse:SecurityTokenReference xmlns:wsse="` + NSWSSE + `" xmlns:wsse11="` + NSWSSE11 + `" wsse11:TokenType="` + TokenTypeEncryptedKey + `">` +
		`<wsse:Reference URI="#` + ekID + `"/></wsse:SecurityTokenReference></ds:KeyInfo>` +
		`<xenc:CipherData><xenc:CipherValue>` + base64.StdEncoding.EncodeToString(ct) + `</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData>`
}

// encryptedHeader wraps ed in a wsse11:EncryptedHeader carrying the SOAP
// attributes of the header block it replaces (WS-Security 1.1 §9.3).
func (e *encrypter) encryptedHeader(el *element, id, ed string) string {
	env := e.env
	var b strings.Builder
	b.WriteString(`<wsse11:EncryptedHeader xmlns:wsse11="` + NSWSSE11 + `" xmlns:wsu="` + NSWSU + `" wsu:Id="` + id + `"`)
	var soapAttrs []xml.Attr
	for _, a := range el.attrs {
		if el.attrSpace(a) != env.version.ns {
			continue
		}
		switch a.Name.Local {
		case "mustUnderstand", "actor", "role", "relay":
			soapAttrs = append(soapAttrs, a)
		}
	}
	if len(soapAttrs) > 0 {
		soapP := freePrefix(nil, "soapenv", []string{"wsse11", "wsu"})
		b.WriteString(` xmlns:` + soapP + `="` + env.version.ns + `"`)
		for _, a := range soapAttrs {
			b.WriteString(` ` + soapP + `:` + a.Name.Local + `="` + xencEscape(a.Value) + `"`)
		}
	}
	b.WriteString(">" + ed + "</wsse11:EncryptedHeader>")
	return b.String()
}

// encryptedKey renders the EncryptedKey for insertion where sec's scope (or
// a new Security header's) is in force.
func (e *encrypter) encryptedKey(sec *element, id string, p *encPlan, rcpt *x509.Certificate, wrapped []byte, refs []string) string {
	var scope *nsScope
	if sec != nil {
		scope = sec.scope
	}
	wsse, wsseDecl := prefixFor(scope, NSWSSE, "wsse")
	xenc := freePrefix(nil, "xenc", []string{wsse})
	ds := freePrefix(nil, "ds", []string{wsse, xenc})
	var b strings.Builder
	fmt.Fprintf(&b, `<%[1]s:EncryptedKey xmlns:%[1]s="%[2]s" xmlns:%[3]s="%[4]s" Id="%[5]s"><%[1]s:EncryptionMethod Algorithm="%[6]s"`, xenc, NSXEnc, ds, NSDSig, id, p.kt)
	switch p.kt {
	case AlgRSA15:
		b.WriteString("/>")
	case AlgRSAOAEPMGF1P:
		fmt.Fprintf(&b, `><%[1]s:DigestMethod Algorithm="%[2]s"/></%[3]s:EncryptionMethod>`, ds, p.digest, xenc)
	default:
		fmt.Fprintf(&b, `><%[1]s:DigestMethod Algorithm="%[2]s"/><xenc11:MGF xmlns:xenc11="%[3]s" Algorithm="%[4]s"/></%[5]s:EncryptionMethod>`, ds, p.digest, NSXEnc11, p.mgf, xenc)
	}
	decl := ""
	if wsseDecl {
		wsse = freePrefix(nil, "wsse", []string{xenc, ds})
		decl = ` xmlns:` + wsse + `="` + NSWSSE + `"`
	}
	fmt.Fprintf(&b, `<%[1]s:KeyInfo><%[2]s:SecurityTokenReference%[3]s>`, ds, wsse, decl)
	switch p.ref {
	case RecipientSKI:
		fmt.Fprintf(&b, `<%[1]s:KeyIdentifier EncodingType="%[2]s" ValueType="%[3]s">%[4]s</%[1]s:KeyIdentifier>`, wsse, EncodingBase64, xencVTSKI, base64.StdEncoding.EncodeToString(xencSKI(rcpt)))
	case RecipientThumbprint:
		fmt.Fprintf(&b, `<%[1]s:KeyIdentifier EncodingType="%[2]s" ValueType="%[3]s">%[4]s</%[1]s:KeyIdentifier>`, wsse, EncodingBase64, xencVTThumbprint, base64.StdEncoding.EncodeToString(xencThumbprint(rcpt)))
	default:
		fmt.Fprintf(&b, `<%[1]s:X509Data><%[1]s:X509IssuerSerial><%[1]s:X509IssuerName>%[2]s</%[1]s:X509IssuerName><%[1]s:X509SerialNumber>%[3]s</%[1]s:X509SerialNumber></%[1]s:X509IssuerSerial></%[1]s:X509Data>`,
			ds, xencEscape(rcpt.Issuer.String()), rcpt.SerialNumber.String())
	}
	fmt.Fprintf(&b, `</%[1]s:SecurityTokenReference></%[2]s:KeyInfo>`, wsse, ds)
	fmt.Fprintf(&b, `<%[1]s:CipherData><%[1]s:CipherValue>%[2]s</%[1]s:CipherValue></%[1]s:CipherData><%[1]s:ReferenceList>`, xenc, base64.StdEncoding.EncodeToString(wrapped))
	for _, r := range refs {
		fmt.Fprintf(&b, `<%[1]s:DataReference URI="%[2]s"/>`, xenc, r)
	}
	fmt.Fprintf(&b, `</%[1]s:ReferenceList></%[1]s:EncryptedKey>`, xenc)
	return b.String()
}

// securityEdit inserts ek as the first child of sec, or in a new Security
// header when sec is nil. First, so that a receiver processing the header
// in order decrypts before it verifies a signature made before encryption.
func (e *encrypter) securityEdit(sec *element, ek string) edit {
	env := e.env
	if sec != nil {
		return prependChild(sec, ek)
	}
	scope := env.root.scope
	if env.header != nil {
		scope = env.header.scope
	}
	soapP, soapDecl := prefixFor(scope, env.version.ns, "soapenv")
	wsse := freePrefix(nil, "wsse", []string{soapP})
	h := "<" + wsse + ":Security xmlns:" + wsse + "=\"" + NSWSSE + "\""
	if soapDecl {
		h += " xmlns:" + soapP + "=\"" + env.version.ns + "\""
	}
	h += " " + soapP + ":mustUnderstand=\"" + env.version.mustUnderstand + "\">"
	// ek was rendered for an empty scope: it declares wsse itself.
	h += ek + "</" + wsse + ":Security>"
	if hd := env.header; hd != nil {
		return prependChild(hd, h)
	}
	hn := "Header"
	if env.root.prefix != "" {
		hn = env.root.prefix + ":Header"
	}
	return edit{off: env.body.start, ins: "<" + hn + ">" + h + "</" + hn + ">"}
}

func xencEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

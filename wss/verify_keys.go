package wss

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"strings"
)

// Value types of the X.509 Token Profile and SOAP Message Security 1.1 that
// KeyInfo may use (verification side).
const (
	vtSKI        = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509SubjectKeyIdentifier"
	vtThumbprint = "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#ThumbprintSHA1"
)

// How KeyInfo named the signing certificate (SignerInfo.KeyRef).
const (
	SignerRefBSTX509v3    = "bst-x509v3"
	SignerRefBSTPKIPath   = "bst-pkipath"
	SignerRefIssuerSerial = "issuer-serial"
	SignerRefSKI          = "ski"
	SignerRefThumbprint   = "thumbprint-sha1"
	SignerRefKeyIDX509v3  = "keyid-x509v3"
)

// bstToken is a BinarySecurityToken of our Security header, decoded.
type bstToken struct {
	el    elemRef
	leaf  *x509.Certificate
	chain []*x509.Certificate // leaf first
	kind  string
}

// resolveKey follows KeyInfo/SecurityTokenReference to a certificate. Only
// tokens in our Security header are used, plus, for references that carry
// no certificate (issuer/serial, SKI, thumbprint), the pinned and the known
// signer certificates of the trust store. ds:KeyValue and every other KeyInfo child are ignored.
func (v *verifier) resolveKey(keyInfo elemRef) (*x509.Certificate, []*x509.Certificate, string, error) {
	if !keyInfo.ok() {
		return nil, nil, "", fail(CodeKeyNotFound, "", "the Signature has no KeyInfo")
	}
	var strs []elemRef
	for _, c := range keyInfo.children() {
		if c.is(NSWSSE, "SecurityTokenReference") {
			strs = append(strs, c)
		}
	}
	if len(strs) != 1 {
		return nil, nil, "", fail(CodeKeyNotFound, "", "KeyInfo must hold exactly one SecurityTokenReference (ds:KeyValue is not accepted)")
	}
	kids := strs[0].children()
	if len(kids) != 1 {
		return nil, nil, "", fail(CodeKeyNotFound, "", "the SecurityTokenReference must hold exactly one reference")
	}
	ref := kids[0]
	switch {
	case ref.is(NSWSSE, "Reference"):
		return v.directReference(ref)
	case ref.is(NSWSSE, "KeyIdentifier"):
		return v.keyIdentifier(ref)
	case ref.is(NSDSig, "X509Data"):
		return v.issuerSerial(ref)
	}
	return nil, nil, "", fail(CodeKeyNotFound, "", "unsupported token reference {%s}%s", ref.space(), ref.local())
}

func (v *verifier) directReference(ref elemRef) (*x509.Certificate, []*x509.Certificate, string, error) {
	uri := ref.attrValue("URI")
	id, ok := strings.CutPrefix(uri, "#")
	if !ok || id == "" {
		return nil, nil, "", fail(CodeKeyNotFound, uri, "the token reference %q is not a same-document \"#id\"", uri)
	}
	el := v.tree.byID(id)
	if !el.ok() {
		return nil, nil, "", fail(CodeKeyNotFound, uri, "no token has the Id %q", id)
	}
	if el.parent() != v.sec || !el.is(NSWSSE, "BinarySecurityToken") {
		return nil, nil, "", fail(CodeKeyNotFound, uri, "the token reference %q does not name a BinarySecurityToken of our Security header", uri)
	}
	tok, err := decodeBST(el)
	if err != nil {
		return nil, nil, "", fail(CodeKeyNotFound, uri, "%v", err)
	}
	if vt := ref.attrValue("ValueType"); vt != "" && vt != el.attrValue("ValueType") {
		return nil, nil, "", fail(CodeKeyNotFound, uri, "the reference's ValueType does not match the token's")
	}
	return tok.leaf, tok.chain, tok.kind, nil
}

func decodeBST(el elemRef) (*bstToken, error) {
	if et := el.attrValue("EncodingType"); et != "" && et != EncodingBase64 {
		return nil, verr("unsupported EncodingType %q", et)
	}
	text, err := el.text()
	if err != nil {
		return nil, err
	}
	der, err := decodeB64(text)
	if err != nil {
		return nil, verr("the BinarySecurityToken is not base64")
	}
	switch el.attrValue("ValueType") {
	case ValueTypeX509v3:
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, verr("the BinarySecurityToken is not an X.509 certificate")
		}
		return &bstToken{el: el, leaf: c, chain: []*x509.Certificate{c}, kind: SignerRefBSTX509v3}, nil
	case ValueTypeX509PKIPath:
		// PkiPath ::= SEQUENCE OF Certificate, the end entity last.
		var raws []asn1.RawValue
		rest, err := asn1.Unmarshal(der, &raws)
		if err != nil || len(rest) != 0 || len(raws) == 0 || len(raws) > 16 {
			return nil, verr("the BinarySecurityToken is not a PkiPath")
		}
		chain := make([]*x509.Certificate, 0, len(raws))
		for i := len(raws) - 1; i >= 0; i-- {
			c, err := x509.ParseCertificate(raws[i].FullBytes)
			if err != nil {
				return nil, verr("certificate %d of the PkiPath does not parse", i)
			}
			chain = append(chain, c)
		}
		return &bstToken{el: el, leaf: chain[0], chain: chain, kind: SignerRefBSTPKIPath}, nil
	}
	return nil, verr("unsupported token ValueType %q", el.attrValue("ValueType"))
}

// candidates are the certificates a non-embedding reference may name: the
// BSTs of our Security header, then the pinned certificates, then the known
// signer certificates of the trust store (which are not trusted for being
// found: Trust.check decides afterwards).
func (v *verifier) candidates() []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range v.sec.children() {
		if !c.is(NSWSSE, "BinarySecurityToken") {
			continue
		}
		if tok, err := decodeBST(c); err == nil {
			out = append(out, tok.leaf)
		}
	}
	if v.opts.Trust != nil {
		out = append(out, v.opts.Trust.pinned...)
		out = append(out, v.opts.Trust.signers...)
	}
	return out
}

func (v *verifier) keyIdentifier(ref elemRef) (*x509.Certificate, []*x509.Certificate, string, error) {
	if et := ref.attrValue("EncodingType"); et != "" && et != EncodingBase64 {
		return nil, nil, "", fail(CodeKeyNotFound, "", "unsupported KeyIdentifier EncodingType %q", et)
	}
	text, err := ref.text()
	if err != nil {
		return nil, nil, "", fail(CodeKeyNotFound, "", "KeyIdentifier: %v", err)
	}
	val, err := decodeB64(text)
	if err != nil || len(val) == 0 {
		return nil, nil, "", fail(CodeKeyNotFound, "", "the KeyIdentifier is not base64")
	}
	vt := ref.attrValue("ValueType")
	var match func(c *x509.Certificate) bool
	kind := ""
	switch vt {
	case ValueTypeX509v3:
		c, err := x509.ParseCertificate(val)
		if err != nil {
			return nil, nil, "", fail(CodeKeyNotFound, "", "the X509v3 KeyIdentifier is not a certificate")
		}
		return c, []*x509.Certificate{c}, SignerRefKeyIDX509v3, nil
	case vtSKI:
		kind = SignerRefSKI
		match = func(c *x509.Certificate) bool { return bytes.Equal(skiOf(c), val) }
	case vtThumbprint:
		kind = SignerRefThumbprint
		match = func(c *x509.Certificate) bool { s := sha1.Sum(c.Raw); return bytes.Equal(s[:], val) }
	default:
		return nil, nil, "", fail(CodeKeyNotFound, "", "unsupported KeyIdentifier ValueType %q", vt)
	}
	for _, c := range v.candidates() {
		if match(c) {
			return c, []*x509.Certificate{c}, kind, nil
		}
	}
	return nil, nil, "", fail(CodeKeyNotFound, "", "no certificate in the Security header or the trust store matches the %s KeyIdentifier", kind)
}

func (v *verifier) issuerSerial(x509Data elemRef) (*x509.Certificate, []*x509.Certificate, string, error) {
	kids := x509Data.children()
	if len(kids) != 1 || !kids[0].is(NSDSig, "X509IssuerSerial") {
		return nil, nil, "", fail(CodeKeyNotFound, "", "ds:X509Data in a SecurityTokenReference must hold one X509IssuerSerial")
	}
	var name, serial string
	for _, c := range kids[0].children() {
		if c.space() != NSDSig {
			continue
		}
		t, _ := c.text()
		switch c.local() {
		case "X509IssuerName":
			name = strings.TrimSpace(t)
		case "X509SerialNumber":
			serial = strings.TrimSpace(t)
		}
	}
	n, ok := new(big.Int).SetString(serial, 10)
	if !ok || name == "" {
		return nil, nil, "", fail(CodeKeyNotFound, "", "X509IssuerSerial needs an issuer name and a decimal serial number")
	}
	for _, c := range v.candidates() {
		if c.SerialNumber.Cmp(n) == 0 && dnEqual(name, c) {
			return c, []*x509.Certificate{c}, SignerRefIssuerSerial, nil
		}
	}
	return nil, nil, "", fail(CodeKeyNotFound, "", "no certificate in the Security header or the trust store has issuer %q and serial %s", name, serial)
}

// verr is an error message about a token (not a verdict by itself).
func verr(format string, args ...any) error {
	return fmt.Errorf(format, args...)
}

// skiOf returns the certificate's SubjectKeyIdentifier extension or, when
// it has none, the SHA-1 of its subjectPublicKey (RFC 5280 §4.2.1.2 method
// 1), as WSS4J computes it.
func skiOf(c *x509.Certificate) []byte {
	if len(c.SubjectKeyId) > 0 {
		return c.SubjectKeyId
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil
	}
	s := sha1.Sum(spki.PublicKey.Bytes)
	return s[:]
}

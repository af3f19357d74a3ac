package wss

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/beevik/etree"
	"github.com/wssignd/wssignd/internal/testutil"
)

// The rules below are those of the WS-I Basic Security Profile 1.1 that
// apply to what a sender of X.509-signed or UsernameToken messages writes,
// numbered as the profile (and WSS4J's BSPRule) numbers them. The SHOULD
// rules on SHA-1 (R5420, R5421) are not checked: SHA-2 is a deliberate,
// documented departure of every preset but sat-mx.

// bspViolation is one broken rule.
type bspViolation struct {
	rule, msg string
}

func (v bspViolation) String() string { return v.rule + ": " + v.msg }

// bspChecker checks one signed or UsernameToken envelope.
type bspChecker struct {
	ids   map[string]*etree.Element // wsu:Id and ds/xenc Id values
	order map[*etree.Element]int    // document order
	known []*x509.Certificate       // certificates a receiver holds out of band
	out   []bspViolation
}

func (c *bspChecker) fail(rule, format string, args ...any) {
	c.out = append(c.out, bspViolation{rule, fmt.Sprintf(format, args...)})
}

// rules returns the sorted, distinct rule numbers broken.
func (c *bspChecker) rules() []string {
	var r []string
	for _, v := range c.out {
		if !slices.Contains(r, v.rule) {
			r = append(r, v.rule)
		}
	}
	sort.Strings(r)
	return r
}

const (
	algSTRTransform = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#STR-Transform"
	algFilter2      = "http://www.w3.org/2002/06/xmldsig-filter2"
	algEnveloped    = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
	valueTypePKCS7  = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#PKCS7"
)

// checkBSP parses envelope and returns the BSP 1.1 rules it breaks. known
// are the certificates that references may name without sending them.
func checkBSP(t *testing.T, envelope []byte, known ...*x509.Certificate) *bspChecker {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(envelope); err != nil {
		t.Fatal(err)
	}
	c := &bspChecker{ids: map[string]*etree.Element{}, order: map[*etree.Element]int{}, known: known}
	var walk func(el *etree.Element)
	walk = func(el *etree.Element) {
		c.order[el] = len(c.order)
		for _, a := range el.Attr {
			if a.Key == "Id" && (a.Space == "" || a.NamespaceURI() == NSWSU) {
				c.ids[a.Value] = el
			}
		}
		for _, ch := range el.ChildElements() {
			walk(ch)
		}
	}
	walk(doc.Root())
	for _, sec := range doc.FindElements("//Header/Security") {
		if sec.NamespaceURI() == NSWSSE {
			c.security(sec)
		}
	}
	return c
}

func isEl(el *etree.Element, space, local string) bool {
	return el != nil && el.Tag == local && el.NamespaceURI() == space
}

func children(el *etree.Element, space, local string) []*etree.Element {
	var out []*etree.Element
	for _, ch := range el.ChildElements() {
		if isEl(ch, space, local) {
			out = append(out, ch)
		}
	}
	return out
}

// attrNS returns the value of the attribute {space}local ("" space: no
// namespace) and whether it is present.
func attrNS(el *etree.Element, space, local string) (string, bool) {
	for _, a := range el.Attr {
		if a.Key != local {
			continue
		}
		if (space == "" && a.Space == "") || (space != "" && a.Space != "" && a.NamespaceURI() == space) {
			return a.Value, true
		}
	}
	return "", false
}

func (c *bspChecker) security(sec *etree.Element) {
	ts := children(sec, NSWSU, "Timestamp")
	if len(ts) > 1 {
		c.fail("R3227", "%d Timestamps in one Security header", len(ts))
	}
	for _, t := range ts {
		c.timestamp(t)
	}
	for _, bst := range children(sec, NSWSSE, "BinarySecurityToken") {
		c.bst(bst)
	}
	for _, ut := range children(sec, NSWSSE, "UsernameToken") {
		c.usernameToken(ut)
	}
	for _, sc := range children(sec, NSWSSE11, "SignatureConfirmation") {
		if _, ok := attrNS(sc, NSWSU, "Id"); !ok {
			c.fail("R5441", "SignatureConfirmation without wsu:Id")
		}
	}
	for _, sig := range children(sec, NSDSig, "Signature") {
		c.signature(sec, sig)
	}
}

var xsdDateTime = regexp.MustCompile(`^-?\d{4,}-\d{2}-\d{2}T\d{2}:\d{2}:(\d{2})(\.(\d+))?(Z|[+-]\d{2}:\d{2})?$`)

// timestamp: R3203, R3224, R3221, R3222, R3220/R3229, R3213/R3215,
// R3217/R3223, R3225/R3226.
func (c *bspChecker) timestamp(ts *etree.Element) {
	created := children(ts, NSWSU, "Created")
	expires := children(ts, NSWSU, "Expires")
	if len(created) != 1 {
		c.fail("R3203", "Timestamp has %d Created", len(created))
	}
	if len(expires) > 1 {
		c.fail("R3224", "Timestamp has %d Expires", len(expires))
	}
	for i, ch := range ts.ChildElements() {
		switch {
		case isEl(ch, NSWSU, "Created"):
			if i != 0 {
				c.fail("R3221", "Created is not the first child")
			}
		case isEl(ch, NSWSU, "Expires"):
		default:
			c.fail("R3222", "Timestamp holds %s", ch.Tag)
		}
	}
	check := func(el *etree.Element, precision, seconds, utc, valueType string) {
		if _, ok := attrNS(el, "", "ValueType"); ok {
			c.fail(valueType, "%s has a ValueType", el.Tag)
		}
		m := xsdDateTime.FindStringSubmatch(strings.TrimSpace(el.Text()))
		if m == nil {
			c.fail(utc, "%s %q is not an xs:dateTime", el.Tag, el.Text())
			return
		}
		if len(m[3]) > 3 {
			c.fail(precision, "%s has %d fractional digits", el.Tag, len(m[3]))
		}
		if m[1] >= "60" {
			c.fail(seconds, "%s seconds %s", el.Tag, m[1])
		}
		// UTC: "Z" or a zero offset, which xs:dateTime treats as the same.
		if z := m[4]; z != "Z" && z != "+00:00" && z != "-00:00" {
			c.fail(utc, "%s %q is not in UTC", el.Tag, el.Text())
		}
	}
	for _, el := range created {
		check(el, "R3220", "R3213", "R3217", "R3225")
	}
	for _, el := range expires {
		check(el, "R3229", "R3215", "R3223", "R3226")
	}
}

// bstKind decodes a BinarySecurityToken's content: "X509v3" for one
// certificate, "PKIPath" for a SEQUENCE OF Certificate, with the leaf.
func bstKind(bst *etree.Element) (string, *x509.Certificate) {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(bst.Text()))
	if err != nil {
		return "", nil
	}
	if cert, err := x509.ParseCertificate(der); err == nil {
		return "X509v3", cert
	}
	var seq []asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &seq); err == nil && len(rest) == 0 && len(seq) > 0 {
		leaf, err := x509.ParseCertificate(seq[len(seq)-1].FullBytes)
		if err == nil {
			return "PKIPath", leaf
		}
	}
	return "", nil
}

// bst: R3029, R3030, R3031, R3032, R3033, R5201/R5214.
func (c *bspChecker) bst(bst *etree.Element) {
	et, ok := attrNS(bst, "", "EncodingType")
	if !ok {
		c.fail("R3029", "BinarySecurityToken without EncodingType")
	} else if et != EncodingBase64 {
		c.fail("R3030", "BinarySecurityToken EncodingType %s", et)
	}
	vt, ok := attrNS(bst, "", "ValueType")
	if !ok {
		c.fail("R3031", "BinarySecurityToken without ValueType")
		return
	}
	if vt != ValueTypeX509v3 && vt != ValueTypeX509PKIPath && vt != valueTypePKCS7 {
		c.fail("R3032", "BinarySecurityToken ValueType %s", vt)
	}
	switch kind, _ := bstKind(bst); kind {
	case "X509v3":
		if vt != ValueTypeX509v3 {
			c.fail("R3033", "a single certificate with ValueType %s", vt)
		}
	case "PKIPath":
		if vt != ValueTypeX509PKIPath {
			c.fail("R5214", "a PkiPath with ValueType %s", vt)
		}
	default:
		c.fail("R3032", "BinarySecurityToken content is neither a certificate nor a PkiPath")
	}
}

// usernameToken: R4222, R4201, R4223, R4225, R4220, R4221.
func (c *bspChecker) usernameToken(ut *etree.Element) {
	pw := children(ut, NSWSSE, "Password")
	if len(pw) > 1 {
		c.fail("R4222", "%d Passwords", len(pw))
	}
	for _, p := range pw {
		if _, ok := attrNS(p, "", "Type"); !ok {
			c.fail("R4201", "Password without Type")
		}
	}
	if n := len(children(ut, NSWSU, "Created")); n > 1 {
		c.fail("R4223", "%d Created", n)
	}
	nonces := children(ut, NSWSSE, "Nonce")
	if len(nonces) > 1 {
		c.fail("R4225", "%d Nonces", len(nonces))
	}
	for _, n := range nonces {
		et, ok := attrNS(n, "", "EncodingType")
		if !ok {
			c.fail("R4220", "Nonce without EncodingType")
		} else if et != EncodingBase64 {
			c.fail("R4221", "Nonce EncodingType %s", et)
		}
	}
}

func isAncestor(a, el *etree.Element) bool {
	for p := el.Parent(); p != nil; p = p.Parent() {
		if p == a {
			return true
		}
	}
	return false
}

// signature: R5404, R5406/R5405, R5401, R5403, R5440, R5416, R5411, R5423,
// R5412, R5407, R3001/R3005, R3102, R3104, R5402, R5417 and the STR rules.
func (c *bspChecker) signature(sec, sig *etree.Element) {
	si := sig.SelectElement("SignedInfo")
	cm := si.SelectElement("CanonicalizationMethod")
	if cm.SelectAttrValue("Algorithm", "") != AlgExcC14N {
		c.fail("R5404", "CanonicalizationMethod %s", cm.SelectAttrValue("Algorithm", ""))
	}
	c.inclusiveNamespaces(si, cm, "R5406")
	if sm := si.SelectElement("SignatureMethod"); sm != nil && sm.SelectElement("HMACOutputLength") != nil {
		c.fail("R5401", "HMACOutputLength")
	}
	for _, el := range allElements(sig) {
		if isEl(el, NSDSig, "Manifest") {
			c.fail("R5403", "a ds:Manifest in the Signature")
		}
		if isEl(el, NSXEnc, "EncryptedData") {
			c.fail("R5440", "an xenc:EncryptedData in the Signature")
		}
	}
	for _, ref := range children(si, NSDSig, "Reference") {
		uri := ref.SelectAttrValue("URI", "")
		target := c.ids[strings.TrimPrefix(uri, "#")]
		if !strings.HasPrefix(uri, "#") || target == nil {
			c.fail("R3001", "Reference URI %q is not a Shorthand XPointer to an element of the message", uri)
		} else {
			if _, ok := attrNS(target, NSWSU, "Id"); !ok && target.NamespaceURI() != NSDSig {
				c.fail("R3005", "Reference %s points at an Id that is not a wsu:Id", uri)
			}
			if target == sig || isAncestor(target, sig) {
				c.fail("R3104", "Reference %s makes an enveloped signature", uri)
			}
			if isAncestor(sig, target) {
				c.fail("R3102", "Reference %s makes an enveloping signature", uri)
			}
		}
		trs := children(ref, NSDSig, "Transforms")
		if len(trs) == 0 {
			c.fail("R5416", "Reference %s has no Transforms", uri)
			continue
		}
		ts := children(trs[0], NSDSig, "Transform")
		if len(ts) == 0 {
			c.fail("R5411", "Reference %s has an empty Transforms", uri)
			continue
		}
		for _, tr := range ts {
			switch alg := tr.SelectAttrValue("Algorithm", ""); alg {
			case AlgExcC14N:
				if target != nil {
					c.inclusiveNamespaces(target, tr, "R5407")
				}
			case algSTRTransform, algFilter2, algEnveloped:
			default:
				c.fail("R5423", "Transform %s", alg)
			}
		}
		if last := ts[len(ts)-1].SelectAttrValue("Algorithm", ""); last != AlgExcC14N && last != algSTRTransform {
			c.fail("R5412", "last Transform %s", last)
		}
	}
	ki := sig.SelectElement("KeyInfo")
	if ki == nil {
		c.fail("R5402", "no KeyInfo")
		return
	}
	if n := len(ki.ChildElements()); n != 1 {
		c.fail("R5402", "KeyInfo has %d children", n)
	}
	strs := children(ki, NSWSSE, "SecurityTokenReference")
	if len(strs) == 0 {
		c.fail("R5417", "KeyInfo holds no SecurityTokenReference")
		return
	}
	c.str(sec, strs[0])
}

// inclusiveNamespaces checks R5405 with R5406 (SignedInfo) or R5407 (a
// Reference): every prefix of a namespace that the signed subtree uses
// only in QName-valued content (xsi:type) is in an InclusiveNamespaces
// PrefixList, which is then present.
func (c *bspChecker) inclusiveNamespaces(subtree, method *etree.Element, rule string) {
	var listed []string
	if in := method.SelectElement("InclusiveNamespaces"); in != nil {
		pl, ok := attrNS(in, "", "PrefixList")
		if !ok {
			c.fail(rule, "InclusiveNamespaces without PrefixList")
		}
		listed = strings.Fields(pl)
	}
	for _, el := range allElements(subtree) {
		// Exclusive C14N fixes the binding of a prefix at an element only
		// where that element visibly uses it.
		visible := map[string]bool{el.Space: true}
		for _, a := range el.Attr {
			if a.Space != "" && a.Space != "xmlns" {
				visible[a.Space] = true
			}
		}
		for _, a := range el.Attr {
			if a.Key != "type" || a.NamespaceURI() != NSXSI {
				continue
			}
			p, _, found := strings.Cut(strings.TrimSpace(a.Value), ":")
			if !found {
				p = ""
			}
			name := p
			if p == "" {
				name = "#default"
			}
			if !visible[p] && !slices.Contains(listed, name) {
				c.fail("R5405", "prefix %q of an xsi:type value on %s is not protected", name, el.Tag)
			}
		}
	}
}

// str checks the SecurityTokenReference of a Signature: R3061, R3027,
// R3059, R3062, R5204, R3058/R5218/R5216, R5215, R3074, R3057, R5205,
// R3066, R3054, R3063/R5206, R3070, R3071, R5208, R5210, R5409, R3022.
func (c *bspChecker) str(sec, str *etree.Element) {
	kids := str.ChildElements()
	if len(kids) != 1 {
		c.fail("R3061", "SecurityTokenReference has %d children", len(kids))
		if len(kids) == 0 {
			return
		}
	}
	for _, k := range kids {
		if isEl(k, NSDSig, "KeyName") {
			c.fail("R3027", "SecurityTokenReference holds a ds:KeyName")
		}
	}
	tokenType, hasTokenType := attrNS(str, NSWSSE11, "TokenType")
	// The certificate the reference names, for R3022: a token in the
	// message holding it must be referenced directly.
	var named *x509.Certificate
	ref := kids[0]
	switch {
	case isEl(ref, NSWSSE, "Reference"):
		vt, hasVT := attrNS(ref, "", "ValueType")
		if !hasVT {
			c.fail("R3059", "Reference without ValueType")
		}
		uri, hasURI := attrNS(ref, "", "URI")
		if !hasURI {
			c.fail("R3062", "Reference without URI")
			return
		}
		tok := c.ids[strings.TrimPrefix(uri, "#")]
		if !strings.HasPrefix(uri, "#") || tok == nil {
			c.fail("R5204", "Reference URI %q is not a Shorthand XPointer to a token in the message", uri)
			return
		}
		if isEl(tok, NSWSSE, "SecurityTokenReference") {
			c.fail("R3057", "Reference to a SecurityTokenReference")
		}
		if tok.Parent() != sec {
			c.fail("R3066", "the token is not in the Security header of the reference")
		}
		if c.order[tok] > c.order[str] {
			c.fail("R5205", "the token follows the reference")
		}
		if !isEl(tok, NSWSSE, "BinarySecurityToken") {
			c.fail("R3058", "Reference to %s", tok.Tag)
			return
		}
		switch kind, _ := bstKind(tok); kind {
		case "X509v3":
			if vt != ValueTypeX509v3 {
				c.fail("R5218", "Reference to an X509v3 token with ValueType %s", vt)
			}
			if hasTokenType && tokenType != ValueTypeX509v3 {
				c.fail("R3074", "TokenType %s on a reference to an X509v3 token", tokenType)
			}
		case "PKIPath":
			if vt != ValueTypeX509PKIPath {
				c.fail("R5216", "Reference to a PkiPath token with ValueType %s", vt)
			}
			if tokenType != ValueTypeX509PKIPath {
				c.fail("R5215", "reference to a PkiPath token without wsse11:TokenType #X509PKIPathv1 (got %q)", tokenType)
			}
		}
	case isEl(ref, NSWSSE, "KeyIdentifier"):
		vt, hasVT := attrNS(ref, "", "ValueType")
		if !hasVT {
			c.fail("R3054", "KeyIdentifier without ValueType")
		}
		et, ok := attrNS(ref, "", "EncodingType")
		if !ok {
			c.fail("R3070", "KeyIdentifier without EncodingType")
		} else if et != EncodingBase64 {
			c.fail("R3071", "KeyIdentifier EncodingType %s", et)
		}
		value, err := base64.StdEncoding.DecodeString(strings.TrimSpace(ref.Text()))
		if err != nil {
			c.fail("R3071", "KeyIdentifier value is not base64")
		}
		if hasTokenType && tokenType != ValueTypeX509v3 {
			c.fail("R3074", "TokenType %s on a KeyIdentifier naming one certificate", tokenType)
		}
		// The certificate it names is found among the message's tokens
		// (a KeyIdentifier cannot carry more than its value).
		certs := c.certs(sec)
		switch vt {
		case ValueTypeSKI:
			named = findCert(certs, func(x *x509.Certificate) bool { return len(x.SubjectKeyId) > 0 && bytes.Equal(x.SubjectKeyId, value) })
			if named == nil {
				c.fail("R5208", "the KeyIdentifier is no known certificate's subject key identifier extension")
			}
		case ValueTypeThumbprintSHA1:
			named = findCert(certs, func(x *x509.Certificate) bool { s := sha1.Sum(x.Raw); return bytes.Equal(s[:], value) })
			if named == nil {
				c.fail("R5210", "the KeyIdentifier is no known certificate's SHA-1 thumbprint")
			}
		case ValueTypeX509v3:
			c.fail("R5206", "KeyIdentifier to an X.509 token with ValueType #X509v3 (only #X509SubjectKeyIdentifier and #ThumbprintSHA1 are allowed)")
			if x, err := x509.ParseCertificate(value); err == nil {
				named = x
			}
		default:
			if hasVT {
				c.fail("R3063", "KeyIdentifier ValueType %s", vt)
			}
		}
	case isEl(ref, NSDSig, "X509Data"):
		is := ref.SelectElement("X509IssuerSerial")
		if is == nil || is.SelectElement("X509IssuerName") == nil || is.SelectElement("X509SerialNumber") == nil {
			c.fail("R3061", "X509Data without an X509IssuerSerial")
			return
		}
		name := strings.TrimSpace(is.SelectElement("X509IssuerName").Text())
		serial, ok := new(big.Int).SetString(strings.TrimSpace(is.SelectElement("X509SerialNumber").Text()), 10)
		if !ok {
			c.fail("R5409", "X509SerialNumber is not a decimal integer")
		}
		for _, x := range c.certs(sec) {
			if IssuerName(x) == name && ok && x.SerialNumber.Cmp(serial) == 0 {
				named = x
			}
		}
		if strings.Contains(name, "\n") || !strings.Contains(name, "=") {
			c.fail("R5409", "X509IssuerName %q is not an RFC 2253 DName", name)
		}
		if hasTokenType && tokenType != ValueTypeX509v3 {
			c.fail("R3074", "TokenType %s on an issuer-serial reference", tokenType)
		}
	default:
		c.fail("R3061", "SecurityTokenReference holds %s", ref.Tag)
	}
	if named != nil {
		for _, bst := range children(sec, NSWSSE, "BinarySecurityToken") {
			if _, ok := attrNS(bst, NSWSU, "Id"); !ok {
				continue
			}
			if _, leaf := bstKind(bst); leaf != nil && bytes.Equal(leaf.Raw, named.Raw) {
				c.fail("R3022", "the certificate is in a BinarySecurityToken with a wsu:Id, but the reference is not a wsse:Reference")
			}
		}
	}
}

// certs returns the certificates known out of band and those of the
// Security header's tokens (the leaf of a PkiPath).
func (c *bspChecker) certs(sec *etree.Element) []*x509.Certificate {
	out := slices.Clone(c.known)
	for _, bst := range children(sec, NSWSSE, "BinarySecurityToken") {
		if _, leaf := bstKind(bst); leaf != nil {
			out = append(out, leaf)
		}
	}
	return out
}

func findCert(certs []*x509.Certificate, match func(*x509.Certificate) bool) *x509.Certificate {
	for _, x := range certs {
		if match(x) {
			return x
		}
	}
	return nil
}

// TestBSPTokenReferences signs with every token reference, with and
// without the BinarySecurityToken, as X509v3 and as X509PKIPathv1, checks
// the output against the BSP rules, and has xmlsec1 verify it. The only
// rules broken are the ones the combination breaks by construction:
// R5206 for x509-key-identifier (a KeyIdentifier of ValueType #X509v3,
// which the X.509 Token Profile 1.0 style and the IRS use, and WSS4J
// accepts), and R3022 wherever a BinarySecurityToken with a wsu:Id is sent
// beside a reference that is not a wsse:Reference to it.
func TestBSPTokenReferences(t *testing.T) {
	cred := testChain(t, true)
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	for _, ref := range TokenReferences() {
		for _, withBST := range []bool{false, true} {
			for _, vt := range []string{ValueTypeX509v3, ValueTypeX509PKIPath} {
				if ref == RefDirect && !withBST {
					continue // the direct reference always sends the BST
				}
				if vt == ValueTypeX509PKIPath && !withBST && ref != RefDirect {
					continue // no BST: its value type does not matter
				}
				name := fmt.Sprintf("%s/bst=%v/%s", ref, withBST, vt[strings.LastIndex(vt, "#")+1:])
				t.Run(name, func(t *testing.T) {
					opts := SignOptions{TokenReference: ref, IncludeBST: withBST, BSTValueType: vt}
					res, _ := signOK(t, in, cred, opts)
					var want []string
					if ref != RefDirect && withBST {
						want = append(want, "R3022")
					}
					if ref == RefX509KeyIdentifier {
						want = append(want, "R5206")
					}
					c := checkBSP(t, res.Envelope, cred.Chain[0])
					if got := c.rules(); !slices.Equal(got, want) {
						t.Errorf("broken rules %v, want %v: %v\n%s", got, want, c.out, res.Envelope)
					}
				})
			}
		}
	}
}

// TestBSPCheckerCatches makes sure the checker sees what it checks: each
// mutation of a compliant output breaks exactly the named rule.
func TestBSPCheckerCatches(t *testing.T) {
	cred := testChain(t, true)
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	pkiPath, err := Sign(context.Background(), in, cred, SignOptions{BSTValueType: ValueTypeX509PKIPath, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	ski, err := Sign(context.Background(), in, cred, SignOptions{TokenReference: RefSKI, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	qname, err := Sign(context.Background(), testutil.ReadTestdata(t, "envelope-soap12.xml"), cred, SignOptions{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		from *regexp.Regexp
		to   string
		rule string
	}{
		{"PKIPath without TokenType", pkiPath.Envelope, regexp.MustCompile(` wsse11:TokenType="[^"]*"`), "", "R5215"},
		{"PKIPath reference typed X509v3", pkiPath.Envelope, regexp.MustCompile(`(<wsse:Reference [^>]*ValueType=")[^"]*`), "${1}" + ValueTypeX509v3, "R5216"},
		{"no Transforms", pkiPath.Envelope, regexp.MustCompile(`<ds:Transforms>.*?</ds:Transforms>`), "", "R5416"},
		{"inclusive C14N", pkiPath.Envelope, regexp.MustCompile(`(CanonicalizationMethod Algorithm=")[^"]*`), "${1}http://www.w3.org/TR/2001/REC-xml-c14n-20010315", "R5404"},
		{"Created with microseconds", pkiPath.Envelope, regexp.MustCompile(`(<wsu:Created>[^<]*)Z`), "${1}.123456Z", "R3220"},
		{"Created in local time", pkiPath.Envelope, regexp.MustCompile(`(<wsu:Created>[^<]*)Z`), "${1}+01:00", "R3217"},
		{"KeyIdentifier without EncodingType", ski.Envelope, regexp.MustCompile(`(<wsse:KeyIdentifier) EncodingType="[^"]*"`), "$1", "R3070"},
		{"xsi:type prefix not listed", qname.Envelope, regexp.MustCompile(`<ec:InclusiveNamespaces [^>]*/>`), "", "R5405"},
		{"KeyIdentifier without ValueType", ski.Envelope, regexp.MustCompile(`(<wsse:KeyIdentifier [^>]*) ValueType="[^"]*"`), "$1", "R3054"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c := checkBSP(t, tc.in, cred.Chain[0]); len(c.out) != 0 {
				t.Fatalf("the unmutated output breaks %v", c.out)
			}
			mutated := tc.from.ReplaceAll(tc.in, []byte(tc.to))
			if bytes.Equal(mutated, tc.in) {
				t.Fatal("the mutation changed nothing")
			}
			if got := checkBSP(t, mutated, cred.Chain[0]).rules(); !slices.Equal(got, []string{tc.rule}) {
				t.Errorf("broken rules %v, want [%s]", got, tc.rule)
			}
		})
	}
}

// TestBSPGoldens runs every golden signed message through the checker:
// only the presets and reference forms that break a rule on purpose do.
func TestBSPGoldens(t *testing.T) {
	cert := loadCredential(t, "rsa2048").Chain[0]
	want := map[string][]string{
		"preset-ref-thumbprint-bst-soap11.golden.xml": {"R3022"},
		"preset-ref-x509-keyid-soap11.golden.xml":     {"R5206"},
		"preset-face-es-soap11.golden.xml":            {"R5416"},
		"preset-irs-aca-irs-aca.golden.xml":           {"R5206"},
	}
	files, err := filepath.Glob(filepath.Join(testutil.RepoRoot(t), "testdata", "golden", "*.golden.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no goldens: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c := checkBSP(t, b, cert)
			if got := c.rules(); !slices.Equal(got, want[name]) {
				t.Errorf("breaks %v, want %v: %v", got, want[name], c.out)
			}
		})
	}
}

// TestQNamePrefixesProtected: a signed element whose xsi:type value uses a
// prefix the element does not use itself gets that prefix in an
// InclusiveNamespaces PrefixList (R5405, R5407), in the Body and in a
// header, so that changing the binding breaks the signature (xmlsec1 checks
// both ways); an element that uses its xsi:type prefix itself, and one
// without QName values, get none.
func TestQNamePrefixesProtected(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	in := []byte(`<s:Envelope xmlns:s="` + NSSOAP11 + `" xmlns:xsi="` + NSXSI + `"><s:Header>` +
		`<h:To xmlns:h="urn:h" xmlns:t="urn:types"><h:V xsi:type="t:code">1</h:V></h:To><h:From xmlns:h="urn:h" xsi:type="h:Kind">2</h:From></s:Header>` +
		`<s:Body><m:Q xmlns:m="urn:m" xmlns:xs="http://www.w3.org/2001/XMLSchema"><m:S xsi:type="xs:string">x</m:S></m:Q></s:Body></s:Envelope>`)
	res, doc := signOK(t, in, cred, SignOptions{Parts: []Part{PartBody(), {Space: "urn:h", Local: "To"}, {Space: "urn:h", Local: "From"}, PartTimestamp()}})
	var lists []string
	for _, tr := range doc.FindElements("//SignedInfo/Reference/Transforms/Transform") {
		lists = append(lists, strings.Join(prefixList(tr), " "))
	}
	if strings.Join(lists, "|") != "xs|t||" {
		t.Errorf("PrefixLists %q, want xs, t and none", lists)
	}
	if c := checkBSP(t, res.Envelope, cred.Chain[0]); len(c.out) != 0 {
		t.Errorf("BSP: %v", c.out)
	}
	for _, tc := range []struct{ from, to string }{
		{`xmlns:xs="http://www.w3.org/2001/XMLSchema"`, `xmlns:xs="urn:evil"`},
		{`xmlns:t="urn:types"`, `xmlns:t="urn:evil"`},
	} {
		tampered := bytes.Replace(res.Envelope, []byte(tc.from), []byte(tc.to), 1)
		if _, ok := testutil.XMLSec1Verify(t, tampered, cred.Chain[0]); ok {
			t.Errorf("xmlsec1 accepts the message with %s", tc.to)
		}
	}
}

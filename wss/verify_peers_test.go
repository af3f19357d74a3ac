package wss

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/wssignd/wssignd/internal/testutil"
)

// xmlsec1SignTemplate fills the template file of testdata/interop with data
// and has xmlsec1 sign it with the PEM key and certificate files.
func xmlsec1SignTemplate(t *testing.T, tmplFile string, data map[string]string, keyFile, certFile string) []byte {
	t.Helper()
	xmlsec := testutil.RequireTool(t, "xmlsec1", "xmlsec1")
	root := testutil.RepoRoot(t)
	tmpl := template.Must(template.ParseFiles(filepath.Join(root, "testdata", "interop", tmplFile)))
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(t.TempDir(), "in.xml")
	if err := os.WriteFile(in, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--sign", "--privkey-pem", keyFile + "," + certFile}, testutil.XMLSec1IDAttrs...)
	args = append(args, "--output", "-", in)
	out, err := exec.Command(xmlsec, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("xmlsec1 --sign: %v\n%s", err, out)
	}
	return out
}

func testKeyFiles(t *testing.T, name string) (key, cert string) {
	root := testutil.RepoRoot(t)
	return filepath.Join(root, "testdata", "keys", name+".key"), filepath.Join(root, "testdata", "keys", name+".crt")
}

// TestVerifyInclusiveC14NXMLSec1: xmlsec1 signs, with Canonical XML 1.0
// (without and with comments) for the SignedInfo and both References, a
// message whose signed elements inherit a default namespace, other
// namespace declarations and xml:lang from their ancestors, undeclare the
// default namespace inside, and (WithComments) hold comments. Verify
// accepts it only when the options admit inclusive C14N, and every change to
// the inherited context breaks it.
func TestVerifyInclusiveC14NXMLSec1(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	cert := cred.Chain[0]
	key, crt := testKeyFiles(t, "rsa2048")
	ref := interopRefs()[0]
	for _, c := range []struct {
		name, alg, comment string
	}{
		{"c14n", AlgC14N10, ""},
		{"c14n-with-comments", AlgC14N10WithComments, "<!-- a comment -->"},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg := xmlsec1SignTemplate(t, "soap11-c14n.tmpl.xml", map[string]string{
				"Token": ref.token(cert, "wsse", "wsu"), "STR": ref.str(cert, "wsse"), "Comment": c.comment, "C14N": c.alg,
				"Created": "2026-11-29T12:00:00.000Z", "Expires": "2026-11-29T12:05:00.000Z", "SignatureMethod": AlgRSASHA256,
			}, key, crt)
			trust := testTrust(t)
			on := VerifyOptions{Trust: trust, AllowInclusiveC14N: true, Explain: true}
			res := verifyOK(t, msg, on)
			verifyCommitted(t, "soap11-"+c.name+"-rsa2048.xml", msg, on)
			if res.Algorithms.Canonicalization != c.alg || len(res.Signed) != 2 {
				t.Errorf("result %+v %v", res.Algorithms, res.Signed)
			}
			for _, e := range res.Explain {
				if e.Path == "/Envelope/Body" && (!bytes.Contains(e.Canonical, []byte(`xml:lang="en"`)) ||
					!bytes.Contains(e.Canonical, []byte(`xmlns="urn:example:default"`)) || bytes.Contains(e.Canonical, []byte("<!--"))) {
					t.Errorf("canonical Body: %s", e.Canonical)
				}
			}

			// The option off (the default) refuses the form, whatever the allow-list.
			verifyCode(t, msg, VerifyOptions{Trust: trust}, CodeAlgorithmNotAllowed)
			verifyCode(t, msg, VerifyOptions{Trust: trust, AllowedC14NMethods: []string{AlgExcC14N, c.alg}}, CodeAlgorithmNotAllowed)
			// Allowed for the SignedInfo but not listed for the References.
			only := VerifyOptions{Trust: trust, AllowInclusiveC14N: true, AllowedC14NMethods: []string{AlgExcC14N}}
			verifyCode(t, msg, only, CodeAlgorithmNotAllowed)

			// Tampering: the Body's text, an inherited namespace, the
			// inherited xml:lang, the SignedInfo (its comment).
			verifyCode(t, bytes.Replace(msg, []byte(">WSS<"), []byte(">WSs<"), 1), on, CodeDigestMismatch)
			verifyCode(t, bytes.Replace(msg, []byte(`xmlns:xsd="http://www.w3.org/2001/XMLSchema"`), []byte(`xmlns:xsd="urn:other"`), 1), on, CodeDigestMismatch)
			verifyCode(t, bytes.Replace(msg, []byte(`xml:lang="en"`), []byte(`xml:lang="nl"`), 1), on, CodeDigestMismatch)
			if c.comment != "" {
				sig := bytes.Replace(msg, []byte("<ds:SignedInfo><!-- a comment -->"), []byte("<ds:SignedInfo><!-- another comment -->"), 1)
				if bytes.Equal(sig, msg) {
					t.Fatal("no comment in the SignedInfo")
				}
				verifyCode(t, sig, on, CodeSignatureInvalid)
				// A comment in the Body is not signed ("#id" selects no comments).
				verifyOK(t, bytes.Replace(msg, []byte("xml:space=\"preserve\"><!-- a comment -->"), []byte("xml:space=\"preserve\"><!-- changed -->"), 1), on)
			}
			// Parameters are refused: inclusive C14N has none.
			withPL := bytes.Replace(msg, []byte(`<ds:Transform Algorithm="`+c.alg+`"/>`),
				[]byte(`<ds:Transform Algorithm="`+c.alg+`"><ec:InclusiveNamespaces xmlns:ec="`+AlgExcC14N+`" PrefixList="xsd"/></ds:Transform>`), 1)
			verifyCode(t, withPL, on, CodeTransformNotAllowed)
		})
	}
}

// signerCA makes a CA and a leaf it issued (ECDSA P-256, with a
// SubjectKeyIdentifier) valid around fixedNow, and writes the leaf's key and
// certificate as PEM files for xmlsec1.
func signerCA(t *testing.T, dir, cn string) (ca, leaf *x509.Certificate, keyFile, certFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn + " CA", Organization: []string{"wssignd tests"}},
		NotBefore: fixedNow().Add(-time.Hour), NotAfter: fixedNow().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(der)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	lt := &x509.Certificate{SerialNumber: big.NewInt(424242), Subject: pkix.Name{CommonName: cn, Organization: []string{"wssignd tests"}},
		NotBefore: fixedNow().Add(-time.Hour), NotAfter: fixedNow().Add(2 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		SubjectKeyId: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}}
	der, err = x509.CreateCertificate(rand.Reader, lt, ca, k.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(der)
	p8, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	keyFile, certFile = filepath.Join(dir, cn+".key"), filepath.Join(dir, cn+".crt")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, testutil.CertPEM(leaf), 0o600); err != nil {
		t.Fatal(err)
	}
	return ca, leaf, keyFile, certFile
}

// TestVerifySignerCertsXMLSec1: xmlsec1 signs with a CA-issued key and a
// KeyInfo that names the certificate without carrying it (issuer/serial,
// SKI, SHA-1 thumbprint). With the certificate among the profile's known
// signers (not trusted by that) and the CA as trust anchor, Verify accepts;
// without the known signer the key is not found; a known signer that does
// not chain to the anchors is not trusted; tampering is detected.
func TestVerifySignerCertsXMLSec1(t *testing.T) {
	dir := t.TempDir()
	ca, leaf, keyFile, certFile := signerCA(t, dir, "peer.example")
	otherCA, _, _, _ := signerCA(t, dir, "other.example")
	b64 := base64.StdEncoding.EncodeToString
	keyID := func(vt string, v []byte) string {
		return `<wsse:KeyIdentifier EncodingType="` + EncodingBase64 + `" ValueType="` + vt + `">` + b64(v) + `</wsse:KeyIdentifier>`
	}
	thumb := sha1Sum(leaf.Raw)
	mk := func(c TrustConfig) *TrustStore {
		ts, err := NewTrustStore(c)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	for _, c := range []struct{ name, str, kind string }{
		{"issuer-serial", `<ds:X509Data xmlns:ds="` + NSDSig + `"><ds:X509IssuerSerial><ds:X509IssuerName>` + leaf.Issuer.String() +
			`</ds:X509IssuerName><ds:X509SerialNumber>` + leaf.SerialNumber.String() + `</ds:X509SerialNumber></ds:X509IssuerSerial></ds:X509Data>`, SignerRefIssuerSerial},
		{"ski", keyID(vtSKI, leaf.SubjectKeyId), SignerRefSKI},
		{"thumbprint", keyID(vtThumbprint, thumb[:]), SignerRefThumbprint},
	} {
		t.Run(c.name, func(t *testing.T) {
			msg := xmlsec1SignTemplate(t, "soap11.tmpl.xml", map[string]string{
				"Token": "", "STR": c.str,
				"Created": "2026-11-29T12:00:00.000Z", "Expires": "2026-11-29T12:05:00.000Z", "SignatureMethod": AlgECDSASHA256,
			}, keyFile, certFile)
			known := mk(TrustConfig{Roots: []*x509.Certificate{ca}, Signers: []*x509.Certificate{leaf}})
			res := verifyOK(t, msg, VerifyOptions{Trust: known})
			if res.Signer.KeyRef != c.kind || !bytes.Equal(res.Signer.Certificate.Raw, leaf.Raw) {
				t.Errorf("signer %+v", res.Signer)
			}
			verifyCode(t, msg, VerifyOptions{Trust: mk(TrustConfig{Roots: []*x509.Certificate{ca}})}, CodeKeyNotFound)
			res = verifyCode(t, msg, VerifyOptions{Trust: mk(TrustConfig{Roots: []*x509.Certificate{otherCA}, Signers: []*x509.Certificate{leaf}})}, CodeUntrustedKey)
			if res.Signer != nil {
				t.Errorf("an untrusted signer is reported: %+v", res.Signer)
			}
			verifyCode(t, bytes.Replace(msg, []byte(">WSS<"), []byte(">WSs<"), 1), VerifyOptions{Trust: known}, CodeDigestMismatch)
			// The known signer is checked at verification time like any
			// other: the leaf has expired 3 h later.
			verifyCode(t, msg, VerifyOptions{Trust: known, Now: func() time.Time { return fixedNow().Add(3 * time.Hour) }}, CodeUntrustedKey)
		})
	}
	// An X509v3 KeyIdentifier carries the certificate: the CA alone decides.
	t.Run("keyid-x509v3", func(t *testing.T) {
		msg := xmlsec1SignTemplate(t, "soap11.tmpl.xml", map[string]string{
			"Token": "", "STR": keyID(ValueTypeX509v3, leaf.Raw),
			"Created": "2026-11-29T12:00:00.000Z", "Expires": "2026-11-29T12:05:00.000Z", "SignatureMethod": AlgECDSASHA256,
		}, keyFile, certFile)
		res := verifyOK(t, msg, VerifyOptions{Trust: mk(TrustConfig{Roots: []*x509.Certificate{ca}})})
		if res.Signer.KeyRef != SignerRefKeyIDX509v3 {
			t.Errorf("signer %+v", res.Signer)
		}
		verifyCode(t, msg, VerifyOptions{Trust: mk(TrustConfig{Roots: []*x509.Certificate{otherCA}, Signers: []*x509.Certificate{leaf}})}, CodeUntrustedKey)
	})
}

// strTransformMessage builds a WCF-style message (testdata/interop
// soap12-wcf.tmpl.xml with a BinarySecurityToken) whose SignedInfo also
// signs the KeyInfo's SecurityTokenReference with the STR-Transform, from
// other implementations than wss: xmlsec1 signs the template (the digests
// of the Timestamp, Body and WS-Addressing headers), libxml2 (xmllint
// --exc-c14n) canonicalises the BinarySecurityToken, to which the
// STR-Transform's apex default namespace declaration is added as WSS4J
// adds it, and the SignedInfo, which openssl signs. xmlsec1 implements no
// STR-Transform, so it cannot sign or verify the whole.
func strTransformMessage(t *testing.T) []byte {
	t.Helper()
	xmllint := testutil.RequireTool(t, "xmllint", "libxml2-utils")
	openssl := testutil.RequireTool(t, "openssl", "openssl")
	cred := loadCredential(t, "rsa2048")
	key, crt := testKeyFiles(t, "rsa2048")
	ref := interopRefs()[0]
	dir := t.TempDir()
	// The KeyInfo's STR gets an Id (KeyInfo is not signed by the template).
	tmplSrc, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "testdata", "interop", "soap12-wcf.tmpl.xml"))
	if err != nil {
		t.Fatal(err)
	}
	tmplSrc = bytes.Replace(tmplSrc, []byte("<o:SecurityTokenReference>"), []byte(`<o:SecurityTokenReference u:Id="_str">`), 1)
	tmplFile := filepath.Join(dir, "tmpl.xml")
	if err := os.WriteFile(tmplFile, tmplSrc, 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := template.Must(template.ParseFiles(tmplFile)).Execute(&buf, map[string]string{
		"Token": ref.token(cred.Chain[0], "o", "u"), "STR": ref.str(cred.Chain[0], "o"),
		"Created": "2026-11-29T12:00:00.000Z", "Expires": "2026-11-29T12:05:00.000Z", "SignatureMethod": AlgRSASHA256,
	}); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "in.xml")
	if err := os.WriteFile(in, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--sign", "--privkey-pem", key + "," + crt}, testutil.XMLSec1IDAttrs...)
	msg, err := exec.Command(testutil.RequireTool(t, "xmlsec1", "xmlsec1"), append(args, "--output", "-", in)...).Output()
	if err != nil {
		t.Fatalf("xmlsec1 --sign: %v", err)
	}

	c14n := func(doc string) []byte {
		f := filepath.Join(dir, "c14n.xml")
		if err := os.WriteFile(f, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(xmllint, "--exc-c14n", f).Output()
		if err != nil {
			t.Fatalf("xmllint: %v", err)
		}
		return out
	}
	// The token, alone: exclusive C14N needs only the prefixes it uses.
	bst := regexp.MustCompile(`<o:BinarySecurityToken [^>]*>[^<]*</o:BinarySecurityToken>`).Find(msg)
	if bst == nil {
		t.Fatal("no BinarySecurityToken")
	}
	tok := c14n(strings.Replace(string(bst), "<o:BinarySecurityToken ", `<o:BinarySecurityToken xmlns:o="`+NSWSSE+`" xmlns:u="`+NSWSU+`" `, 1))
	if !bytes.Contains(tok[:bytes.IndexByte(tok, '>')], []byte(`xmlns="`)) {
		tok = bytes.Replace(tok, []byte("<o:BinarySecurityToken "), []byte(`<o:BinarySecurityToken xmlns="" `), 1)
	}
	sum := sha256.Sum256(tok)
	strRef := `<Reference URI="#_str"><Transforms><Transform Algorithm="` + AlgSTRTransform + `"><o:TransformationParameters><CanonicalizationMethod Algorithm="` +
		AlgExcC14N + `"/></o:TransformationParameters></Transform></Transforms><DigestMethod Algorithm="` + AlgSHA256 + `"/><DigestValue>` +
		base64.StdEncoding.EncodeToString(sum[:]) + `</DigestValue></Reference></SignedInfo>`
	msg = bytes.Replace(msg, []byte("</SignedInfo>"), []byte(strRef), 1)
	resignSignedInfo(t, dir, openssl, c14n, &msg, key)
	return msg
}

// resignSignedInfo replaces the SignatureValue of the WCF-style message
// (SignedInfo in the default namespace, exclusive C14N without PrefixList)
// by openssl's RSA-SHA256 signature over libxml2's canonical SignedInfo.
func resignSignedInfo(t *testing.T, dir, openssl string, c14n func(string) []byte, msg *[]byte, key string) {
	t.Helper()
	si := regexp.MustCompile(`<SignedInfo>.*</SignedInfo>`).Find(*msg)
	canon := c14n(strings.Replace(string(si), "<SignedInfo>", `<SignedInfo xmlns="`+NSDSig+`" xmlns:o="`+NSWSSE+`">`, 1))
	siFile, sigFile := filepath.Join(dir, "si"), filepath.Join(dir, "sig")
	if err := os.WriteFile(siFile, canon, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(openssl, "dgst", "-sha256", "-sign", key, "-out", sigFile, siFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v %s", err, out)
	}
	sig, err := os.ReadFile(sigFile)
	if err != nil {
		t.Fatal(err)
	}
	*msg = regexp.MustCompile(`<SignatureValue>[^<]*</SignatureValue>`).ReplaceAll(*msg, []byte("<SignatureValue>"+base64.StdEncoding.EncodeToString(sig)+"</SignatureValue>"))
}

// TestVerifySTRTransform: a message whose signature covers the KeyInfo's
// token through the STR-Transform, built by xmlsec1, libxml2 and openssl,
// verifies and reports the BinarySecurityToken as signed; a changed token
// is refused, and so is every use of the transform that would cover
// anything but a BinarySecurityToken of our Security header.
func TestVerifySTRTransform(t *testing.T) {
	msg := strTransformMessage(t)
	trust := testTrust(t)
	bstPart := Part{Space: NSWSSE, Local: "BinarySecurityToken"}
	o := VerifyOptions{Trust: trust, RequiredParts: []Part{PartBody(), PartTimestamp(), bstPart}}
	res := verifyOK(t, msg, o)
	verifyCommitted(t, "soap12-wcf-str-transform-rsa2048.xml", msg, o)
	if !contains(res.Signed, "/Envelope/Header/Security/BinarySecurityToken") || len(res.Signed) != 6 {
		t.Errorf("signed %v", res.Signed)
	}
	// Without the STR reference the token is not signed.
	noSTR := regexp.MustCompile(`<Reference URI="#_str">.*?</Reference>`).ReplaceAll(msg, nil)
	verifyCode(t, noSTR, o, CodeSignatureInvalid)

	// xmlsec1 does not implement the transform.
	dir := t.TempDir()
	f := filepath.Join(dir, "m.xml")
	if err := os.WriteFile(f, msg, 0o600); err != nil {
		t.Fatal(err)
	}
	_, crt := testKeyFiles(t, "rsa2048")
	args := append([]string{"--verify", "--pubkey-cert-pem", crt}, testutil.XMLSec1IDAttrs...)
	if out, err := exec.Command(testutil.RequireTool(t, "xmlsec1", "xmlsec1"), append(args, f)...).CombinedOutput(); err == nil {
		t.Logf("xmlsec1 now verifies the STR-Transform: %s", out)
	}

	for _, c := range []struct {
		name string
		edit func([]byte) []byte
		want Code
	}{
		// The token's text changes (whitespace in the base64: the same
		// certificate, other octets).
		{"token-changed", func(m []byte) []byte {
			return regexp.MustCompile(`(<o:BinarySecurityToken [^>]*>)(.)`).ReplaceAll(m, []byte("$1\n$2"))
		}, CodeDigestMismatch},
		// The transform applied to the Body, to the Timestamp.
		{"str-transform-on-body", func(m []byte) []byte {
			return bytes.Replace(m, []byte(`<Reference URI="#_str">`), []byte(`<Reference URI="#_1">`), 1)
		}, CodeTransformNotAllowed},
		{"str-transform-on-timestamp", func(m []byte) []byte {
			return bytes.Replace(m, []byte(`<Reference URI="#_str">`), []byte(`<Reference URI="#_0">`), 1)
		}, CodeTransformNotAllowed},
		// The STR dereferences the Body.
		{"str-to-body", func(m []byte) []byte {
			return bytes.Replace(m, []byte(`<o:Reference URI="#X509-1"`), []byte(`<o:Reference URI="#_1"`), 1)
		}, CodeTransformNotAllowed},
		// An STR outside the Security header.
		{"str-outside-security", func(m []byte) []byte {
			m = bytes.Replace(m, []byte(`<Reference URI="#_str">`), []byte(`<Reference URI="#_wrapped">`), 1)
			return bytes.Replace(m, []byte("<s:Header>"), []byte(`<s:Header><w:Wrapper xmlns:w="urn:attacker"><o:SecurityTokenReference xmlns:o="`+NSWSSE+`" u:Id="_wrapped"><o:Reference URI="#X509-1"/></o:SecurityTokenReference></w:Wrapper>`), 1)
		}, CodeTransformNotAllowed},
		// A token outside the Security header.
		{"token-outside-security", func(m []byte) []byte {
			bst := regexp.MustCompile(`<o:BinarySecurityToken [^>]*>[^<]*</o:BinarySecurityToken>`).Find(m)
			moved := bytes.Replace(bst, []byte(`u:Id="X509-1"`), []byte(`u:Id="X509-2"`), 1)
			moved = bytes.Replace(moved, []byte("<o:BinarySecurityToken "), []byte(`<o:BinarySecurityToken xmlns:o="`+NSWSSE+`" `), 1)
			m = bytes.Replace(m, []byte(`<o:Reference URI="#X509-1"`), []byte(`<o:Reference URI="#X509-2"`), 1)
			return bytes.Replace(m, []byte("<s:Header>"), []byte(`<s:Header><w:Wrapper xmlns:w="urn:attacker">`+string(moved)+`</w:Wrapper>`), 1)
		}, CodeTransformNotAllowed},
		// Parameters other than exclusive C14N.
		{"inclusive-parameter", func(m []byte) []byte {
			return bytes.Replace(m, []byte(`<o:TransformationParameters><CanonicalizationMethod Algorithm="`+AlgExcC14N+`"/>`),
				[]byte(`<o:TransformationParameters><CanonicalizationMethod Algorithm="`+AlgC14N10+`"/>`), 1)
		}, CodeTransformNotAllowed},
		{"no-parameters", func(m []byte) []byte {
			return regexp.MustCompile(`<o:TransformationParameters>.*?</o:TransformationParameters>`).ReplaceAll(m, nil)
		}, CodeTransformNotAllowed},
		// A second transform after the STR-Transform.
		{"two-transforms", func(m []byte) []byte {
			return bytes.Replace(m, []byte(`</o:TransformationParameters></Transform>`), []byte(`</o:TransformationParameters></Transform><Transform Algorithm="`+AlgExcC14N+`"/>`), 1)
		}, CodeTransformNotAllowed},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := c.edit(msg)
			if bytes.Equal(m, msg) {
				t.Fatal("the edit changed nothing")
			}
			verifyCode(t, m, o, c.want)
		})
	}
}

// verifyCommitted writes msg to testdata/interop/generated/name with
// -update, and verifies the committed file with o.
func verifyCommitted(t *testing.T, name string, msg []byte, o VerifyOptions) {
	t.Helper()
	path := filepath.Join(testutil.RepoRoot(t), "testdata", "interop", "generated", name)
	if *update {
		if err := os.WriteFile(path, msg, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	committed, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./wss -run 'InclusiveC14NXMLSec1|STRTransform' -update)", err)
	}
	verifyOK(t, committed, o)
}

// TestSTRApexWriter: the STR-Transform's apex gets xmlns="" unless the
// canonical form declares a default namespace there, whatever the chunks
// the canonical bytes come in.
func TestSTRApexWriter(t *testing.T) {
	for _, c := range []struct{ in, qname, want string }{
		{`<o:BinarySecurityToken xmlns:o="urn:o">AA==</o:BinarySecurityToken>`, "o:BinarySecurityToken", `<o:BinarySecurityToken xmlns="" xmlns:o="urn:o">AA==</o:BinarySecurityToken>`},
		{`<o:BinarySecurityToken xmlns="urn:d" xmlns:o="urn:o">AA==</o:BinarySecurityToken>`, "o:BinarySecurityToken", `<o:BinarySecurityToken xmlns="urn:d" xmlns:o="urn:o">AA==</o:BinarySecurityToken>`},
		{`<a></a>`, "a", `<a xmlns=""></a>`},
		{`<a xmlns:b="urn:b"></a>`, "a", `<a xmlns="" xmlns:b="urn:b"></a>`},
	} {
		for _, chunk := range []int{1, 3, len(c.in)} {
			var out bytes.Buffer
			w := &strApexWriter{w: &out, head: len(c.qname) + 1}
			for i := 0; i < len(c.in); i += chunk {
				if _, err := w.Write([]byte(c.in[i:min(i+chunk, len(c.in))])); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.flush(); err != nil {
				t.Fatal(err)
			}
			if out.String() != c.want {
				t.Errorf("%s in chunks of %d: %s, want %s", c.in, chunk, out.String(), c.want)
			}
		}
	}
}

// TestAttacksWithPeerForms: with inclusive C14N admitted and the signer
// certificates known (the STR-Transform is always admitted), every message
// of the attack corpus keeps its verdict.
func TestAttacksWithPeerForms(t *testing.T) {
	rsa := loadCredential(t, "rsa2048")
	trust, err := NewTrustStore(TrustConfig{Pinned: rsa.Chain, Signers: []*x509.Certificate{loadCredential(t, "ecp256").Chain[0]}})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(testutil.RepoRoot(t), "testdata", "attacks")
	for _, c := range attackCases() {
		t.Run(c.name, func(t *testing.T) {
			msg, err := os.ReadFile(filepath.Join(dir, c.name+".xml"))
			if err != nil {
				t.Fatal(err)
			}
			o := VerifyOptions{Trust: trust, Now: fixedNow, Replay: NewReplayCache(16), AllowInclusiveC14N: true}
			if c.opts != nil {
				c.opts(&o)
			}
			if c.name == "replay" {
				verifyOK(t, msg, o)
			}
			res, err := Verify(context.Background(), msg, o)
			switch {
			case c.err:
				if CodeOf(err) != c.want || res != nil {
					t.Fatalf("got %+v, %v; want error %s", res, err, c.want)
				}
			case err != nil:
				t.Fatalf("Verify: %v", err)
			case c.want == "" && !res.Valid:
				t.Fatalf("want valid, got %s: %s", res.Code, res.Detail)
			case c.want != "" && (res.Valid || res.Code != c.want):
				t.Fatalf("got valid=%v code=%s (%s); want %s", res.Valid, res.Code, res.Detail, c.want)
			}
		})
	}
}

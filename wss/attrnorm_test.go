package wss

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"github.com/wssignd/wssignd/internal/testutil"
)

// Attribute values with literal whitespace: XML 1.0 §3.3.3 normalises each
// literal TAB, LF (and CR LF) to a space, while the character references
// &#9; and &#10; keep a TAB and an LF. libxml2 (xmlsec1), WSS4J and every
// conformant verifier canonicalise the normalised value; encoding/xml (and
// so etree) does not normalise.
const (
	attrNormItem = "<m:item xmlns:m=\"urn:example:attrs\" note=\"a\tb\nc\" ref=\"x&#9;y&#10;z\">v</m:item>"
	// The canonical form of attrNormItem inside a signed element.
	attrNormCanonical = `<m:item xmlns:m="urn:example:attrs" note="a b c" ref="x&#x9;y&#xA;z">v</m:item>`
)

// TestSignAttrNormalisationXMLSec1: an envelope whose signed Body holds
// literal TAB and LF (and &#9;/&#10; references) in attribute values is
// signed by Sign so that both Verify and xmlsec1 accept it; the canonical
// Body that Verify digests holds the normalised values.
func TestSignAttrNormalisationXMLSec1(t *testing.T) {
	env := []byte(`<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
  <soapenv:Header/>
  <soapenv:Body>` + attrNormItem + `</soapenv:Body>
</soapenv:Envelope>
`)
	for _, key := range []string{"rsa2048", "ecp256"} {
		t.Run(key, func(t *testing.T) {
			cred := loadCredential(t, key)
			signed := signFixed(t, env, cred, SignOptions{})
			if !bytes.Contains(signed, []byte(attrNormItem)) {
				t.Fatalf("Sign altered the signed element:\n%s", signed)
			}
			if out, ok := testutil.XMLSec1Verify(t, signed, cred.Chain[0]); !ok {
				t.Fatalf("xmlsec1 rejects the signature:\n%s\n%s", out, signed)
			}
			res := verifyOK(t, signed, VerifyOptions{Trust: testTrust(t), Explain: true})
			var body *RefExplain
			for i := range res.Explain {
				if strings.HasSuffix(res.Explain[i].Path, "Body") {
					body = &res.Explain[i]
				}
			}
			if body == nil || !bytes.Contains(body.Canonical, []byte(attrNormCanonical)) {
				t.Fatalf("the canonical Body lacks %s: %+v", attrNormCanonical, res.Explain)
			}
			// The literal TAB is one space for every reader; the
			// reference &#9; is a TAB: replacing it changes the Body.
			verifyOK(t, bytes.Replace(signed, []byte("a\tb"), []byte("a b"), 1), VerifyOptions{Trust: testTrust(t)})
			verifyCode(t, bytes.Replace(signed, []byte("x&#9;y"), []byte("x y"), 1), VerifyOptions{Trust: testTrust(t)}, CodeDigestMismatch)
		})
	}
}

// TestVerifyAttrNormalisationXMLSec1: a message signed by xmlsec1 --sign
// whose signed Body holds such attribute values (literal whitespace
// included, which xmlsec1 accepts) verifies, and the equivalences of §3.3.3
// hold for it too.
func TestVerifyAttrNormalisationXMLSec1(t *testing.T) {
	xmlsec := testutil.RequireTool(t, "xmlsec1", "xmlsec1")
	root := testutil.RepoRoot(t)
	dir := t.TempDir()
	trust := testTrust(t)
	tmpl := template.Must(template.ParseFiles(filepath.Join(root, "testdata", "interop", "soap11.tmpl.xml")))
	for _, k := range []struct{ name, sm string }{{"rsa2048", AlgRSASHA256}, {"ecp256", AlgECDSASHA256}} {
		t.Run(k.name, func(t *testing.T) {
			cert := loadCredential(t, k.name).Chain[0]
			ref := interopRefs()[0] // BinarySecurityToken, X.509 v3 (its token caches the first certificate)
			var buf bytes.Buffer
			err := tmpl.Execute(&buf, map[string]string{
				"Token": ref.token(cert, "wsse", "wsu"), "STR": ref.str(cert, "wsse"),
				"Created": "2026-11-29T12:00:00.000Z", "Expires": "2026-11-29T12:05:00.000Z", "SignatureMethod": k.sm,
			})
			if err != nil {
				t.Fatal(err)
			}
			const symbol = "<m:symbol>WSS</m:symbol>"
			if !bytes.Contains(buf.Bytes(), []byte(symbol)) {
				t.Fatal("template lacks the symbol element")
			}
			msg := bytes.Replace(buf.Bytes(), []byte(symbol), []byte(symbol+attrNormItem), 1)
			in := filepath.Join(dir, k.name+".xml")
			if err := os.WriteFile(in, msg, 0o600); err != nil {
				t.Fatal(err)
			}
			keyArg := filepath.Join(root, "testdata", "keys", k.name+".key") + "," + filepath.Join(root, "testdata", "keys", k.name+".crt")
			args := append([]string{"--sign", "--privkey-pem", keyArg}, testutil.XMLSec1IDAttrs...)
			args = append(args, "--output", "-", in)
			out, err := exec.Command(xmlsec, args...).Output()
			if err != nil {
				t.Fatalf("xmlsec1 --sign: %v\n%s", err, out)
			}
			// xmlsec1 writes the document libxml2 parsed: the literal
			// whitespace comes out normalised. Put it back; §3.3.3 makes
			// both the same document for xmlsec1 and for Verify.
			normalised := strings.NewReplacer("\t", " ", "\n", " ").Replace(attrNormItem)
			if !bytes.Contains(out, []byte(normalised)) {
				t.Fatalf("xmlsec1's output lacks %q:\n%s", normalised, out)
			}
			out = bytes.Replace(out, []byte(normalised), []byte(attrNormItem), 1)
			if xout, ok := testutil.XMLSec1Verify(t, out, cert); !ok {
				t.Fatalf("xmlsec1 rejects its own signature with literal whitespace restored:\n%s\n%s", xout, out)
			}
			res := verifyOK(t, out, VerifyOptions{Trust: trust, Explain: true})
			found := false
			for _, e := range res.Explain {
				found = found || bytes.Contains(e.Canonical, []byte(attrNormCanonical))
			}
			if !found {
				t.Fatalf("no canonical Reference holds %s", attrNormCanonical)
			}
			verifyOK(t, bytes.Replace(out, []byte("b\nc"), []byte("b c"), 1), VerifyOptions{Trust: trust})
			verifyCode(t, bytes.Replace(out, []byte("y&#10;z"), []byte("y z"), 1), VerifyOptions{Trust: trust}, CodeDigestMismatch)
		})
	}
}

// TestSignByteOrderMark: the envelope scan reads documents as XML 1.0 says,
// so a leading UTF-8 byte order mark (which etree accepts too) is signed;
// the result keeps it and verifies with Verify and xmlsec1.
func TestSignByteOrderMark(t *testing.T) {
	env := append([]byte("\xEF\xBB\xBF"), testutil.ReadTestdata(t, "envelope-soap11.xml")...)
	cred := loadCredential(t, "rsa2048")
	signed := signFixed(t, env, cred, SignOptions{})
	if !bytes.HasPrefix(signed, []byte("\xEF\xBB\xBF<?xml")) {
		t.Fatalf("the byte order mark is gone: %q", signed[:8])
	}
	verifyOK(t, signed, VerifyOptions{Trust: testTrust(t)})
	if out, ok := testutil.XMLSec1Verify(t, signed, cred.Chain[0]); !ok {
		t.Fatalf("xmlsec1 rejects the signature:\n%s", out)
	}
}

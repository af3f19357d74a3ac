package wss

import (
	"bytes"
	"context"
	"crypto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wssignd/wssignd/internal/testutil"
)

// xmlsec1EncryptTemplate is xmlsec1Encrypt with the template edited first
// (the EncryptedKey's KeyInfo, a CarriedKeyName): xmlsec1 encrypts the Body
// content of testdata/xenc/envelope.xml for the rsa2048 test certificate,
// registered in its keys manager under the name invoice-decrypt, with
// AES-256-GCM and RSA-OAEP (MGF1-SHA-1), and the EncryptedKey is moved into
// the Security header.
func xmlsec1EncryptTemplate(t *testing.T, edit func(string) string) []byte {
	t.Helper()
	xmlsec := testutil.RequireTool(t, "xmlsec1", "xmlsec1")
	dir := t.TempDir()
	tmpl := strings.NewReplacer("{DATA}", AlgAES256GCM, "{KT}", AlgRSAOAEPMGF1P).Replace(string(testutil.ReadTestdata(t, "xenc/body-content.tmpl.xml")))
	tmpl = edit(tmpl)
	cert := loadCredential(t, "rsa2048").Chain[0]
	files := map[string][]byte{"tmpl.xml": []byte(tmpl), "cert.pem": testutil.CertPEM(cert), "env.xml": testutil.ReadTestdata(t, "xenc/envelope.xml")}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(xmlsec, "--encrypt", "--pubkey-cert-pem:invoice-decrypt", filepath.Join(dir, "cert.pem"), "--session-key", "aes-256",
		"--xml-data", filepath.Join(dir, "env.xml"), "--node-name", NSSOAP11+":Body", "--output", filepath.Join(dir, "out.xml"), filepath.Join(dir, "tmpl.xml"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xmlsec1 --encrypt: %v: %s", err, b)
	}
	out, err := os.ReadFile(filepath.Join(dir, "out.xml"))
	if err != nil {
		t.Fatal(err)
	}
	ekRe := regexp.MustCompile(`(?s)<ds:KeyInfo[^>]*>\s*(<xenc:EncryptedKey .*?</xenc:EncryptedKey>)\s*</ds:KeyInfo>`)
	m := ekRe.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no EncryptedKey in xmlsec1's output:\n%s", out)
	}
	ek := append([]byte{}, m[1]...)
	out = ekRe.ReplaceAll(out, nil)
	return bytes.Replace(out, []byte("<!--EncryptedKey-->"), ek, 1)
}

// standalone moves the EncryptedKey's ReferenceList out of it, into the
// Security header after it, and gives the EncryptedData the KeyInfo ki.
func standalone(t *testing.T, msg []byte, ki string) []byte {
	t.Helper()
	rlRe := regexp.MustCompile(`(?s)\s*<xenc:ReferenceList>.*?</xenc:ReferenceList>`)
	rl := rlRe.Find(msg)
	if rl == nil {
		t.Fatal("no ReferenceList")
	}
	msg = rlRe.ReplaceAll(msg, nil)
	msg = bytes.Replace(msg, []byte("</xenc:EncryptedKey>"), []byte("</xenc:EncryptedKey>"+
		strings.Replace(strings.TrimSpace(string(rl)), "<xenc:ReferenceList>", `<xenc:ReferenceList xmlns:xenc="`+NSXEnc+`">`, 1)), 1)
	edRe := regexp.MustCompile(`(<xenc:EncryptedData [^>]*>\s*<xenc:EncryptionMethod [^>]*/>)`)
	if !edRe.Match(msg) {
		t.Fatal("no EncryptedData")
	}
	return edRe.ReplaceAll(msg, []byte("${1}"+ki))
}

// TestDecryptPeerForms: messages whose cipher values xmlsec1 made, in the
// forms other stacks send: a standalone ReferenceList whose EncryptedData
// name the EncryptedKey by a SecurityTokenReference or by its
// CarriedKeyName, an EncryptedKey addressed to our key by ds:KeyName, a
// Security header for an actor. Each decrypts to the original Body; each
// tampered, misdirected or not configured variant is refused.
func TestDecryptPeerForms(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	dec := cred.Signer.(crypto.Decrypter)
	cert := cred.Chain[0]
	want := bodyContent(t, testutil.ReadTestdata(t, "xenc/envelope.xml"))
	const (
		strKI     = `<ds:KeyInfo xmlns:ds="` + NSDSig + `"><wsse:SecurityTokenReference xmlns:wsse="` + NSWSSE + `"><wsse:Reference URI="#EK-xmlsec1" ValueType="` + vtEncryptedKey + `"/></wsse:SecurityTokenReference></ds:KeyInfo>`
		keyNameKI = `<ds:KeyInfo xmlns:ds="` + NSDSig + `"><ds:KeyName>session-1</ds:KeyName></ds:KeyInfo>`
		actor     = "urn:example:decryptor"
	)
	plain := func(s string) string { return s }
	carried := func(s string) string {
		return strings.Replace(s, "</xenc:ReferenceList>\n    </xenc:EncryptedKey>", "</xenc:ReferenceList>\n      <xenc:CarriedKeyName>session-1</xenc:CarriedKeyName>\n    </xenc:EncryptedKey>", 1)
	}
	byName := func(s string) string {
		return strings.Replace(s, "<ds:X509Data><ds:X509Certificate/></ds:X509Data>", "<ds:KeyName>invoice-decrypt</ds:KeyName>", 1)
	}
	withActor := func(m []byte) []byte {
		return bytes.Replace(m, []byte(`soap:mustUnderstand="1">`), []byte(`soap:mustUnderstand="1" soap:actor="`+actor+`">`), 1)
	}
	soap12Role := func(m []byte, role string) []byte {
		m = bytes.Replace(m, []byte(`xmlns:soap="`+NSSOAP11+`"`), []byte(`xmlns:soap="`+NSSOAP12+`"`), 1)
		return bytes.Replace(m, []byte(`soap:mustUnderstand="1">`), []byte(`soap:mustUnderstand="1" soap:role="`+role+`">`), 1)
	}
	base := decOpts(cert)
	named := base
	named.KeyNames = []string{"invoice-decrypt"}
	forActor := base
	forActor.Actor = actor

	type form struct {
		name string
		msg  []byte
		opts DecryptOptions
	}
	standaloneSTR := standalone(t, xmlsec1EncryptTemplate(t, plain), strKI)
	standaloneName := standalone(t, xmlsec1EncryptTemplate(t, carried), keyNameKI)
	if !bytes.Contains(standaloneName, []byte("<xenc:CarriedKeyName>session-1</xenc:CarriedKeyName>")) {
		t.Fatal("xmlsec1 dropped the CarriedKeyName")
	}
	keyName := xmlsec1EncryptTemplate(t, byName)
	if !bytes.Contains(keyName, []byte("<ds:KeyName>invoice-decrypt</ds:KeyName>")) {
		t.Fatal("no KeyName in xmlsec1's EncryptedKey")
	}
	forms := []form{
		{"standalone-reference-list-str", standaloneSTR, base},
		{"standalone-reference-list-keyname", standaloneName, base},
		{"keyname", keyName, named},
		{"actor", withActor(xmlsec1EncryptTemplate(t, plain)), forActor},
		{"role-soap12", soap12Role(xmlsec1EncryptTemplate(t, plain), actor), forActor},
		{"role-ultimate-receiver", soap12Role(xmlsec1EncryptTemplate(t, plain), roleUltimateReceiver), base},
	}
	for _, f := range forms {
		t.Run(f.name, func(t *testing.T) {
			// The message of the last -update is kept and decrypts too.
			path := filepath.Join(testutil.RepoRoot(t), "testdata", "xenc", "generated", f.name+".xml")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, f.msg, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			committed, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./wss -run DecryptPeerForms -update)", err)
			}
			if res, err := Decrypt(context.Background(), committed, dec, f.opts); err != nil || !bytes.Equal(bodyContent(t, res.Envelope), want) {
				t.Errorf("committed %s: %v", path, err)
			}
			res, err := Decrypt(context.Background(), f.msg, dec, f.opts)
			if err != nil {
				t.Fatalf("%v\n%s", err, f.msg)
			}
			if !bytes.Equal(bodyContent(t, res.Envelope), want) || res.EncryptedKeyID != "EK-xmlsec1" || len(res.References) != 1 {
				t.Errorf("result %+v\n%s", res, res.Envelope)
			}
			if bytes.Contains(res.Envelope, []byte("ReferenceList")) || bytes.Contains(res.Envelope, []byte("EncryptedKey")) {
				t.Errorf("the key or its ReferenceList is left:\n%s", res.Envelope)
			}
			// Tampered cipher text.
			tampered := regexp.MustCompile(`(<xenc:EncryptedData (?s:.*?)<xenc:CipherValue>)(.)`).ReplaceAllFunc(f.msg, func(b []byte) []byte {
				c := b[len(b)-1]
				if c == 'A' {
					c = 'B'
				} else {
					c = 'A'
				}
				return append(b[:len(b)-1:len(b)-1], c)
			})
			if bytes.Equal(tampered, f.msg) {
				t.Fatal("no cipher text changed")
			}
			if _, err := Decrypt(context.Background(), tampered, dec, f.opts); CodeOf(err) != CodeDecryptionFailed {
				t.Errorf("tampered: %v", err)
			}
		})
	}

	refused := []struct {
		name string
		msg  []byte
		opts DecryptOptions
		want Code
	}{
		// The option off: no key names, no actor (or another one).
		{"keyname-not-configured", keyName, base, CodeNoEncryptedKey},
		{"keyname-other", keyName, DecryptOptions{Certificate: cert, KeyNames: []string{"other"}}, CodeNoEncryptedKey},
		{"actor-not-configured", withActor(xmlsec1EncryptTemplate(t, plain)), base, CodeNoEncryptedKey},
		{"actor-other", withActor(xmlsec1EncryptTemplate(t, plain)), DecryptOptions{Certificate: cert, Actor: "urn:other"}, CodeNoEncryptedKey},
		{"actor-header-without", xmlsec1EncryptTemplate(t, plain), forActor, CodeNoEncryptedKey},
		// A standalone list whose EncryptedData name another key, or none.
		{"standalone-other-key", bytes.Replace(standaloneSTR, []byte(`URI="#EK-xmlsec1"`), []byte(`URI="#EK-other"`), 1), base, CodeDecryptionFailed},
		{"standalone-other-name", bytes.Replace(standaloneName, []byte("<ds:KeyName>session-1</ds:KeyName>"), []byte("<ds:KeyName>session-2</ds:KeyName>"), 1), base, CodeDecryptionFailed},
		{"standalone-no-keyinfo", standalone(t, xmlsec1EncryptTemplate(t, plain), ""), base, CodeDecryptionFailed},
		// The Reference names the EncryptedKey as another token type.
		{"standalone-str-wrong-type", bytes.Replace(standaloneSTR, []byte(vtEncryptedKey), []byte(ValueTypeX509v3), 1), base, CodeDecryptionFailed},
	}
	for _, r := range refused {
		t.Run(r.name, func(t *testing.T) {
			if _, err := Decrypt(context.Background(), r.msg, dec, r.opts); CodeOf(err) != r.want {
				t.Errorf("got %v, want %s", err, r.want)
			}
		})
	}
}

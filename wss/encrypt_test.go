package wss

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm/hsmtest"
	"github.com/wssignd/wssignd/internal/testutil"
)

// transport is one key transport configuration.
type transport struct {
	name              string
	kt, digest, mgf   string
	rsa15, softhsmSHA bool // softhsmSHA: SHA-1 digest and MGF1-SHA-1 (all SoftHSM2 2.6 implements)
}

var transports = []transport{
	{name: "rsa-oaep-sha256-mgf1sha256", kt: AlgRSAOAEP},
	{name: "rsa-oaep-sha1-mgf1sha1", kt: AlgRSAOAEP, digest: AlgSHA1, mgf: AlgMGF1SHA1, softhsmSHA: true},
	{name: "rsa-oaep-sha256-mgf1sha1", kt: AlgRSAOAEP, digest: AlgSHA256, mgf: AlgMGF1SHA1},
	{name: "rsa-oaep-sha512-mgf1sha512", kt: AlgRSAOAEP, digest: AlgSHA512, mgf: AlgMGF1SHA512},
	{name: "rsa-oaep-mgf1p-sha1", kt: AlgRSAOAEPMGF1P, softhsmSHA: true},
	{name: "rsa-oaep-mgf1p-sha256", kt: AlgRSAOAEPMGF1P, digest: AlgSHA256},
	{name: "rsa-1_5", kt: AlgRSA15, rsa15: true, softhsmSHA: true},
}

var dataAlgURIs = []string{AlgAES128GCM, AlgAES256GCM, AlgAES128CBC, AlgAES256CBC}

var allData = dataAlgURIs
var allTransports = []string{AlgRSAOAEP, AlgRSAOAEPMGF1P, AlgRSA15}

func encOpts(cert *x509.Certificate, data string, tr transport) EncryptOptions {
	return EncryptOptions{Recipient: cert, DataAlgorithm: data, AllowCBC: true, KeyTransport: tr.kt,
		AllowRSA15: tr.rsa15, OAEPDigest: tr.digest, MGF: tr.mgf}
}

func decOpts(cert *x509.Certificate) DecryptOptions {
	return DecryptOptions{Certificate: cert, DataAlgorithms: allData, KeyTransports: allTransports}
}

func shortAlg(uri string) string { return uri[strings.LastIndexAny(uri, "#")+1:] }

// bodyContent returns the bytes between the Body's start and end tags.
func bodyContent(t testing.TB, raw []byte) []byte {
	t.Helper()
	env, err := scanEnvelope(context.Background(), raw, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return raw[env.body.startEnd:env.body.endStart]
}

// TestEncryptRoundTrip encrypts every test envelope with every data and key
// transport algorithm for an in-memory key and decrypts it again: the Body
// content comes back byte for byte, and an envelope that already had a
// Security header comes back whole.
func TestEncryptRoundTrip(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	cert := cred.Chain[0]
	dec := cred.Signer.(crypto.Decrypter)
	for _, file := range []string{"envelope-soap11.xml", "envelope-soap12.xml", "envelope-wsa.xml", "envelope-existing-security.xml"} {
		raw := testutil.ReadTestdata(t, file)
		for _, data := range dataAlgURIs {
			for _, tr := range transports {
				name := file + "/" + shortAlg(data) + "/" + tr.name
				res, err := Encrypt(context.Background(), raw, encOpts(cert, data, tr))
				if err != nil {
					t.Fatalf("%s: encrypt: %v", name, err)
				}
				if bytes.Contains(res.Envelope, bodyContent(t, raw)) {
					t.Errorf("%s: plaintext Body content still present", name)
				}
				if !bytes.Contains(res.Envelope, []byte(`Algorithm="`+data+`"`)) || !bytes.Contains(res.Envelope, []byte(`Algorithm="`+tr.kt+`"`)) {
					t.Errorf("%s: algorithms not announced", name)
				}
				out, err := Decrypt(context.Background(), res.Envelope, dec, decOpts(cert))
				if err != nil {
					t.Fatalf("%s: decrypt: %v", name, err)
				}
				if !bytes.Equal(bodyContent(t, out.Envelope), bodyContent(t, raw)) {
					t.Errorf("%s: Body content differs after the round trip", name)
				}
				if !out.BodyContent || out.KeyTransport != tr.kt || out.DataAlgorithm != data || "#"+out.References[0] != res.DataReferences[0] {
					t.Errorf("%s: result %+v", name, out)
				}
				if bytes.Contains(out.Envelope, []byte("EncryptedKey")) {
					t.Errorf("%s: EncryptedKey left in the envelope", name)
				}
				if file == "envelope-existing-security.xml" && !bytes.Equal(out.Envelope, raw) {
					t.Errorf("%s: round trip is not byte-identical:\n%s", name, out.Envelope)
				}
			}
		}
	}
}

// TestEncryptKeepsBytes checks that Encrypt changes nothing outside the
// Body content and the inserted EncryptedKey.
func TestEncryptKeepsBytes(t *testing.T) {
	cert := loadCredential(t, "rsa2048").Chain[0]
	raw := testutil.ReadTestdata(t, "envelope-existing-security.xml")
	env, _ := scanEnvelope(context.Background(), raw, Limits{})
	res, err := Encrypt(context.Background(), raw, EncryptOptions{Recipient: cert})
	if err != nil {
		t.Fatal(err)
	}
	sec := env.security[0]
	out := res.Envelope
	if !bytes.HasPrefix(out, raw[:sec.startEnd]) {
		t.Error("bytes before the Security header's content changed")
	}
	ekEnd := bytes.Index(out, []byte("</xenc:EncryptedKey>")) + len("</xenc:EncryptedKey>")
	bodyStart := bytes.Index(out, []byte("<xenc:EncryptedData"))
	if !bytes.Equal(out[ekEnd:bodyStart], raw[sec.startEnd:env.body.startEnd]) {
		t.Errorf("bytes between the EncryptedKey and the Body content changed:\n%s", out[ekEnd:bodyStart])
	}
	if !bytes.HasSuffix(out, raw[env.body.endStart:]) {
		t.Error("bytes after the Body content changed")
	}
	if res.KeyTransport != AlgRSAOAEP || res.DataAlgorithm != AlgAES256GCM {
		t.Errorf("defaults %s %s", res.KeyTransport, res.DataAlgorithm)
	}
	for _, want := range []string{AlgSHA256, AlgMGF1SHA256, "X509IssuerSerial", TypeContent, TokenTypeEncryptedKey} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("output lacks %s", want)
		}
	}
}

// TestEncryptHeaders encrypts WS-Addressing headers as EncryptedHeader
// (SOAP attributes copied) and gets them back byte for byte.
func TestEncryptHeaders(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	cert := cred.Chain[0]
	raw := testutil.ReadTestdata(t, "envelope-wsa.xml")
	const wsa = "http://www.w3.org/2005/08/addressing"
	res, err := Encrypt(context.Background(), raw, EncryptOptions{Recipient: cert, Parts: []Part{PartBody(), {Space: wsa, Local: "Action"}, {Space: wsa, Local: "To"}, {Space: wsa, Local: "FaultTo", Optional: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(res.Envelope, []byte("<wsse11:EncryptedHeader ")); n != 2 {
		t.Errorf("%d EncryptedHeaders, want 2", n)
	}
	if n := bytes.Count(res.Envelope, []byte(`:mustUnderstand="1"`)); n != 3 { // Security + 2 copied
		t.Errorf("mustUnderstand appears %d times, want 3:\n%s", n, res.Envelope)
	}
	if bytes.Contains(res.Envelope, []byte("urn:example:Ping")) || len(res.DataReferences) != 3 {
		t.Errorf("headers not encrypted: %s", res.Envelope)
	}
	out, err := Decrypt(context.Background(), res.Envelope, cred.Signer.(crypto.Decrypter), DecryptOptions{Certificate: cert})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{`<a:Action s:mustUnderstand="1">urn:example:Ping</a:Action>`, `<a:To s:mustUnderstand="1">https://service.example/ping</a:To>`} {
		if !bytes.Contains(out.Envelope, []byte(h)) {
			t.Errorf("decrypted envelope lacks %s", h)
		}
	}
	if !bytes.Equal(bodyContent(t, out.Envelope), bodyContent(t, raw)) {
		t.Error("Body differs")
	}
	if _, err := Encrypt(context.Background(), raw, EncryptOptions{Recipient: cert, Parts: []Part{{Space: wsa, Local: "FaultTo"}}}); CodeOf(err) != CodeMissingPart {
		t.Errorf("missing required header: %v", err)
	}
}

// TestKeyReferences: each key reference form names the certificate so that
// Decrypt finds the EncryptedKey, and another certificate does not match.
func TestKeyReferences(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	cert := cred.Chain[0]
	other := otherCert(t)
	raw := testutil.ReadTestdata(t, "envelope-soap11.xml")
	for _, ref := range []RecipientRef{RecipientIssuerSerial, RecipientSKI, RecipientThumbprint} {
		res, err := Encrypt(context.Background(), raw, EncryptOptions{Recipient: cert, RecipientRef: ref})
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if _, err := Decrypt(context.Background(), res.Envelope, cred.Signer.(crypto.Decrypter), DecryptOptions{Certificate: cert}); err != nil {
			t.Errorf("%s: %v", ref, err)
		}
		if _, err := Decrypt(context.Background(), res.Envelope, cred.Signer.(crypto.Decrypter), DecryptOptions{Certificate: other}); CodeOf(err) != CodeNoEncryptedKey {
			t.Errorf("%s: other certificate: %v, want %s", ref, err, CodeNoEncryptedKey)
		}
	}
}

// otherCert returns a self-signed RSA certificate of another key.
func otherCert(t testing.TB) *x509.Certificate {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	c, err := selfSigned(k)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEncryptOptionChecks(t *testing.T) {
	cert := loadCredential(t, "rsa2048").Chain[0]
	ec := loadCredential(t, "ecp256").Chain[0]
	raw := testutil.ReadTestdata(t, "envelope-soap11.xml")
	for _, tc := range []struct {
		name string
		o    EncryptOptions
		code Code
	}{
		{"no recipient", EncryptOptions{}, CodeBadRecipient},
		{"ec recipient", EncryptOptions{Recipient: ec}, CodeBadRecipient},
		{"cbc without opt-in", EncryptOptions{Recipient: cert, DataAlgorithm: AlgAES256CBC}, CodeUnsupported},
		{"rsa 1.5 without opt-in", EncryptOptions{Recipient: cert, KeyTransport: AlgRSA15}, CodeUnsupported},
		{"unknown data", EncryptOptions{Recipient: cert, DataAlgorithm: NSXEnc + "tripledes-cbc"}, CodeUnsupported},
		{"mgf1p with mgf", EncryptOptions{Recipient: cert, KeyTransport: AlgRSAOAEPMGF1P, MGF: AlgMGF1SHA256}, CodeUnsupported},
		{"unknown ref", EncryptOptions{Recipient: cert, RecipientRef: "KeyName"}, CodeUnsupported},
	} {
		if _, err := Encrypt(context.Background(), raw, tc.o); CodeOf(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	if _, err := Encrypt(context.Background(), []byte(`<!DOCTYPE x><x/>`), EncryptOptions{Recipient: cert}); CodeOf(err) != CodeDTDForbidden {
		t.Errorf("doctype: %v", err)
	}
}

// tamper applies f to the text of the first match of re in s.
func tamper(s []byte, re string, f func(b []byte) []byte) []byte {
	m := regexp.MustCompile(re).FindSubmatchIndex(s)
	if m == nil {
		panic("no match for " + re)
	}
	out := append([]byte{}, s[:m[2]]...)
	out = append(out, f(s[m[2]:m[3]])...)
	return append(out, s[m[3]:]...)
}

func flipBase64(b []byte) []byte {
	v, err := base64.StdEncoding.DecodeString(string(b))
	if err != nil {
		panic(err)
	}
	v[len(v)-1] ^= 1
	return []byte(base64.StdEncoding.EncodeToString(v))
}

func flipFirstBase64(b []byte) []byte {
	v, _ := base64.StdEncoding.DecodeString(string(b))
	v[0] ^= 0x80
	return []byte(base64.StdEncoding.EncodeToString(v))
}

// TestDecryptFailuresOpaque: every kind of decryption failure yields the
// same code and the same message.
func TestDecryptFailuresOpaque(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	cert := cred.Chain[0]
	dec := cred.Signer.(crypto.Decrypter)
	raw := testutil.ReadTestdata(t, "envelope-soap11.xml")
	enc := func(o EncryptOptions) []byte {
		o.Recipient = cert
		res, err := Encrypt(context.Background(), raw, o)
		if err != nil {
			t.Fatal(err)
		}
		return res.Envelope
	}
	gcm := enc(EncryptOptions{})
	cbc := enc(EncryptOptions{DataAlgorithm: AlgAES256CBC, AllowCBC: true})
	r15 := enc(EncryptOptions{KeyTransport: AlgRSA15, AllowRSA15: true})
	r15cbc := enc(EncryptOptions{KeyTransport: AlgRSA15, AllowRSA15: true, DataAlgorithm: AlgAES128CBC, AllowCBC: true})
	const ekCV = `(?s)EncryptedKey.*?CipherValue>([^<]+)<`
	const edCV = `(?s)EncryptedData.*?CipherValue>([^<]+)<`
	// A wrapped key of another recipient, naming ours.
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	wrongKeyCT, _ := rsa.EncryptOAEPWithOptions(rand.Reader, &otherKey.PublicKey, make([]byte, 32), &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA256})
	all := DecryptOptions{Certificate: cert, DataAlgorithms: allData, KeyTransports: allTransports}
	gcmOnly := DecryptOptions{Certificate: cert}
	cases := []struct {
		name string
		msg  []byte
		opts DecryptOptions
	}{
		{"gcm tag mismatch", tamper(gcm, edCV, flipBase64), gcmOnly},
		{"gcm iv changed", tamper(gcm, edCV, flipFirstBase64), gcmOnly},
		{"oaep padding", tamper(gcm, ekCV, flipBase64), gcmOnly},
		{"oaep wrong key", tamper(gcm, ekCV, func([]byte) []byte { return []byte(base64.StdEncoding.EncodeToString(wrongKeyCT)) }), gcmOnly},
		{"oaep wrong digest", bytes.Replace(gcm, []byte(`DigestMethod Algorithm="`+AlgSHA256), []byte(`DigestMethod Algorithm="`+AlgSHA1), 1), gcmOnly},
		{"rsa15 padding", tamper(r15, ekCV, flipBase64), all},
		{"rsa15 padding cbc", tamper(r15cbc, ekCV, flipBase64), all},
		{"rsa15 not allowed", r15, gcmOnly},
		{"cbc when gcm expected", cbc, gcmOnly},
		{"cbc padding", tamper(cbc, edCV, flipBase64), all},
		{"unknown data algorithm", bytes.Replace(gcm, []byte(AlgAES256GCM), []byte(NSXEnc+"kw-aes256"), 1), all},
		{"unknown key transport", bytes.Replace(gcm, []byte(`Algorithm="`+AlgRSAOAEP+`"`), []byte(`Algorithm="urn:x"`), 1), all},
		{"cipher value not base64", tamper(gcm, edCV, func([]byte) []byte { return []byte("!!!!") }), gcmOnly},
		{"short gcm", tamper(gcm, edCV, func([]byte) []byte { return []byte("AAAA") }), gcmOnly},
		{"data reference to nothing", bytes.Replace(gcm, []byte(`DataReference URI="#ED-`), []byte(`DataReference URI="#XX-`), 1), gcmOnly},
	}
	var first *Error
	for _, tc := range cases {
		_, err := Decrypt(context.Background(), tc.msg, dec, tc.opts)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeDecryptionFailed {
			t.Errorf("%s: %v, want %s", tc.name, err, CodeDecryptionFailed)
			continue
		}
		if first == nil {
			first = e
		}
		if e.Msg != first.Msg {
			t.Errorf("%s: message %q differs from %q", tc.name, e.Msg, first.Msg)
		}
		t.Logf("%s: cause (logged, never sent): %v", tc.name, e.Err)
	}
}

// TestDecryptStructure covers envelopes without an EncryptedKey for us and
// the scanner's rules.
func TestDecryptStructure(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	dec := cred.Signer.(crypto.Decrypter)
	o := DecryptOptions{Certificate: cred.Chain[0]}
	for _, tc := range []struct {
		name, msg string
		code      Code
	}{
		{"no security", string(testutil.ReadTestdata(t, "envelope-soap11.xml")), CodeNoEncryptedKey},
		{"security without key", string(testutil.ReadTestdata(t, "envelope-existing-security.xml")), CodeNoEncryptedKey},
		{"doctype", `<!DOCTYPE x [<!ENTITY a "b">]><x/>`, CodeDTDForbidden},
		{"not soap", `<x/>`, CodeNotSOAP},
	} {
		if _, err := Decrypt(context.Background(), []byte(tc.msg), dec, o); CodeOf(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
	// Decrypted content that declares a DTD, or does not parse, is refused
	// like any other decryption failure. The counting random source makes
	// the content key 01 02 ... 20, so the test can encrypt what it likes.
	raw := testutil.ReadTestdata(t, "envelope-soap11.xml")
	res, err := Encrypt(context.Background(), raw, EncryptOptions{Recipient: o.Certificate, Rand: &countingReader{}})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	(&countingReader{}).Read(key)
	for _, pt := range []string{`<!DOCTYPE x [<!ENTITY a "b">]><a/>`, `<a>`, `</soapenv:Body><soapenv:Body>`} {
		ct, err := xencSeal(AlgAES256GCM, key, []byte(pt), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		msg := tamper(res.Envelope, `(?s)EncryptedData.*?CipherValue>([^<]+)<`, func([]byte) []byte { return []byte(base64.StdEncoding.EncodeToString(ct)) })
		if _, err := Decrypt(context.Background(), msg, dec, o); CodeOf(err) != CodeDecryptionFailed {
			t.Errorf("plaintext %q: %v, want %s", pt, err, CodeDecryptionFailed)
		}
	}
	// The same key and a well-formed plaintext decrypt: the test's key is right.
	ct, _ := xencSeal(AlgAES256GCM, key, []byte(`<ok/>`), rand.Reader)
	msg := tamper(res.Envelope, `(?s)EncryptedData.*?CipherValue>([^<]+)<`, func([]byte) []byte { return []byte(base64.StdEncoding.EncodeToString(ct)) })
	if out, err := Decrypt(context.Background(), msg, dec, o); err != nil || !bytes.Contains(out.Envelope, []byte("<ok/>")) {
		t.Errorf("control: %v", err)
	}
}

func selfSigned(k *rsa.PrivateKey) (*x509.Certificate, error) {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(77), Subject: pkix.Name{CommonName: "other"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// TestDecryptSoftHSM is the round trip with the private key inside a
// SoftHSM2 token: every data algorithm with every key transport. SoftHSM2
// 2.6 implements RSA-OAEP only with SHA-1 and MGF1-SHA-1; the other OAEP
// combinations are reported, not faked.
func TestDecryptSoftHSM(t *testing.T) {
	env := hsmtest.New(t)
	cert := env.RSA.Chain[0]
	dec, ok := env.RSA.Signer.(crypto.Decrypter)
	if !ok {
		t.Fatalf("token RSA key %T is not a crypto.Decrypter", env.RSA.Signer)
	}
	raw := testutil.ReadTestdata(t, "envelope-soap12.xml")
	var refused []string
	for _, tr := range transports {
		for _, data := range dataAlgURIs {
			name := shortAlg(data) + "/" + tr.name
			res, err := Encrypt(context.Background(), raw, encOpts(cert, data, tr))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			out, err := Decrypt(context.Background(), res.Envelope, dec, decOpts(cert))
			if err != nil {
				if !tr.softhsmSHA && CodeOf(err) == CodeDecryptionFailed {
					refused = append(refused, name)
					t.Logf("%s: the token refuses: %v", name, err)
					continue
				}
				t.Errorf("%s: %v", name, err)
				continue
			}
			if !bytes.Equal(bodyContent(t, out.Envelope), bodyContent(t, raw)) {
				t.Errorf("%s: Body differs", name)
			}
		}
	}
	t.Logf("OAEP combinations SoftHSM2 refused: %d: %v", len(refused), refused)
	// Tampering with the token's key unwrap gives the opaque error too.
	res, err := Encrypt(context.Background(), raw, EncryptOptions{Recipient: cert, KeyTransport: AlgRSA15, AllowRSA15: true})
	if err != nil {
		t.Fatal(err)
	}
	bad := tamper(res.Envelope, `(?s)EncryptedKey.*?CipherValue>([^<]+)<`, flipBase64)
	if _, err := Decrypt(context.Background(), bad, dec, decOpts(cert)); CodeOf(err) != CodeDecryptionFailed {
		t.Errorf("rsa-1_5 bad padding on the token: %v", err)
	}
}

// xmlsec1Decrypt has xmlsec1 decrypt every EncryptedData of doc with the
// PEM private key at keyFile, one run per EncryptedData. xmlsec1 (1.2.37)
// does not understand the WS-Security SecurityTokenReference in the
// EncryptedData's KeyInfo, so each KeyInfo is given to it as a
// ds:RetrievalMethod to the same EncryptedKey; nothing else changes.
func xmlsec1Decrypt(t *testing.T, doc []byte, keyFile string) ([]byte, error) {
	t.Helper()
	xmlsec := testutil.RequireTool(t, "xmlsec1", "xmlsec1")
	re := regexp.MustCompile(`<ds:KeyInfo xmlns:ds="[^"]+"><wsse:SecurityTokenReference [^>]+><wsse:Reference URI="(#EK-[0-9a-f]+)"/></wsse:SecurityTokenReference></ds:KeyInfo>`)
	doc = re.ReplaceAll(doc, []byte(`<ds:KeyInfo xmlns:ds="`+NSDSig+`"><ds:RetrievalMethod Type="http://www.w3.org/2001/04/xmlenc#EncryptedKey" URI="$1"/></ds:KeyInfo>`))
	dir := t.TempDir()
	for i := 0; bytes.Contains(doc, []byte("<xenc:EncryptedData ")); i++ {
		in := filepath.Join(dir, fmt.Sprintf("in%d.xml", i))
		if err := os.WriteFile(in, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, fmt.Sprintf("out%d.xml", i))
		cmd := exec.Command(xmlsec, "--decrypt", "--privkey-pem", keyFile, "--id-attr:Id", NSXEnc+":EncryptedKey", "--id-attr:Id", NSXEnc+":EncryptedData", "--output", out, in)
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("xmlsec1: %v: %s", err, b)
		}
		var err error
		if doc, err = os.ReadFile(out); err != nil {
			t.Fatal(err)
		}
	}
	return doc, nil
}

// TestXMLSec1DecryptsOurs: xmlsec1 decrypts what Encrypt produced, for
// every algorithm combination xmlsec1 1.2.37 implements (it has no XML
// Encryption 1.1 rsa-oaep and no OAEP digest but SHA-1).
func TestXMLSec1DecryptsOurs(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	keyFile := filepath.Join(testutil.RepoRoot(t), "testdata", "keys", "rsa2048.key")
	for _, file := range []string{"envelope-soap11.xml", "envelope-wsa.xml"} {
		raw := testutil.ReadTestdata(t, file)
		for _, data := range dataAlgURIs {
			for _, tr := range []transport{{kt: AlgRSAOAEPMGF1P, name: "rsa-oaep-mgf1p"}, {kt: AlgRSA15, rsa15: true, name: "rsa-1_5"}} {
				name := file + "/" + shortAlg(data) + "/" + tr.name
				o := encOpts(cred.Chain[0], data, tr)
				if file == "envelope-wsa.xml" {
					o.Parts = []Part{PartBody(), {Space: "http://www.w3.org/2005/08/addressing", Local: "Action"}}
				}
				res, err := Encrypt(context.Background(), raw, o)
				if err != nil {
					t.Fatal(err)
				}
				out, err := xmlsec1Decrypt(t, res.Envelope, keyFile)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if !bytes.Equal(bodyContent(t, out), bodyContent(t, raw)) {
					t.Errorf("%s: xmlsec1's Body differs:\n%s", name, out)
				}
				if file == "envelope-wsa.xml" && !bytes.Contains(out, []byte(`<a:Action s:mustUnderstand="1">urn:example:Ping</a:Action>`)) {
					t.Errorf("%s: xmlsec1 did not restore the header:\n%s", name, out)
				}
			}
		}
	}
}

// xmlsec1Encrypt has xmlsec1 encrypt the Body content of testdata/xenc/
// envelope.xml with the template testdata/xenc/body-content.tmpl.xml
// (algorithms substituted) for cert, then moves the EncryptedKey it put in
// the EncryptedData's KeyInfo into the Security header, where WS-Security
// wants it. The cipher values are xmlsec1's.
func xmlsec1Encrypt(t *testing.T, cert *x509.Certificate, data, kt string) []byte {
	t.Helper()
	xmlsec := testutil.RequireTool(t, "xmlsec1", "xmlsec1")
	dir := t.TempDir()
	tmpl := strings.NewReplacer("{DATA}", data, "{KT}", kt).Replace(string(testutil.ReadTestdata(t, "xenc/body-content.tmpl.xml")))
	files := map[string][]byte{"tmpl.xml": []byte(tmpl), "cert.pem": testutil.CertPEM(cert), "env.xml": testutil.ReadTestdata(t, "xenc/envelope.xml")}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	size := "aes-256"
	if strings.Contains(data, "128") {
		size = "aes-128"
	}
	cmd := exec.Command(xmlsec, "--encrypt", "--pubkey-cert-pem", filepath.Join(dir, "cert.pem"), "--session-key", size,
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
	out = bytes.Replace(out, []byte("<!--EncryptedKey-->"), ek, 1)
	return out
}

// TestDecryptXMLSec1Output: wss.Decrypt decrypts what xmlsec1 encrypted
// from the templates in testdata/xenc, with an in-memory key and with the
// key in SoftHSM2.
func TestDecryptXMLSec1Output(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	env := hsmtest.New(t)
	want := bodyContent(t, testutil.ReadTestdata(t, "xenc/envelope.xml"))
	for _, data := range dataAlgURIs {
		for _, kt := range []string{AlgRSAOAEPMGF1P, AlgRSA15} {
			name := shortAlg(data) + "/" + shortAlg(kt)
			for _, k := range []struct {
				where string
				cert  *x509.Certificate
				dec   crypto.Decrypter
			}{
				{"memory", cred.Chain[0], cred.Signer.(crypto.Decrypter)},
				{"softhsm2", env.RSA.Chain[0], env.RSA.Signer.(crypto.Decrypter)},
			} {
				msg := xmlsec1Encrypt(t, k.cert, data, kt)
				out, err := Decrypt(context.Background(), msg, k.dec, decOpts(k.cert))
				if err != nil {
					t.Errorf("%s (%s): %v\n%s", name, k.where, err, msg)
					continue
				}
				if !bytes.Equal(bodyContent(t, out.Envelope), want) {
					t.Errorf("%s (%s): Body differs:\n%s", name, k.where, out.Envelope)
				}
			}
		}
	}
}

// TestSignThenEncrypt: a signed envelope, encrypted and decrypted again,
// is byte for byte the signed one, so every Reference stays valid (checked
// by this package's test verifier and by xmlsec1).
func TestSignThenEncrypt(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	raw := testutil.ReadTestdata(t, "envelope-wsa.xml")
	signed, err := Sign(context.Background(), raw, cred, SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := Encrypt(context.Background(), signed.Envelope, EncryptOptions{Recipient: cred.Chain[0]})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(enc.Envelope, []byte("<xenc:EncryptedKey")) || bytes.Index(enc.Envelope, []byte("EncryptedKey")) > bytes.Index(enc.Envelope, []byte("Signature")) {
		t.Error("the EncryptedKey does not come before the Signature")
	}
	dec, err := Decrypt(context.Background(), enc.Envelope, cred.Signer.(crypto.Decrypter), DecryptOptions{Certificate: cred.Chain[0]})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dec.Envelope, signed.Envelope) {
		t.Fatalf("decrypted envelope differs from the signed one:\n%s", dec.Envelope)
	}
	if err := checkSignature(dec.Envelope, cred.Chain[0].PublicKey); err != nil {
		t.Error(err)
	}
	if out, ok := testutil.XMLSec1Verify(t, dec.Envelope, cred.Chain[0]); !ok {
		t.Errorf("xmlsec1 rejects the decrypted signature: %s", out)
	}
}

// TestEncryptThenSign: the signature covers the Body holding the
// EncryptedData; it verifies, and the envelope still decrypts.
func TestEncryptThenSign(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	raw := testutil.ReadTestdata(t, "envelope-soap11.xml")
	enc, err := Encrypt(context.Background(), raw, EncryptOptions{Recipient: cred.Chain[0]})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := Sign(context.Background(), enc.Envelope, cred, SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkSignature(signed.Envelope, cred.Chain[0].PublicKey); err != nil {
		t.Error(err)
	}
	if out, ok := testutil.XMLSec1Verify(t, signed.Envelope, cred.Chain[0]); !ok {
		t.Errorf("xmlsec1 rejects: %s", out)
	}
	dec, err := Decrypt(context.Background(), signed.Envelope, cred.Signer.(crypto.Decrypter), DecryptOptions{Certificate: cred.Chain[0]})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bodyContent(t, dec.Envelope), bodyContent(t, raw)) {
		t.Error("Body differs")
	}
}

// BenchmarkDecryptFailure measures Decrypt on a good message and on each
// kind of failure with an in-memory key, to compare their costs: a padding
// failure must cost what a tag failure costs.
func BenchmarkDecryptFailure(b *testing.B) {
	cred := loadCredential(b, "rsa2048")
	cert := cred.Chain[0]
	dec := cred.Signer.(crypto.Decrypter)
	raw := testutil.ReadTestdata(b, "envelope-soap11.xml")
	const ekCV = `(?s)EncryptedKey.*?CipherValue>([^<]+)<`
	const edCV = `(?s)EncryptedData.*?CipherValue>([^<]+)<`
	for _, tc := range []struct {
		name string
		o    EncryptOptions
		re   string
	}{
		{"oaep/ok", EncryptOptions{}, ""},
		{"oaep/tag", EncryptOptions{}, edCV},
		{"oaep/padding", EncryptOptions{}, ekCV},
		{"rsa15/ok", EncryptOptions{KeyTransport: AlgRSA15, AllowRSA15: true}, ""},
		{"rsa15/tag", EncryptOptions{KeyTransport: AlgRSA15, AllowRSA15: true}, edCV},
		{"rsa15/padding", EncryptOptions{KeyTransport: AlgRSA15, AllowRSA15: true}, ekCV},
	} {
		tc.o.Recipient = cert
		res, err := Encrypt(context.Background(), raw, tc.o)
		if err != nil {
			b.Fatal(err)
		}
		msg := res.Envelope
		if tc.re != "" {
			msg = tamper(msg, tc.re, flipBase64)
		}
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				_, err := Decrypt(context.Background(), msg, dec, decOpts(cert))
				if (err == nil) != (tc.re == "") {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRequireSignedBody: with RequireSignedBody, Decrypt accepts a Body
// signed before encryption (checked after decryption) or after it (checked
// before), and refuses the rest; a refusal after decryption is the opaque
// decryption failure.
func TestRequireSignedBody(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	ec := loadCredential(t, "ecp256")
	cert := cred.Chain[0]
	dec := cred.Signer.(crypto.Decrypter)
	trust, err := NewTrustStore(TrustConfig{Pinned: []*x509.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	raw := testutil.ReadTestdata(t, "envelope-wsa.xml")
	sign := func(in []byte, c Credential, parts ...Part) []byte {
		res, err := Sign(context.Background(), in, c, SignOptions{Parts: parts})
		if err != nil {
			t.Fatal(err)
		}
		return res.Envelope
	}
	encrypt := func(in []byte, parts ...Part) []byte {
		res, err := Encrypt(context.Background(), in, EncryptOptions{Recipient: cert, Parts: parts})
		if err != nil {
			t.Fatal(err)
		}
		return res.Envelope
	}
	action := Part{Space: "http://www.w3.org/2005/08/addressing", Local: "Action"}
	for _, tc := range []struct {
		name   string
		msg    []byte
		code   Code
		signed string
	}{
		{"sign then encrypt", encrypt(sign(raw, cred)), "", SignedAfterDecryption},
		{"encrypt then sign", sign(encrypt(raw), cred), "", SignedBeforeDecryption},
		{"not signed", encrypt(raw), CodeDecryptionFailed, ""},
		{"signed by an untrusted key", encrypt(sign(raw, ec)), CodeDecryptionFailed, ""},
		{"Body not signed", encrypt(sign(raw, cred, PartTimestamp())), CodeDecryptionFailed, ""},
		{"only a header encrypted", encrypt(raw, action), CodeUnsignedBody, ""},
	} {
		res, err := Decrypt(context.Background(), tc.msg, dec, DecryptOptions{Certificate: cert, RequireSignedBody: &VerifyOptions{Trust: trust, AllowUnsignedAddressing: true}})
		if CodeOf(err) != tc.code {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.code)
			continue
		}
		if err == nil && (res.SignedBody != tc.signed || res.Verify == nil || !res.Verify.Valid) {
			t.Errorf("%s: signed %q, want %q", tc.name, res.SignedBody, tc.signed)
		}
	}
}

// TestOpenSSLKeyTransport checks the OAEP parameters of every key transport
// (XML Encryption 1.1 rsa-oaep with its DigestMethod and MGF, which
// xmlsec1 1.2.37 lacks, rsa-oaep-mgf1p with a SHA-256 digest, rsa-1_5)
// against OpenSSL: OpenSSL unwraps the key Encrypt wrapped, and Decrypt
// unwraps a key OpenSSL wrapped.
func TestOpenSSLKeyTransport(t *testing.T) {
	openssl := testutil.RequireTool(t, "openssl", "openssl")
	cred := loadCredential(t, "rsa2048")
	cert := cred.Chain[0]
	dir := t.TempDir()
	keyFile := filepath.Join(testutil.RepoRoot(t), "testdata", "keys", "rsa2048.key")
	certFile := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(certFile, testutil.CertPEM(cert), 0o600); err != nil {
		t.Fatal(err)
	}
	raw := testutil.ReadTestdata(t, "envelope-soap11.xml")
	// The counting random source makes the content key 01 02 ... 20.
	want := make([]byte, 32)
	(&countingReader{}).Read(want)
	md := map[string]string{"": "sha1", AlgSHA1: "sha1", AlgSHA256: "sha256", AlgSHA512: "sha512", AlgMGF1SHA1: "sha1", AlgMGF1SHA256: "sha256", AlgMGF1SHA512: "sha512"}
	const ekCV = `(?s)EncryptedKey.*?CipherValue>([^<]+)<`
	for _, tr := range transports {
		o := encOpts(cert, AlgAES256GCM, tr)
		o.Rand = &countingReader{}
		res, err := Encrypt(context.Background(), raw, o)
		if err != nil {
			t.Fatal(err)
		}
		opts := []string{"-pkeyopt", "rsa_padding_mode:pkcs1"}
		if tr.kt != AlgRSA15 {
			digest, mgf := md[tr.digest], md[tr.mgf]
			if tr.kt == AlgRSAOAEP && tr.digest == "" {
				digest, mgf = "sha256", "sha256" // the defaults of Encrypt
			}
			if tr.kt == AlgRSAOAEPMGF1P {
				mgf = "sha1"
			}
			opts = []string{"-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:" + digest, "-pkeyopt", "rsa_mgf1_md:" + mgf}
		}
		m := regexp.MustCompile(ekCV).FindSubmatch(res.Envelope)
		wrapped, _ := base64.StdEncoding.DecodeString(string(m[1]))
		ctFile := filepath.Join(dir, "ct.bin")
		if err := os.WriteFile(ctFile, wrapped, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(openssl, append([]string{"pkeyutl", "-decrypt", "-inkey", keyFile, "-in", ctFile}, opts...)...).Output()
		if err != nil || !bytes.Equal(out, want) {
			t.Errorf("%s: openssl unwraps %x (%v), want %x", tr.name, out, err, want)
		}
		// And the other way round: OpenSSL wraps the same key.
		cmd := exec.Command(openssl, append([]string{"pkeyutl", "-encrypt", "-certin", "-inkey", certFile}, opts...)...)
		cmd.Stdin = bytes.NewReader(want)
		ct, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: openssl encrypt: %v", tr.name, err)
		}
		msg := tamper(res.Envelope, ekCV, func([]byte) []byte { return []byte(base64.StdEncoding.EncodeToString(ct)) })
		if bytes.Equal(msg, res.Envelope) {
			t.Fatal("the wrapped key did not change")
		}
		if _, err := Decrypt(context.Background(), msg, cred.Signer.(crypto.Decrypter), decOpts(cert)); err != nil {
			t.Errorf("%s: Decrypt of OpenSSL's wrapped key: %v", tr.name, err)
		}
	}
}

// TestDecodeBase64Raw: decoding base64 text in pieces, white space
// dropped, gives what DecodeString gives on the text without white space,
// values and failures, across the piece boundaries.
func TestDecodeBase64Raw(t *testing.T) {
	strip := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
				return -1
			}
			return r
		}, s)
	}
	var cases []string
	for _, n := range []int{0, 1, 2, 3, 3069, 3070, 3071, 3072, 3073, 6143, 6144, 6145, 20000} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*7 + n)
		}
		enc := base64.StdEncoding.EncodeToString(data)
		var wrapped strings.Builder
		for i := 0; i < len(enc); i += 76 {
			wrapped.WriteString(enc[i:min(i+76, len(enc))])
			wrapped.WriteString("\r\n \t")
		}
		cases = append(cases, enc, wrapped.String(), " "+enc+"\n")
		if len(enc) >= 4 {
			cases = append(cases, enc[:len(enc)-1], enc+"=", enc+"AAAA", enc[:len(enc)/2]+"*"+enc[len(enc)/2:])
		}
	}
	// Padding at the end of a piece followed by more data.
	cases = append(cases, strings.Repeat("A", 4094)+"==AAAA", strings.Repeat("A", 4094)+"==  \n", strings.Repeat("A", 4096)+"\n", "====", "=", "é", "AA==\n")
	for _, c := range cases {
		want, werr := base64.StdEncoding.DecodeString(strip(c))
		got, gerr := decodeBase64Raw([]byte(c))
		if (werr == nil) != (gerr == nil) || werr == nil && !bytes.Equal(got, want) {
			t.Errorf("%.40q (%d bytes): got %d bytes, %v; DecodeString %d bytes, %v", c, len(c), len(got), gerr, len(want), werr)
		}
	}
}

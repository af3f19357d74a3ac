package wss

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/wssignd/wssignd/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite golden files")

var fixedNow = func() time.Time { return time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC) }

// countingReader is a deterministic "random" source for fixed Ids.
type countingReader struct{ n byte }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		r.n++
		p[i] = r.n
	}
	return len(p), nil
}

func loadCredential(t testing.TB, name string) Credential {
	t.Helper()
	keyPEM := testutil.ReadTestdata(t, "keys/"+name+".key")
	crtPEM := testutil.ReadTestdata(t, "keys/"+name+".crt")
	kb, _ := pem.Decode(keyPEM)
	cb, _ := pem.Decode(crtPEM)
	if kb == nil || cb == nil {
		t.Fatalf("bad PEM in testdata/keys/%s", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return Credential{Signer: k.(crypto.Signer), Chain: []*x509.Certificate{c}}
}

// checkSignature independently recomputes every Reference digest and the
// signature of a signed envelope. It is the test's own verifier: it shares
// only the canonicaliser with Sign (itself checked against libxml2).
func checkSignature(signed []byte, pub crypto.PublicKey) error {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(signed); err != nil {
		return err
	}
	sigs := doc.FindElements("//Signature[namespace-uri()='" + NSDSig + "']")
	if len(sigs) != 1 {
		return fmt.Errorf("%d Signature elements", len(sigs))
	}
	si := sigs[0].SelectElement("SignedInfo")
	ids := indexIDs(doc.Root())
	for _, ref := range si.SelectElements("Reference") {
		uri := ref.SelectAttrValue("URI", "")
		el := ids[strings.TrimPrefix(uri, "#")]
		if el == nil {
			return fmt.Errorf("reference %s not found", uri)
		}
		da := digestAlgs[ref.SelectElement("DigestMethod").SelectAttrValue("Algorithm", "")]
		h := da.hash.New()
		if err := CanonicalizeExclusive(h, el, C14NOptions{}); err != nil {
			return err
		}
		if got, want := base64.StdEncoding.EncodeToString(h.Sum(nil)), ref.SelectElement("DigestValue").Text(); got != want {
			return fmt.Errorf("digest of %s: got %s, SignedInfo says %s", uri, got, want)
		}
	}
	sa := signatureAlgs[si.SelectElement("SignatureMethod").SelectAttrValue("Algorithm", "")]
	h := sa.hash.New()
	if err := CanonicalizeExclusive(h, si, C14NOptions{}); err != nil {
		return err
	}
	sv, err := base64.StdEncoding.DecodeString(sigs[0].SelectElement("SignatureValue").Text())
	if err != nil {
		return err
	}
	return verifyDigest(pub, sa, h.Sum(nil), sv)
}

func TestSignGolden(t *testing.T) {
	cases := []struct {
		envelope, key, golden string
		opts                  SignOptions
	}{
		{"envelope-soap11.xml", "rsa2048", "sign-soap11-rsa.golden.xml", SignOptions{}},
		{"envelope-soap12.xml", "rsa2048", "sign-soap12-rsa.golden.xml", SignOptions{}},
		{"envelope-wsa.xml", "rsa2048", "sign-wsa-rsa.golden.xml", SignOptions{Parts: []Part{PartBody, PartTimestamp,
			{Space: "http://www.w3.org/2005/08/addressing", Local: "To"}, {Space: "http://www.w3.org/2005/08/addressing", Local: "Action"}}}},
		{"envelope-existing-security.xml", "rsa2048", "sign-existing-security-rsa.golden.xml", SignOptions{Parts: []Part{PartBody, PartTimestamp,
			{Space: NSWSSE, Local: "UsernameToken"}, PartBST}}},
	}
	for _, tc := range cases {
		t.Run(tc.golden, func(t *testing.T) {
			cred := loadCredential(t, tc.key)
			in := testutil.ReadTestdata(t, tc.envelope)
			opts := tc.opts
			opts.Now = fixedNow
			opts.Rand = &countingReader{}
			res, err := Sign(in, cred, opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkSignature(res.Envelope, cred.Chain[0].PublicKey); err != nil {
				t.Fatalf("own check: %v", err)
			}
			golden := filepath.Join(testutil.RepoRoot(t), "testdata", "golden", tc.golden)
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, res.Envelope, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./wss -run Golden -update)", err)
			}
			if !bytes.Equal(res.Envelope, want) {
				t.Errorf("output differs from %s (run with -update if the change is intended)\ngot:\n%s", golden, res.Envelope)
			}
			if out, ok := testutil.XMLSec1Verify(t, res.Envelope, cred.Chain[0]); !ok {
				t.Errorf("xmlsec1 rejects the signature:\n%s", out)
			}
		})
	}
}

var (
	reSecurity = regexp.MustCompile(`<wsse:Security [^>]*>.*</wsse:Security>`)
	reAddedID  = regexp.MustCompile(`( xmlns:wsu="[^"]*")? wsu:Id="id-[0-9a-f]{32}"`)
)

// TestSignPreservesBytes: outside the Security header and the added wsu:Id
// attributes, the output is the input byte for byte.
func TestSignPreservesBytes(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	for _, name := range []string{"envelope-soap11.xml", "envelope-soap12.xml", "envelope-wsa.xml"} {
		in := testutil.ReadTestdata(t, name)
		res, err := Sign(in, cred, SignOptions{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out := reSecurity.ReplaceAll(res.Envelope, nil)
		out = reAddedID.ReplaceAll(out, nil)
		// A missing Header is created, an empty one opened, to hold Security.
		out = bytes.Replace(out, []byte("<env:Header></env:Header>"), nil, 1)
		out = bytes.Replace(out, []byte("<soapenv:Header></soapenv:Header>"), []byte("<soapenv:Header/>"), 1)
		if !bytes.Equal(out, in) {
			t.Errorf("%s: bytes outside the inserted parts changed:\n%s", name, out)
		}
	}
}

func TestSignSOAPVersions(t *testing.T) {
	cred := loadCredential(t, "ecp256")
	for _, tc := range []struct{ file, mu string }{
		{"envelope-soap11.xml", `soapenv:mustUnderstand="1"`},
		{"envelope-soap12.xml", `env:mustUnderstand="true"`},
	} {
		res, err := Sign(testutil.ReadTestdata(t, tc.file), cred, SignOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(res.Envelope, []byte(tc.mu)) {
			t.Errorf("%s: want %s on Security:\n%s", tc.file, tc.mu, res.Envelope)
		}
		if res.SignatureMethod != AlgECDSASHA256 {
			t.Errorf("%s: signature method %s, want ECDSA-SHA256", tc.file, res.SignatureMethod)
		}
	}
}

// TestSignOrderAndShape checks the header layout that issue #2 specifies.
func TestSignOrderAndShape(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	res, err := Sign(testutil.ReadTestdata(t, "envelope-soap11.xml"), cred, SignOptions{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(res.Envelope); err != nil {
		t.Fatal(err)
	}
	sec := doc.FindElement("//Header/Security")
	if sec == nil || sec.NamespaceURI() != NSWSSE {
		t.Fatal("no wsse:Security in the Header")
	}
	var got []string
	for _, c := range sec.ChildElements() {
		got = append(got, c.Tag)
	}
	if strings.Join(got, ",") != "BinarySecurityToken,Timestamp,Signature" {
		t.Errorf("Security children %v", got)
	}
	ts := sec.SelectElement("Timestamp")
	if c, e := ts.SelectElement("Created").Text(), ts.SelectElement("Expires").Text(); c != "2026-11-29T12:00:00Z" || e != "2026-11-29T12:05:00Z" {
		t.Errorf("Timestamp %s .. %s", c, e)
	}
	refs := sec.FindElements("Signature/SignedInfo/Reference")
	body := doc.FindElement("//Body")
	if len(refs) != 2 || refs[0].SelectAttrValue("URI", "") != "#"+body.SelectAttrValue("wsu:Id", "?") ||
		refs[1].SelectAttrValue("URI", "") != "#"+ts.SelectAttrValue("wsu:Id", "?") {
		t.Errorf("references do not point at Body then Timestamp")
	}
	str := sec.FindElement("Signature/KeyInfo/SecurityTokenReference/Reference")
	bst := sec.SelectElement("BinarySecurityToken")
	if str == nil || str.SelectAttrValue("URI", "") != "#"+bst.SelectAttrValue("wsu:Id", "?") || str.SelectAttrValue("ValueType", "") != ValueTypeX509v3 {
		t.Errorf("KeyInfo does not reference the BST")
	}
	if base64.StdEncoding.EncodeToString(cred.Chain[0].Raw) != bst.Text() {
		t.Errorf("BST is not the signing certificate")
	}
}

func TestSignBadInput(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	const env = `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">%s</s:Envelope>`
	deep := strings.Repeat("<a>", 300) + strings.Repeat("</a>", 300)
	many := strings.Repeat("<a/>", 2000)
	cases := []struct {
		name string
		in   string
		lim  Limits
		code Code
	}{
		{"empty", "", Limits{}, CodeMalformedXML},
		{"not xml", "hello", Limits{}, CodeMalformedXML},
		{"unclosed", `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>`, Limits{}, CodeMalformedXML},
		{"mismatched", fmt.Sprintf(env, `<s:Body></s:Header>`), Limits{}, CodeMalformedXML},
		{"doctype", `<!DOCTYPE s [<!ENTITY x "y">]>` + fmt.Sprintf(env, `<s:Body>&x;</s:Body>`), Limits{}, CodeDTDForbidden},
		{"external entity", `<!DOCTYPE s SYSTEM "file:///etc/passwd">` + fmt.Sprintf(env, `<s:Body/>`), Limits{}, CodeDTDForbidden},
		{"undefined entity", fmt.Sprintf(env, `<s:Body>&x;</s:Body>`), Limits{}, CodeMalformedXML},
		{"not soap", `<Envelope><Body/></Envelope>`, Limits{}, CodeNotSOAP},
		{"wrong soap ns", `<s:Envelope xmlns:s="urn:x"><s:Body/></s:Envelope>`, Limits{}, CodeNotSOAP},
		{"no body", fmt.Sprintf(env, `<s:Header/>`), Limits{}, CodeInvalidSOAP},
		{"two bodies", fmt.Sprintf(env, `<s:Body/><s:Body/>`), Limits{}, CodeInvalidSOAP},
		{"body in header", fmt.Sprintf(env, `<s:Header><s:Body/></s:Header><s:Body/>`), Limits{}, CodeInvalidSOAP},
		{"header after body", fmt.Sprintf(env, `<s:Body/><s:Header/>`), Limits{}, CodeInvalidSOAP},
		{"duplicate wsu:Id", fmt.Sprintf(env, `<s:Header><a xmlns:wsu="`+NSWSU+`" wsu:Id="x"/></s:Header><s:Body Id="x"/>`), Limits{}, CodeDuplicateID},
		{"duplicate xml:id", fmt.Sprintf(env, `<s:Body><a xml:id="x"/><b ID="x"/></s:Body>`), Limits{}, CodeDuplicateID},
		{"two roots", fmt.Sprintf(env, `<s:Body/>`) + `<x/>`, Limits{}, CodeMalformedXML},
		{"unbound prefix", fmt.Sprintf(env, `<s:Body><p:x/></s:Body>`), Limits{}, CodeMalformedXML},
		{"too large", fmt.Sprintf(env, `<s:Body>`+strings.Repeat("x", 2000)+`</s:Body>`), Limits{MaxBytes: 1024}, CodeTooLarge},
		{"too deep", fmt.Sprintf(env, `<s:Body>`+deep+`</s:Body>`), Limits{}, CodeTooComplex},
		{"too many elements", fmt.Sprintf(env, `<s:Body>`+many+`</s:Body>`), Limits{MaxElements: 1000}, CodeTooComplex},
		{"missing required part", fmt.Sprintf(env, `<s:Body/>`), Limits{}, CodeMissingPart},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := SignOptions{Limits: tc.lim}
			if tc.name == "missing required part" {
				opts.Parts = []Part{PartBody, {Space: "urn:x", Local: "Missing"}}
			}
			res, err := Sign([]byte(tc.in), cred, opts)
			if res != nil {
				t.Errorf("got output for bad input")
			}
			if got := CodeOf(err); got != tc.code {
				t.Errorf("code %q (%v), want %q", got, err, tc.code)
			}
		})
	}
}

func TestSignAlgorithmChecks(t *testing.T) {
	rsaCred := loadCredential(t, "rsa2048")
	ecCred := loadCredential(t, "ecp256")
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	for _, tc := range []struct {
		name string
		cred Credential
		opts SignOptions
		code Code
	}{
		{"sha1 without opt-in", rsaCred, SignOptions{SignatureMethod: AlgRSASHA1}, CodeUnsupported},
		{"sha1 digest without opt-in", rsaCred, SignOptions{DigestMethod: AlgSHA1}, CodeUnsupported},
		{"ecdsa method with rsa key", rsaCred, SignOptions{SignatureMethod: AlgECDSASHA256}, CodeUnsupported},
		{"rsa method with ec key", ecCred, SignOptions{SignatureMethod: AlgRSASHA256}, CodeUnsupported},
		{"unknown method", rsaCred, SignOptions{SignatureMethod: "urn:x"}, CodeUnsupported},
		{"sha1 with opt-in", rsaCred, SignOptions{SignatureMethod: AlgRSASHA1, DigestMethod: AlgSHA1, AllowSHA1: true}, ""},
		{"pss", rsaCred, SignOptions{SignatureMethod: AlgRSAPSSSHA256}, ""},
		{"rsa-sha512 sha384", rsaCred, SignOptions{SignatureMethod: AlgRSASHA512, DigestMethod: AlgSHA384}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Sign(in, tc.cred, tc.opts)
			if got := CodeOf(err); got != tc.code {
				t.Fatalf("code %q (%v), want %q", got, err, tc.code)
			}
			if err == nil {
				if err := checkSignature(res.Envelope, tc.cred.Chain[0].PublicKey); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestSignECDSAMany signs 1 000 times with P-256 and verifies each: r and s
// shorter than 32 bytes occur about once in 128 signatures and must be
// left-padded.
func TestSignECDSAMany(t *testing.T) {
	cred := loadCredential(t, "ecp256")
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	n := 1000
	if testing.Short() {
		n = 100
	}
	short := 0
	for i := range n {
		res, err := Sign(in, cred, SignOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := checkSignature(res.Envelope, cred.Chain[0].PublicKey); err != nil {
			t.Fatalf("signature %d: %v", i, err)
		}
		sv := regexp.MustCompile(`<ds:SignatureValue>([^<]*)<`).FindSubmatch(res.Envelope)
		raw, _ := base64.StdEncoding.DecodeString(string(sv[1]))
		if len(raw) != 64 {
			t.Fatalf("signature %d is %d bytes", i, len(raw))
		}
		if raw[0] == 0 || raw[32] == 0 {
			short++
		}
	}
	t.Logf("%d of %d signatures had a left-padded r or s", short, n)
}

func TestECDSADERToRaw(t *testing.T) {
	// r = 1, s = 0x80 (needs a leading zero in DER): both padded to 32 bytes.
	der := []byte{0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x02, 0x00, 0x80}
	raw, err := ecdsaDERToRaw(der, 32)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 64)
	want[31], want[63] = 1, 0x80
	if !bytes.Equal(raw, want) {
		t.Errorf("got %x", raw)
	}
	for _, bad := range [][]byte{{0x30, 0x00}, append(der, 0), {0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01}} {
		if _, err := ecdsaDERToRaw(bad, 32); err == nil {
			t.Errorf("accepted %x", bad)
		}
	}
	big := append([]byte{0x30, 0x26, 0x02, 0x21, 0x01}, make([]byte, 32)...)
	big = append(big, 0x02, 0x01, 0x01)
	if _, err := ecdsaDERToRaw(big, 32); err == nil {
		t.Error("accepted r wider than the curve")
	}
}

// failingSigner stands for a token that fails mid-operation.
type failingSigner struct{ crypto.Signer }

func (f failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, fmt.Errorf("CKR_DEVICE_ERROR")
}

// wrongSigner signs with a key other than the certificate's.
type wrongSigner struct {
	crypto.Signer
	other crypto.Signer
}

func (w wrongSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return w.other.Sign(r, d, o)
}

func TestSignSignerFailures(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	bad := Credential{Signer: failingSigner{cred.Signer}, Chain: cred.Chain}
	if _, err := Sign(in, bad, SignOptions{}); CodeOf(err) != CodeSigningFailed {
		t.Errorf("failing signer: %v", err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	wrong := Credential{Signer: wrongSigner{cred.Signer, other}, Chain: cred.Chain}
	if res, err := Sign(in, wrong, SignOptions{}); CodeOf(err) != CodeSigningFailed || res != nil {
		t.Errorf("a signature that does not verify was released: %v", err)
	}
	ec := loadCredential(t, "ecp256")
	if _, ok := ec.Signer.Public().(*ecdsa.PublicKey); !ok {
		t.Fatal("ecp256 is not an EC key")
	}
}

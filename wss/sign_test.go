package wss

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"math/big"
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
	k, c := testutil.TestKey(t, name)
	return Credential{Signer: k, Chain: []*x509.Certificate{c}}
}

// checkSignature independently recomputes every Reference digest and the
// signature of a signed envelope. It is the test's own verifier, built on
// etree and the etree canonicaliser (checked against libxml2), which Sign
// does not use: Sign canonicalises from the raw bytes.
func checkSignature(signed []byte, pub crypto.PublicKey) error {
	return checkSignatureWith(signed, pub, func(_ *etree.Document, w io.Writer, el *etree.Element, pl []string) error {
		return CanonicalizeExclusive(w, el, C14NOptions{InclusivePrefixes: pl})
	})
}

// checkSignatureWith is checkSignature with canon writing the canonical
// form of el (of doc, parsed from signed) with PrefixList pl.
func checkSignatureWith(signed []byte, pub crypto.PublicKey, canon func(doc *etree.Document, w io.Writer, el *etree.Element, pl []string) error) error {
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
		h := digestAlgs[ref.SelectElement("DigestMethod").SelectAttrValue("Algorithm", "")].hash.New()
		if err := canon(doc, h, el, prefixList(ref.FindElement("Transforms/Transform"))); err != nil {
			return err
		}
		if got, want := base64.StdEncoding.EncodeToString(h.Sum(nil)), ref.SelectElement("DigestValue").Text(); got != want {
			return fmt.Errorf("digest of %s: got %s, SignedInfo says %s", uri, got, want)
		}
	}
	sa := signatureAlgs[si.SelectElement("SignatureMethod").SelectAttrValue("Algorithm", "")]
	h := sa.hash.New()
	if err := canon(doc, h, si, prefixList(si.SelectElement("CanonicalizationMethod"))); err != nil {
		return err
	}
	sv, err := base64.StdEncoding.DecodeString(sigs[0].SelectElement("SignatureValue").Text())
	if err != nil {
		return err
	}
	return verifyDigest(pub, sa, h.Sum(nil), sv)
}

// prefixList reads the ec:InclusiveNamespaces PrefixList under a
// CanonicalizationMethod or Transform.
func prefixList(parent *etree.Element) []string {
	if parent == nil {
		return nil
	}
	for _, c := range parent.ChildElements() {
		if c.Tag == "InclusiveNamespaces" && c.NamespaceURI() == AlgExcC14N {
			return strings.Fields(c.SelectAttrValue("PrefixList", ""))
		}
	}
	return nil
}

// signGoldenCase is one sign-*.golden.xml message: an envelope signed
// with a key under options.
type signGoldenCase struct {
	envelope, key, golden string
	opts                  SignOptions
}

// signGoldenCases lists the sign-*.golden.xml messages.
func signGoldenCases() []signGoldenCase {
	return []signGoldenCase{
		{"envelope-soap11.xml", "rsa2048", "sign-soap11-rsa.golden.xml", SignOptions{}},
		{"envelope-soap12.xml", "rsa2048", "sign-soap12-rsa.golden.xml", SignOptions{}},
		{"envelope-wsa.xml", "rsa2048", "sign-wsa-rsa.golden.xml", SignOptions{Parts: []Part{PartBody(), PartTimestamp(),
			{Space: "http://www.w3.org/2005/08/addressing", Local: "To"}, {Space: "http://www.w3.org/2005/08/addressing", Local: "Action"}}}},
		{"envelope-existing-security.xml", "rsa2048", "sign-existing-security-rsa.golden.xml", SignOptions{Parts: []Part{PartBody(), PartTimestamp(),
			{Space: NSWSSE, Local: "UsernameToken"}, PartBST()}}},
	}
}

func TestSignGolden(t *testing.T) {
	for _, tc := range signGoldenCases() {
		t.Run(tc.golden, func(t *testing.T) {
			cred := loadCredential(t, tc.key)
			in := testutil.ReadTestdata(t, tc.envelope)
			opts := tc.opts
			opts.Now = fixedNow
			opts.Rand = &countingReader{}
			res, err := Sign(context.Background(), in, cred, opts)
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

			// NoCopy: the same bytes, written from the segments.
			opts.Rand = &countingReader{}
			opts.NoCopy = true
			nc, err := Sign(context.Background(), in, cred, opts)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			n, err := nc.WriteTo(&buf)
			switch {
			case err != nil:
				t.Fatal(err)
			case nc.Envelope != nil:
				t.Error("NoCopy: Envelope is set")
			case !bytes.Equal(buf.Bytes(), want) || n != int64(len(want)) || nc.Len() != len(want):
				t.Errorf("NoCopy: WriteTo wrote %d bytes (Len %d), want the %d of the golden file:\n%s", n, nc.Len(), len(want), buf.Bytes())
			case !bytes.Equal(nc.Bytes(), want):
				t.Errorf("NoCopy: Bytes differs from the golden file:\n%s", nc.Bytes())
			}
			buf.Reset()
			if n, err := res.WriteTo(&buf); err != nil || n != int64(len(want)) || !bytes.Equal(buf.Bytes(), want) || res.Len() != len(want) {
				t.Errorf("WriteTo of a copied result: %d bytes, %v", n, err)
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
		res, err := Sign(context.Background(), in, cred, SignOptions{})
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
		res, err := Sign(context.Background(), testutil.ReadTestdata(t, tc.file), cred, SignOptions{})
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

// TestSignOrderAndShape checks the default Security header layout: the
// BinarySecurityToken, then the Timestamp, then the Signature, and the
// references and timestamp values Sign writes.
func TestSignOrderAndShape(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	res, err := Sign(context.Background(), testutil.ReadTestdata(t, "envelope-soap11.xml"), cred, SignOptions{Now: fixedNow})
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
				opts.Parts = []Part{PartBody(), {Space: "urn:x", Local: "Missing"}}
			}
			res, err := Sign(context.Background(), []byte(tc.in), cred, opts)
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
			res, err := Sign(context.Background(), in, tc.cred, tc.opts)
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
		res, err := Sign(context.Background(), in, cred, SignOptions{})
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
	if _, err := Sign(context.Background(), in, bad, SignOptions{}); CodeOf(err) != CodeSigningFailed {
		t.Errorf("failing signer: %v", err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	wrong := Credential{Signer: wrongSigner{cred.Signer, other}, Chain: cred.Chain}
	if res, err := Sign(context.Background(), in, wrong, SignOptions{}); CodeOf(err) != CodeSigningFailed || res != nil {
		t.Errorf("a signature that does not verify was released: %v", err)
	}
	ec := loadCredential(t, "ecp256")
	if _, ok := ec.Signer.Public().(*ecdsa.PublicKey); !ok {
		t.Fatal("ecp256 is not an EC key")
	}
}

// signOK signs in with cred and opts, checks the result with the test's own
// verifier and with xmlsec1, and returns the parsed output.
func signOK(t *testing.T, in []byte, cred Credential, opts SignOptions) (*SignResult, *etree.Document) {
	t.Helper()
	res, err := Sign(context.Background(), in, cred, opts)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	if err := checkSignature(res.Envelope, cred.Chain[0].PublicKey); err != nil {
		t.Fatalf("own check: %v\n%s", err, res.Envelope)
	}
	if out, ok := testutil.XMLSec1Verify(t, res.Envelope, cred.Chain[0]); !ok {
		t.Fatalf("xmlsec1 rejects the signature:\n%s\n%s", out, res.Envelope)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(res.Envelope); err != nil {
		t.Fatal(err)
	}
	return res, doc
}

func securityOf(t *testing.T, doc *etree.Document) *etree.Element {
	t.Helper()
	for _, sec := range doc.FindElements("//Header/Security") {
		if sec.NamespaceURI() == NSWSSE && sec.FindElement("Signature") != nil {
			return sec
		}
	}
	t.Fatal("no wsse:Security with a Signature")
	return nil
}

func childTags(el *etree.Element) string {
	var got []string
	for _, c := range el.ChildElements() {
		got = append(got, c.Tag)
	}
	return strings.Join(got, ",")
}

// TestSignTokenReferences checks each KeyInfo form against values computed
// by openssl from testdata/keys/rsa2048.crt (issuer in RFC 2253 form,
// serial 0x1001, SKI, SHA-1 fingerprint), with and without the BST.
func TestSignTokenReferences(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	certB64 := base64.StdEncoding.EncodeToString(cred.Chain[0].Raw)
	for _, tc := range []struct {
		ref        TokenReference
		includeBST bool
		wantBST    bool
		check      func(str *etree.Element, bstID string) string
	}{
		{RefDirect, false, true, func(str *etree.Element, bstID string) string {
			r := str.SelectElement("Reference")
			if r == nil || r.SelectAttrValue("URI", "") != "#"+bstID || r.SelectAttrValue("ValueType", "") != ValueTypeX509v3 {
				return "want wsse:Reference to the BST"
			}
			return ""
		}},
		{RefIssuerSerial, false, false, func(str *etree.Element, _ string) string {
			is := str.FindElement("X509Data/X509IssuerSerial")
			if is == nil || is.Space != "ds" {
				return "want ds:X509Data/ds:X509IssuerSerial"
			}
			if n := is.SelectElement("X509IssuerName").Text(); n != "O=wssignd tests,CN=wssignd test RSA" {
				return "issuer name " + n
			}
			if n := is.SelectElement("X509SerialNumber").Text(); n != "4097" {
				return "serial " + n
			}
			return ""
		}},
		{RefIssuerSerial, true, true, nil},
		{RefSKI, false, false, keyIDCheck(ValueTypeSKI, "tic6NJ5UImRA9bvjcSHgC72S1sM=")},
		{RefThumbprint, false, false, keyIDCheck(ValueTypeThumbprintSHA1, "0EzNewkOU64W/CfbTCDJrPAX9Bw=")},
		{RefThumbprint, true, true, keyIDCheck(ValueTypeThumbprintSHA1, "0EzNewkOU64W/CfbTCDJrPAX9Bw=")},
		{RefX509KeyIdentifier, false, false, keyIDCheck(ValueTypeX509v3, certB64)},
	} {
		t.Run(fmt.Sprintf("%s/bst=%v", tc.ref, tc.includeBST), func(t *testing.T) {
			_, doc := signOK(t, in, cred, SignOptions{TokenReference: tc.ref, IncludeBST: tc.includeBST})
			sec := securityOf(t, doc)
			bst := sec.SelectElement("BinarySecurityToken")
			if (bst != nil) != tc.wantBST {
				t.Fatalf("BST present %v, want %v", bst != nil, tc.wantBST)
			}
			bstID := ""
			if bst != nil {
				bstID = bst.SelectAttrValue("wsu:Id", "")
				if bst.Text() != certB64 {
					t.Error("BST is not the leaf certificate")
				}
			}
			str := sec.FindElement("Signature/KeyInfo/SecurityTokenReference")
			if str == nil || str.NamespaceURI() != NSWSSE || len(str.ChildElements()) != 1 {
				t.Fatal("want one wsse:SecurityTokenReference child in KeyInfo")
			}
			if tc.check != nil {
				if msg := tc.check(str, bstID); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
}

func keyIDCheck(valueType, value string) func(*etree.Element, string) string {
	return func(str *etree.Element, _ string) string {
		ki := str.SelectElement("KeyIdentifier")
		if ki == nil || ki.NamespaceURI() != NSWSSE {
			return "want wsse:KeyIdentifier"
		}
		if vt := ki.SelectAttrValue("ValueType", ""); vt != valueType {
			return "ValueType " + vt
		}
		if et := ki.SelectAttrValue("EncodingType", ""); et != EncodingBase64 {
			return "EncodingType " + et
		}
		if ki.Text() != value {
			return "value " + ki.Text() + ", want " + value
		}
		return ""
	}
}

// testChain makes a CA and a leaf signed by it; the leaf has no subject key
// identifier unless ski is set.
func testChain(t *testing.T, ski bool) Credential {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Test CA, Inc.", Organization: []string{"#wssignd"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(8), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if ski {
		leafTmpl.SubjectKeyId = []byte{1, 2, 3, 4}
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, leafKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	return Credential{Signer: leafKey, Chain: []*x509.Certificate{leaf, ca}}
}

// TestSignPKIPath: the X509PKIPathv1 BST is a SEQUENCE OF Certificate,
// root first, and the direct reference carries its value type.
func TestSignPKIPath(t *testing.T) {
	cred := testChain(t, false)
	_, doc := signOK(t, testutil.ReadTestdata(t, "envelope-soap11.xml"), cred, SignOptions{BSTValueType: ValueTypeX509PKIPath, Parts: []Part{PartBody(), PartTimestamp(), PartBST()}})
	sec := securityOf(t, doc)
	bst := sec.SelectElement("BinarySecurityToken")
	if bst.SelectAttrValue("ValueType", "") != ValueTypeX509PKIPath {
		t.Errorf("BST ValueType %s", bst.SelectAttrValue("ValueType", ""))
	}
	der, err := base64.StdEncoding.DecodeString(bst.Text())
	if err != nil {
		t.Fatal(err)
	}
	var seq []asn1.RawValue
	if rest, err := asn1.Unmarshal(der, &seq); err != nil || len(rest) != 0 {
		t.Fatalf("PkiPath is not one SEQUENCE: %v", err)
	}
	if len(seq) != 2 || !bytes.Equal(seq[0].FullBytes, cred.Chain[1].Raw) || !bytes.Equal(seq[1].FullBytes, cred.Chain[0].Raw) {
		t.Errorf("PkiPath is not [CA, leaf]")
	}
	r := sec.FindElement("Signature/KeyInfo/SecurityTokenReference/Reference")
	if r == nil || r.SelectAttrValue("ValueType", "") != ValueTypeX509PKIPath {
		t.Error("direct reference does not name the PkiPath value type")
	}
}

func TestIssuerNameEscaping(t *testing.T) {
	cred := testChain(t, false)
	// Subject of the CA: O=#wssignd, CN=Test CA, Inc. — RFC 4514 escapes the
	// leading '#' and the ','.
	if got, want := IssuerName(cred.Chain[0]), `CN=Test CA\, Inc.,O=\#wssignd`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	for in, want := range map[string]string{" a ": `\ a\ `, "a+b;c<d>e\"f\\": `a\+b\;c\<d\>e\"f\\`, "x\x01": `x\01`} {
		if got := escapeDNValue(in); got != want {
			t.Errorf("escapeDNValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestCheckSignOptions(t *testing.T) {
	rsaCred := loadCredential(t, "rsa2048")
	noSKI := testChain(t, false)
	for _, tc := range []struct {
		name string
		cred Credential
		opts SignOptions
		ok   bool
	}{
		{"ski without extension", noSKI, SignOptions{TokenReference: RefSKI}, false},
		{"ski with extension", testChain(t, true), SignOptions{TokenReference: RefSKI}, true},
		{"unknown reference", rsaCred, SignOptions{TokenReference: "bogus"}, false},
		{"unknown bst type", rsaCred, SignOptions{BSTValueType: "urn:x"}, false},
		{"unknown layout", rsaCred, SignOptions{Layout: "sideways"}, false},
		{"unknown soap version", rsaCred, SignOptions{SOAPVersion: "1.3"}, false},
		{"bst part without bst", rsaCred, SignOptions{TokenReference: RefThumbprint, Parts: []Part{PartBody(), PartBST()}}, false},
		{"optional bst part without bst", rsaCred, SignOptions{TokenReference: RefThumbprint, Parts: []Part{PartBody(), {Space: NSWSSE, Local: "BinarySecurityToken", Optional: true}}}, true},
		{"bst part with include", rsaCred, SignOptions{TokenReference: RefThumbprint, IncludeBST: true, Parts: []Part{PartBody(), PartBST()}}, true},
		{"username without name", rsaCred, SignOptions{UsernameToken: &UsernameToken{Password: "x"}}, false},
		{"password with NUL", rsaCred, SignOptions{UsernameToken: &UsernameToken{Username: "u", Password: "a\x00"}}, false},
		{"rsa-pss with ec key", noSKI, SignOptions{SignatureMethod: AlgRSAPSSSHA256}, false},
		{"ecdsa p-384 method on p-256 key", noSKI, SignOptions{SignatureMethod: AlgECDSASHA384}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSignOptions(tc.opts, tc.cred)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if err != nil && CodeOf(err) != CodeUnsupported {
				t.Errorf("code %s, want unsupported", CodeOf(err))
			}
		})
	}
}

// TestSignInclusivePrefixes: the PrefixLists name the prefixes used in the
// referenced subtree, including the QName prefix of an xsi:type value that
// is declared outside it, and xmlsec1 agrees with the digests. Without the
// PrefixList the Body digest differs, so the list is not decoration.
func TestSignInclusivePrefixes(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	in := testutil.ReadTestdata(t, "envelope-soap12-wsa.xml")
	opts := SignOptions{InclusivePrefixes: true, Parts: []Part{PartBody(), {Space: NSWSA, Local: "To"}, PartTimestamp()}, Now: fixedNow, Rand: &countingReader{}}
	_, doc := signOK(t, in, cred, opts)
	sec := securityOf(t, doc)
	si := sec.FindElement("Signature/SignedInfo")
	if got := strings.Join(prefixList(si.SelectElement("CanonicalizationMethod")), " "); got != "ds ec" {
		t.Errorf("SignedInfo PrefixList %q", got)
	}
	refs := si.SelectElements("Reference")
	want := []string{"#default fe soap wsu xsi", "soap wsa wsu", "wsu"}
	for i, r := range refs {
		if got := strings.Join(prefixList(r.FindElement("Transforms/Transform")), " "); got != want[i] {
			t.Errorf("reference %d PrefixList %q, want %q", i, got, want[i])
		}
	}
	// The same Body canonicalised without the list lacks xmlns:fe.
	body := doc.FindElement("//Body")
	var with, without bytes.Buffer
	if err := CanonicalizeExclusive(&with, body, C14NOptions{InclusivePrefixes: prefixList(refs[0].FindElement("Transforms/Transform"))}); err != nil {
		t.Fatal(err)
	}
	if err := CanonicalizeExclusive(&without, body, C14NOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(with.Bytes(), []byte(`xmlns:fe="urn:example:factura"`)) || bytes.Contains(without.Bytes(), []byte(`xmlns:fe=`)) {
		t.Errorf("PrefixList does not carry the xsi:type prefix:\nwith: %s\nwithout: %s", with.Bytes(), without.Bytes())
	}
}

// TestSignLayouts checks the order of the Security header for each layout,
// in a new header and in an extended one.
func TestSignLayouts(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	ut := &UsernameToken{Username: "bob", Password: "pw", Digest: true}
	for _, tc := range []struct {
		layout   Layout
		envelope string
		want     string
	}{
		{"", "envelope-soap11.xml", "UsernameToken,BinarySecurityToken,Timestamp,Signature"},
		{LayoutStrict, "envelope-soap12.xml", "UsernameToken,BinarySecurityToken,Timestamp,Signature"},
		{LayoutTimestampFirst, "envelope-soap11.xml", "Timestamp,UsernameToken,BinarySecurityToken,Signature"},
		{LayoutTimestampLast, "envelope-soap11.xml", "UsernameToken,BinarySecurityToken,Signature,Timestamp"},
		{LayoutStrict, "envelope-existing-security.xml", "UsernameToken,UsernameToken,BinarySecurityToken,Timestamp,Signature"},
		{LayoutTimestampFirst, "envelope-existing-security.xml", "Timestamp,UsernameToken,UsernameToken,BinarySecurityToken,Signature"},
		{LayoutTimestampLast, "envelope-existing-security.xml", "UsernameToken,UsernameToken,BinarySecurityToken,Signature,Timestamp"},
	} {
		t.Run(string(tc.layout)+"/"+tc.envelope, func(t *testing.T) {
			_, doc := signOK(t, testutil.ReadTestdata(t, tc.envelope), cred, SignOptions{Layout: tc.layout, UsernameToken: ut,
				Parts: []Part{PartBody(), PartTimestamp(), PartUsernameToken(), PartBST()}})
			if n := len(doc.FindElements("//Header/Security")); n != 1 {
				t.Errorf("%d Security headers", n)
			}
			if got := childTags(securityOf(t, doc)); got != tc.want {
				t.Errorf("Security children %s, want %s", got, tc.want)
			}
		})
	}
}

// TestSignActor: a Security header for another actor is left alone and a
// new one carries the configured actor/role; one for the same actor is
// extended.
func TestSignActor(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	const other = `<s:Envelope xmlns:s="%s"><s:Header><wsse:Security xmlns:wsse="` + NSWSSE + `" s:%s="%s"><wsse:UsernameToken><wsse:Username>x</wsse:Username></wsse:UsernameToken></wsse:Security></s:Header><s:Body/></s:Envelope>`
	for _, tc := range []struct {
		name, ns, attr, existing, actor string
		headers                         int
	}{
		{"1.1 other actor", NSSOAP11, "actor", "urn:other", "urn:mine", 2},
		{"1.1 same actor", NSSOAP11, "actor", "urn:mine", "urn:mine", 1},
		{"1.1 actor vs none", NSSOAP11, "actor", "urn:other", "", 2},
		{"1.2 other role", NSSOAP12, "role", "urn:other", "urn:mine", 2},
		{"1.2 ultimateReceiver is none", NSSOAP12, "role", roleUltimateReceiver, "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := fmt.Sprintf(other, tc.ns, tc.attr, tc.existing)
			res, doc := signOK(t, []byte(in), cred, SignOptions{Actor: tc.actor})
			secs := doc.FindElements("//Header/Security")
			if len(secs) != tc.headers {
				t.Fatalf("%d Security headers, want %d:\n%s", len(secs), tc.headers, res.Envelope)
			}
			sec := securityOf(t, doc)
			got := sec.SelectAttrValue("s:"+tc.attr, sec.SelectAttrValue("soapenv:"+tc.attr, ""))
			if tc.headers == 2 && got != tc.actor {
				t.Errorf("new Security header %s=%q, want %q", tc.attr, got, tc.actor)
			}
		})
	}
}

func TestSignTimestampOptions(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	now := func() time.Time { return time.Date(2026, 11, 29, 12, 0, 0, 123456789, time.UTC) }
	for _, tc := range []struct {
		name             string
		opts             SignOptions
		created, expires string
	}{
		{"seconds", SignOptions{}, "2026-11-29T12:00:00Z", "2026-11-29T12:05:00Z"},
		{"millis", SignOptions{TimestampMillis: true, TTL: 90 * time.Second}, "2026-11-29T12:00:00.123Z", "2026-11-29T12:01:30.123Z"},
		{"no expires", SignOptions{NoExpires: true}, "2026-11-29T12:00:00Z", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Now = now
			_, doc := signOK(t, in, cred, tc.opts)
			ts := securityOf(t, doc).SelectElement("Timestamp")
			if got := ts.SelectElement("Created").Text(); got != tc.created {
				t.Errorf("Created %s, want %s", got, tc.created)
			}
			exp := ts.SelectElement("Expires")
			switch {
			case tc.expires == "" && exp != nil:
				t.Errorf("Expires present")
			case tc.expires != "" && (exp == nil || exp.Text() != tc.expires):
				t.Errorf("Expires wrong, want %s", tc.expires)
			}
		})
	}
}

// TestSignUsernameToken checks PasswordDigest against a digest computed here
// from the nonce and Created on the wire, and PasswordText.
func TestSignUsernameToken(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	const pw = `s3cr<e>t&"`
	t.Run("digest", func(t *testing.T) {
		res, doc := signOK(t, in, cred, SignOptions{UsernameToken: &UsernameToken{Username: "alice & co", Password: pw, Digest: true},
			Parts: []Part{PartBody(), PartTimestamp(), PartUsernameToken()}})
		ut := securityOf(t, doc).SelectElement("UsernameToken")
		if ut.SelectElement("Username").Text() != "alice & co" {
			t.Error("user name")
		}
		p := ut.SelectElement("Password")
		if p.SelectAttrValue("Type", "") != PasswordTypeDigest {
			t.Error("password type")
		}
		n := ut.SelectElement("Nonce")
		if n.SelectAttrValue("EncodingType", "") != EncodingBase64 {
			t.Error("nonce encoding type")
		}
		nonce, err := base64.StdEncoding.DecodeString(n.Text())
		if err != nil || len(nonce) != 16 {
			t.Fatalf("nonce %q", n.Text())
		}
		c := ut.SelectElement("Created")
		if c.NamespaceURI() != NSWSU {
			t.Error("Created not in wsu")
		}
		h := sha1.Sum(append(append(nonce, c.Text()...), pw...))
		if p.Text() != base64.StdEncoding.EncodeToString(h[:]) {
			t.Errorf("digest %s", p.Text())
		}
		if bytes.Contains(res.Envelope, []byte("s3cr")) {
			t.Error("the password is on the wire in digest mode")
		}
		if !strings.Contains(res.References[2], "UsernameToken-") || res.References[2] != "#"+ut.SelectAttrValue("wsu:Id", "") {
			t.Error("the UsernameToken is not referenced by its Id")
		}
	})
	t.Run("text", func(t *testing.T) {
		_, doc := signOK(t, in, cred, SignOptions{UsernameToken: &UsernameToken{Username: "bob", Password: pw}})
		p := securityOf(t, doc).FindElement("UsernameToken/Password")
		if p.SelectAttrValue("Type", "") != PasswordTypeText || p.Text() != pw {
			t.Errorf("password %q", p.Text())
		}
	})
	opts := SignOptions{UsernameToken: &UsernameToken{Username: "u", Password: pw}}
	if s := fmt.Sprintf("%v %+v %#v %v %+v %#v", opts.UsernameToken, opts.UsernameToken, opts.UsernameToken, opts, opts, opts); strings.Contains(s, "s3cr") {
		t.Errorf("formatting shows the password: %s", s)
	}
}

// TestSignMoreBadInput completes TestSignBadInput with profile-dependent
// refusals.
func TestSignMoreBadInput(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	const env11 = `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">%s</s:Envelope>`
	sec := `<wsse:Security xmlns:wsse="` + NSWSSE + `" xmlns:wsu="` + NSWSU + `">%s</wsse:Security>`
	for _, tc := range []struct {
		name string
		in   string
		opts SignOptions
		code Code
	}{
		{"body as document element", `<s:Body xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>`, SignOptions{}, CodeNotSOAP},
		{"body inside body", fmt.Sprintf(env11, `<s:Body><s:Body/></s:Body>`), SignOptions{}, CodeInvalidSOAP},
		{"body after body in header", fmt.Sprintf(env11, `<s:Header><x><s:Body/></x></s:Header><s:Body/>`), SignOptions{}, CodeInvalidSOAP},
		{"soap 1.1 for a 1.2 profile", fmt.Sprintf(env11, `<s:Body/>`), SignOptions{SOAPVersion: "1.2"}, CodeInvalidSOAP},
		{"soap 1.2 for a 1.1 profile", `<s:Envelope xmlns:s="` + NSSOAP12 + `"><s:Body/></s:Envelope>`, SignOptions{SOAPVersion: "1.1"}, CodeInvalidSOAP},
		{"two security headers same actor", fmt.Sprintf(env11, `<s:Header>`+fmt.Sprintf(sec, "")+fmt.Sprintf(sec, "")+`</s:Header><s:Body/>`), SignOptions{}, CodeInvalidSOAP},
		{"existing timestamp", fmt.Sprintf(env11, `<s:Header>`+fmt.Sprintf(sec, `<wsu:Timestamp/>`)+`</s:Header><s:Body/>`), SignOptions{}, CodeInvalidSOAP},
		{"missing wsa:To", fmt.Sprintf(env11, `<s:Body/>`), SignOptions{Parts: []Part{{Space: NSWSA, Local: "To"}}}, CodeMissingPart},
		{"missing caller UsernameToken", fmt.Sprintf(env11, `<s:Body/>`), SignOptions{Parts: []Part{PartBody(), PartUsernameToken()}}, CodeMissingPart},
		{"duplicate Id between header and body", fmt.Sprintf(env11, `<s:Header><a Id="x"/></s:Header><s:Body><b xmlns:wsu="`+NSWSU+`" wsu:Id="x"/></s:Body>`), SignOptions{}, CodeDuplicateID},
		{"entity declaration", `<!DOCTYPE s:Envelope [<!ENTITY e SYSTEM "file:///etc/passwd">]>` + fmt.Sprintf(env11, `<s:Body>&e;</s:Body>`), SignOptions{}, CodeDTDForbidden},
		{"depth limit", fmt.Sprintf(env11, `<s:Body><a><b><c/></b></a></s:Body>`), SignOptions{Limits: Limits{MaxDepth: 3}}, CodeTooComplex},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Sign(context.Background(), []byte(tc.in), cred, tc.opts)
			if res != nil {
				t.Errorf("got output for bad input")
			}
			if got := CodeOf(err); got != tc.code {
				t.Errorf("code %q (%v), want %q", got, err, tc.code)
			}
		})
	}
}

// TestSignECDSACurves: P-384 and P-521 keys get ECDSA-SHA384 / -SHA512 by
// default, with r‖s of 48 / 66 bytes each; xmlsec1 verifies one signature
// per curve and the own verifier 50 more at the fixed width (P-521 values
// are 521 bits in 66 bytes, so short r or s values are common).
func TestSignECDSACurves(t *testing.T) {
	in := testutil.ReadTestdata(t, "envelope-soap12.xml")
	for _, tc := range []struct {
		curve  elliptic.Curve
		method string
		size   int
	}{
		{elliptic.P384(), AlgECDSASHA384, 48},
		{elliptic.P521(), AlgECDSASHA512, 66},
	} {
		t.Run(tc.curve.Params().Name, func(t *testing.T) {
			key, err := ecdsa.GenerateKey(tc.curve, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ec"},
				NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
			if err != nil {
				t.Fatal(err)
			}
			cert, _ := x509.ParseCertificate(der)
			cred := Credential{Signer: key, Chain: []*x509.Certificate{cert}}
			res, _ := signOK(t, in, cred, SignOptions{DigestMethod: AlgSHA384})
			if res.SignatureMethod != tc.method {
				t.Errorf("method %s, want %s", res.SignatureMethod, tc.method)
			}
			for i := range 50 {
				res, err := Sign(context.Background(), in, cred, SignOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if err := checkSignature(res.Envelope, key.Public()); err != nil {
					t.Fatalf("signature %d: %v", i, err)
				}
				sv := regexp.MustCompile(`<ds:SignatureValue>([^<]*)<`).FindSubmatch(res.Envelope)
				raw, _ := base64.StdEncoding.DecodeString(string(sv[1]))
				if len(raw) != 2*tc.size {
					t.Fatalf("signature %d is %d bytes, want %d", i, len(raw), 2*tc.size)
				}
			}
		})
	}
}

// constByteReader reads b forever: every Id drawn from it is the same.
type constByteReader byte

func (r constByteReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// TestSignBodyIDInScan covers the Body digested during the scan: an Id
// drawn for the Body that a later element of the document already holds is
// not used (the Body is digested again with a fresh Id), and the wsu
// declaration added for the Body's Id does not make the scan accept an
// undeclared wsu prefix inside the Body.
func TestSignBodyIDInScan(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	taken := "id-" + strings.Repeat("07", 16)
	in := []byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><p:x xmlns:p="urn:p" xmlns:u="` + NSWSU + `" u:Id="` + taken + `">v</p:x></s:Body></s:Envelope>`)
	// The first Id drawn (the Body's, during the scan) is the taken one;
	// later draws differ.
	rnd := io.MultiReader(bytes.NewReader(bytes.Repeat([]byte{7}, 16)), &countingReader{})
	res, err := Sign(context.Background(), in, cred, SignOptions{Rand: rnd})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(res.Envelope, []byte(`Id="`+taken+`"`)) != 1 {
		t.Errorf("the Body took the Id %s of another element:\n%s", taken, res.Envelope)
	}
	if err := checkSignature(res.Envelope, cred.Chain[0].PublicKey); err != nil {
		t.Errorf("signature: %v\n%s", err, res.Envelope)
	}
	if out, ok := testutil.XMLSec1Verify(t, res.Envelope, cred.Chain[0]); !ok {
		t.Errorf("xmlsec1 rejects the signature:\n%s", out)
	}

	// The same draw with no clash: the Body gets it.
	res, err = Sign(context.Background(), []byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><p:x xmlns:p="urn:p">v</p:x></s:Body></s:Envelope>`), cred, SignOptions{Rand: constByteReader(7)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(res.Envelope, []byte(`<s:Body xmlns:wsu="`+NSWSU+`" wsu:Id="`+taken+`">`)) {
		t.Errorf("the Body did not get the Id drawn for it:\n%s", res.Envelope)
	}
	if err := checkSignature(res.Envelope, cred.Chain[0].PublicKey); err != nil {
		t.Errorf("signature: %v\n%s", err, res.Envelope)
	}

	unbound := []byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><wsu:x>v</wsu:x></s:Body></s:Envelope>`)
	if _, err := Sign(context.Background(), unbound, cred, SignOptions{}); CodeOf(err) != CodeMalformedXML {
		t.Errorf("undeclared wsu prefix in the Body: %v, want %s", err, CodeMalformedXML)
	}
}

// TestSignPrefixChoiceStable: with two prefixes other than wsu bound to the
// wsu namespace where the Body's Id goes, the digest and the output use the
// same one, every time.
func TestSignPrefixChoiceStable(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	in := []byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:u2="` + NSWSU + `" xmlns:u1="` + NSWSU + `"><s:Header><a:To xmlns:a="urn:a">x</a:To></s:Header><s:Body><p:x xmlns:p="urn:p">v</p:x></s:Body></s:Envelope>`)
	parts := []Part{PartBody(), PartTimestamp(), {Space: "urn:a", Local: "To"}}
	for range 20 {
		res, err := Sign(context.Background(), in, cred, SignOptions{Parts: parts})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(res.Envelope, []byte(`<s:Body u1:Id="id-`)) || !bytes.Contains(res.Envelope, []byte(`<a:To xmlns:a="urn:a" u1:Id="id-`)) {
			t.Fatalf("the Ids do not use u1, the least prefix bound to the wsu namespace:\n%s", res.Envelope)
		}
		if err := checkSignature(res.Envelope, cred.Chain[0].PublicKey); err != nil {
			t.Fatalf("signature: %v\n%s", err, res.Envelope)
		}
	}
}

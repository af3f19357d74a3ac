package wss

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
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

func trustOf(t testing.TB, certs ...*x509.Certificate) *TrustStore {
	t.Helper()
	ts, err := NewTrustStore(TrustConfig{Pinned: certs})
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// testTrust pins both test certificates.
func testTrust(t testing.TB) *TrustStore {
	return trustOf(t, loadCredential(t, "rsa2048").Chain[0], loadCredential(t, "ecp256").Chain[0])
}

func signFixed(t testing.TB, env []byte, cred Credential, opts SignOptions) []byte {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	if opts.Rand == nil {
		opts.Rand = &countingReader{}
	}
	res, err := Sign(context.Background(), env, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res.Envelope
}

func verifyOK(t testing.TB, msg []byte, opts VerifyOptions) *VerifyResult {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	res, err := Verify(context.Background(), msg, opts)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !res.Valid {
		t.Fatalf("invalid: %s %s (%s)\n%s", res.Code, res.Detail, res.Reference, msg)
	}
	return res
}

func verifyCode(t testing.TB, msg []byte, opts VerifyOptions, want Code) *VerifyResult {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	res, err := Verify(context.Background(), msg, opts)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.Valid || res.Code != want {
		t.Fatalf("got valid=%v code=%q (%s), want code %q", res.Valid, res.Code, res.Detail, want)
	}
	return res
}

const envelopeSOAP12WSA = `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header><a:To s:mustUnderstand="1">https://vpfe.example/Service.svc</a:To></s:Header><s:Body><GetStatus xmlns="http://wcf.example"><trackId>1</trackId></GetStatus></s:Body></s:Envelope>`

// TestVerifyRoundTrip: what Sign produces with every preset, every token
// reference type and both key types verifies, and the result describes it.
func TestVerifyRoundTrip(t *testing.T) {
	rsaCred, ecCred := loadCredential(t, "rsa2048"), loadCredential(t, "ecp256")
	trust := testTrust(t)
	type tc struct {
		name   string
		env    []byte
		cred   Credential
		sign   SignOptions
		verify VerifyOptions
		signed []string
	}
	var cases []tc
	cases = append(cases,
		tc{"default-rsa-soap11", testutil.ReadTestdata(t, "envelope-soap11.xml"), rsaCred, SignOptions{}, VerifyOptions{}, []string{"/Envelope/Body", "/Envelope/Header/Security/Timestamp"}},
		tc{"default-ec-soap12", testutil.ReadTestdata(t, "envelope-soap12.xml"), ecCred, SignOptions{}, VerifyOptions{}, []string{"/Envelope/Body", "/Envelope/Header/Security/Timestamp"}},
		tc{"rsa-pss", testutil.ReadTestdata(t, "envelope-soap11.xml"), rsaCred, SignOptions{SignatureMethod: AlgRSAPSSSHA256}, VerifyOptions{}, nil},
		tc{"rsa-sha512-digests", testutil.ReadTestdata(t, "envelope-soap11.xml"), rsaCred, SignOptions{SignatureMethod: AlgRSASHA512, DigestMethod: AlgSHA512}, VerifyOptions{}, nil},
		tc{"ec-pkipath-prefixlists", testutil.ReadTestdata(t, "envelope-wsa.xml"), ecCred,
			SignOptions{BSTValueType: ValueTypeX509PKIPath, InclusivePrefixes: true, TimestampMillis: true, Parts: attackParts},
			VerifyOptions{}, []string{"/Envelope/Header/To", "/Envelope/Header/ReplyTo"}},
		tc{"existing-security", testutil.ReadTestdata(t, "envelope-existing-security.xml"), rsaCred,
			SignOptions{Parts: []Part{PartBody(), PartTimestamp(), {Space: NSWSSE, Local: "UsernameToken"}, PartBST()}},
			VerifyOptions{RequiredParts: []Part{PartBody(), PartTimestamp(), {Space: NSWSSE, Local: "UsernameToken"}}}, nil},
	)
	for _, name := range PresetNames() {
		switch name {
		case PresetSUNATPE, PresetFACeES:
			// No signature; References without Transforms, which Verify
			// refuses as BSP R5416 does.
			continue
		}
		for _, ref := range TokenReferences() {
			so, _ := Preset(name)
			so.TokenReference = ref
			for _, p := range so.Parts {
				if p == PartBST() {
					so.IncludeBST = true
				}
			}
			vo := VerifyOptions{RequiredParts: so.Parts, AllowSHA1: so.AllowSHA1}
			env := testutil.ReadTestdata(t, "envelope-soap11.xml")
			switch name {
			case PresetDigikoppeling:
				env = testutil.ReadTestdata(t, "envelope-wsa.xml")
			case PresetDIANCo:
				env = []byte(envelopeSOAP12WSA)
				vo.MaxLifetime = so.TTL // the clients' 60 000 s
			case PresetIRSACA:
				env = testutil.ReadTestdata(t, "envelope-irs-aca.xml")
				// Verify matches parts by exact QName: name the
				// manifest's namespace in this envelope.
				vo.RequiredParts = []Part{PartTimestamp(), {Space: "urn:us:gov:treasury:irs:ext:aca:air:ty25", Local: "ACATransmitterManifestReqDtl"},
					{Space: NSIRSACABusinessHeader, Local: "ACABusinessHeader"}}
				vo.AllowUnsignedAddressing = true // the IRS clients leave wsa:Action unsigned
			}
			cases = append(cases, tc{name + "/" + string(ref), env, rsaCred, so, vo, nil})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := signFixed(t, c.env, c.cred, c.sign)
			vo := c.verify
			vo.Trust = trust
			vo.Explain = true
			res := verifyOK(t, msg, vo)
			if res.Signer == nil || res.Signer.Certificate == nil || !bytes.Equal(res.Signer.Certificate.Raw, c.cred.Chain[0].Raw) {
				t.Fatalf("signer %+v, want %s", res.Signer, c.cred.Chain[0].Subject)
			}
			if res.Signer.Subject != c.cred.Chain[0].Subject.String() || res.Signer.SHA256 == "" {
				t.Errorf("signer info %+v", res.Signer)
			}
			for _, p := range c.signed {
				if !contains(res.Signed, p) {
					t.Errorf("signed %v lacks %s", res.Signed, p)
				}
			}
			if len(res.Explain) != len(res.Signed) {
				t.Errorf("%d explain records for %d references", len(res.Explain), len(res.Signed))
			}
			for _, e := range res.Explain {
				if !e.Match || e.Expected != e.Computed || e.CanonicalLength == 0 || len(e.CanonicalSHA256) != 64 {
					t.Errorf("explain %+v", e)
				}
			}
			if res.Algorithms == nil || res.Algorithms.Canonicalization != AlgExcC14N {
				t.Errorf("algorithms %+v", res.Algorithms)
			}
		})
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestVerifyTimestampInfo: the Timestamp is reported and its rules apply at
// the edges given by the options.
func TestVerifyTimestampRules(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	msg := signFixed(t, testutil.ReadTestdata(t, "envelope-soap11.xml"), cred, SignOptions{TTL: 120 * time.Second})
	base := VerifyOptions{Trust: testTrust(t)}
	at := func(d time.Duration) func() time.Time { return func() time.Time { return fixedNow().Add(d) } }
	res := verifyOK(t, msg, base)
	if !res.Timestamp.Created.Equal(fixedNow()) || res.Timestamp.Expires == nil || !res.Timestamp.Expires.Equal(fixedNow().Add(120*time.Second)) {
		t.Errorf("timestamp %+v", res.Timestamp)
	}
	for _, c := range []struct {
		name string
		mod  func(o *VerifyOptions)
		want Code
	}{
		{"within skew", func(o *VerifyOptions) { o.Now = at(-60 * time.Second) }, ""},
		{"beyond skew", func(o *VerifyOptions) { o.Now = at(-61 * time.Second) }, CodeTimestampFuture},
		{"custom skew", func(o *VerifyOptions) { o.Now = at(-61 * time.Second); o.FutureSkew = 2 * time.Minute }, ""},
		{"just before expiry", func(o *VerifyOptions) { o.Now = at(119 * time.Second) }, ""},
		{"at expiry", func(o *VerifyOptions) { o.Now = at(120 * time.Second) }, CodeTimestampExpired},
		{"older than max age", func(o *VerifyOptions) { o.Now = at(61 * time.Second); o.MaxAge = time.Minute }, CodeTimestampExpired},
		{"lifetime over limit", func(o *VerifyOptions) { o.MaxLifetime = time.Minute }, CodeTimestampLifetime},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := base
			c.mod(&o)
			if c.want == "" {
				verifyOK(t, msg, o)
			} else {
				verifyCode(t, msg, o, c.want)
			}
		})
	}
}

// TestVerifyExplainOnFailure: with explain, a digest mismatch still
// reports every Reference, the bad one with differing digests.
func TestVerifyExplainOnFailure(t *testing.T) {
	msg := signFixed(t, testutil.ReadTestdata(t, "envelope-soap11.xml"), loadCredential(t, "rsa2048"), SignOptions{})
	msg = bytes.Replace(msg, []byte("1234.50"), []byte("1234.51"), 1)
	res := verifyCode(t, msg, VerifyOptions{Trust: testTrust(t), Explain: true}, CodeDigestMismatch)
	if len(res.Explain) != 2 || res.Explain[0].Match || res.Explain[0].Expected == res.Explain[0].Computed || !res.Explain[1].Match ||
		res.Explain[0].Path != "/Envelope/Body" || res.Reference != res.Explain[0].URI || len(res.Signed) != 0 || res.Signer != nil {
		t.Errorf("explain %+v, result %+v", res.Explain, res)
	}
}

func TestReplayCache(t *testing.T) {
	c := NewReplayCache(2)
	now := fixedNow()
	if !c.Add("a", now.Add(time.Minute), now) || c.Add("a", now.Add(time.Minute), now) {
		t.Fatal("a second Add of the same key must fail")
	}
	if !c.Add("a", now.Add(2*time.Minute), now.Add(time.Minute)) {
		t.Fatal("an expired key must be accepted again")
	}
	c.Add("b", now.Add(3*time.Minute), now.Add(time.Minute))
	c.Add("c", now.Add(4*time.Minute), now.Add(time.Minute))
	if c.Len() != 2 {
		t.Fatalf("Len %d, want the bound 2", c.Len())
	}
	if c.Add("c", now.Add(4*time.Minute), now.Add(time.Minute)) {
		t.Fatal("the newest key must survive eviction")
	}
}

// testCA makes a CA and a leaf it issued, valid around fixedNow.
func testCA(t testing.TB, cn string, notAfter time.Time) (ca, leaf *x509.Certificate, leafKey crypto.Signer) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wssignd test CA", Organization: []string{"wssignd tests"}},
		NotBefore: fixedNow().Add(-time.Hour), NotAfter: fixedNow().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(der)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	lt := &x509.Certificate{SerialNumber: big.NewInt(4242), Subject: pkix.Name{CommonName: cn, Organization: []string{"wssignd tests"}},
		NotBefore: fixedNow().Add(-time.Hour), NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err = x509.CreateCertificate(rand.Reader, lt, ca, k.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(der)
	return ca, leaf, k
}

// TestVerifyTrust: chains to a CA (with a PkiPath token carrying the chain),
// DN patterns, validity at verification time, pins.
func TestVerifyTrust(t *testing.T) {
	ca, leaf, key := testCA(t, "peer.example", fixedNow().Add(2*time.Hour))
	otherCA, _, _ := testCA(t, "other", fixedNow().Add(2*time.Hour))
	cred := Credential{Signer: key, Chain: []*x509.Certificate{leaf, ca}}
	env := testutil.ReadTestdata(t, "envelope-soap11.xml")
	direct := signFixed(t, env, cred, SignOptions{})
	pkiPath := signFixed(t, env, cred, SignOptions{BSTValueType: ValueTypeX509PKIPath})
	late := func() time.Time { return fixedNow().Add(3 * time.Hour) }
	signedLate := signFixed(t, env, cred, SignOptions{Now: late})
	mk := func(c TrustConfig) *TrustStore {
		ts, err := NewTrustStore(c)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	cases := []struct {
		name  string
		msg   []byte
		trust *TrustStore
		now   time.Duration
		want  Code
	}{
		{"ca", direct, mk(TrustConfig{Roots: []*x509.Certificate{ca}}), 0, ""},
		{"ca via pkipath", pkiPath, mk(TrustConfig{Roots: []*x509.Certificate{ca}}), 0, ""},
		{"other ca", direct, mk(TrustConfig{Roots: []*x509.Certificate{otherCA}}), 0, CodeUntrustedKey},
		{"pinned leaf", direct, mk(TrustConfig{Pinned: []*x509.Certificate{leaf}}), 0, ""},
		{"pinned other", direct, mk(TrustConfig{Pinned: []*x509.Certificate{loadCredential(t, "ecp256").Chain[0]}}), 0, CodeUntrustedKey},
		{"subject matches", direct, mk(TrustConfig{Roots: []*x509.Certificate{ca}, SubjectPattern: `^CN=peer\.example,O=wssignd tests$`}), 0, ""},
		{"subject differs", direct, mk(TrustConfig{Roots: []*x509.Certificate{ca}, SubjectPattern: `^CN=someone-else,`}), 0, CodeUntrustedKey},
		{"issuer differs", direct, mk(TrustConfig{Roots: []*x509.Certificate{ca}, IssuerPattern: `^CN=another CA`}), 0, CodeUntrustedKey},
		{"leaf expired at verification", signedLate, mk(TrustConfig{Pinned: []*x509.Certificate{leaf}}), 3 * time.Hour, CodeUntrustedKey},
		{"nil trust", direct, nil, 0, CodeUntrustedKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := VerifyOptions{Trust: c.trust, Now: func() time.Time { return fixedNow().Add(c.now) }}
			if c.want == "" {
				verifyOK(t, c.msg, o)
			} else {
				res := verifyCode(t, c.msg, o, c.want)
				if res.Signer != nil {
					t.Errorf("an untrusted signer is reported: %+v", res.Signer)
				}
			}
		})
	}
	if _, err := NewTrustStore(TrustConfig{}); err == nil {
		t.Error("an empty trust store must be refused")
	}
	if _, err := NewTrustStore(TrustConfig{Pinned: []*x509.Certificate{leaf}, SubjectPattern: "("}); err == nil {
		t.Error("a bad pattern must be refused")
	}
}

const sigConfEnvelope = `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header><wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" xmlns:wsse11="http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd" soap:mustUnderstand="1"><wsse11:SignatureConfirmation wsu:Id="SC-1" Value="%s"/></wsse:Security></soap:Header><soap:Body><r xmlns="urn:x">ok</r></soap:Body></soap:Envelope>`

func TestVerifySignatureConfirmation(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	ours := []byte("the SignatureValue of our request")
	env := []byte(strings.Replace(sigConfEnvelope, "%s", base64.StdEncoding.EncodeToString(ours), 1))
	sc := Part{Space: NSWSSE11, Local: "SignatureConfirmation"}
	signed := signFixed(t, env, cred, SignOptions{Parts: []Part{PartBody(), PartTimestamp(), sc}})
	notSigned := signFixed(t, env, cred, SignOptions{})
	o := VerifyOptions{Trust: testTrust(t), ExpectSignatureConfirmation: [][]byte{ours}}
	verifyOK(t, signed, o)
	verifyCode(t, notSigned, o, CodeSignatureConfirmation)
	o.ExpectSignatureConfirmation = [][]byte{[]byte("another request")}
	verifyCode(t, signed, o, CodeSignatureConfirmation)
	o.ExpectSignatureConfirmation = nil
	verifyOK(t, notSigned, o)
}

const faultEnvelope = `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Server</faultcode><faultstring>boom</faultstring></soap:Fault></soap:Body></soap:Envelope>`

func TestVerifyUnsignedFault(t *testing.T) {
	o := VerifyOptions{Trust: testTrust(t)}
	verifyCode(t, []byte(faultEnvelope), o, CodeUnsigned)
	o.UnsignedFaults = UnsignedFaultsAccept
	res := verifyOK(t, []byte(faultEnvelope), o)
	if !res.UnsignedFault || res.Code != CodeUnsignedFault || res.Signer != nil {
		t.Errorf("accepted fault must be flagged: %+v", res)
	}
	// The policy covers Faults only.
	verifyCode(t, testutil.ReadTestdata(t, "envelope-soap11.xml"), o, CodeUnsigned)
}

// TestVerifyUnusable: unusable input is an error, not a verdict.
func TestVerifyUnusable(t *testing.T) {
	for _, c := range []struct {
		in   string
		lim  Limits
		want Code
	}{
		{"<a", Limits{}, CodeMalformedXML},
		{"", Limits{}, CodeMalformedXML},
		{`<!DOCTYPE x [<!ENTITY e "x">]><x/>`, Limits{}, CodeDTDForbidden},
		{faultEnvelope, Limits{MaxBytes: 10}, CodeTooLarge},
		{faultEnvelope, Limits{MaxDepth: 2}, CodeTooComplex},
	} {
		res, err := Verify(context.Background(), []byte(c.in), VerifyOptions{Limits: c.lim})
		if CodeOf(err) != c.want || res != nil {
			t.Errorf("%q: got %v, %v; want error %s", c.in, res, err, c.want)
		}
	}
}

// interopRef is one way the xmlsec1-signed messages reference the key.
type interopRef struct {
	name  string
	token func(c *x509.Certificate, wsse, wsu string) string
	str   func(c *x509.Certificate, wsse string) string
	want  string // SignerInfo.KeyRef
}

func interopRefs() []interopRef {
	b64 := base64.StdEncoding.EncodeToString
	bst := func(vt string, der []byte) func(c *x509.Certificate, wsse, wsu string) string {
		return func(c *x509.Certificate, wsse, wsu string) string {
			if der == nil {
				der = c.Raw
			}
			return `<` + wsse + `:BinarySecurityToken ` + wsu + `:Id="X509-1" EncodingType="` + EncodingBase64 + `" ValueType="` + vt + `">` + b64(der) + `</` + wsse + `:BinarySecurityToken>`
		}
	}
	none := func(*x509.Certificate, string, string) string { return "" }
	keyID := func(vt string, val func(c *x509.Certificate) []byte) func(c *x509.Certificate, wsse string) string {
		return func(c *x509.Certificate, wsse string) string {
			return `<` + wsse + `:KeyIdentifier EncodingType="` + EncodingBase64 + `" ValueType="` + vt + `">` + b64(val(c)) + `</` + wsse + `:KeyIdentifier>`
		}
	}
	return []interopRef{
		{"bst-x509v3", bst(ValueTypeX509v3, nil), func(c *x509.Certificate, wsse string) string {
			return `<` + wsse + `:Reference URI="#X509-1" ValueType="` + ValueTypeX509v3 + `"/>`
		}, SignerRefBSTX509v3},
		{"bst-pkipath", func(c *x509.Certificate, wsse, wsu string) string {
			der, _ := asn1Marshal(c)
			return bst(ValueTypeX509PKIPath, der)(c, wsse, wsu)
		}, func(c *x509.Certificate, wsse string) string {
			return `<` + wsse + `:Reference URI="#X509-1" ValueType="` + ValueTypeX509PKIPath + `"/>`
		}, SignerRefBSTPKIPath},
		{"issuer-serial", none, func(c *x509.Certificate, wsse string) string {
			return `<ds:X509Data xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509IssuerSerial><ds:X509IssuerName>` + c.Issuer.String() +
				`</ds:X509IssuerName><ds:X509SerialNumber>` + c.SerialNumber.String() + `</ds:X509SerialNumber></ds:X509IssuerSerial></ds:X509Data>`
		}, SignerRefIssuerSerial},
		{"ski", none, keyID(vtSKI, func(c *x509.Certificate) []byte { return c.SubjectKeyId }), SignerRefSKI},
		{"thumbprint", none, keyID(vtThumbprint, func(c *x509.Certificate) []byte { s := sha1Sum(c.Raw); return s[:] }), SignerRefThumbprint},
		{"keyid-x509v3", none, keyID(ValueTypeX509v3, func(c *x509.Certificate) []byte { return c.Raw }), SignerRefKeyIDX509v3},
	}
}

// TestVerifyXMLSec1: messages signed by xmlsec1 from the templates in
// testdata/interop (RSA and ECDSA, every token reference type, SOAP 1.1 and
// SOAP 1.2 WCF-style) verify; so do the committed generated messages.
func TestVerifyXMLSec1(t *testing.T) {
	xmlsec := testutil.RequireTool(t, "xmlsec1", "xmlsec1")
	root := testutil.RepoRoot(t)
	dir := t.TempDir()
	trust := testTrust(t)
	keys := []struct{ name, sm string }{{"rsa2048", AlgRSASHA256}, {"ecp256", AlgECDSASHA256}}
	tmpls := []struct{ file, wsse, wsu string }{{"soap11.tmpl.xml", "wsse", "wsu"}, {"soap12-wcf.tmpl.xml", "o", "u"}}
	for _, k := range keys {
		cred := loadCredential(t, k.name)
		cert := cred.Chain[0]
		for _, tm := range tmpls {
			tmpl := template.Must(template.ParseFiles(filepath.Join(root, "testdata", "interop", tm.file)))
			for _, ref := range interopRefs() {
				name := strings.TrimSuffix(tm.file, ".tmpl.xml") + "-" + k.name + "-" + ref.name
				t.Run(name, func(t *testing.T) {
					var buf bytes.Buffer
					err := tmpl.Execute(&buf, map[string]string{
						"Token": ref.token(cert, tm.wsse, tm.wsu), "STR": ref.str(cert, tm.wsse),
						"Created": "2026-11-29T12:00:00.000Z", "Expires": "2026-11-29T12:05:00.000Z", "SignatureMethod": k.sm,
					})
					if err != nil {
						t.Fatal(err)
					}
					in := filepath.Join(dir, name+".xml")
					if err := os.WriteFile(in, buf.Bytes(), 0o600); err != nil {
						t.Fatal(err)
					}
					keyArg := filepath.Join(root, "testdata", "keys", k.name+".key") + "," + filepath.Join(root, "testdata", "keys", k.name+".crt")
					args := append([]string{"--sign", "--privkey-pem", keyArg}, testutil.XMLSec1IDAttrs...)
					args = append(args, "--output", "-", in)
					out, err := exec.Command(xmlsec, args...).Output()
					if err != nil {
						t.Fatalf("xmlsec1 --sign: %v\n%s", err, out)
					}
					opts := VerifyOptions{Trust: trust, Explain: true}
					res := verifyOK(t, out, opts)
					if res.Signer.KeyRef != ref.want || !bytes.Equal(res.Signer.Certificate.Raw, cert.Raw) {
						t.Errorf("signer %+v, want %s via %s", res.Signer, cert.Subject, ref.want)
					}
					wantSigned := 2
					if tm.wsu == "u" {
						wantSigned = 5
					}
					if len(res.Signed) != wantSigned {
						t.Errorf("signed %v", res.Signed)
					}
					golden := filepath.Join(root, "testdata", "interop", "generated", name+".xml")
					if *update {
						if err := os.WriteFile(golden, out, 0o644); err != nil {
							t.Fatal(err)
						}
					}
					committed, err := os.ReadFile(golden)
					if err != nil {
						t.Fatalf("%v (run go test ./wss -run XMLSec1 -update)", err)
					}
					verifyOK(t, committed, VerifyOptions{Trust: trust})
					if tm.wsu == "wsu" {
						// The SignedInfo's PrefixList matters: without it
						// the canonical SignedInfo lacks xmlns:soapenv.
						noPL := regexp.MustCompile(`(?s)(<ds:CanonicalizationMethod [^>]*>)\s*<ec:InclusiveNamespaces [^>]*/>`).ReplaceAll(out, []byte("$1"))
						if bytes.Equal(noPL, out) {
							t.Fatal("no PrefixList on the SignedInfo to remove")
						}
						verifyCode(t, noPL, opts, CodeSignatureInvalid)
					}
					// And a bit flipped in the signed Body breaks it.
					tampered := bytes.Replace(out, []byte(">42<"), []byte(">43<"), 1)
					tampered = bytes.Replace(tampered, []byte(">WSS<"), []byte(">WSs<"), 1)
					verifyCode(t, tampered, opts, CodeDigestMismatch)
				})
			}
		}
	}
}

func asn1Marshal(certs ...*x509.Certificate) ([]byte, error) {
	seq := make([]asn1.RawValue, len(certs))
	for i, c := range certs {
		seq[i] = asn1.RawValue{FullBytes: c.Raw}
	}
	return asn1.Marshal(seq)
}

func sha1Sum(b []byte) [20]byte { return sha1.Sum(b) }

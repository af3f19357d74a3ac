package wss

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"
	"github.com/wssignd/wssignd/internal/testutil"
)

// presetGoldenCase is one preset golden message: the options (with the
// usernames and passwords it needs) and the envelope they sign.
type presetGoldenCase struct {
	golden   string // file name under testdata/golden
	opts     func() SignOptions
	envelope string
}

// presetGoldenCases lists every preset golden message: each preset on the
// testdata envelopes it accepts, and a few token-reference variants.
func presetGoldenCases(t testing.TB) []presetGoldenCase {
	type variant struct {
		name     string
		opts     func() SignOptions
		envelope string
	}
	preset := func(name string, mod func(*SignOptions)) func() SignOptions {
		return func() SignOptions {
			o, ok := Preset(name)
			if !ok {
				t.Fatalf("no preset %s", name)
			}
			if mod != nil {
				mod(&o)
			}
			return o
		}
	}
	cases := []variant{
		{"bsp-default", preset(PresetBSPDefault, nil), "envelope-soap11.xml"},
		{"bsp-default", preset(PresetBSPDefault, nil), "envelope-soap12.xml"},
		{"bsp-default", preset(PresetBSPDefault, nil), "envelope-existing-security.xml"},
		{"digikoppeling", preset(PresetDigikoppeling, nil), "envelope-wsa.xml"},
		{"ehealth-be", preset(PresetEHealthBE, nil), "envelope-soap11.xml"},
		{"dian-co", preset(PresetDIANCo, nil), "envelope-soap12-wsa.xml"},
		{"sat-mx", preset(PresetSATMX, nil), "envelope-soap11.xml"},
		{"face-es", preset(PresetFACeES, nil), "envelope-soap11.xml"},
		{"irs-aca", preset(PresetIRSACA, nil), "envelope-irs-aca.xml"},
		{"sunat-pe", preset(PresetSUNATPE, func(o *SignOptions) {
			o.UsernameToken.Username, o.UsernameToken.Password = "20123456789MODDATOS", "moddatos"
		}), "envelope-soap11.xml"},
		{"ref-issuer-serial", preset(PresetBSPDefault, func(o *SignOptions) {
			o.TokenReference, o.Parts = RefIssuerSerial, []Part{PartBody(), PartTimestamp()}
		}), "envelope-soap11.xml"},
		{"ref-ski", preset(PresetBSPDefault, func(o *SignOptions) { o.TokenReference, o.Parts = RefSKI, []Part{PartBody(), PartTimestamp()} }), "envelope-soap11.xml"},
		{"ref-thumbprint-bst", preset(PresetBSPDefault, func(o *SignOptions) { o.TokenReference, o.IncludeBST = RefThumbprint, true }), "envelope-soap11.xml"},
		{"ref-pkipath", preset(PresetBSPDefault, func(o *SignOptions) { o.BSTValueType = ValueTypeX509PKIPath }), "envelope-soap11.xml"},
		{"ref-x509-keyid", preset(PresetBSPDefault, func(o *SignOptions) {
			o.TokenReference, o.Parts = RefX509KeyIdentifier, []Part{PartBody(), PartTimestamp()}
		}), "envelope-soap11.xml"},
		{"ut-digest-ts-first", preset(PresetBSPDefault, func(o *SignOptions) {
			o.Layout = LayoutTimestampFirst
			o.TimestampMillis = true
			o.UsernameToken = &UsernameToken{Username: "alice", Password: "secret", Digest: true}
			o.Parts = append(o.Parts, PartUsernameToken())
		}), "envelope-wsa.xml"},
	}
	var out []presetGoldenCase
	for _, tc := range cases {
		golden := "preset-" + tc.name + "-" + strings.TrimSuffix(strings.TrimPrefix(tc.envelope, "envelope-"), ".xml") + ".golden.xml"
		out = append(out, presetGoldenCase{golden, tc.opts, tc.envelope})
	}
	return out
}

// TestPresetsGolden signs, under every preset and a few token-reference
// variants, the testdata envelopes each accepts, with the fixed RSA test key
// (PKCS#1 v1.5 is deterministic), fixed clock and fixed Ids; compares with
// golden files (go test ./wss -run PresetsGolden -update) and has xmlsec1
// verify every output.
func TestPresetsGolden(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	for _, tc := range presetGoldenCases(t) {
		t.Run(tc.golden, func(t *testing.T) {
			opts := tc.opts()
			opts.Now, opts.Rand = fixedNow, &countingReader{}
			res := signChecked(t, testutil.ReadTestdata(t, tc.envelope), cred, opts)
			path := filepath.Join(testutil.RepoRoot(t), "testdata", "golden", tc.golden)
			if *update {
				if err := os.WriteFile(path, res.Envelope, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./wss -run PresetsGolden -update)", err)
			}
			if !bytes.Equal(res.Envelope, want) {
				t.Errorf("output differs from %s (run with -update if the change is intended)\ngot:\n%s", path, res.Envelope)
			}
		})
	}
}

// TestPresetShapes checks what each preset promises on the wire.
func TestPresetShapes(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	for _, tc := range []struct {
		preset, envelope string
		refs             []string // local names of the signed elements, in order
		prefixLists      bool
		sigMethod        string
	}{
		{PresetBSPDefault, "envelope-soap11.xml", []string{"Body", "Timestamp", "BinarySecurityToken"}, false, AlgRSASHA256},
		{PresetDigikoppeling, "envelope-wsa.xml", []string{"Body", "To", "Action", "MessageID", "ReplyTo", "Timestamp"}, false, AlgRSASHA256},
		{PresetEHealthBE, "envelope-soap11.xml", []string{"BinarySecurityToken", "Timestamp", "Body"}, false, AlgRSASHA256},
		{PresetDIANCo, "envelope-soap12-wsa.xml", []string{"To"}, true, AlgRSASHA256},
		{PresetSATMX, "envelope-soap11.xml", []string{"Timestamp"}, false, AlgRSASHA1},
	} {
		t.Run(tc.preset, func(t *testing.T) {
			opts, _ := Preset(tc.preset)
			_, doc := signOK(t, testutil.ReadTestdata(t, tc.envelope), cred, opts)
			ids := indexIDs(doc.Root())
			sec := securityOf(t, doc)
			if sec.SelectElement("Timestamp") == nil || sec.SelectElement("BinarySecurityToken") == nil {
				t.Error("want a Timestamp and a BinarySecurityToken")
			}
			si := sec.FindElement("Signature/SignedInfo")
			if m := si.SelectElement("SignatureMethod").SelectAttrValue("Algorithm", ""); m != tc.sigMethod {
				t.Errorf("signature method %s", m)
			}
			var got []string
			for _, r := range si.SelectElements("Reference") {
				got = append(got, ids[strings.TrimPrefix(r.SelectAttrValue("URI", ""), "#")].Tag)
				if (prefixList(r.FindElement("Transforms/Transform")) != nil) != tc.prefixLists {
					t.Errorf("reference PrefixList presence wrong")
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.refs, ",") {
				t.Errorf("signed %v, want %v", got, tc.refs)
			}
			if (prefixList(si.SelectElement("CanonicalizationMethod")) != nil) != tc.prefixLists {
				t.Errorf("SignedInfo PrefixList presence wrong")
			}
		})
	}
}

// TestRSAPSSWithOpenSSL: xmlsec1 1.2.37 has no RSA-PSS, so the PSS signature
// value is checked by openssl over the canonical SignedInfo (whose
// canonicalisation xmlsec1 checks in every other test), with salt length =
// hash length and MGF1 of the same hash as RFC 6931 §2.3.11 requires.
func TestRSAPSSWithOpenSSL(t *testing.T) {
	openssl := testutil.RequireTool(t, "openssl", "openssl")
	cred := loadCredential(t, "rsa2048")
	for _, tc := range []struct {
		method, dgst string
		salt         string
	}{
		{AlgRSAPSSSHA256, "-sha256", "32"},
		{AlgRSAPSSSHA384, "-sha384", "48"},
		{AlgRSAPSSSHA512, "-sha512", "64"},
	} {
		t.Run(tc.dgst, func(t *testing.T) {
			res, err := Sign(context.Background(), testutil.ReadTestdata(t, "envelope-soap11.xml"), cred, SignOptions{SignatureMethod: tc.method})
			if err != nil {
				t.Fatal(err)
			}
			if err := checkSignature(res.Envelope, cred.Chain[0].PublicKey); err != nil {
				t.Fatal(err)
			}
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(res.Envelope); err != nil {
				t.Fatal(err)
			}
			si := doc.FindElement("//SignedInfo")
			var c14n bytes.Buffer
			if err := CanonicalizeExclusive(&c14n, si, C14NOptions{}); err != nil {
				t.Fatal(err)
			}
			sv, err := base64Decode(doc.FindElement("//SignatureValue").Text())
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			files := map[string][]byte{"si": c14n.Bytes(), "sig": sv, "cert.pem": testutil.CertPEM(cred.Chain[0])}
			for n, b := range files {
				if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			pub, err := exec.Command(openssl, "x509", "-in", filepath.Join(dir, "cert.pem"), "-pubkey", "-noout").Output()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "pub.pem"), pub, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(openssl, "dgst", tc.dgst, "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:"+tc.salt,
				"-sigopt", "rsa_mgf1_md:"+strings.TrimPrefix(tc.dgst, "-"),
				"-verify", filepath.Join(dir, "pub.pem"), "-signature", filepath.Join(dir, "sig"), filepath.Join(dir, "si")).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Verified OK") {
				t.Fatalf("openssl rejects the PSS signature: %v\n%s", err, out)
			}
		})
	}
}

func base64Decode(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.TrimSpace(s))
}

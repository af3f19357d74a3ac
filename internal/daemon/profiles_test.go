package daemon

import (
	"context"
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/beevik/etree"
	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/internal/defs"
	"github.com/wssignd/wssignd/internal/etreec14n"
	"github.com/wssignd/wssignd/internal/testutil"
	"github.com/wssignd/wssignd/wss"
)

// devProfileEnv builds what "make run" builds — a SoftHSM2 token with the
// dev keys and the dev config — loads the config and builds the profiles.
func devProfileEnv(t *testing.T) (*config.Config, *keyStore, map[string]*api.Profile) {
	t.Helper()
	testutil.RequireTool(t, "softhsm2-util", "softhsm2")
	t.Setenv("SOFTHSM2_CONF", "") // DevSetup sets it; restored after the test
	dir := shortDir(t)
	if err := DevSetup(dir, filepath.Join(dir, "s.sock"), "softhsm"); err != nil {
		t.Fatalf("dev-setup: %v", err)
	}
	c, err := config.Load(filepath.Join(dir, "wssignd.toml"))
	if err != nil {
		t.Fatalf("the dev config does not load: %v", err)
	}
	ks, err := openKeyStore(defaultSeams(), c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ks.Close)
	profiles, err := buildProfiles(defaultSeams(), c, ks)
	if err != nil {
		t.Fatalf("the dev profiles do not build: %v", err)
	}
	return c, ks, profiles
}

// TestDevProfilesSignAndXMLSec1Verifies signs every testdata envelope under
// every profile of the development config, with the keys on a SoftHSM2
// token, and has xmlsec1 verify each output (RSA-PSS, which xmlsec1 1.2.37
// does not implement, is verified by pssVerify below). Combinations a
// profile must refuse (wrong SOAP version, a required WS-Addressing header
// missing) are checked for their error code.
func TestDevProfilesSignAndXMLSec1Verifies(t *testing.T) {
	_, ks, profiles := devProfileEnv(t)
	want := []string{"default", "bsp-default", "digikoppeling", "digikoppeling-response", "ehealth-be", "dian-co", "sat-mx", "face-es", "irs-aca", "sunat-pe",
		"ref-direct", "ref-issuer-serial", "ref-ski", "ref-thumbprint", "ref-x509-key-identifier", "ref-pkipath",
		"ecdsa-p256", "rsa-pss", "username-token"}
	var names []string
	for n := range profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range want {
		if profiles[n] == nil {
			t.Errorf("the dev config has no profile %q (has %v)", n, names)
		}
	}
	envelopes := []string{"envelope-soap11.xml", "envelope-soap12.xml", "envelope-wsa.xml", "envelope-existing-security.xml", "envelope-soap12-wsa.xml", "envelope-irs-aca.xml"}
	// What must fail, and how; everything else must sign and verify.
	refuse := map[string]wss.Code{
		"digikoppeling/envelope-soap11.xml":                     wss.CodeMissingPart, // no wsa:To
		"digikoppeling/envelope-soap12.xml":                     wss.CodeInvalidSOAP, // SOAP 1.2
		"digikoppeling/envelope-existing-security.xml":          wss.CodeMissingPart,
		"digikoppeling/envelope-soap12-wsa.xml":                 wss.CodeInvalidSOAP,
		"dian-co/envelope-soap11.xml":                           wss.CodeInvalidSOAP, // SOAP 1.1
		"dian-co/envelope-wsa.xml":                              wss.CodeInvalidSOAP,
		"dian-co/envelope-existing-security.xml":                wss.CodeInvalidSOAP,
		"dian-co/envelope-soap12.xml":                           wss.CodeMissingPart, // no wsa:To
		"digikoppeling/envelope-irs-aca.xml":                    wss.CodeMissingPart,
		"digikoppeling-response/envelope-soap11.xml":            wss.CodeMissingPart,
		"digikoppeling-response/envelope-soap12.xml":            wss.CodeInvalidSOAP,
		"digikoppeling-response/envelope-existing-security.xml": wss.CodeMissingPart,
		"digikoppeling-response/envelope-soap12-wsa.xml":        wss.CodeInvalidSOAP,
		"digikoppeling-response/envelope-irs-aca.xml":           wss.CodeMissingPart,
		"dian-co/envelope-irs-aca.xml":                          wss.CodeInvalidSOAP,
		"ehealth-be/envelope-soap12.xml":                        wss.CodeInvalidSOAP, // SOAP 1.2
		"ehealth-be/envelope-soap12-wsa.xml":                    wss.CodeInvalidSOAP,
		"sat-mx/envelope-soap12.xml":                            wss.CodeInvalidSOAP,
		"sat-mx/envelope-soap12-wsa.xml":                        wss.CodeInvalidSOAP,
		"face-es/envelope-soap12.xml":                           wss.CodeInvalidSOAP,
		"face-es/envelope-soap12-wsa.xml":                       wss.CodeInvalidSOAP,
		"irs-aca/envelope-soap11.xml":                           wss.CodeMissingPart, // no ACA headers
		"irs-aca/envelope-wsa.xml":                              wss.CodeMissingPart,
		"irs-aca/envelope-existing-security.xml":                wss.CodeMissingPart,
		"irs-aca/envelope-soap12.xml":                           wss.CodeInvalidSOAP,
		"irs-aca/envelope-soap12-wsa.xml":                       wss.CodeInvalidSOAP,
	}
	ctx := context.Background()
	signed := 0
	for _, name := range names {
		p := profiles[name]
		var cred wss.Credential
		if !p.Sign.NoSignature {
			var err error
			if cred, err = ks.Credential(ctx, p.Key); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		for _, envName := range envelopes {
			t.Run(name+"/"+envName, func(t *testing.T) {
				res, err := wss.Sign(context.Background(), testutil.ReadTestdata(t, envName), cred, p.Sign)
				if code, ok := refuse[name+"/"+envName]; ok {
					if wss.CodeOf(err) != code || res != nil {
						t.Fatalf("want %s, got %v", code, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("sign: %v", err)
				}
				signed++
				if p.Sign.NoSignature {
					if !strings.Contains(string(res.Envelope), "UsernameToken") || strings.Contains(string(res.Envelope), "Signature") {
						t.Fatalf("want a UsernameToken and no Signature:\n%s", res.Envelope)
					}
					return
				}
				if strings.Contains(res.SignatureMethod, "rsa-MGF1") {
					if err := pssVerify(res.Envelope, cred.Chain[0].PublicKey.(*rsa.PublicKey)); err != nil {
						t.Fatalf("RSA-PSS: %v\n%s", err, res.Envelope)
					}
					return
				}
				if out, ok := testutil.XMLSec1Verify(t, res.Envelope, cred.Chain[0]); !ok {
					t.Fatalf("xmlsec1 rejects:\n%s\n%s", out, res.Envelope)
				}
			})
		}
	}
	t.Logf("%d envelopes signed and verified under %d profiles", signed, len(names))
}

// pssVerify checks every Reference digest and the RSA-PSS signature value
// with crypto/rsa, over the canonical forms wss computes (which xmlsec1
// checks for every other profile).
func pssVerify(signed []byte, pub *rsa.PublicKey) error {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(signed); err != nil {
		return err
	}
	ids := map[string]*etree.Element{}
	for _, el := range doc.FindElements("//*") {
		for _, a := range el.Attr {
			if a.Key == "Id" {
				ids[a.Value] = el
			}
		}
	}
	si := doc.FindElement("//Signature/SignedInfo")
	if si == nil {
		return fmt.Errorf("no SignedInfo")
	}
	for _, ref := range si.SelectElements("Reference") {
		el := ids[strings.TrimPrefix(ref.SelectAttrValue("URI", ""), "#")]
		if el == nil {
			return fmt.Errorf("reference %s not found", ref.SelectAttrValue("URI", ""))
		}
		if ref.SelectElement("DigestMethod").SelectAttrValue("Algorithm", "") != wss.AlgSHA256 {
			return fmt.Errorf("unexpected digest method")
		}
		h := crypto.SHA256.New()
		var pl []string
		if in := ref.FindElement("Transforms/Transform/InclusiveNamespaces"); in != nil {
			pl = strings.Fields(in.SelectAttrValue("PrefixList", ""))
		}
		if err := etreec14n.CanonicalizeExclusive(h, el, etreec14n.C14NOptions{InclusivePrefixes: pl}); err != nil {
			return err
		}
		if got := base64.StdEncoding.EncodeToString(h.Sum(nil)); got != ref.SelectElement("DigestValue").Text() {
			return fmt.Errorf("digest of %s differs", ref.SelectAttrValue("URI", ""))
		}
	}
	if si.SelectElement("SignatureMethod").SelectAttrValue("Algorithm", "") != wss.AlgRSAPSSSHA256 {
		return fmt.Errorf("not RSA-PSS-SHA256")
	}
	h := crypto.SHA256.New()
	if err := etreec14n.CanonicalizeExclusive(h, si, etreec14n.C14NOptions{}); err != nil {
		return err
	}
	sv, err := base64.StdEncoding.DecodeString(doc.FindElement("//Signature/SignatureValue").Text())
	if err != nil {
		return err
	}
	return rsa.VerifyPSS(pub, crypto.SHA256, h.Sum(nil), sv, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
}

// TestProfileConfigErrors: a key-type mismatch, a SHA-1 method without the
// opt-in and an unreadable or world-readable password file stop the
// profiles from building (a startup error, not a request error).
func TestProfileConfigErrors(t *testing.T) {
	c, ks, _ := devProfileEnv(t)
	dir := filepath.Dir(c.File)
	loose := filepath.Join(dir, "loose-password")
	if err := os.WriteFile(loose, []byte("hunter2-secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	yes := true
	for _, tc := range []struct {
		name string
		p    config.Profile
		want string
	}{
		{"ecdsa method on rsa key", config.Profile{Key: "dev-rsa", SignatureMethod: wss.AlgECDSASHA256}, "does not fit"},
		{"rsa method on ec key", config.Profile{Key: "dev-ec", SignatureMethod: wss.AlgRSAPSSSHA256}, "does not fit"},
		{"sha1 without opt-in", config.Profile{Key: "dev-rsa", DigestMethod: wss.AlgSHA1}, "opt-in"},
		{"bst part not sent", config.Profile{Key: "dev-rsa", TokenReference: "thumbprint", Parts: []string{"Body", "BinarySecurityToken"}}, "BinarySecurityToken"},
		{"password file readable by others", config.Profile{Key: "dev-rsa", Username: "u", PasswordFile: "loose-password"}, "chmod go-rwx"},
		{"password file missing", config.Profile{Key: "dev-rsa", Username: "u", PasswordFile: "nope"}, "password_file"},
		{"sat-mx on an ec key", config.Profile{Key: "dev-ec", Preset: "sat-mx", AllowSHA1: &yes}, "does not fit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := *c
			p := tc.p
			p.AllowUsers = []string{"*"}
			bad.Profiles = map[string]*config.Profile{"x": &p}
			_, err := buildProfiles(defaultSeams(), &bad, ks)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

// TestSignOptionsFromProfile: a preset is the starting point and every
// setting the profile names overrides it.
func TestSignOptionsFromProfile(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("secret\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	no, yes := false, true
	o, err := signOptions(&config.Profile{Preset: "sat-mx"}, filepath.Join(dir, "c.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if preset, _ := wss.Preset("sat-mx"); fmt.Sprint(o) != fmt.Sprint(preset) {
		t.Errorf("bare preset %+v differs from wss.Preset", o)
	}
	o, err = signOptions(&config.Profile{Preset: "dian-co", Parts: []string{"Body", "{urn:x}Y?"}, InclusivePrefixes: &no,
		TimestampExpires: &no, TokenReference: "ski", IncludeBST: &yes, BSTValueType: "X509PKIPathv1", Layout: "timestamp-last",
		Actor: "urn:a", SOAPVersion: "1.1", Username: "u", PasswordFile: "pw", PasswordType: "text"}, filepath.Join(dir, "c.toml"))
	if err != nil {
		t.Fatal(err)
	}
	wantParts := []wss.Part{{Space: "", Local: "Body"}, {Space: "urn:x", Local: "Y", Optional: true}}
	if !slices.Equal(o.Parts, wantParts) || o.InclusivePrefixes || !o.NoExpires || o.TokenReference != wss.RefSKI || !o.IncludeBST ||
		o.BSTValueType != wss.ValueTypeX509PKIPath || o.Layout != wss.LayoutTimestampLast || o.Actor != "urn:a" || o.SOAPVersion != "1.1" ||
		o.SignatureMethod != wss.AlgRSASHA256 || !o.TimestampMillis {
		t.Errorf("overrides not applied: %+v", o)
	}
	if o.UsernameToken == nil || o.UsernameToken.Username != "u" || o.UsernameToken.Password != "secret" || o.UsernameToken.Digest {
		t.Errorf("UsernameToken %v", o.UsernameToken)
	}

	// The header settings, and a preset's password type kept unless the
	// profile names one.
	o, err = signOptions(&config.Profile{Preset: "face-es", ReferenceTransforms: &yes, TimestampZone: "Z", MustUnderstand: &no, Timestamp: &no,
		Parts: []string{"Body"}}, filepath.Join(dir, "c.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if o.NoTransforms || o.TimestampZone != "Z" || !o.NoMustUnderstand || !o.NoTimestamp || o.NoSignature || o.SignatureConfirmation {
		t.Errorf("header settings not applied: %+v", o)
	}
	if o, err = signOptions(&config.Profile{Preset: "digikoppeling", SignatureConfirmation: &yes}, filepath.Join(dir, "c.toml")); err != nil || !o.SignatureConfirmation {
		t.Errorf("signature_confirmation: %v %+v", err, o)
	}
	o, err = signOptions(&config.Profile{Preset: "sunat-pe", Username: "u", PasswordFile: "pw"}, filepath.Join(dir, "c.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !o.NoSignature || !o.NoTimestamp || o.UsernameToken == nil || o.UsernameToken.Digest || o.UsernameToken.Username != "u" {
		t.Errorf("sunat-pe: %+v %v", o, o.UsernameToken)
	}
	o, err = signOptions(&config.Profile{Preset: "sunat-pe", Username: "u", PasswordFile: "pw", PasswordType: "digest", Signature: &no},
		filepath.Join(dir, "c.toml"))
	if err != nil || !o.UsernameToken.Digest {
		t.Errorf("password_type digest over the preset: %v %v", err, o.UsernameToken)
	}
	if _, err := signOptions(&config.Profile{Preset: "sunat-pe"}, filepath.Join(dir, "c.toml")); err == nil || !strings.Contains(err.Error(), "user name") {
		t.Errorf("sunat-pe without a user name: %v", err)
	}
}

// TestConfigNamesMatchWSS keeps the names internal/config accepts (those of
// internal/defs) equal to the ones package wss implements.
func TestConfigNamesMatchWSS(t *testing.T) {
	if !slices.Equal(defs.Presets(), wss.PresetNames()) {
		t.Errorf("config presets %v, wss %v", defs.Presets(), wss.PresetNames())
	}
	if config.AnyNamespace != wss.AnyNamespace {
		t.Errorf("config any-namespace %q, wss %q", config.AnyNamespace, wss.AnyNamespace)
	}
	var refs, layouts []string
	for _, r := range wss.TokenReferences() {
		refs = append(refs, string(r))
	}
	for _, l := range wss.Layouts() {
		layouts = append(layouts, string(l))
	}
	if !slices.Equal(defs.TokenReferences(), refs) {
		t.Errorf("config token references %v, wss %v", defs.TokenReferences(), refs)
	}
	if !slices.Equal(defs.Layouts(), layouts) {
		t.Errorf("config layouts %v, wss %v", defs.Layouts(), layouts)
	}
}

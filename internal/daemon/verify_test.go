package daemon

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/internal/testutil"
	"github.com/wssignd/wssignd/wss"
)

const verifyBase = `
modules = ["/usr/lib/softhsm/libsofthsm2.so"]
[tokens.t]
module = "/usr/lib/softhsm/libsofthsm2.so"
label = "dev"
pin_file = "pin"
[keys.k]
token = "t"
id = "01"
[profiles.p]
key = "k"
allow_users = ["*"]
`

func parseVerifyConfig(t *testing.T, verify string) (*config.Config, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pin"), []byte("1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"rsa2048", "ecp256"} {
		if err := os.WriteFile(filepath.Join(dir, k+".pem"), testutil.ReadTestdata(t, "keys/"+k+".crt"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), testutil.ReadTestdata(t, "keys/rsa2048.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Parse(filepath.Join(dir, "wssignd.toml"), []byte(verifyBase+verify))
}

// TestBuildVerifyProfiles: a [verify.NAME] table (as the dev config writes
// it) becomes a profile that accepts what the sign side produces with the
// trusted key, refuses other keys, and keeps a replay cache.
func TestBuildVerifyProfiles(t *testing.T) {
	c, err := parseVerifyConfig(t, `
[verify.default]
trusted_certs = ["rsa2048.pem", "ecp256.pem"]
allow_users = ["*"]
[verify.strict]
trusted_certs = ["ecp256.pem"]
parts = ["Body", "Timestamp", "{http://www.w3.org/2005/08/addressing}To?"]
max_age = "1m"
subject_pattern = "^CN=wssignd test EC"
unsigned_faults = "accept"
allow_users = ["*"]
`)
	if err != nil {
		t.Fatal(err)
	}
	vp := c.Verify["default"]
	if vp.MaxAge.Seconds() != 300 || vp.FutureSkew.Seconds() != 60 || vp.MaxLifetime.Seconds() != 3600 || vp.UnsignedFaults != "reject" ||
		strings.Join(vp.Parts, ",") != "Body,Timestamp" || !filepath.IsAbs(vp.TrustedCerts[0]) {
		t.Errorf("defaults: %+v", vp)
	}
	profiles, err := buildVerifyProfiles(defaultSeams(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	k, cert := testutil.TestKey(t, "rsa2048")
	res, err := wss.Sign(context.Background(), testutil.ReadTestdata(t, "envelope-soap11.xml"), wss.Credential{Signer: k, Chain: []*x509.Certificate{cert}}, wss.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	def := profiles["default"]
	if !def.Access.Anyone || def.Verify.Replay == nil || len(def.Verify.RequiredParts) != 2 {
		t.Fatalf("profile %+v", def)
	}
	v, err := wss.Verify(context.Background(), res.Envelope, def.Verify)
	if err != nil || !v.Valid {
		t.Fatalf("default: %v %+v", err, v)
	}
	if v, _ := wss.Verify(context.Background(), res.Envelope, def.Verify); v.Valid || v.Code != wss.CodeReplay {
		t.Errorf("replay: %+v", v)
	}
	strict := profiles["strict"]
	if v, _ := wss.Verify(context.Background(), res.Envelope, strict.Verify); v.Valid || v.Code != wss.CodeUntrustedKey {
		t.Errorf("strict: %+v", v)
	}
	if p := strict.Verify.RequiredParts; len(p) != 3 || !p[2].Optional || p[2].Local != "To" || strict.Verify.UnsignedFaults != wss.UnsignedFaultsAccept {
		t.Errorf("strict options %+v", strict.Verify)
	}
	if profiles["default"].Verify.Replay == strict.Verify.Replay {
		t.Error("profiles share a replay cache")
	}
}

// TestVerifyConfigProblems: every bad verify setting is reported at once.
func TestVerifyConfigProblems(t *testing.T) {
	_, err := parseVerifyConfig(t, `
[verify.bad]
trusted_certs = ["missing.pem", "key.pem"]
subject_pattern = "("
parts = ["Body", "{urn:x}"]
max_age = "0.5s"
unsigned_faults = "maybe"
digest_methods = ["http://www.w3.org/2001/04/xmldsig-more#md5"]
replay_cache_size = -1
[verify.nobody]
`)
	if err == nil {
		t.Fatal("bad verify profiles accepted")
	}
	for _, want := range []string{
		"verify.bad.trusted_certs[0]", "verify.bad.trusted_certs[1]", "verify.bad.subject_pattern", "verify.bad.parts[1]",
		"verify.bad.max_age", "verify.bad.unsigned_faults", "verify.bad.digest_methods[0]", "verify.bad.replay_cache_size",
		"verify.nobody: trusts no one", "verify.nobody: allows nobody",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no problem reported for %s in:\n%v", want, err)
		}
	}
}

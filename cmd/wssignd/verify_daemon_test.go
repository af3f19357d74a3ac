package main

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/wssignd/wssignd/hsm/hsmtest"
	"github.com/wssignd/wssignd/internal/testutil"
)

// TestDaemonVerify: the whole path with keys on a SoftHSM2 token. What the
// daemon's sign profiles produce, its verify profile accepts over the
// socket; a strict profile refuses unsigned WS-Addressing headers; a
// profile that trusts only the other key refuses the signer.
func TestDaemonVerify(t *testing.T) {
	env := hsmtest.New(t)
	dir := shortDir(t)
	sock := filepath.Join(dir, "wssignd.sock")
	for name, c := range map[string]*x509.Certificate{"rsa.pem": env.RSA.Chain[0], "ec.pem": env.EC.Chain[0]} {
		if err := os.WriteFile(filepath.Join(dir, name), testutil.CertPEM(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := startDaemon(t, testConfig(env, sock, fmt.Sprintf(`
[verify.default]
trusted_certs = ["rsa.pem", "ec.pem"]
allow_unsigned_addressing = true
allow_users = ["%[1]d"]
[verify.strict]
trusted_certs = ["rsa.pem", "ec.pem"]
allow_users = ["%[1]d"]
[verify.ec-only]
trusted_certs = ["ec.pem"]
allow_users = ["%[1]d"]
`, os.Getuid())), sock)
	type verdict struct {
		Valid  bool
		Code   string
		Signer *struct{ Subject string }
		Signed []string
	}
	verify := func(profile, ctype string, msg []byte) verdict {
		t.Helper()
		resp, body := d.do(t, "POST", "/v1/soap/verify?profile="+profile, ctype, msg)
		if resp.StatusCode != 200 {
			t.Fatalf("verify %s: %d %s", profile, resp.StatusCode, body)
		}
		var v verdict
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		profile, file, ctype string
		cert                 *x509.Certificate
		strict, ecOnly       string // expected codes under the other profiles
	}{
		{"default", "envelope-soap11.xml", "text/xml", env.RSA.Chain[0], "", "untrusted-key"},
		{"default", "envelope-wsa.xml", "text/xml", env.RSA.Chain[0], "part-not-signed", "untrusted-key"},
		{"ecdsa", "envelope-soap12.xml", "application/soap+xml", env.EC.Chain[0], "", ""},
	} {
		resp, signed := d.do(t, "POST", "/v1/soap/sign?profile="+tc.profile, tc.ctype, testutil.ReadTestdata(t, tc.file))
		if resp.StatusCode != 200 {
			t.Fatalf("sign: %d %s", resp.StatusCode, signed)
		}
		v := verify("default", tc.ctype, signed)
		if !v.Valid || v.Signer == nil || v.Signer.Subject != tc.cert.Subject.String() || len(v.Signed) < 2 {
			t.Errorf("%s %s: %+v", tc.profile, tc.file, v)
		}
		// Each submission below is a replay for the profile that saw it
		// already, so use each profile once.
		for profile, want := range map[string]string{"strict": tc.strict, "ec-only": tc.ecOnly} {
			v := verify(profile, tc.ctype, signed)
			if v.Valid != (want == "") || v.Code != want {
				t.Errorf("%s %s under %s: %+v, want code %q", tc.profile, tc.file, profile, v, want)
			}
		}
		if v := verify("default", tc.ctype, signed); v.Valid || v.Code != "replay" {
			t.Errorf("%s %s resubmitted: %+v", tc.profile, tc.file, v)
		}
	}
}

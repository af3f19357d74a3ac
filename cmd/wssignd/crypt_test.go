package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wssignd/wssignd/hsm/hsmtest"
	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/internal/testutil"
	"github.com/wssignd/wssignd/wss"
)

func cryptBody(t *testing.T, env []byte) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<(\w+:)?Body[^>]*>(.*)</(\w+:)?Body>`).FindSubmatch(env)
	if m == nil {
		t.Fatalf("no Body in %s", env)
	}
	return string(m[2])
}

// TestDaemonEncryptDecrypt runs the daemon with its RSA key in SoftHSM2:
// an envelope encrypted with /v1/soap/encrypt for the token's certificate
// is decrypted by /v1/soap/decrypt inside the token. SoftHSM2 2.6 unwraps
// only RSA-OAEP with SHA-1 and MGF1-SHA-1, so the profiles here use
// rsa-oaep-mgf1p; the startup self-test reports that the token refuses the
// default rsa-oaep (SHA-256), and a message using it fails opaquely.
//
// It runs on a TPM token (tpm2-pkcs11) too, where a tampered wrapped key
// makes the token fail with CKR_GENERAL_ERROR: the known-answer check
// tells that from a token fault, so the request fails and the token stays
// online.
func TestDaemonEncryptDecrypt(t *testing.T) {
	for _, kind := range hsmtest.Kinds {
		t.Run(string(kind), func(t *testing.T) { testDaemonEncryptDecrypt(t, kind) })
	}
}

func testDaemonEncryptDecrypt(t *testing.T, kind hsmtest.Kind) {
	env := hsmtest.NewKind(t, kind)
	dir := shortDir(t)
	sock := filepath.Join(dir, "wssignd.sock")
	certFile := filepath.Join(dir, "rsa.pem")
	if err := os.WriteFile(certFile, testutil.CertPEM(env.RSA.Chain[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	uid := os.Getuid()
	extra := fmt.Sprintf(`
[encrypt.default]
recipient_cert = %[1]q
allow_recipient_header = true
allow_users = ["%[2]d"]
[encrypt.mgf1p]
recipient_cert = %[1]q
key_transport = "rsa-oaep-mgf1p"
key_reference = "SKI"
parts = ["Body", "{http://www.w3.org/2005/08/addressing}Action?"]
allow_users = ["%[2]d"]
[decrypt.default]
key = "rsa"
allow_users = ["%[2]d"]
`, certFile, uid)
	d := startDaemon(t, testConfig(env, sock, extra), sock)
	if n := d.logs.count("the token cannot unwrap keys with this key transport"); n != 0 {
		t.Errorf("the startup self-test reports %d key transports the token cannot unwrap; hsm decodes OAEP of any hash itself", n)
	}
	for _, file := range []string{"envelope-soap11.xml", "envelope-wsa.xml"} {
		plain := testutil.ReadTestdata(t, file)
		resp, enc := d.do(t, "POST", "/v1/soap/encrypt?profile=mgf1p", "text/xml", plain)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: encrypt: %d %s", file, resp.StatusCode, enc)
		}
		resp, dec := d.do(t, "POST", "/v1/soap/decrypt?profile=default", "text/xml", enc)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: decrypt: %d %s", file, resp.StatusCode, dec)
		}
		if cryptBody(t, dec) != cryptBody(t, plain) {
			t.Errorf("%s: Body differs after the round trip:\n%s", file, dec)
		}
	}
	if d.logs.count("operation=decrypt") != 2 || d.logs.count("outcome=decrypted") != 2 {
		t.Errorf("want two decrypt audit events")
	}

	// The default profile (rsa-oaep, SHA-256 with MGF1-SHA-256): SoftHSM2
	// 2.6 refuses those OAEP parameters, so hsm unwraps with raw RSA in the
	// token and decodes OAEP in constant time; with or without the
	// recipient header the round trip works.
	plain := testutil.ReadTestdata(t, "envelope-soap11.xml")
	req, _ := http.NewRequest("POST", "http://wssignd/v1/soap/encrypt?profile=default", strings.NewReader(string(plain)))
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("Wssignd-Recipient-Cert", base64.StdEncoding.EncodeToString(env.RSA.Chain[0].Raw))
	r, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hdrEnc, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || !strings.Contains(string(hdrEnc), wss.AlgRSAOAEP) {
		t.Fatalf("encrypt with the recipient header: %d %s", r.StatusCode, hdrEnc)
	}
	_, enc := d.do(t, "POST", "/v1/soap/encrypt?profile=default", "text/xml", plain)
	for _, msg := range [][]byte{hdrEnc, enc} {
		resp, dec := d.do(t, "POST", "/v1/soap/decrypt?profile=default", "text/xml", msg)
		if resp.StatusCode != 200 || cryptBody(t, dec) != cryptBody(t, plain) {
			t.Errorf("rsa-oaep SHA-256 round trip on SoftHSM2: %d %s", resp.StatusCode, dec)
		}
	}
	// A tampered wrapped key fails opaquely: one code, no token error text.
	bad := tamperCipherValue(t, enc)
	resp, body := d.do(t, "POST", "/v1/soap/decrypt?profile=default", "text/xml", bad)
	if resp.StatusCode != 422 || !strings.Contains(string(body), `"code":"decryption-failed"`) || strings.Contains(string(body), "CKR_") {
		t.Errorf("tampered key transport: %d %s", resp.StatusCode, body)
	}
	if resp, body := d.do(t, "GET", "/readyz", "", nil); resp.StatusCode != 200 {
		t.Errorf("readyz after a tampered message: %d %s", resp.StatusCode, body)
	}
}

// tamperCipherValue flips a bit in the first xenc:CipherValue (the
// EncryptedKey's, which comes first in the Security header).
func tamperCipherValue(t *testing.T, msg []byte) []byte {
	t.Helper()
	s := string(msg)
	i := strings.Index(s, "CipherValue>")
	if i < 0 {
		t.Fatal("no CipherValue")
	}
	i += len("CipherValue>")
	j := strings.Index(s[i:], "<")
	raw, err := base64.StdEncoding.DecodeString(s[i : i+j])
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x40
	return []byte(s[:i] + base64.StdEncoding.EncodeToString(raw) + s[i+j:])
}

// TestCryptConfig checks the [encrypt.*] and [decrypt.*] validation.
func TestCryptConfig(t *testing.T) {
	dir := t.TempDir()
	certFile := filepath.Join(dir, "r.pem")
	if err := os.WriteFile(certFile, testutil.ReadTestdata(t, "keys/rsa2048.crt"), 0o600); err != nil {
		t.Fatal(err)
	}
	pin := filepath.Join(dir, "pin")
	_ = os.WriteFile(pin, []byte("1234"), 0o600)
	base := fmt.Sprintf(`modules = ["/m.so"]
[tokens.t]
module = "/m.so"
label = "t"
pin_file = %q
[keys.k]
token = "t"
label = "k"
[profiles.p]
key = "k"
allow_users = ["*"]
`, pin)
	for _, tc := range []struct {
		name, toml, want string
	}{
		{"minimal", `[encrypt.e]
recipient_cert = "r.pem"
allow_users = ["*"]
[decrypt.d]
key = "k"
allow_users = ["*"]`, ""},
		{"no recipient", "[encrypt.e]\nallow_users = [\"*\"]", "encrypt.e: set recipient_cert, allow_recipient_header or both"},
		{"cbc without opt-in", "[encrypt.e]\nrecipient_cert = \"r.pem\"\ndata_algorithm = \"aes128-cbc\"\nallow_users = [\"*\"]", "encrypt.e.data_algorithm: aes128-cbc needs allow_cbc = true"},
		{"rsa15 without opt-in", "[encrypt.e]\nrecipient_cert = \"r.pem\"\nkey_transport = \"rsa-1_5\"\nallow_users = [\"*\"]", "encrypt.e.key_transport: the legacy rsa-1_5 needs allow_rsa15 = true"},
		{"unknown transport", "[encrypt.e]\nrecipient_cert = \"r.pem\"\nkey_transport = \"rsa-kem\"\nallow_users = [\"*\"]", "encrypt.e.key_transport: must be one of"},
		{"bad reference", "[encrypt.e]\nrecipient_cert = \"r.pem\"\nkey_reference = \"KeyName\"\nallow_users = [\"*\"]", "encrypt.e.key_reference"},
		{"missing cert file", "[encrypt.e]\nrecipient_cert = \"nope.pem\"\nallow_users = [\"*\"]", "encrypt.e.recipient_cert"},
		{"nobody", "[encrypt.e]\nrecipient_cert = \"r.pem\"", "encrypt.e: allows nobody"},
		{"decrypt unknown key", "[decrypt.d]\nkey = \"x\"\nallow_users = [\"*\"]", `decrypt.d.key: no key named "x"`},
		{"decrypt cbc without opt-in", "[decrypt.d]\nkey = \"k\"\ndata_algorithms = [\"aes256-cbc\"]\nallow_users = [\"*\"]", "decrypt.d.data_algorithms[0]: aes256-cbc needs allow_cbc = true"},
		{"decrypt rsa15 without opt-in", "[decrypt.d]\nkey = \"k\"\nkey_transports = [\"rsa-1_5\"]\nallow_users = [\"*\"]", "decrypt.d.key_transports[0]: the legacy rsa-1_5 needs allow_rsa15 = true"},
		{"signed body without verify profile", "[decrypt.d]\nkey = \"k\"\nrequire_signed_body = true\nallow_users = [\"*\"]", "decrypt.d.verify_profile: require_signed_body needs a verify_profile"},
		{"unknown verify profile", "[decrypt.d]\nkey = \"k\"\nrequire_signed_body = true\nverify_profile = \"v\"\nallow_users = [\"*\"]", `decrypt.d.verify_profile: no verify profile named "v"`},
		{"verify profile without require", "[decrypt.d]\nkey = \"k\"\nverify_profile = \"v\"\nallow_users = [\"*\"]", "decrypt.d.verify_profile: applies only with require_signed_body = true"},
		{"unknown setting", "[decrypt.d]\nkey = \"k\"\ncolour = \"red\"\nallow_users = [\"*\"]", "decrypt.d.colour: unknown setting"},
	} {
		_, err := config.Parse(filepath.Join(dir, "w.toml"), []byte(base+tc.toml))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

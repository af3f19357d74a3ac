package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm"
	"github.com/wssignd/wssignd/hsm/hsmtest"
	"github.com/wssignd/wssignd/internal/daemon"
	"github.com/wssignd/wssignd/internal/testutil"
)

// tpmDaemon starts a daemon on a fresh TPM token (hsmtest.NewTPM) with testConfig plus extra
// in the [tokens.t] table's scope (extraToken) and after it (extra).
func tpmDaemon(t *testing.T, tokenExtra, extra string, opts ...daemon.Option) (*testDaemon, *hsmtest.Env, string) {
	t.Helper()
	env := hsmtest.NewTPM(t)
	dir := shortDir(t)
	sock := filepath.Join(dir, "s.sock")
	cfg := testConfig(env, sock, extra)
	if tokenExtra != "" {
		cfg = strings.Replace(cfg, "[keys.rsa]", tokenExtra+"\n[keys.rsa]", 1)
	}
	return startDaemon(t, cfg, sock, opts...), env, cfg
}

// TestTPMDaemonRecoversFromTPMRestart: under a steady signing load the TPM and its resource
// manager are killed. Requests fail fast with 503 token-unavailable, /readyz turns 503 within the
// keep-alive period; after the TPM is back (same state) the daemon signs again without a restart
// or SIGHUP. Every signature the daemon returned (up to 60) verifies with xmlsec1.
func TestTPMDaemonRecoversFromTPMRestart(t *testing.T) {
	d, env, _ := tpmDaemon(t, `keep_alive = "1s"`, "", daemon.WithTokenRetryMax(time.Second))
	l := startHTTPLoad(t, d, 3)
	until(t, l.progress, 60*time.Second, "signing before the outage", func() bool { return l.ok.Load() >= 10 })

	killed := time.Now()
	env.TPM.Kill()
	okAtKill := l.ok.Load()
	until(t, l.progress, 30*time.Second, "503 during the outage", func() bool { return l.unavailable.Load() >= 1 })
	first503 := time.Since(killed)
	until(t, nil, 30*time.Second, "readyz 503 during the outage", func() bool {
		resp, _ := d.do(t, "GET", "/readyz", "", nil)
		return resp.StatusCode == 503
	})
	ready503 := time.Since(killed)
	until(t, l.progress, 30*time.Second, "many fast 503s", func() bool { return l.unavailable.Load() >= 20 })
	if n := l.ok.Load() - okAtKill; n > 3 {
		t.Errorf("%d signatures succeeded after the TPM was killed (in flight at most 3)", n)
	}

	restarted := time.Now()
	env.TPM.Start()
	okBefore := l.ok.Load()
	until(t, l.progress, 90*time.Second, "signing after the TPM restart", func() bool { return l.ok.Load() >= okBefore+1 })
	recovered := time.Since(restarted)
	until(t, l.progress, 30*time.Second, "steady signing after the TPM restart", func() bool { return l.ok.Load() >= okBefore+10 })
	l.halt()
	resp, body := d.do(t, "GET", "/readyz", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"online"`) {
		t.Errorf("readyz after the restart: %d %s", resp.StatusCode, body)
	}
	for _, b := range l.bad {
		t.Error(b)
	}
	for i, signed := range l.signed {
		if out, ok := testutil.XMLSec1Verify(t, signed, env.RSA.Chain[0]); !ok {
			t.Errorf("response %d does not verify with xmlsec1: %s", i, out)
		}
	}
	t.Logf("TPM kill under load: first 503 after %v, /readyz 503 after %v; TPM restart: first signature after %v; %d signed, %d token-unavailable, %d checked with xmlsec1",
		first503.Round(time.Millisecond), ready503.Round(time.Millisecond), recovered.Round(time.Millisecond),
		l.ok.Load(), l.unavailable.Load(), len(l.signed))

	// Without load, the keep-alive probe (every second) finds the dead TPM.
	killed = time.Now()
	env.TPM.Kill()
	until(t, nil, 30*time.Second, "readyz 503 by keep-alive", func() bool {
		resp, _ := d.do(t, "GET", "/readyz", "", nil)
		return resp.StatusCode == 503
	})
	idle503 := time.Since(killed)
	restarted = time.Now()
	env.TPM.Start()
	until(t, nil, 60*time.Second, "readyz 200 after the second restart", func() bool {
		resp, _ := d.do(t, "GET", "/readyz", "", nil)
		return resp.StatusCode == 200
	})
	idleRecovered := time.Since(restarted)
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	resp, signed := d.do(t, "POST", "/v1/soap/sign?profile=default", "text/xml", in)
	if resp.StatusCode != 200 {
		t.Fatalf("sign after the second restart: %d %s", resp.StatusCode, signed)
	}
	if out, ok := testutil.XMLSec1Verify(t, signed, env.RSA.Chain[0]); !ok {
		t.Errorf("signature after the second restart does not verify with xmlsec1: %s", out)
	}
	t.Logf("TPM kill without load (keep_alive 1s): /readyz 503 after %v; TPM restart: /readyz 200 after %v",
		idle503.Round(time.Millisecond), idleRecovered.Round(time.Millisecond))
}

// TestTPMDaemonStartsWhileLocked: a TPM in dictionary-attack lockout refuses even the right PIN
// with CKR_PIN_LOCKED. The daemon starts anyway (no exit 78), reports the token pin-locked on
// /readyz, writes no pin-rejected marker, and after the operator clears the lockout a SIGHUP
// brings the token online.
func TestTPMDaemonStartsWhileLocked(t *testing.T) {
	env := hsmtest.NewTPM(t)
	if err := env.Token.Close(); err != nil {
		t.Fatal(err)
	}
	env.TPM.SetDictionaryAttack(1, time.Hour, time.Hour)
	dir := shortDir(t)
	wrong := filepath.Join(dir, "wrong-pin")
	if err := os.WriteFile(wrong, []byte("not-the-pin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := env.Config
	bad.PINFile = wrong
	if _, err := hsm.Open(bad); !errors.Is(err, hsm.ErrPINRejected) {
		t.Fatalf("Open with a wrong PIN: %v", err)
	}
	if !env.TPM.InLockout() {
		t.Fatal("the TPM is not in lockout")
	}

	sock := filepath.Join(dir, "s.sock")
	d := startDaemon(t, testConfig(env, sock, ""), sock)
	resp, body := d.do(t, "GET", "/readyz", "", nil)
	if resp.StatusCode != 503 || !strings.Contains(string(body), `"pin-locked"`) {
		t.Errorf("readyz while the TPM is locked out: %d %s", resp.StatusCode, body)
	}
	if markers, _ := filepath.Glob(filepath.Join(dir, "state", "pin-rejected-*.json")); len(markers) != 0 {
		t.Errorf("a lockout left a pin-rejected marker: %v", markers)
	}
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	if resp, body := d.do(t, "POST", "/v1/soap/sign?profile=default", "text/xml", in); resp.StatusCode != 503 {
		t.Errorf("sign while locked: %d %s", resp.StatusCode, body)
	}

	env.TPM.ClearLockout()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	until(t, nil, 60*time.Second, "reload after the lockout was cleared", func() bool { return d.logs.count("configuration reloaded") == 1 })
	resp, body = d.do(t, "GET", "/readyz", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("readyz after clearing the lockout and SIGHUP: %d %s", resp.StatusCode, body)
	}
	resp, signed := d.do(t, "POST", "/v1/soap/sign?profile=default", "text/xml", in)
	if resp.StatusCode != 200 {
		t.Fatalf("sign after the lockout: %d %s", resp.StatusCode, signed)
	}
	if out, ok := testutil.XMLSec1Verify(t, signed, env.RSA.Chain[0]); !ok {
		t.Errorf("xmlsec1: %s", out)
	}
}

// TestTPMDaemonReloadSeesNewKey: after the daemon started, another process ("wssignd token"
// generate, csr, import-cert) adds a key with its certificate to the TPM token. tpm2-pkcs11 reads
// its store at C_Initialize, so the running module does not see it; a SIGHUP with a
// configuration naming the key re-initialises the module and serves the key, while the old
// keys keep signing.
func TestTPMDaemonReloadSeesNewKey(t *testing.T) {
	bin := buildDaemon(t)
	d, env, cfg := tpmDaemon(t, "", "")
	dir := filepath.Dir(d.socket)
	tokenArgs := []string{"-module", env.Config.Module, "-label", env.Config.TokenLabel, "-pin-file", env.Config.PINFile, "-key-label", "later", "-id", "03"}
	run := func(cmd string, extra ...string) string {
		t.Helper()
		c := exec.Command(bin, append(append([]string{"token", cmd}, tokenArgs...), extra...)...)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("wssignd token %s: %v\n%s", cmd, err, out)
		}
		return string(out)
	}
	run("generate", "-type", "ec", "-curve", "P-256")
	csrFile := filepath.Join(dir, "later.csr")
	run("csr", "-subject", "CN=added later", "-out", csrFile)
	certFile := filepath.Join(dir, "later.pem")
	if err := os.WriteFile(certFile, issueFromCSR(t, csrFile), 0o600); err != nil {
		t.Fatal(err)
	}
	run("import-cert", "-cert", certFile)

	extra := fmt.Sprintf("[keys.later]\ntoken = \"t\"\nlabel = \"later\"\nid = \"03\"\n[profiles.later]\nkey = \"later\"\nallow_users = [\"%d\"]\n", os.Getuid())
	if err := os.WriteFile(filepath.Join(dir, "wssignd.toml"), []byte(cfg+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	until(t, nil, 60*time.Second, "reload", func() bool {
		return d.logs.count("configuration reloaded")+d.logs.count("reload refused") == 1
	})
	if d.logs.count("configuration reloaded") != 1 {
		t.Fatal("the reload was refused: the key added by another process was not found")
	}
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	for _, profile := range []string{"later", "default", "ecdsa"} {
		resp, body := d.do(t, "POST", "/v1/soap/sign?profile="+profile, "text/xml", in)
		if resp.StatusCode != 200 {
			t.Fatalf("sign with profile %s after the reload: %d %s", profile, resp.StatusCode, body)
		}
	}
}

// issueFromCSR has a software CA (made here) issue a certificate for the request in csrFile
// and returns the certificate and the CA certificate as PEM.
func issueFromCSR(t *testing.T, csrFile string) []byte {
	t.Helper()
	b, err := os.ReadFile(csrFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", csrFile)
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "reload test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: csr.Subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, csr.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
}

// TestTPMDaemonPSSAndRawSign: on the TPM token, an RSA-PSS profile signs (checked with
// crypto/rsa over the canonical forms), and raw digest signing gives PKCS #1 v1.5, PSS and ECDSA
// signatures that verify with the keys' certificates.
func TestTPMDaemonPSSAndRawSign(t *testing.T) {
	uid := os.Getuid()
	env := hsmtest.SharedTPM(t)
	dir := shortDir(t)
	sock := filepath.Join(dir, "s.sock")
	cfg := testConfig(env, sock, fmt.Sprintf(`[profiles.pss]
key = "rsa"
signature_method = "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"
allow_users = ["%d"]
`, uid))
	raw := fmt.Sprintf("raw_sign_users = [\"%d\"]\n", uid)
	cfg = strings.Replace(cfg, "[keys.rsa]\ntoken = \"t\"\n", "[keys.rsa]\ntoken = \"t\"\n"+raw, 1)
	cfg = strings.Replace(cfg, "[keys.ec]\ntoken = \"t\"\n", "[keys.ec]\ntoken = \"t\"\n"+raw, 1)
	d := startDaemon(t, cfg, sock)

	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	resp, signed := d.do(t, "POST", "/v1/soap/sign?profile=pss", "text/xml", in)
	if resp.StatusCode != 200 {
		t.Fatalf("pss: %d %s", resp.StatusCode, signed)
	}
	if err := pssVerify(signed, env.RSA.Chain[0].PublicKey.(*rsa.PublicKey)); err != nil {
		t.Errorf("rsa-pss signature: %v", err)
	}

	digest := sha256.Sum256([]byte("raw signing on a TPM"))
	for _, tc := range []struct{ key, scheme string }{{"rsa", "pkcs1v15"}, {"rsa", "pss"}, {"ec", "ecdsa"}} {
		body := fmt.Sprintf(`{"digest":%q,"hash":"SHA-256","scheme":%q}`, base64.StdEncoding.EncodeToString(digest[:]), tc.scheme)
		resp, out := d.do(t, "POST", "/v1/keys/"+tc.key+"/sign", "application/json", []byte(body))
		if resp.StatusCode != 200 {
			t.Fatalf("raw %s %s: %d %s", tc.key, tc.scheme, resp.StatusCode, out)
		}
		var r struct{ Signature []byte }
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatal(err)
		}
		var err error
		switch tc.scheme {
		case "pkcs1v15":
			err = rsa.VerifyPKCS1v15(env.RSA.Chain[0].PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], r.Signature)
		case "pss":
			err = rsa.VerifyPSS(env.RSA.Chain[0].PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], r.Signature, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		case "ecdsa":
			if !ecdsa.VerifyASN1(env.EC.Chain[0].PublicKey.(*ecdsa.PublicKey), digest[:], r.Signature) {
				err = errors.New("ecdsa signature does not verify")
			}
		}
		if err != nil {
			t.Errorf("raw %s %s: %v", tc.key, tc.scheme, err)
		}
	}
}

// TestDevSetupTPM is `make run TOKEN=tpm` without make: dev-setup -token tpm on a TPM (here a
// software one; the environment names it as scripts/dev-tpm.sh does) makes the token, its keys
// and the development config, which serves: the default profile signs and verify accepts it;
// a second dev-setup reuses the token.
func TestDevSetupTPM(t *testing.T) {
	hsmtest.StartTPM(t)
	dir := shortDir(t)
	t.Setenv("TPM2_PKCS11_STORE", filepath.Join(dir, "store"))
	sock := filepath.Join(dir, "s.sock")
	for range 2 {
		if err := daemon.DevSetup(dir, sock, "tpm"); err != nil {
			t.Fatalf("dev-setup -token tpm: %v", err)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "wssignd.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), "libtpm2_pkcs11") || !strings.Contains(string(cfg), "TPM 2.0") {
		t.Fatalf("the development config does not use the TPM module:\n%s", cfg)
	}
	d := startDaemon(t, string(cfg), sock)
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	resp, signed := d.do(t, "POST", "/v1/soap/sign?profile=default", "text/xml", in)
	if resp.StatusCode != 200 {
		t.Fatalf("sign: %d %s", resp.StatusCode, signed)
	}
	resp, body := d.do(t, "POST", "/v1/soap/verify?profile=default", "text/xml", signed)
	var verdict struct{ Valid bool }
	if resp.StatusCode != 200 || json.Unmarshal(body, &verdict) != nil || !verdict.Valid {
		t.Fatalf("verify: %d %s", resp.StatusCode, body)
	}
}

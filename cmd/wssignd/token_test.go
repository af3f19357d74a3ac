package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm"
	"github.com/wssignd/wssignd/hsm/hsmtest"
	"github.com/wssignd/wssignd/internal/testutil"
)

// TestTokenProvisioning drives "wssignd token" end to end on a fresh token of each kind
// (SoftHSM2, TPM): generate RSA and EC keys, make certificate requests signed by them, have a
// (software) CA issue certificates, import each with the CA certificate, list every object, and
// find the keys as the daemon does.
func TestTokenProvisioning(t *testing.T) {
	for _, kind := range hsmtest.Kinds {
		t.Run(string(kind), func(t *testing.T) { testTokenProvisioning(t, kind) })
	}
}

func testTokenProvisioning(t *testing.T, kind hsmtest.Kind) {
	var module, pinFile string
	if kind == hsmtest.TPM2 {
		tt := hsmtest.StartTPM(t).AddToken("prov")
		module, pinFile = tt.Module, tt.PINFile
	} else {
		if testing.Short() {
			t.Skip("token tests are skipped in -short mode")
		}
		soft, err := hsm.InitSoftHSMToken(t.TempDir(), "prov")
		if errors.Is(err, hsm.ErrSoftHSMNotInstalled) && !testutil.InCI() {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("SOFTHSM2_CONF", soft.ConfigFile)
		module, pinFile = soft.Module, soft.PINFile
	}
	dir := t.TempDir()
	run := func(args ...string) (string, string, int) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := tokenRun(args, &out, &errOut)
		return out.String(), errOut.String(), code
	}
	tokenArgs := []string{"-module", module, "-label", "prov", "-pin-file", pinFile}
	cmd := func(name string, extra ...string) []string {
		return append(append([]string{name}, tokenArgs...), extra...)
	}

	// A CA outside the token.
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)

	certs := map[string]*x509.Certificate{}
	for i, k := range []struct{ label, id, typ string }{
		{"sig-rsa", "0a", "rsa"},
		{"sig-ec", "0b", "ec"},
	} {
		keyArgs := []string{"-key-label", k.label, "-id", k.id}
		if out, errOut, code := run(cmd("generate", append(keyArgs, "-type", k.typ, "-bits", "2048", "-curve", "P-384")...)...); code != 0 {
			t.Fatalf("generate %s: %d %s %s", k.label, code, out, errOut)
		}
		if _, errOut, code := run(cmd("generate", append(keyArgs, "-type", k.typ, "-bits", "2048")...)...); code != 1 || !strings.Contains(errOut, "already") {
			t.Errorf("generating %s twice: %d %s", k.label, code, errOut)
		}
		csrFile := filepath.Join(dir, k.label+".csr")
		if _, errOut, code := run(cmd("csr", append(keyArgs, "-subject", `CN=invoice signer `+k.typ+`,O=Example\, Inc.,C=DE`, "-dns", "signer.example", "-out", csrFile)...)...); code != 0 {
			t.Fatalf("csr %s: %d %s", k.label, code, errOut)
		}
		b, _ := os.ReadFile(csrFile)
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
			t.Fatalf("csr %s: not a PEM request: %q", k.label, b)
		}
		csr, err := x509.ParseCertificateRequest(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if err := csr.CheckSignature(); err != nil {
			t.Errorf("csr %s: signature: %v", k.label, err)
		}
		if csr.Subject.CommonName != "invoice signer "+k.typ || len(csr.Subject.Organization) != 1 || csr.Subject.Organization[0] != "Example, Inc." || len(csr.DNSNames) != 1 {
			t.Errorf("csr %s: subject %v dns %v", k.label, csr.Subject, csr.DNSNames)
		}
		leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(10 + i)), Subject: csr.Subject, DNSNames: csr.DNSNames,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
		leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, csr.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		certs[k.label], _ = x509.ParseCertificate(leafDER)
		chainFile := filepath.Join(dir, k.label+".pem")
		chainPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
		if err := os.WriteFile(chainFile, chainPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		for range 2 { // importing the same chain again changes nothing
			if out, errOut, code := run(cmd("import-cert", append(keyArgs, "-cert", chainFile)...)...); code != 0 {
				t.Fatalf("import-cert %s: %d %s %s", k.label, code, out, errOut)
			}
		}
	}
	// A certificate of another key is refused.
	wrong := filepath.Join(dir, "wrong.pem")
	if err := os.WriteFile(wrong, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs["sig-ec"].Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := run(cmd("import-cert", "-key-label", "sig-rsa", "-id", "0a", "-cert", wrong)...); code != 1 || !strings.Contains(errOut, "does not match") {
		t.Errorf("import of another key's certificate: %d %s", code, errOut)
	}

	out, errOut, code := run(cmd("list")...)
	if code != 0 {
		t.Fatalf("list: %d %s", code, errOut)
	}
	for _, want := range []string{
		`token "prov"`,
		`private-key label "sig-rsa" id 0a RSA sensitive=true extractable=false`,
		`private-key label "sig-ec" id 0b EC sensitive=true extractable=false`,
		`certificate label "test CA" id ` + hex.EncodeToString(hsm.IssuerCertificateID(ca)),
		`certificate label "sig-rsa" id 0a subject "CN=invoice signer rsa,O=Example`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
	if kind == hsmtest.TPM2 && !strings.Contains(out, `serial "0000000000000000" (not unique: select by label)`) {
		t.Errorf("list output does not mark the all-zero serial:\n%s", out)
	}
	if strings.ContainsRune(out, 0) {
		t.Errorf("list output holds NUL padding:\n%q", out)
	}
	if n := strings.Count(out, `certificate label "test CA"`); n != 1 {
		t.Errorf("the CA certificate is on the token %d times, want once:\n%s", n, out)
	}
	if out, _, code := run("list", "-module", module); code != 0 || !strings.Contains(out, `token "prov"`) || strings.Contains(out, "objects") {
		t.Errorf("list without a token and PIN: %d %s", code, out)
	}
	if _, _, code := run("frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}

	// The daemon's view: keys with their chains, generated on the token, never extractable.
	tok, err := hsm.Open(hsm.Config{Module: module, TokenLabel: "prov", PINFile: pinFile})
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	for label, id := range map[string]byte{"sig-rsa": 0x0a, "sig-ec": 0x0b} {
		key, err := tok.FindKey(hsm.KeyRef{Label: label, ID: []byte{id}})
		if err != nil {
			t.Fatal(err)
		}
		a := key.Attributes
		if len(key.Chain) != 2 || !key.Chain[0].Equal(certs[label]) || !key.Chain[1].Equal(ca) {
			t.Errorf("%s: chain %v", label, key.Chain)
		}
		if !a.Sensitive || a.Extractable || !a.AlwaysSensitive || !a.NeverExtractable {
			t.Errorf("%s: attributes %+v", label, a)
		}
	}
}

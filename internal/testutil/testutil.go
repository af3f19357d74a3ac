// Package testutil holds helpers shared by the test suites: external tool
// checks that fail (never skip) in CI, and xmlsec1 as the independent
// verifier of signed envelopes.
package testutil

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// InCI reports whether the suite runs in CI (CI=true), where a missing tool
// fails the suite instead of skipping.
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireTool returns the path of tool, or stops the test: t.Fatal in CI,
// t.Skip elsewhere, naming the Debian package that provides it. Under
// `go test -short` (the fast loop of pure-Go tests) it always skips: tests
// that need an outside tool are integration tests.
func RequireTool(t testing.TB, tool, pkg string) string {
	t.Helper()
	SkipIfShort(t, tool)
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	msg := tool + " not found: apt-get install -y " + pkg
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// SkipIfShort skips an integration test (one that needs what, an outside
// tool, a token or a built daemon) under `go test -short`.
func SkipIfShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: needs " + what)
	}
}

// RepoRoot returns the repository root (where go.mod is).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the repository root")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ReadTestdata reads a file under testdata/ at the repository root.
func ReadTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(RepoRoot(t), "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKey loads the test-only key pair testdata/keys/<name>.{key,crt}
// (PKCS #8 key, one certificate) into memory.
func TestKey(t testing.TB, name string) (crypto.Signer, *x509.Certificate) {
	t.Helper()
	kb, _ := pem.Decode(ReadTestdata(t, "keys/"+name+".key"))
	cb, _ := pem.Decode(ReadTestdata(t, "keys/"+name+".crt"))
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
	return k.(crypto.Signer), c
}

// CertPEM encodes a certificate as PEM.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// XMLSec1IDAttrs are the --id-attr flags that make xmlsec1 resolve the
// wsu:Id attributes of the elements WS-Security signs. xmlsec1 matches the
// attribute by local name, so "Id" covers wsu:Id.
var XMLSec1IDAttrs = []string{
	"--id-attr:Id", "Body",
	"--id-attr:Id", "Timestamp",
	"--id-attr:Id", "BinarySecurityToken",
	"--id-attr:Id", "UsernameToken",
	"--id-attr:Id", "Action",
	"--id-attr:Id", "MessageID",
	"--id-attr:Id", "To",
	"--id-attr:Id", "ReplyTo",
	"--id-attr:Id", "From",
	"--id-attr:Id", "FaultTo",
	"--id-attr:Id", "RelatesTo",
	"--id-attr:Id", "ACATransmitterManifestReqDtl",
	"--id-attr:Id", "ACABusinessHeader",
	"--id-attr:Id", "SignatureConfirmation",
}

// XMLSec1Verify has xmlsec1 verify the signature in signed with the public
// key of cert. It returns xmlsec1's combined output and whether it accepted.
func XMLSec1Verify(t testing.TB, signed []byte, cert *x509.Certificate) (string, bool) {
	t.Helper()
	xmlsec := RequireTool(t, "xmlsec1", "xmlsec1")
	// xmlsec1 splits key file names at commas, which t.TempDir() names of
	// subtests may contain: use a directory of our own naming.
	dir, err := os.MkdirTemp("", "xmlsec")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	doc := filepath.Join(dir, "signed.xml")
	crt := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(doc, signed, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crt, CertPEM(cert), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--verify", "--pubkey-cert-pem", crt}, XMLSec1IDAttrs...)
	args = append(args, doc)
	out, err := exec.Command(xmlsec, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err == nil && strings.Contains(string(out), "OK")
}

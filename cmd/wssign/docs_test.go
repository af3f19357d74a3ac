package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wssignd/wssignd/internal/testutil"
)

// snippets returns the fenced code blocks of docs/clients.md in the given
// language, in order.
func snippets(t *testing.T, lang string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "docs", "clients.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?ms)^```" + regexp.QuoteMeta(lang) + "\n(.*?)^```\n")
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	if len(out) == 0 {
		t.Fatalf("docs/clients.md has no %s snippet", lang)
	}
	return out
}

// snippetDir is a working directory with request.xml, as the snippets
// expect.
func snippetDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "request.xml"), testutil.ReadTestdata(t, "envelope-soap11.xml"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDocsPython runs the first Python snippet of docs/clients.md against
// a server on a Unix socket: it signs request.xml (accepted by xmlsec1),
// lists the keys and reports a refusal by its problem code.
func TestDocsPython(t *testing.T) {
	py := testutil.RequireTool(t, "python3", "python3")
	srv := startServer(t, false)
	dir := snippetDir(t)
	cmd := exec.Command(py, "-")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(snippets(t, "python")[0])
	cmd.Env = append(os.Environ(), "WSSIGN_SOCKET="+srv.socket)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python snippet: %v\n%s", err, out)
	}
	want := []string{"signed with key rsa certificate serial " + certSerialHex(t, srv), "ec EC-P-256 ", "rsa RSA-2048 ", "refused: forbidden"}
	for _, w := range want {
		if !strings.Contains(string(out), w) {
			t.Errorf("python output lacks %q:\n%s", w, out)
		}
	}
	signed, err := os.ReadFile(filepath.Join(dir, "signed.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if xo, ok := testutil.XMLSec1Verify(t, signed, srv.keys.Creds["rsa"].Chain[0]); !ok {
		t.Errorf("xmlsec1 rejects the python snippet's signed.xml: %s", xo)
	}
	// The requests-unixsocket variant needs a package that may not be
	// installed: check its syntax only.
	for i, s := range snippets(t, "python")[1:] {
		c := exec.Command(py, "-c", "import ast, sys; ast.parse(sys.stdin.read())")
		c.Stdin = strings.NewReader(s)
		if out, err := c.CombinedOutput(); err != nil {
			t.Errorf("python snippet %d does not parse: %v\n%s", i+2, err, out)
		}
	}
}

func certSerialHex(t *testing.T, srv *testServer) string {
	return srv.keys.Creds["rsa"].Chain[0].SerialNumber.Text(16)
}

// TestDocsJava runs the Java snippet (single-file source launch, JDK 16+)
// against a server on a Unix socket. Java is not a build dependency of
// wssignd, so the test skips where no JDK is installed, CI included.
func TestDocsJava(t *testing.T) {
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skip("no JDK: the Java snippet is not run")
	}
	srv := startServer(t, false)
	dir := snippetDir(t)
	src := filepath.Join(dir, "Wssignd.java")
	if err := os.WriteFile(src, []byte(snippets(t, "java")[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(java, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "WSSIGN_SOCKET="+srv.socket)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("java snippet: %v\n%s", err, out)
	}
	if want := "signed with rsa serial " + certSerialHex(t, srv); !strings.Contains(string(out), want) {
		t.Errorf("java output %q lacks %q", out, want)
	}
	signed, err := os.ReadFile(filepath.Join(dir, "signed.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if xo, ok := testutil.XMLSec1Verify(t, signed, srv.keys.Creds["rsa"].Chain[0]); !ok {
		t.Errorf("xmlsec1 rejects the java snippet's signed.xml: %s", xo)
	}
}

// TestDocsGo type-checks (go vet) the Go snippet against this module's api
// package, so the documented client calls keep matching the code.
func TestDocsGo(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not found: %v", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(snippets(t, "go")[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gobin, "vet", src)
	cmd.Dir = testutil.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the Go snippet does not pass go vet: %v\n%s", err, out)
	}
}

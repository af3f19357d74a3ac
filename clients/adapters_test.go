package clients_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wssignd/wssignd/internal/testutil"
)

// What the README examples print against the honest service (which only
// greets a request whose signature wssignd accepted, naming its signer) and
// against the one that alters its signed responses.
const (
	wantGreeting = "Hello, Ada; signed by CN=wssignd development RSA"
	wantRefusal  = "wssignd refused: digest-mismatch"
)

// soap12 is a SOAP 1.2 envelope, which the Python and Node adapters sign
// and verify directly (the spyne service speaks SOAP 1.1).
const soap12 = `<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><greet xmlns="urn:wssignd:test:greeter"><name>Ada</name></greet></env:Body></env:Envelope>`

// The profiles appended to the configuration "wssignd dev-setup" writes:
// the client signs with profile default (dev-rsa) and accepts responses
// signed by the service's key only (verify.partner); the service accepts
// requests signed by the client's key only (verify.from-client) and signs
// with dev-ec (profiles.service).
const extraConfig = `
[profiles.service]
key = "dev-ec"
parts = ["Body", "Timestamp"]
allow_users = ["%[1]s"]

[verify.from-client]
trusted_certs = ["certs/dev-rsa.pem"]
allow_users = ["%[1]s"]

[verify.partner]
trusted_certs = ["certs/dev-ec.pem"]
allow_users = ["%[1]s"]
`

// world is what the three stacks share: one daemon, one honest service and
// one that tampers with its responses.
type world struct {
	root, tmp, socket string
	wsdl, tamperWSDL  string
}

// TestAdapters drives each SOAP stack's own client through its adapter:
// the README example calls the service (which accepts the signature) and
// accepts its signed response; against the tampering service the same code
// gets the adapter's exception with code digest-mismatch; and a refusal by
// the daemon (an unknown profile) surfaces as that exception with code
// forbidden.
func TestAdapters(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the daemon, a SoftHSM2 token and a SOAP service")
	}
	testutil.RequireTool(t, "softhsm2-util", "softhsm2")
	requireCommand(t, "python3-spyne", "/usr/bin/python3", "-c", "import spyne, lxml")
	w := setUp(t)

	t.Run("python-zeep", func(t *testing.T) { testPython(t, w) })
	t.Run("php-soapclient", func(t *testing.T) { testPHP(t, w) })
	t.Run("node-soap", func(t *testing.T) { testNode(t, w) })
}

func testPython(t *testing.T, w *world) {
	requireCommand(t, "python3-zeep", "/usr/bin/python3", "-c", "import zeep")
	// pip install ./clients/python, from a copy so the tree stays clean;
	// zeep and lxml are Debian's.
	src := filepath.Join(w.tmp, "py-src")
	copyDir(t, filepath.Join(w.root, "clients", "python"), src)
	site := filepath.Join(w.tmp, "py-site")
	run(t, "", nil, "/usr/bin/python3", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
		"--no-deps", "--no-build-isolation", "--no-index", "--target", site, src)
	env := []string{"PYTHONPATH=" + site, "PYTHONDONTWRITEBYTECODE=1"}
	example := writeExample(t, w, "Python: zeep", "python", "example.py")
	runExample(t, w, env, "/usr/bin/python3", example)

	out := run(t, "", append(env, "WSDL="+w.wsdl, "TAMPER_WSDL="+w.tamperWSDL, "WSSIGN_SOCKET="+w.socket, "SOAP12="+soap12), "/usr/bin/python3", "-c", `
import os, zeep
from zeep.exceptions import SignatureVerificationFailed
from wssignd_zeep import InvalidSignature, WssigndError, WssigndSignature
try:
    zeep.Client(os.environ["WSDL"], wsse=WssigndSignature(sign_profile="no-such-profile")).service.greet("Ada")
except WssigndError as e:
    print(e.code, e.status, bool(e.request_id))
try:
    zeep.Client(os.environ["TAMPER_WSDL"], wsse=WssigndSignature(verify_profile="partner")).service.greet("Ada")
except SignatureVerificationFailed as e:
    print(type(e).__name__, e.code, e.verdict["valid"])
try:
    zeep.Client(os.environ["WSDL"], wsse=WssigndSignature(socket_path="/nonexistent.sock")).service.greet("Ada")
except WssigndError as e:
    print(e.code, e.status)
from lxml import etree
soap12 = WssigndSignature(verify_profile="from-client")
signed, _ = soap12.apply(etree.fromstring(os.environb[b"SOAP12"]), {})
soap12.verify(signed)
print("soap12", etree.QName(signed[0]).localname)
`)
	if got := strings.TrimSpace(out); got != "forbidden 403 True\nInvalidSignature digest-mismatch False\nunreachable 0\nsoap12 Header" {
		t.Errorf("an unknown profile, a tampered response, no daemon, SOAP 1.2: got %q, want WssigndError forbidden 403 with a request id, "+
			"zeep's SignatureVerificationFailed (InvalidSignature) digest-mismatch, WssigndError unreachable, a SOAP 1.2 envelope signed and verified", got)
	}
}

func testPHP(t *testing.T, w *world) {
	requireCommand(t, "php-cli", "php", "-v")
	requireCommand(t, "php-soap", "php", "-r", `exit(class_exists("SoapClient") ? 0 : 1);`)
	requireCommand(t, "php-curl", "php", "-r", `exit(function_exists("curl_init") ? 0 : 1);`)
	// vendor/autoload.php: the PSR-4 autoloader composer makes from composer.json.
	var composer struct {
		Autoload struct {
			PSR4 map[string]string `json:"psr-4"`
		} `json:"autoload"`
	}
	if err := json.Unmarshal(readFile(t, filepath.Join(w.root, "clients", "php", "composer.json")), &composer); err != nil {
		t.Fatalf("composer.json: %v", err)
	}
	var autoload strings.Builder
	autoload.WriteString("<?php\n")
	for prefix, dir := range composer.Autoload.PSR4 {
		fmt.Fprintf(&autoload, `spl_autoload_register(function ($c) {
    $p = %q;
    if (strncmp($c, $p, strlen($p)) === 0) {
        require %q . str_replace('\\', '/', substr($c, strlen($p))) . '.php';
    }
});
`, prefix, filepath.Join(w.root, "clients", "php", dir)+"/")
	}
	dir := filepath.Join(w.tmp, "php")
	writeFile(t, filepath.Join(dir, "vendor", "autoload.php"), autoload.String())
	example := writeExample(t, w, "PHP: SoapClient", "php", filepath.Join("php", "example.php"))
	runExample(t, w, nil, "php", example)

	out := run(t, "", []string{"WSDL=" + w.wsdl, "TAMPER_WSDL=" + w.tamperWSDL, "WSSIGN_SOCKET=" + w.socket}, "php", "-r", `
require '`+dir+`/vendor/autoload.php';
try {
    (new Wssignd\WssigndSoapClient(getenv('WSDL'), [], ['sign_profile' => 'no-such-profile']))->greet(['name' => 'Ada']);
} catch (Wssignd\WssigndException $e) {
    echo $e->getProblemCode(), ' ', $e->status, ' ', $e->getRequestId() !== null ? 'id' : 'no-id', "\n";
}
try {
    (new Wssignd\WssigndSoapClient(getenv('TAMPER_WSDL'), [], ['verify_profile' => 'partner']))->greet(['name' => 'Ada']);
} catch (SoapFault $e) {
    echo get_class($e), ' ', $e->faultcode, ' ', $e->getProblemCode(), "\n";
}
try {
    (new Wssignd\WssigndSoapClient(getenv('WSDL'), [], ['socket' => '/nonexistent.sock']))->greet(['name' => 'Ada']);
} catch (Wssignd\WssigndException $e) {
    echo $e->getProblemCode(), ' ', $e->status, "\n";
}
`)
	if got := strings.TrimSpace(out); got != "forbidden 403 id\nWssignd\\WssigndException Client digest-mismatch\nunreachable 0" {
		t.Errorf("an unknown profile, a tampered response, no daemon: got %q, want WssigndException forbidden 403 with a request id, "+
			"a SoapFault (WssigndException) digest-mismatch, WssigndException unreachable", got)
	}
}

func testNode(t *testing.T, w *world) {
	requireCommand(t, "nodejs", "node", "--version")
	requireCommand(t, "npm", "npm", "--version")
	// npm ci from the committed lockfile, outside the tree; the example
	// finds soap there and this package as "wssignd-soap".
	deps := filepath.Join(w.tmp, "node-deps")
	for _, f := range []string{"package.json", "package-lock.json"} {
		writeFile(t, filepath.Join(deps, f), string(readFile(t, filepath.Join(w.root, "clients", "node", f))))
	}
	run(t, deps, nil, "npm", "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error")
	links := filepath.Join(w.tmp, "node-links")
	if err := os.MkdirAll(links, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(w.root, "clients", "node"), filepath.Join(links, "wssignd-soap")); err != nil {
		t.Fatal(err)
	}
	env := []string{"NODE_PATH=" + filepath.Join(deps, "node_modules") + ":" + links}
	example := writeExample(t, w, "Node: soap", "js", "example.js")
	runExample(t, w, env, "node", example)

	out := run(t, "", append(env, "WSDL="+w.wsdl, "WSSIGN_SOCKET="+w.socket, "SOAP12="+soap12), "node", "-e", `
const soap = require('soap');
const { WssigndSecurity, WssigndError } = require('wssignd-soap');
(async () => {
  const client = await soap.createClientAsync(process.env.WSDL);
  client.setSecurity(new WssigndSecurity({ signProfile: 'no-such-profile' }));
  try { await client.greetAsync({ name: 'Ada' }); console.log('not refused'); }
  catch (e) { console.log(e instanceof WssigndError, e.code, e.status, Boolean(e.requestId)); }
  client.setSecurity(new WssigndSecurity({ socketPath: '/nonexistent.sock' }));
  try { await client.greetAsync({ name: 'Ada' }); console.log('not refused'); }
  catch (e) { console.log(e instanceof WssigndError, e.code, e.status); }
  const soap12 = new WssigndSecurity({ verifyProfile: 'from-client' });
  const verdict = await soap12.verify(soap12.postProcess(process.env.SOAP12));
  console.log('soap12', verdict.valid, verdict.signed.length);
})();
`)
	if got := strings.TrimSpace(out); got != "true forbidden 403 true\ntrue unreachable 0\nsoap12 true 3" {
		t.Errorf("an unknown profile, no daemon, SOAP 1.2: got %q, want WssigndError forbidden 403 with a request id, WssigndError unreachable, "+
			"a SOAP 1.2 envelope signed and verified", got)
	}
}

// runExample runs a README example against the honest service, then
// against the tampering one, and checks what it prints.
func runExample(t *testing.T, w *world, env []string, interpreter, file string) {
	t.Helper()
	env = append(env, "WSSIGN_SOCKET="+w.socket)
	out := run(t, "", append(env, "WSDL="+w.wsdl), interpreter, file)
	if got := strings.TrimSpace(out); got != wantGreeting {
		t.Errorf("README example against the service printed %q, want %q", got, wantGreeting)
	}
	t.Logf("README example, service: %s", strings.TrimSpace(out))
	out = run(t, "", append(env, "WSDL="+w.tamperWSDL), interpreter, file)
	if got := strings.TrimSpace(out); got != wantRefusal {
		t.Errorf("README example against the tampering service printed %q, want %q", got, wantRefusal)
	}
	t.Logf("README example, tampering service: %s", strings.TrimSpace(out))
}

// writeExample writes the first fenced block of lang under the README
// heading "### heading" to name in the test's directory.
func writeExample(t *testing.T, w *world, heading, lang, name string) string {
	t.Helper()
	readme := string(readFile(t, filepath.Join(w.root, "README.md")))
	i := strings.Index(readme, "\n### "+heading+"\n")
	if i < 0 {
		t.Fatalf("README has no section %q", heading)
	}
	section := readme[i+1:]
	for _, h := range []string{"\n## ", "\n### "} {
		if next := strings.Index(section[4:], h); next >= 0 {
			section = section[:next+4]
		}
	}
	start := strings.Index(section, "```"+lang+"\n")
	if start < 0 {
		t.Fatalf("README section %q has no %s example", heading, lang)
	}
	code := section[start+len("```"+lang+"\n"):]
	end := strings.Index(code, "\n```")
	if end < 0 {
		t.Fatalf("README section %q: unterminated example", heading)
	}
	path := filepath.Join(w.tmp, name)
	writeFile(t, path, code[:end+1])
	return path
}

// setUp builds the daemon, makes its SoftHSM2 token and config with
// "wssignd dev-setup", starts it, and starts the two services.
func setUp(t *testing.T) *world {
	t.Helper()
	w := &world{root: testutil.RepoRoot(t), tmp: t.TempDir()}
	short, err := os.MkdirTemp("", "wsa") // socket paths must stay under 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(short) })
	w.socket = filepath.Join(short, "s.sock")

	bin := filepath.Join(w.tmp, "wssignd")
	run(t, w.root, nil, "go", "build", "-o", bin, "./cmd/wssignd")
	run(t, "", nil, bin, "dev-setup", "-dir", short, "-socket", w.socket)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(short, "wssignd.toml")
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, extraConfig, u.Username)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer // the daemon's log: audit events, never payloads
	d := exec.Command(bin, "-config", cfg)
	d.Env = append(os.Environ(), "SOFTHSM2_CONF="+filepath.Join(short, "softhsm", "softhsm2.conf"))
	d.Stdout, d.Stderr = &logs, &logs
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- d.Wait() }()
	t.Cleanup(func() {
		_ = d.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = d.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", w.socket)
		},
	}}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := c.Get("http://wssignd/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("daemon exited: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not ready within 60s\n%s", logs.String())
		}
	}

	service := filepath.Join(w.root, "clients", "testdata", "service.py")
	w.wsdl = startService(t, service, w.socket)
	w.tamperWSDL = startService(t, service, w.socket, "tamper")

	// The service itself refuses what wssignd does not accept.
	resp, err := http.Post(w.wsdl[:strings.Index(w.wsdl, "?")], "text/xml; charset=utf-8", strings.NewReader(
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:tns="urn:wssignd:test:greeter">`+
			`<soapenv:Body><tns:greet><tns:name>Ada</tns:name></tns:greet></soapenv:Body></soapenv:Envelope>`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(body), "WS-Security: unsigned") {
		t.Fatalf("the service answered an unsigned request with %d %s", resp.StatusCode, body)
	}
	return w
}

// startService starts the spyne service and returns its WSDL URL.
func startService(t *testing.T, script, socket string, args ...string) string {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", append([]string{script, socket, "from-client", "service"}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("service %v stderr:\n%s", args, stderr.String())
		}
	})
	ports := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ports <- strings.TrimSpace(strings.TrimPrefix(line, "port "))
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case port := <-ports:
		if port == "" {
			t.Fatalf("service did not start")
		}
		return "http://127.0.0.1:" + port + "/?wsdl"
	case <-time.After(30 * time.Second):
		t.Fatal("service did not start within 30s")
	}
	return ""
}

// requireCommand checks that a command runs, like testutil.RequireTool:
// a failure fails the test in CI and skips it elsewhere.
func requireCommand(t *testing.T, pkg, name string, args ...string) {
	t.Helper()
	if err := exec.Command(name, args...).Run(); err != nil {
		msg := fmt.Sprintf("%s %s: %v: apt-get install -y %s", name, strings.Join(args, " "), err, pkg)
		if testutil.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// run runs a command in dir (the test's directory when empty) with env
// added, and returns its standard output; a failure fails the test with
// both outputs.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies the regular files under src to dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			if d.Name() == "__pycache__" || strings.HasSuffix(d.Name(), ".egg-info") || d.Name() == "build" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

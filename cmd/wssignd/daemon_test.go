package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm/hsmtest"
	"github.com/wssignd/wssignd/internal/daemon"
	"github.com/wssignd/wssignd/internal/testutil"
)

// daemon is a wssignd serving on a real Unix socket, with its keys on a
// fresh SoftHSM2 token.
type testDaemon struct {
	socket string
	client *http.Client
	stop   func() error
	logs   *logBuffer
}

// logBuffer keeps the daemon's log lines for assertions.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) add(s string) {
	b.mu.Lock()
	b.lines = append(b.lines, s)
	b.mu.Unlock()
}

// count returns how many log lines contain s.
func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, l := range b.lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// testConfig is a daemon configuration for env's token (either kind): token "t", keys "rsa"
// (by label) and "ec" (by URI), profiles "default" (rsa), "ecdsa" and "other-user".
func testConfig(env *hsmtest.Env, socket string, extra string) string {
	return fmt.Sprintf(`
socket = %q
state_dir = %q
modules = [%q]
[tokens.t]
module = %q
label = %q
pin_file = %q
[keys.rsa]
token = "t"
label = "rsa"
[keys.ec]
token = "t"
uri = "pkcs11:token=%s;id=%%02;type=private"
[profiles.default]
key = "rsa"
allow_users = ["%d"]
[profiles.ecdsa]
key = "ec"
allow_users = ["%d"]
[profiles.other-user]
key = "rsa"
allow_users = ["4000000000"]
%s`, socket, filepath.Join(filepath.Dir(socket), "state"), env.Config.Module, env.Config.Module, env.Config.TokenLabel, env.Config.PINFile,
		env.Config.TokenLabel, os.Getuid(), os.Getuid(), extra)
}

func startDaemon(t testing.TB, cfgText string, socket string, opts ...daemon.Option) *testDaemon {
	t.Helper()
	c := testutil.LoadConfig(t, filepath.Dir(socket), cfgText)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(testWriter{t, logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { done <- serve(ctx, c, log, func() { close(ready) }, opts...) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("daemon did not start within 30s")
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return &testDaemon{socket: socket, stop: stop, logs: logs, client: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}}
}

// testWriter routes daemon logs to t.Log and keeps them.
type testWriter struct {
	t    testing.TB
	logs *logBuffer
}

func (w testWriter) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	w.logs.add(line)
	w.t.Log(line)
	return len(p), nil
}

func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "wsd") // socket paths must stay under 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func (d *testDaemon) do(t *testing.T, method, path, ctype string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://wssignd"+path, strings.NewReader(string(body)))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestDaemonSignVerifiedByXMLSec1 is the vertical slice: HTTP over a Unix
// socket → api → wss → crypto.Signer → PKCS#11 → SoftHSM2 or a TPM, the
// output accepted by xmlsec1 with the certificate that GET /v1/keys returns.
func TestDaemonSignVerifiedByXMLSec1(t *testing.T) {
	for _, kind := range hsmtest.Kinds {
		t.Run(string(kind), func(t *testing.T) { testDaemonSignVerifiedByXMLSec1(t, kind) })
	}
}

func testDaemonSignVerifiedByXMLSec1(t *testing.T, kind hsmtest.Kind) {
	env := hsmtest.NewKind(t, kind)
	dir := shortDir(t)
	sock := filepath.Join(dir, "wssignd.sock")
	d := startDaemon(t, testConfig(env, sock, ""), sock)

	resp, body := d.do(t, "GET", "/v1/keys", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("keys: %d %s", resp.StatusCode, body)
	}
	var keys struct {
		Keys []struct {
			Name, Algorithm, Serial string
			CertificatePEM          string `json:"certificate_pem"`
		}
	}
	if err := json.Unmarshal(body, &keys); err != nil {
		t.Fatal(err)
	}
	certs := map[string]*x509.Certificate{}
	for _, k := range keys.Keys {
		b, _ := pem.Decode([]byte(k.CertificatePEM))
		if b == nil {
			t.Fatalf("key %s: no PEM", k.Name)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs[k.Name] = c
	}
	if len(certs) != 2 || !certs["rsa"].Equal(env.RSA.Chain[0]) || !certs["ec"].Equal(env.EC.Chain[0]) {
		t.Fatalf("keys listed %v, want the token's rsa and ec certificates", keys.Keys)
	}

	for _, tc := range []struct{ profile, key, file, ctype string }{
		{"default", "rsa", "envelope-soap11.xml", "text/xml; charset=utf-8"},
		{"default", "rsa", "envelope-wsa.xml", "text/xml"},
		{"ecdsa", "ec", "envelope-soap12.xml", "application/soap+xml"},
	} {
		in := testutil.ReadTestdata(t, tc.file)
		resp, out := d.do(t, "POST", "/v1/soap/sign?profile="+tc.profile, tc.ctype, in)
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d %s", tc.profile, tc.file, resp.StatusCode, out)
		}
		if resp.Header.Get("Content-Type") != tc.ctype || resp.Header.Get("Wssignd-Key") != tc.key {
			t.Errorf("headers %v", resp.Header)
		}
		if xo, ok := testutil.XMLSec1Verify(t, out, certs[tc.key]); !ok {
			t.Errorf("%s %s: xmlsec1 rejects the daemon's signature: %s\n%s", tc.profile, tc.file, xo, out)
		}
		// The same output must not verify with the other key: the check can fail.
		other := map[string]string{"rsa": "ec", "ec": "rsa"}[tc.key]
		if _, ok := testutil.XMLSec1Verify(t, out, certs[other]); ok {
			t.Errorf("%s: xmlsec1 accepted the signature with the wrong certificate", tc.file)
		}
	}

	resp, body = d.do(t, "POST", "/v1/soap/sign?profile=other-user", "text/xml", testutil.ReadTestdata(t, "envelope-soap11.xml"))
	if resp.StatusCode != 403 || !strings.Contains(string(body), "forbidden") {
		t.Errorf("profile of another user: %d %s", resp.StatusCode, body)
	}
	resp, body = d.do(t, "GET", "/readyz", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"online"`) {
		t.Errorf("readyz: %d %s", resp.StatusCode, body)
	}
	resp, body = d.do(t, "GET", "/metrics", "", nil)
	for _, want := range []string{
		`wssignd_key_operations_total{key="rsa",op="sign",outcome="ok"} 2`,
		`wssignd_key_operations_total{key="ec",op="sign",outcome="ok"} 1`,
		`wssignd_token_state{state="online",token="t"} 1`,
		fmt.Sprintf(`wssignd_token_sessions_max{token="t"} %d`, env.Token.Status().SessionsMax),
		`wssignd_token_sessions_in_use{token="t"} 0`,
		`wssignd_token_recoveries_total{token="t"} 0`,
		`wssignd_token_pin_count_low{token="t"} 0`,
		`wssignd_requests_total{code="403",route="/v1/soap/sign"} 1`,
	} {
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	if err := d.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after a clean stop: %v", err)
	}
}

// TestDaemonReplacesStaleSocket: a socket file left by a crash is replaced;
// one that answers is not stolen.
func TestDaemonReplacesStaleSocket(t *testing.T) {
	env := hsmtest.New(t)
	dir := shortDir(t)
	sock := filepath.Join(dir, "wssignd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if _, err := listenUnix(sock, 0o600); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("listening over a live socket: %v", err)
	}
	ln.Close() // the file stays: a crashed daemon's leftover
	d := startDaemon(t, testConfig(env, sock, ""), sock)
	resp, _ := d.do(t, "GET", "/healthz", "", nil)
	if resp.StatusCode != 200 {
		t.Errorf("healthz %d", resp.StatusCode)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, %v; want 0660", fi.Mode().Perm(), err)
	}
}

func TestDaemonWrongPIN(t *testing.T) {
	for _, kind := range hsmtest.Kinds {
		t.Run(string(kind), func(t *testing.T) { testDaemonWrongPIN(t, kind) })
	}
}

func testDaemonWrongPIN(t *testing.T, kind hsmtest.Kind) {
	env := hsmtest.NewKind(t, kind)
	env.Token.Close() // else the module's login is shared and the PIN never reaches the token
	dir := shortDir(t)
	pin := filepath.Join(dir, "wrong-pin")
	if err := os.WriteFile(pin, []byte("00000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "wssignd.sock")
	c := testutil.LoadConfig(t, dir, strings.Replace(testConfig(env, sock, ""), env.Config.PINFile, pin, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := serve(ctx, c, slog.New(slog.DiscardHandler), nil)
	if !errors.Is(err, daemon.ErrPINRejected) {
		t.Fatalf("serve with a wrong PIN: %v, want errPINRejected (exit 78)", err)
	}
	if strings.Contains(err.Error(), "00000000") {
		t.Error("the PIN appears in the error")
	}
}

// TestDaemonReloadUnderLoad: SIGHUP swaps in a new configuration while
// clients sign without pause; no request fails. A bad configuration is
// refused and the old one keeps serving.
func TestDaemonReloadUnderLoad(t *testing.T) {
	env := hsmtest.New(t)
	dir := shortDir(t)
	sock := filepath.Join(dir, "wssignd.sock")
	cfgText := testConfig(env, sock, "")
	d := startDaemon(t, cfgText, sock)
	cfgPath := filepath.Join(dir, "wssignd.toml")
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")

	stop := make(chan struct{})
	type result struct{ ok, failed int }
	results := make(chan result)
	for range 4 {
		go func() {
			var r result
			for {
				select {
				case <-stop:
					results <- r
					return
				default:
				}
				req, _ := http.NewRequest("POST", "http://wssignd/v1/soap/sign?profile=default", strings.NewReader(string(in)))
				req.Header.Set("Content-Type", "text/xml")
				resp, err := d.client.Do(req)
				if err != nil {
					r.failed++
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					r.ok++
				} else {
					r.failed++
				}
			}
		}()
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	profileWorks := func(name string) bool {
		resp, _ := d.do(t, "POST", "/v1/soap/sign?profile="+name, "text/xml", in)
		return resp.StatusCode == 200
	}
	if profileWorks("second") {
		t.Fatal("profile second exists before the reload")
	}
	// A good new configuration: one more profile.
	extra := fmt.Sprintf("[profiles.second]\nkey = \"ec\"\nallow_users = [\"%d\"]\n", os.Getuid())
	if err := os.WriteFile(cfgPath, []byte(testConfig(env, sock, extra)), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ { // three reloads in a row under load
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor("reload", func() bool { return d.logs.count("configuration reloaded") == i })
	}
	if !profileWorks("second") {
		t.Fatal("profile second does not work after the reload")
	}

	// A bad configuration: refused, the previous one still serves.
	if err := os.WriteFile(cfgPath, []byte("this is not toml ["), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("refused reload", func() bool { return d.logs.count("reload refused") == 1 })
	if !profileWorks("second") || !profileWorks("default") {
		t.Error("a bad reload broke the serving configuration")
	}
	close(stop)
	var total result
	for range 4 {
		r := <-results
		total.ok += r.ok
		total.failed += r.failed
	}
	t.Logf("signatures during reloads: %d ok, %d failed", total.ok, total.failed)
	if total.failed != 0 || total.ok == 0 {
		t.Errorf("%d requests failed during reloads (%d ok)", total.failed, total.ok)
	}
}

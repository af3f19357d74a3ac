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
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm/hsmtest"
	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/internal/testutil"
)

// daemon is a wssignd serving on a real Unix socket, with its keys on a
// fresh SoftHSM2 token.
type daemon struct {
	socket string
	client *http.Client
	stop   func() error
}

func testConfig(env *hsmtest.Env, socket string, extra string) string {
	return fmt.Sprintf(`
socket = %q
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
id = "02"
[profiles.default]
key = "rsa"
allow_users = ["%d"]
[profiles.ecdsa]
key = "ec"
allow_users = ["%d"]
[profiles.other-user]
key = "rsa"
allow_users = ["4000000000"]
%s`, socket, env.Soft.Module, env.Soft.Module, env.Soft.Label, env.Soft.PINFile, os.Getuid(), os.Getuid(), extra)
}

func startDaemon(t *testing.T, cfgText string, socket string) *daemon {
	t.Helper()
	dir := filepath.Dir(socket)
	cfgPath := filepath.Join(dir, "wssignd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { done <- serve(ctx, c, log, func() { close(ready) }) }()
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
	return &daemon{socket: socket, stop: stop, client: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}}
}

// testWriter routes daemon logs to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
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

func (d *daemon) do(t *testing.T, method, path, ctype string, body []byte) (*http.Response, []byte) {
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
// socket → api → wss → crypto.Signer → PKCS#11 → SoftHSM2, the output
// accepted by xmlsec1 with the certificate that GET /v1/keys returns.
func TestDaemonSignVerifiedByXMLSec1(t *testing.T) {
	env := hsmtest.New(t)
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
	env := hsmtest.New(t)
	env.Token.Close() // else the module's login is shared and the PIN never reaches the token
	dir := shortDir(t)
	pin := filepath.Join(dir, "wrong-pin")
	if err := os.WriteFile(pin, []byte("00000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "wssignd.sock")
	cfgText := strings.Replace(testConfig(env, sock, ""), env.Soft.PINFile, pin, 1)
	cfgPath := filepath.Join(dir, "wssignd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = serve(ctx, c, slog.New(slog.DiscardHandler), nil)
	if !errors.Is(err, errPINRejected) {
		t.Fatalf("serve with a wrong PIN: %v, want errPINRejected (exit 78)", err)
	}
	if strings.Contains(err.Error(), "00000000") {
		t.Error("the PIN appears in the error")
	}
}

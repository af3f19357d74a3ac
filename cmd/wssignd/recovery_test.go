package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm"
	"github.com/wssignd/wssignd/hsm/hsmtest"
	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/internal/daemon"
	"github.com/wssignd/wssignd/internal/testutil"
)

// bufLog is a concurrency-safe log sink.
type bufLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *bufLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *bufLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDaemonWrongPINOneLoginAcrossStarts: a wrong PIN makes the daemon exit with 78, and across
// five starts exactly one C_Login reaches the module (counted by OpenSC's pkcs11-spy in front of
// SoftHSM2): the marker in the state directory stops the other four. No log line of a debug-level
// run holds the PIN. Correcting the PIN file clears the marker and the daemon starts.
func TestDaemonWrongPINOneLoginAcrossStarts(t *testing.T) {
	env := hsmtest.New(t)
	if err := env.Token.Close(); err != nil { // else the module's login is shared and no PIN reaches the token
		t.Fatal(err)
	}
	spy := hsmtest.SpyModule(t)
	dir := shortDir(t)
	spyLog := filepath.Join(dir, "spy.log")
	t.Setenv("PKCS11SPY", env.Soft.Module)
	t.Setenv("PKCS11SPY_OUTPUT", spyLog)
	const wrongPIN = "31415926"
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte(wrongPIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	stateDir := filepath.Join(dir, "state")
	cfgText := testutil.ModuleConfig(sock, stateDir, spy, env.Soft.Label, pinFile, "")
	cfgPath := filepath.Join(dir, "wssignd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	logins := func() int {
		b, err := os.ReadFile(spyLog)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return strings.Count(string(b), "C_Login")
	}

	// Start 1, in process with a debug logger we can read.
	c, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var logs bufLog
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = serve(ctx, c, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	if !errors.Is(err, daemon.ErrPINRejected) {
		t.Fatalf("start 1: %v, want errPINRejected", err)
	}
	rightPIN := readPIN(t, env.Soft.PINFile)
	for _, pin := range []string{wrongPIN, rightPIN} {
		if strings.Contains(logs.String(), pin) || strings.Contains(err.Error(), pin) {
			t.Errorf("a PIN appears in the logs or the error:\n%s", logs.String())
		}
	}
	// Starts 2 to 5 through serveMain, as the binary runs: exit status 78.
	for i := 2; i <= 5; i++ {
		if code := serveMain([]string{"-config", cfgPath}); code != exitConfig {
			t.Fatalf("start %d: exit status %d, want %d", i, code, exitConfig)
		}
	}
	if n := logins(); n != 1 {
		t.Fatalf("C_Login reached the module %d times across 5 starts, want exactly 1", n)
	}
	markers, _ := filepath.Glob(filepath.Join(stateDir, "pin-rejected-*.json"))
	if len(markers) != 1 {
		t.Fatalf("markers in the state directory: %v, want one", markers)
	}
	if b, _ := os.ReadFile(markers[0]); bytes.Contains(b, []byte(wrongPIN)) {
		t.Errorf("the marker holds the PIN:\n%s", b)
	}

	// A corrected PIN file clears the marker; that PIN is tried and accepted.
	if err := os.WriteFile(pinFile, []byte(rightPIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, cfgText, sock)
	resp, body := d.do(t, "GET", "/readyz", "", nil)
	if resp.StatusCode != 200 {
		t.Errorf("readyz after correcting the PIN: %d %s", resp.StatusCode, body)
	}
	if n := logins(); n != 2 {
		t.Errorf("C_Login count after the corrected start = %d, want 2", n)
	}
	if _, err := os.Stat(markers[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("marker still there after the PIN file changed: %v", err)
	}
}

func readPIN(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(b), "\n")
}

// httpLoad posts sign requests from several goroutines until stopped, recording each outcome.
type httpLoad struct {
	ok, unavailable atomic.Int64
	mu              sync.Mutex
	bad             []string
	signed          [][]byte // up to maxKept successful responses, verified at the end
	stop            chan struct{}
	wg              sync.WaitGroup
	progress        chan struct{}
}

const maxKept = 60

func startHTTPLoad(t *testing.T, d *testDaemon, workers int) *httpLoad {
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	l := &httpLoad{stop: make(chan struct{}), progress: make(chan struct{}, 1)}
	client := &http.Client{Transport: d.client.Transport, Timeout: 2*time.Second + 10*time.Second}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", "http://wssignd/v1/soap/sign?profile=default", bytes.NewReader(in))
				req.Header.Set("Content-Type", "text/xml")
				resp, err := client.Do(req)
				if err != nil {
					l.fail("request: " + err.Error()) // includes not answering within 10s after the deadline
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == 200:
					l.ok.Add(1)
					l.mu.Lock()
					if len(l.signed) < maxKept {
						l.signed = append(l.signed, body)
					}
					l.mu.Unlock()
				case resp.StatusCode == 503 && strings.Contains(string(body), "token-unavailable") && resp.Header.Get("Retry-After") != "":
					l.unavailable.Add(1)
				default:
					l.fail(fmt.Sprintf("status %d: %s", resp.StatusCode, body))
				}
				select {
				case l.progress <- struct{}{}:
				default:
				}
			}
		}()
	}
	t.Cleanup(l.halt)
	return l
}

func (l *httpLoad) fail(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bad) < 20 {
		l.bad = append(l.bad, msg)
	}
}

func (l *httpLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// until waits, at most limit, until cond holds, checking after each load outcome and every 20 ms.
func until(t *testing.T, progress <-chan struct{}, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(limit)
	for !cond() {
		select {
		case <-progress:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			var stacks bytes.Buffer // where it hangs, if it does: e.g. a thread stuck in the module
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 2)
			t.Fatalf("%s: not within %v; goroutines:\n%s", what, limit, stacks.String())
		}
	}
}

// p11KitDaemon starts a daemon whose token is SoftHSM2 behind p11-kit server.
func p11KitDaemon(t *testing.T) (*testDaemon, *hsmtest.P11Kit, *hsmtest.Env) {
	t.Helper()
	env := hsmtest.New(t)
	if err := env.Token.Close(); err != nil {
		t.Fatal(err)
	}
	srv := hsmtest.StartP11Kit(t, env.Soft)
	dir := shortDir(t)
	sock := filepath.Join(dir, "s.sock")
	cfgText := testutil.ModuleConfig(sock, filepath.Join(dir, "state"), srv.Module, env.Soft.Label, env.Soft.PINFile, "")
	return startDaemon(t, cfgText, sock), srv, env
}

// TestDaemonRecoversFromHSMRestart: under a steady signing load the HSM (p11-kit server) is
// killed: requests get 503 token-unavailable with Retry-After, none hangs, /readyz says not
// ready; after the HSM restarts the daemon signs again without a restart and /readyz follows.
// Every signature the daemon returned (up to 60) is checked with xmlsec1.
func TestDaemonRecoversFromHSMRestart(t *testing.T) {
	d, srv, env := p11KitDaemon(t)
	l := startHTTPLoad(t, d, 4)
	until(t, l.progress, 30*time.Second, "signing before the outage", func() bool { return l.ok.Load() >= 10 })

	srv.Kill()
	until(t, l.progress, 30*time.Second, "503 during the outage", func() bool { return l.unavailable.Load() >= 10 })
	resp, body := d.do(t, "GET", "/readyz", "", nil)
	if resp.StatusCode != 503 {
		t.Errorf("readyz during the outage: %d %s", resp.StatusCode, body)
	}
	okBefore := l.ok.Load()

	srv.Start()
	until(t, l.progress, 30*time.Second, "signing after the HSM restart", func() bool { return l.ok.Load() >= okBefore+10 })
	l.halt()
	resp, body = d.do(t, "GET", "/readyz", "", nil)
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
	t.Logf("%d signed, %d token-unavailable; %d signatures checked with xmlsec1", l.ok.Load(), l.unavailable.Load(), len(l.signed))
}

// TestDaemonHungHSM: the HSM is stopped (SIGSTOP). 200 concurrent sign requests are all answered
// 503 or 504 within the request timeout (plus 10 s of slack before the client gives up),
// /healthz answers 200 and /readyz 503 naming the token hung. After SIGCONT /readyz is 200.
func TestDaemonHungHSM(t *testing.T) {
	d, srv, _ := p11KitDaemon(t)
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	if resp, body := d.do(t, "POST", "/v1/soap/sign?profile=default", "text/xml", in); resp.StatusCode != 200 {
		t.Fatalf("sign before the hang: %d %s", resp.StatusCode, body)
	}
	srv.Stop()
	client := &http.Client{Transport: d.client.Transport, Timeout: 2*time.Second + 10*time.Second}
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", "http://wssignd/v1/soap/sign?profile=default", bytes.NewReader(in))
			req.Header.Set("Content-Type", "text/xml")
			resp, err := client.Do(req)
			code := -1
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
			}
			mu.Lock()
			statuses[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	for code, n := range statuses {
		if code != 503 && code != 504 {
			t.Errorf("%d requests answered %d while the HSM hangs, want 503 or 504 (-1: no answer within the bound)", n, code)
		}
	}
	if resp, body := d.do(t, "GET", "/healthz", "", nil); resp.StatusCode != 200 {
		t.Errorf("healthz while hung: %d %s", resp.StatusCode, body)
	}
	if resp, body := d.do(t, "GET", "/readyz", "", nil); resp.StatusCode != 503 || !strings.Contains(string(body), `"hung"`) {
		t.Errorf("readyz while hung: %d %s", resp.StatusCode, body)
	}
	t.Logf("statuses while hung: %v", statuses)

	srv.Cont()
	var last string
	until(t, nil, 30*time.Second, "readyz 200 after SIGCONT", func() bool {
		resp, body := d.do(t, "GET", "/readyz", "", nil)
		last = string(body)
		return resp.StatusCode == 200
	})
	_ = last
	if resp, body := d.do(t, "POST", "/v1/soap/sign?profile=default", "text/xml", in); resp.StatusCode != 200 {
		t.Errorf("sign after SIGCONT: %d %s", resp.StatusCode, body)
	}
}

// TestTokenInitialisedAfterStart: the daemon starts while its token does not exist yet (not
// ready, 503 token-unavailable); the token is then initialised and provisioned, and the daemon
// brings it online without a restart.
func TestTokenInitialisedAfterStart(t *testing.T) {
	// A SoftHSM2 directory with another token only.
	softDir := t.TempDir()
	other, err := hsm.InitSoftHSMToken(softDir, "other")
	if errors.Is(err, hsm.ErrSoftHSMNotInstalled) && !testutil.InCI() {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", other.ConfigFile)
	dir := shortDir(t)
	sock := filepath.Join(dir, "s.sock")
	cfgText := testutil.ModuleConfig(sock, filepath.Join(dir, "state"), other.Module, "late", other.PINFile, "")
	d := startDaemon(t, cfgText, sock, daemon.WithOpenRetry(10*time.Millisecond, 100*time.Millisecond))

	resp, body := d.do(t, "GET", "/readyz", "", nil)
	if resp.StatusCode != 503 || !strings.Contains(string(body), `"offline"`) {
		t.Errorf("readyz before the token exists: %d %s", resp.StatusCode, body)
	}
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	resp, body = d.do(t, "POST", "/v1/soap/sign?profile=default", "text/xml", in)
	if resp.StatusCode != 503 || !strings.Contains(string(body), "token-unavailable") {
		t.Errorf("sign before the token exists: %d %s", resp.StatusCode, body)
	}

	// Initialise and provision the token (same directory, so same PIN files).
	late, err := hsm.InitSoftHSMToken(softDir, "late")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := hsm.Open(hsm.Config{Module: late.Module, TokenLabel: "late", PINFile: late.PINFile})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := tok.GenerateRSA(hsmtest.RSARef, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := hsm.SelfSignedCertificate(signer, "late rsa", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.ImportCertificate(hsmtest.RSARef, cert); err != nil {
		t.Fatal(err)
	}
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}

	until(t, nil, 30*time.Second, "readyz 200 once the token exists", func() bool {
		resp, _ := d.do(t, "GET", "/readyz", "", nil)
		return resp.StatusCode == 200
	})
	resp, out := d.do(t, "POST", "/v1/soap/sign?profile=default", "text/xml", in)
	if resp.StatusCode != 200 {
		t.Fatalf("sign after the token came online: %d %s", resp.StatusCode, out)
	}
	if xo, ok := testutil.XMLSec1Verify(t, out, cert); !ok {
		t.Errorf("xmlsec1 rejects the signature: %s", xo)
	}
}

package api

import (
	"bufio"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wssignd/wssignd/internal/testutil"
	"github.com/wssignd/wssignd/wss"
)

// hungKeys is a KeyStore whose key "rsa" stands for a token whose module
// call does not return: its signer blocks (on the caller's goroutine, as
// an inline PKCS#11 call does) until release is closed, or, with delay
// set, until the request's deadline plus delay; then it signs. This is the
// crypto.Signer seam, not a PKCS#11 mock. Key "ec" signs at once.
type hungKeys struct {
	rsa, ec wss.Credential
	release chan struct{}
	delay   atomic.Int64 // a time.Duration; 0: block until release
	entered atomic.Int64 // Sign calls begun
}

func newHungKeys(t *testing.T) *hungKeys {
	return &hungKeys{rsa: loadCred(t, "rsa2048"), ec: loadCred(t, "ecp256"), release: make(chan struct{})}
}

func (k *hungKeys) Credential(ctx context.Context, name string) (wss.Credential, error) {
	switch name {
	case "ec":
		return k.ec, nil
	case "rsa":
		dl, _ := ctx.Deadline()
		return wss.Credential{Signer: &hungSigner{k: k, deadline: dl}, Chain: k.rsa.Chain}, nil
	}
	return wss.Credential{}, errors.New("no such key")
}

func (k *hungKeys) Ready(context.Context) (map[string]string, error) {
	return map[string]string{"mem": "online"}, nil
}

type hungSigner struct {
	k        *hungKeys
	deadline time.Time
}

func (s *hungSigner) Public() crypto.PublicKey { return s.k.rsa.Signer.Public() }

func (s *hungSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	s.k.entered.Add(1)
	if d := time.Duration(s.k.delay.Load()); d != 0 {
		time.Sleep(time.Until(s.deadline.Add(d)))
	} else {
		<-s.k.release
	}
	return s.k.rsa.Signer.Sign(r, digest, opts)
}

// watchdogTimeout is the request timeout of the watchdog tests.
const watchdogTimeout = 300 * time.Millisecond

// watchdogSlack is what the watchdog tests allow past the deadline plus
// watchdogGrace for an answer to arrive on a loaded machine; the tests'
// point is that it arrives while the signer is still blocked.
const watchdogSlack = 3 * time.Second

// watchdogServer serves the api with keys on a Unix socket; returned
// receives one value each time ServeHTTP returns.
func watchdogServer(t *testing.T, keys *hungKeys, logs *syncBuffer, m *Metrics) (sock string, returned chan struct{}) {
	t.Helper()
	me := Access{UIDs: []uint32{uint32(os.Getuid())}}
	s := New(Config{
		Keys:                 keys,
		Profiles:             map[string]*Profile{"default": {Key: "rsa", Access: me}, "ec": {Key: "ec", Access: me}},
		RawKeys:              map[string]Access{"rsa": me},
		RequestTimeout:       watchdogTimeout,
		MaxConcurrent:        256,
		MaxConcurrentPerPeer: 256,
		Log:                  slog.New(slog.NewJSONHandler(logs, nil)),
		Metrics:              m,
	})
	returned = make(chan struct{}, 1024)
	sock = serveSocket(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r)
		returned <- struct{}{}
	}))
	return sock, returned
}

// sendSign writes a sign request with profile on a new connection to sock.
func sendSign(t *testing.T, sock, profile string, env []byte) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "POST /v1/soap/sign?profile=" + profile + " HTTP/1.1\r\nHost: wssignd\r\nContent-Type: text/xml\r\nContent-Length: " + strconv.Itoa(len(env)) + "\r\n\r\n" + string(env)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// readAnswer reads one response from c, giving up past the deadline plus
// the grace and the slack.
func readAnswer(t *testing.T, c net.Conn, br *bufio.Reader) (*http.Response, []byte, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(watchdogTimeout + watchdogGrace + watchdogSlack))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body, err
}

// rest is what c carries after the answers read from br, until the server
// closes it (once the handler has returned; the test shuts its side for
// writing so that a kept-alive connection ends too).
func rest(t *testing.T, c net.Conn, br *bufio.Reader) string {
	t.Helper()
	_ = c.(*net.UnixConn).CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(br)
	if err != nil {
		t.Errorf("reading to the connection's end: %v", err)
	}
	return string(b)
}

// checkWatchdogAnswer fails unless resp is the watchdog's 504 timeout.
func checkWatchdogAnswer(t *testing.T, resp *http.Response, body []byte) {
	t.Helper()
	checkProblem(t, resp, body, http.StatusGatewayTimeout, CodeTimeout)
	if !resp.Close {
		t.Errorf("no Connection: close: %v", resp.Header)
	}
	var p Problem
	_ = json.Unmarshal(body, &p)
	if id := resp.Header.Get("Wssignd-Request-Id"); id == "" || p.RequestID != id {
		t.Errorf("request id %q in the header, %q in the problem", id, p.RequestID)
	}
	if resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
		t.Errorf("Content-Length %q for %d bytes", resp.Header.Get("Content-Length"), len(body))
	}
}

// TestWatchdogAnswersHungSigner: the signer's call does not return (a hung
// token called on the handler's goroutine). The client still gets 504
// problem+json timeout, with Connection: close, by the deadline plus the
// grace, while the signer is blocked; once the signer returns, the
// handler's answer is dropped (nothing more on the connection), the 504 is
// what is logged and counted, and the next request works.
func TestWatchdogAnswersHungSigner(t *testing.T) {
	keys := newHungKeys(t)
	var logs syncBuffer
	m := NewMetrics()
	sock, returned := watchdogServer(t, keys, &logs, m)
	env := testutil.ReadTestdata(t, "envelope-soap11.xml")

	start := time.Now()
	c, br := sendSign(t, sock, "default", env)
	resp, body, err := readAnswer(t, c, br)
	elapsed := time.Since(start)
	if err != nil {
		close(keys.release)
		t.Fatalf("no answer while the signer is blocked (after %v): %v", elapsed, err)
	}
	if keys.entered.Load() != 1 {
		t.Errorf("%d Sign calls begun, want 1", keys.entered.Load())
	}
	if len(returned) != 0 {
		t.Errorf("the handler returned before the signer did")
	}
	checkWatchdogAnswer(t, resp, body)
	if elapsed < watchdogTimeout {
		t.Errorf("answered after %v, before the %v deadline", elapsed, watchdogTimeout)
	}
	t.Logf("answered %d after %v (deadline %v, grace %v)", resp.StatusCode, elapsed, watchdogTimeout, watchdogGrace)

	close(keys.release) // the module answers at last
	if r := rest(t, c, br); r != "" {
		t.Errorf("the handler's late answer reached the client: %q", r)
	}
	<-returned
	id := resp.Header.Get("Wssignd-Request-Id")
	var failed, dropped, audited int
	for l := range strings.Lines(logs.String()) {
		if !strings.Contains(l, `"request_id":"`+id+`"`) {
			continue
		}
		switch {
		case strings.Contains(l, `"msg":"request failed"`) && strings.Contains(l, `"code":"timeout"`):
			failed++
		case strings.Contains(l, `"msg":"late answer dropped"`):
			dropped++
		case strings.Contains(l, `"event":"private-key-use"`):
			audited++ // the key was used, late: that is audited all the same
		default:
			t.Errorf("unexpected log line: %s", l)
		}
	}
	if failed != 1 || dropped != 1 || audited != 1 {
		t.Errorf("%d request failed, %d late answer dropped and %d audit lines, want 1 of each:\n%s", failed, dropped, audited, logs.String())
	}

	c2, br2 := sendSign(t, sock, "ec", env)
	resp2, body2, err := readAnswer(t, c2, br2)
	if err != nil || resp2.StatusCode != http.StatusOK {
		t.Fatalf("the next request: %v %v %s", err, resp2, body2)
	}
	<-returned
	metrics := scrape(t, m)
	for _, want := range []string{
		`wssignd_requests_total{code="504",route="/v1/soap/sign"} 1`,
		`wssignd_requests_total{code="200",route="/v1/soap/sign"} 1`,
		`wssignd_requests_in_flight 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// TestWatchdogAroundDeadline: a signer that returns just before, at or
// after the deadline, or around the end of the grace, races the handler's
// own answer against the watchdog's. Whichever wins, the client gets
// exactly one answer (200, or 504 timeout), nothing follows it on the
// connection, and it is counted once (run with -race).
func TestWatchdogAroundDeadline(t *testing.T) {
	keys := newHungKeys(t)
	var logs syncBuffer
	m := NewMetrics()
	sock, returned := watchdogServer(t, keys, &logs, m)
	env := testutil.ReadTestdata(t, "envelope-soap11.xml")
	deltas := []time.Duration{-20 * time.Millisecond, -2 * time.Millisecond, time.Millisecond, 5 * time.Millisecond,
		watchdogGrace - 20*time.Millisecond, watchdogGrace - 2*time.Millisecond, watchdogGrace, watchdogGrace + 2*time.Millisecond,
		watchdogGrace + 20*time.Millisecond, watchdogGrace + 100*time.Millisecond}
	statuses := map[int]int{}
	for _, d := range deltas {
		keys.delay.Store(int64(d))
		c, br := sendSign(t, sock, "default", env)
		resp, body, err := readAnswer(t, c, br)
		if err != nil {
			t.Fatalf("delay %v: %v", d, err)
		}
		<-returned
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusGatewayTimeout:
			checkProblem(t, resp, body, http.StatusGatewayTimeout, CodeTimeout)
		default:
			t.Errorf("delay %v: %d %s", d, resp.StatusCode, body)
		}
		statuses[resp.StatusCode]++
		if r := rest(t, c, br); r != "" {
			t.Errorf("delay %v: a second answer after %d: %q", d, resp.StatusCode, r)
		}
	}
	t.Logf("statuses: %v", statuses)
	metrics := scrape(t, m)
	for code, n := range statuses {
		if want := fmt.Sprintf(`wssignd_requests_total{code="%d",route="/v1/soap/sign"} %d`, code, n); !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s:\n%s", want, metrics)
		}
	}
}

// TestWatchdogManyBlocked: many concurrent requests whose signers all block
// are all answered 504 timeout by the deadline plus the grace, while
// blocked; after the signers return, the server serves again.
func TestWatchdogManyBlocked(t *testing.T) {
	keys := newHungKeys(t)
	var logs syncBuffer
	m := NewMetrics()
	sock, returned := watchdogServer(t, keys, &logs, m)
	env := testutil.ReadTestdata(t, "envelope-soap11.xml")
	const n = 64
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("unix", sock)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer c.Close()
			req := "POST /v1/soap/sign?profile=default HTTP/1.1\r\nHost: wssignd\r\nContent-Type: text/xml\r\nContent-Length: " + strconv.Itoa(len(env)) + "\r\n\r\n" + string(env)
			if _, err := io.WriteString(c, req); err != nil {
				errs <- err.Error()
				return
			}
			_ = c.SetReadDeadline(start.Add(watchdogTimeout + watchdogGrace + watchdogSlack))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				errs <- "no answer: " + err.Error()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusGatewayTimeout || !resp.Close || !strings.Contains(string(body), `"code":"timeout"`) {
				errs <- fmt.Sprintf("%d close=%v %s", resp.StatusCode, resp.Close, body)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d answered within %v (deadline %v, grace %v); %d signers blocked", n, time.Since(start), watchdogTimeout, watchdogGrace, keys.entered.Load())
	if len(returned) != 0 {
		t.Errorf("%d handlers returned while their signers were blocked", len(returned))
	}
	close(keys.release)
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if keys.entered.Load() != n {
		t.Errorf("%d of %d requests reached the signer", keys.entered.Load(), n)
	}
	for range n {
		<-returned
	}
	c, br := sendSign(t, sock, "ec", env)
	resp, body, err := readAnswer(t, c, br)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("after the signers returned: %v %v %s", err, resp, body)
	}
	if metrics := scrape(t, m); !strings.Contains(metrics, fmt.Sprintf(`wssignd_requests_total{code="504",route="/v1/soap/sign"} %d`, n)) {
		t.Errorf("metrics do not count %d 504s:\n%s", n, metrics)
	}
}

// deadlineWriter is a ResponseWriter with the connection's deadline
// setters, as net/http's.
type deadlineWriter struct {
	*httptest.ResponseRecorder
	readDeadline atomic.Pointer[time.Time]
}

func (w *deadlineWriter) SetReadDeadline(t time.Time) error {
	w.readDeadline.Store(&t)
	return nil
}

// TestRespWriterGuard: the guarded writer keeps the handler's headers in
// its own map until it writes its header; after the watchdog's answer the
// handler's writes fail with http.ErrHandlerTimeout and change nothing;
// http.ResponseController reaches the connection's deadline through Unwrap
// and flushes through the guard; hijacking is refused.
func TestRespWriterGuard(t *testing.T) {
	s := New(Config{Keys: &memKeys{}})
	t.Run("handler answers", func(t *testing.T) {
		dw := &deadlineWriter{ResponseRecorder: httptest.NewRecorder()}
		rw := &respWriter{w: dw, id: "id"}
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		rw.guard(ctx, s, "/v1/soap/sign", time.Hour)
		rw.Header().Set("X-Handler", "1")
		if dw.Header().Get("X-Handler") != "" {
			t.Error("the handler's header reached net/http's map before WriteHeader")
		}
		d := time.Now().Add(time.Minute)
		if err := http.NewResponseController(rw).SetReadDeadline(d); err != nil || !dw.readDeadline.Load().Equal(d) {
			t.Errorf("SetReadDeadline did not reach the connection: %v", err)
		}
		rw.WriteHeader(http.StatusCreated)
		if _, err := rw.Write([]byte("ok")); err != nil {
			t.Error(err)
		}
		if err := http.NewResponseController(rw).Flush(); err != nil || !dw.Flushed {
			t.Errorf("Flush: %v, flushed %v", err, dw.Flushed)
		}
		if _, _, err := http.NewResponseController(rw).Hijack(); !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("Hijack: %v", err)
		}
		if !rw.disarm() {
			t.Error("the watchdog fired an hour early")
		}
		cancel()
		if rw.finish() || dw.Code != http.StatusCreated || dw.Header().Get("X-Handler") != "1" || dw.Body.String() != "ok" || rw.status != http.StatusCreated {
			t.Errorf("answer %d %v %q, status %d", dw.Code, dw.Header(), dw.Body, rw.status)
		}
	})
	t.Run("watchdog answers", func(t *testing.T) {
		dw := &deadlineWriter{ResponseRecorder: httptest.NewRecorder()}
		rw := &respWriter{w: dw, id: "id"}
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		rw.guard(ctx, s, "/v1/soap/sign", time.Millisecond)
		rw.Header().Set("X-Handler", "1")
		for {
			rw.mu.Lock()
			answered := rw.timedOut
			rw.mu.Unlock()
			if answered {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if _, err := rw.Write([]byte("late")); !errors.Is(err, http.ErrHandlerTimeout) {
			t.Errorf("late Write: %v", err)
		}
		rw.WriteHeader(http.StatusOK)
		if err := http.NewResponseController(rw).Flush(); !errors.Is(err, http.ErrHandlerTimeout) {
			t.Errorf("late Flush: %v", err)
		}
		if rw.disarm() {
			t.Error("disarmed after the watchdog fired")
		}
		if !rw.finish() {
			t.Error("finish does not report the watchdog's answer")
		}
		if dw.Code != http.StatusGatewayTimeout || dw.Header().Get("Connection") != "close" || dw.Header().Get("X-Handler") != "" ||
			!dw.Flushed || strings.Contains(dw.Body.String(), "late") || !strings.Contains(dw.Body.String(), `"code":"timeout"`) ||
			dw.Header().Get("Content-Length") != strconv.Itoa(dw.Body.Len()) {
			t.Errorf("answer %d %v %q", dw.Code, dw.Header(), dw.Body)
		}
	})
}

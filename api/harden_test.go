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
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wssignd/wssignd/internal/testutil"
	"github.com/wssignd/wssignd/wss"
)

// rawExchange writes req as it is on a new connection to sock and reads one
// response.
func rawExchange(t *testing.T, sock, req string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// checkProblem fails unless resp is a problem+json with status and code.
func checkProblem(t *testing.T, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json: %s", ct, body)
	}
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if p.Code != code || p.Type != ProblemTypeBase+code || p.Status != status {
		t.Errorf("problem %+v, want %d %s", p, status, code)
	}
}

// TestBrowserHeadersAnyValue: every Origin or Referer header refuses the
// request, whatever its value, empty included, and wherever it stands
// among several.
func TestBrowserHeadersAnyValue(t *testing.T) {
	keys := &memKeys{creds: map[string]wss.Credential{"rsa": loadCred(t, "rsa2048"), "ec": loadCred(t, "ecp256")}}
	sock := serveSocket(t, New(Config{
		Keys:     keys,
		Profiles: map[string]*Profile{"default": {Key: "rsa", Access: Access{UIDs: []uint32{uint32(os.Getuid())}}}},
	}))
	env := string(testutil.ReadTestdata(t, "envelope-soap11.xml"))
	for _, hdr := range []string{
		"Origin: \r\nOrigin: http://evil.example\r\n",
		"Origin: \r\n",
		"Referer: \r\n",
		"Referer: \r\nReferer: http://evil.example/\r\n",
		"origin: \r\n",
		"X-A: 1\r\nReferer:\r\n",
	} {
		req := "POST /v1/soap/sign?profile=default HTTP/1.1\r\nHost: wssignd\r\nContent-Type: text/xml\r\n" + hdr +
			"Content-Length: " + strconv.Itoa(len(env)) + "\r\nConnection: close\r\n\r\n" + env
		resp, body := rawExchange(t, sock, req)
		checkProblem(t, resp, body, 403, CodeBrowserForbidden)
		if strings.Contains(string(body), "Security") {
			t.Errorf("%q: signed", hdr)
		}
	}
}

// TestClientStringsBoundedInLogs: profile and key names and paths of any
// size and content are written to the logs and audit events bounded and
// escaped: one short line per event, no forged line or field.
func TestClientStringsBoundedInLogs(t *testing.T) {
	keys := &memKeys{creds: map[string]wss.Credential{"rsa": loadCred(t, "rsa2048")}}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	me := Access{UIDs: []uint32{uint32(os.Getuid())}}
	c := serveUnix(t, New(Config{
		Keys:            keys,
		Profiles:        map[string]*Profile{"default": {Key: "rsa", Access: me}},
		VerifyProfiles:  map[string]*VerifyProfile{},
		DecryptProfiles: map[string]*DecryptProfile{},
		RawKeys:         map[string]Access{"rsa": me},
		Log:             log,
	}))
	env := string(testutil.ReadTestdata(t, "envelope-soap11.xml"))
	huge := strings.Repeat("A", 64<<10)
	evil := url.QueryEscape("x\n" + `time=2026 level=ERROR msg="forged" "` + "\x1b[31m\u202e" + huge)
	requests := []struct{ method, path, ctype, body string }{
		{"POST", "/v1/soap/sign?profile=" + evil, "text/xml", env},
		{"POST", "/v1/soap/verify?profile=" + evil, "text/xml", env},
		{"POST", "/v1/soap/decrypt?profile=" + evil, "text/xml", env},
		{"POST", "/v1/keys/" + url.PathEscape("k\n"+huge) + "/sign", "application/json", `{}`},
		{"GET", "/" + url.PathEscape("p\r\n"+huge), "", ""},
	}
	for _, rq := range requests {
		resp, body := do(t, c, rq.method, rq.path, rq.ctype, rq.body, nil)
		if resp.StatusCode < 400 {
			t.Errorf("%s %.40s: %d %s", rq.method, rq.path, resp.StatusCode, body)
		}
	}
	out := logs.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(out) > 16<<10 {
		t.Errorf("%d requests wrote %d bytes of logs", len(requests), len(out))
	}
	for _, l := range lines {
		if len(l) > 1024 {
			t.Errorf("log line of %d bytes: %.200s...", len(l), l)
		}
		if !strings.HasPrefix(l, "time=") || strings.Contains(l, "\x1b") || strings.Contains(l, "\u202e") {
			t.Errorf("forged or unescaped line: %q", l)
		}
	}
	if n := strings.Count(out, `msg="forged"`); n != 0 {
		t.Errorf("a client forged %d log fields", n)
	}
	if !strings.Contains(out, "bytes)") {
		t.Errorf("no truncation noted in %s", out)
	}
}

// TestStrictRequests: requests that are almost right are refused with a
// problem and change nothing: raw-sign JSON with duplicate, differently
// cased or unknown members; media types that only start like the right
// one; a SOAP envelope whose version is not the one its media type names.
// None of these (nor a malformed envelope) counts as a key operation.
func TestStrictRequests(t *testing.T) {
	keys := &memKeys{creds: map[string]wss.Credential{"rsa": loadCred(t, "rsa2048"), "ec": loadCred(t, "ecp256")}}
	me := Access{UIDs: []uint32{uint32(os.Getuid())}}
	m := NewMetrics()
	c := serveUnix(t, New(Config{
		Keys:     keys,
		Profiles: map[string]*Profile{"default": {Key: "rsa", Access: me}, "v11": {Key: "rsa", Access: me, Sign: wss.SignOptions{SOAPVersion: "1.1"}}},
		RawKeys:  map[string]Access{"rsa": me},
		Metrics:  m,
	}))
	soap11 := string(testutil.ReadTestdata(t, "envelope-soap11.xml"))
	soap12 := string(testutil.ReadTestdata(t, "envelope-soap12.xml"))
	const digest = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	const good = `{"digest":"` + digest + `","hash":"SHA-256","scheme":"pkcs1v15"}`
	for _, tc := range []struct {
		name, path, ctype, body string
		status                  int
		code                    string
	}{
		{"duplicate member", "/v1/keys/rsa/sign", "application/json", `{"digest":"` + digest + `","hash":"SHA-256","scheme":"pss","scheme":"pkcs1v15"}`, 400, CodeBadRequest},
		{"member in other case", "/v1/keys/rsa/sign", "application/json", `{"Digest":"` + digest + `","hash":"SHA-256","scheme":"pkcs1v15"}`, 400, CodeBadRequest},
		{"duplicate in other case", "/v1/keys/rsa/sign", "application/json", `{"digest":"` + digest + `","hash":"SHA-256","scheme":"pkcs1v15","SCHEME":"pss"}`, 400, CodeBadRequest},
		{"non-string member", "/v1/keys/rsa/sign", "application/json", `{"digest":"` + digest + `","hash":"SHA-256","scheme":"pkcs1v15","format":null}`, 400, CodeBadRequest},
		{"trailing data", "/v1/keys/rsa/sign", "application/json", good + `{}`, 400, CodeBadRequest},
		{"array", "/v1/keys/rsa/sign", "application/json", `[` + good + `]`, 400, CodeBadRequest},
		{"jsonfoo", "/v1/keys/rsa/sign", "application/jsonfoo", good, 415, CodeUnsupportedMedia},
		{"json-seq", "/v1/keys/rsa/sign", "application/json-seq", good, 415, CodeUnsupportedMedia},
		{"json latin-1", "/v1/keys/rsa/sign", "application/json; charset=iso-8859-1", good, 415, CodeUnsupportedMedia},
		{"soap 1.2 as text/xml", "/v1/soap/sign?profile=default", "text/xml", soap12, 422, string(wss.CodeInvalidSOAP)},
		{"soap 1.1 as soap+xml", "/v1/soap/sign?profile=default", "application/soap+xml", soap11, 422, string(wss.CodeInvalidSOAP)},
		{"1.1 profile, soap+xml", "/v1/soap/sign?profile=v11", "application/soap+xml", soap12, 415, CodeUnsupportedMedia},
		{"text/xmlfoo", "/v1/soap/sign?profile=default", "text/xmlfoo", soap11, 415, CodeUnsupportedMedia},
		{"malformed", "/v1/soap/sign?profile=default", "text/xml", "<a><b></a>", 400, string(wss.CodeMalformedXML)},
		{"not soap", "/v1/soap/sign?profile=default", "text/xml", "<a/>", 422, string(wss.CodeNotSOAP)},
	} {
		resp, body := do(t, c, "POST", tc.path, tc.ctype, tc.body, nil)
		t.Run(tc.name, func(t *testing.T) { checkProblem(t, resp, body, tc.status, tc.code) })
	}
	// The right forms still work.
	for _, ct := range []string{"application/json", "Application/JSON; charset=UTF-8"} {
		if resp, body := do(t, c, "POST", "/v1/keys/rsa/sign", ct, good, nil); resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", ct, resp.StatusCode, body)
		}
	}
	var sb strings.Builder
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(l, "wssignd_key_operations_total{") {
			sb.WriteString(l + "\n")
		}
	}
	if got, want := sb.String(), `wssignd_key_operations_total{key="rsa",op="raw-sign",outcome="ok"} 2`+"\n"; got != want {
		t.Errorf("key operations:\n%s\nwant only the two raw signatures:\n%s", got, want)
	}
}

// TestTextInEnvelopeRefused: character data directly inside the Envelope
// or the Header (outside any header block) is not SOAP; it is refused, not
// signed.
func TestTextInEnvelopeRefused(t *testing.T) {
	keys := &memKeys{creds: map[string]wss.Credential{"rsa": loadCred(t, "rsa2048")}}
	c := serveUnix(t, New(Config{
		Keys:     keys,
		Profiles: map[string]*Profile{"default": {Key: "rsa", Access: Access{UIDs: []uint32{uint32(os.Getuid())}}}},
	}))
	const ns = `xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"`
	for _, env := range []string{
		`<s:Envelope ` + ns + `>pay 100<s:Header/><s:Body><x/></s:Body></s:Envelope>`,
		`<s:Envelope ` + ns + `><s:Header/>pay 100<s:Body><x/></s:Body></s:Envelope>`,
		`<s:Envelope ` + ns + `><s:Body><x/></s:Body>pay 100</s:Envelope>`,
		`<s:Envelope ` + ns + `><s:Header>pay 100</s:Header><s:Body><x/></s:Body></s:Envelope>`,
		`<s:Envelope ` + ns + `><s:Header><h/>pay 100</s:Header><s:Body><x/></s:Body></s:Envelope>`,
	} {
		resp, body := do(t, c, "POST", "/v1/soap/sign?profile=default", "text/xml", env, nil)
		if resp.StatusCode == 200 {
			t.Errorf("signed: %s", env)
			continue
		}
		checkProblem(t, resp, body, 422, string(wss.CodeInvalidSOAP))
	}
}

// deadlineSigner is a key whose token call outlives the request deadline.
type deadlineSigner struct{ crypto.Signer }

func (deadlineSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, fmt.Errorf("token %q: %w: %w", "t", ErrTokenUnavailable, context.DeadlineExceeded)
}

// TestDeadlineIsTimeout: an error that wraps context.DeadlineExceeded,
// whatever else it wraps (a token error too), is 504 timeout, and the key
// operation is counted as a timeout, not as a token failure.
func TestDeadlineIsTimeout(t *testing.T) {
	cred := loadCred(t, "rsa2048")
	slow := wss.Credential{Signer: deadlineSigner{cred.Signer}, Chain: cred.Chain}
	keys := &memKeys{creds: map[string]wss.Credential{"rsa": slow}}
	me := Access{UIDs: []uint32{uint32(os.Getuid())}}
	m := NewMetrics()
	c := serveUnix(t, New(Config{
		Keys:     keys,
		Profiles: map[string]*Profile{"default": {Key: "rsa", Access: me}},
		RawKeys:  map[string]Access{"rsa": me},
		Metrics:  m,
	}))
	resp, body := do(t, c, "POST", "/v1/soap/sign?profile=default", "text/xml", string(testutil.ReadTestdata(t, "envelope-soap11.xml")), nil)
	checkProblem(t, resp, body, 504, CodeTimeout)
	resp, body = do(t, c, "POST", "/v1/keys/rsa/sign", "application/json", `{"digest":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=","hash":"SHA-256","scheme":"pkcs1v15"}`, nil)
	checkProblem(t, resp, body, 504, CodeTimeout)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(l, "wssignd_key_operations_total{") && !strings.Contains(l, `outcome="timeout"`) {
			t.Errorf("a deadline counted as %s", l)
		}
	}
	if !strings.Contains(rec.Body.String(), `wssignd_key_operations_total{key="rsa",op="sign",outcome="timeout"} 1`) {
		t.Errorf("no timeout counted:\n%s", rec.Body.String())
	}
}

// TestDecryptAuditNoPlaintext: when a decrypted envelope is refused, the
// audit event says at which step, never what the plaintext holds.
func TestDecryptAuditNoPlaintext(t *testing.T) {
	keys, audit, call := newCryptServer(t)
	const wsu = `xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"`
	env := `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header/><s:Body>` +
		`<payroll ` + wsu + ` wsu:Id="secretPayrollId"><salary>1</salary></payroll></s:Body></s:Envelope>`
	res, err := wss.Encrypt(context.Background(), []byte(env), wss.EncryptOptions{Recipient: keys.creds["rsa"].Chain[0]})
	if err != nil {
		t.Fatal(err)
	}
	// An element outside the encrypted part with the Id the plaintext
	// holds: the decrypted envelope has it twice.
	msg := strings.Replace(string(res.Envelope), "</s:Header>", `<x `+wsu+` wsu:Id="secretPayrollId"/></s:Header>`, 1)
	if msg == string(res.Envelope) {
		t.Fatalf("no Header end tag in %s", res.Envelope)
	}
	status, body, _ := call("POST", "/v1/soap/decrypt?profile=default", "text/xml", msg, nil)
	if status != 422 {
		t.Fatalf("decrypt: %d %s", status, body)
	}
	a := audit.String()
	if !strings.Contains(a, `"operation":"decrypt"`) || !strings.Contains(a, `"cause":"decrypted envelope"`) {
		t.Errorf("audit without the failed step: %s", a)
	}
	if strings.Contains(a, "secretPayroll") || strings.Contains(string(body), "secretPayroll") {
		t.Errorf("plaintext in the audit or the problem: %s %s", a, body)
	}
}

// TestHeaderTooLargeIsProblem: request headers over the server's limit
// are answered by net/http before any handler; the answer is still a
// problem+json, and peer credentials still reach the handler through the
// wrapped listener.
func TestHeaderTooLargeIsProblem(t *testing.T) {
	dir, err := os.MkdirTemp("", "wsapi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	keys := &memKeys{creds: map[string]wss.Credential{"rsa": loadCred(t, "rsa2048")}}
	srv := &http.Server{Handler: New(Config{
		Keys:     keys,
		Profiles: map[string]*Profile{"default": {Key: "rsa", Access: Access{UIDs: []uint32{uint32(os.Getuid())}}}},
	}), ConnContext: ConnContext, MaxHeaderBytes: 4096}
	go srv.Serve(Listener(ln))
	t.Cleanup(func() { srv.Close() })

	resp, body := rawExchange(t, sock, "GET /v1/keys HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
	checkProblem(t, resp, body, 431, CodeHeaderTooLarge)
	resp, body = rawExchange(t, sock, "GET /v1/keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"keys"`) {
		t.Errorf("keys through the wrapped listener: %d %s", resp.StatusCode, body)
	}
}

// TestBodyBudget: the body bytes in flight are bounded in total and per
// caller, a stalled body is cut off after BodyIdleTimeout (408), and the
// bytes it held are free again afterwards.
func TestBodyBudget(t *testing.T) {
	keys := &memKeys{creds: map[string]wss.Credential{"rsa": loadCred(t, "rsa2048")}}
	env := string(testutil.ReadTestdata(t, "envelope-soap11.xml"))
	sock := serveSocket(t, New(Config{
		Keys:                 keys,
		Profiles:             map[string]*Profile{"default": {Key: "rsa", Access: Access{UIDs: []uint32{uint32(os.Getuid())}}}},
		MaxBodyBytes:         8192,
		MaxInFlightBodyBytes: 16384, // one caller: max(16384/4, 8192) = 8192
		BodyIdleTimeout:      300 * time.Millisecond,
	}))
	head := func(n int) string {
		return "POST /v1/soap/sign?profile=default HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: " + strconv.Itoa(n) + "\r\n\r\n"
	}
	// A stalled body of 8192 announced bytes holds this caller's share of
	// body bytes until it is cut off; then the bytes are free again.
	stalled, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	if _, err := io.WriteString(stalled, head(8192)+"<"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(stalled), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	checkProblem(t, resp, b, 408, CodeBodyTimeout)
	resp, b = rawExchange(t, sock, head(len(env))+env)
	if resp.StatusCode != 200 {
		t.Errorf("after the stalled body: %d %s", resp.StatusCode, b)
	}

	// The accounting: per caller, in total, and released.
	l := NewLimiter()
	me := peerKeyID{uid: 1, known: true}
	if err := l.reserve(me, 8192, 16384, 8192); err != nil {
		t.Fatal(err)
	}
	if err := l.reserve(me, 1, 16384, 8192); !errors.Is(err, errPeerBytes) {
		t.Errorf("over the caller's share: %v", err)
	}
	other := peerKeyID{uid: 2, known: true}
	if err := l.reserve(other, 8192, 16384, 8192); err != nil {
		t.Fatalf("another caller: %v", err)
	}
	if err := l.reserve(peerKeyID{uid: 3, known: true}, 1, 16384, 8192); !errors.Is(err, errTotalBytes) {
		t.Errorf("over the total: %v", err)
	}
	l.unreserve(me, 8192)
	l.unreserve(other, 8192)
	if err := l.reserve(peerKeyID{uid: 3, known: true}, 16384, 16384, 16384); err != nil {
		t.Errorf("after the releases: %v", err)
	}
}

// TestMetricsAndReadyAudience: /metrics in full and /readyz's token states
// are for the administrators; any other caller gets only the series of the
// keys it may use, and the readiness verdict.
func TestMetricsAndReadyAudience(t *testing.T) {
	keys := &memKeys{creds: map[string]wss.Credential{"rsa": loadCred(t, "rsa2048"), "ec": loadCred(t, "ecp256")}}
	me := Access{UIDs: []uint32{uint32(os.Getuid())}}
	other := Access{UIDs: []uint32{4_000_000_000}}
	env := string(testutil.ReadTestdata(t, "envelope-soap11.xml"))
	for _, tc := range []struct {
		name  string
		admin Access
		want  []string // in /metrics
		not   []string
	}{
		{"administrator", me,
			[]string{`wssignd_key_operations_total{key="rsa"`, `wssignd_key_operations_total{key="ec"`, `wssignd_token_state{state="online",token="mem"} 1`, "wssignd_requests_total", "go_goroutines"},
			nil},
		{"client", other,
			[]string{`wssignd_key_operations_total{key="rsa",op="sign",outcome="ok"} 1`},
			[]string{`key="ec"`, "token", "wssignd_requests_total", "go_goroutines", "process_"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMetrics()
			m.SetKeyStore(keys)
			c := serveUnix(t, New(Config{Keys: keys, Metrics: m, Admin: tc.admin,
				Profiles: map[string]*Profile{"mine": {Key: "rsa", Access: me}, "theirs": {Key: "ec", Access: other}}}))
			// A key operation on each key (the other's made as if by them).
			do(t, c, "POST", "/v1/soap/sign?profile=mine", "text/xml", env, nil)
			m.observeKeyOp("ec", "sign", nil, time.Millisecond)
			resp, body := do(t, c, "GET", "/metrics", "", "", nil)
			if resp.StatusCode != 200 {
				t.Fatalf("metrics: %d %s", resp.StatusCode, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(body), w) {
					t.Errorf("metrics lack %s", w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(string(body), n) {
					t.Errorf("metrics show %s:\n%s", n, body)
				}
			}
			resp, body = do(t, c, "GET", "/readyz", "", "", nil)
			if resp.StatusCode != 200 || strings.Contains(string(body), "mem") != (tc.name == "administrator") {
				t.Errorf("readyz: %d %s", resp.StatusCode, body)
			}
		})
	}
}

// TestSOAPVersionEveryRoute: on verify, encrypt and decrypt too, an
// envelope of the other SOAP version than its media type names is
// invalid-soap (a verdict on verify, a 422 problem on the others).
func TestSOAPVersionEveryRoute(t *testing.T) {
	keys := testKeys(t)
	c := serveUnix(t, New(clientTestConfig(t, keys)))
	soap11 := string(testutil.ReadTestdata(t, "envelope-soap11.xml"))
	soap12 := string(testutil.ReadTestdata(t, "envelope-soap12.xml"))
	for _, tc := range []struct{ path, ctype, body string }{
		{"/v1/soap/encrypt?profile=to-rsa", "text/xml", soap12},
		{"/v1/soap/encrypt?profile=to-rsa", "application/soap+xml", soap11},
		{"/v1/soap/decrypt?profile=rsa", "text/xml", soap12},
		{"/v1/soap/decrypt?profile=rsa", "application/soap+xml", soap11},
	} {
		resp, body := do(t, c, "POST", tc.path, tc.ctype, tc.body, nil)
		t.Run(tc.path+" "+tc.ctype, func(t *testing.T) { checkProblem(t, resp, body, 422, string(wss.CodeInvalidSOAP)) })
	}
	for _, tc := range []struct{ ctype, body string }{{"text/xml", soap12}, {"application/soap+xml", soap11}} {
		resp, body := do(t, c, "POST", "/v1/soap/verify?profile=rsa", tc.ctype, tc.body, nil)
		var v struct {
			Valid bool   `json:"valid"`
			Code  string `json:"code"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &v) != nil || v.Valid || v.Code != string(wss.CodeInvalidSOAP) {
			t.Errorf("verify %s: %d %s, want an invalid-soap verdict", tc.ctype, resp.StatusCode, body)
		}
	}
}

// TestLogSafePlainFastPath: the strings logSafe returns without quoting are
// exactly those that quoting leaves unchanged.
func TestLogSafePlainFastPath(t *testing.T) {
	cases := []string{"", "default", "rsa-2048_key.v1", "/v1/soap/sign", strings.Repeat("a", maxLoggedBytes), strings.Repeat("a", maxLoggedBytes+1),
		"a\"b", `a\b`, "a b~", "é", "\x00", "a\nb", "\x7f"}
	for c := 0; c < 256; c++ {
		cases = append(cases, "k"+string(rune(c)), "k"+string([]byte{byte(c)}))
	}
	for _, s := range cases {
		if got, want := logSafe(s), logSafeQuoted(s); got != want {
			t.Errorf("logSafe(%q) = %q, want %q", s, got, want)
		}
		if plainASCII(s) && logSafeQuoted(s) != s {
			t.Errorf("%q taken as plain, but quoting changes it", s)
		}
	}
}

package api

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

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

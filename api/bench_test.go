package api

import (
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wssignd/wssignd/bench"
	"github.com/wssignd/wssignd/internal/testutil"
	"github.com/wssignd/wssignd/wss"
)

// benchWriter is a reusable http.ResponseWriter that counts the Write
// calls of one response and discards the bytes.
type benchWriter struct {
	h      http.Header
	status int
	n      int
	writes int
}

func (w *benchWriter) Header() http.Header { return w.h }
func (w *benchWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *benchWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.writes++
	w.n += len(b)
	return len(b), nil
}
func (w *benchWriter) reset() {
	clear(w.h)
	w.status, w.n, w.writes = 0, 0, 0
}

// benchServer is the api handler with in-memory keys, the audit as JSON to
// io.Discard (the daemon's format) and the caller an allowed peer.
func benchServer(b *testing.B) (*Server, context.Context) {
	b.Helper()
	cred := func(name string) wss.Credential {
		k, c := testutil.TestKey(b, name)
		return wss.Credential{Signer: k, Chain: []*x509.Certificate{c}}
	}
	me := Access{UIDs: []uint32{uint32(os.Getuid())}}
	s := New(Config{
		Keys: &memKeys{creds: map[string]wss.Credential{"rsa": cred("rsa2048"), "ec": cred("ecp256")}},
		Profiles: map[string]*Profile{
			"default": {Key: "rsa", Access: me},
			"ec":      {Key: "ec", Access: me},
		},
		Audit: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Admin: me,
	})
	peer := Peer{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), PID: int32(os.Getpid()), Groups: []uint32{4, 24, 27}, Known: true}
	return s, context.WithValue(context.Background(), peerKey{}, peer)
}

// BenchmarkServeHealthz is GET /healthz through the api handler in process
// (no socket): the handler's own cost per request.
func BenchmarkServeHealthz(b *testing.B) {
	s, ctx := benchServer(b)
	benchGet(b, s, ctx, "/healthz")
}

// BenchmarkServeReadyz is GET /readyz as an administrator (token states,
// JSON built per request) and as another caller (the verdict only).
func BenchmarkServeReadyz(b *testing.B) {
	s, ctx := benchServer(b)
	b.Run("admin", func(b *testing.B) { benchGet(b, s, ctx, "/readyz") })
	s.cfg.Admin = Access{UIDs: []uint32{4_000_000_000}}
	b.Run("caller", func(b *testing.B) { benchGet(b, s, ctx, "/readyz") })
}

func benchGet(b *testing.B, s *Server, ctx context.Context, path string) {
	req := (&http.Request{Method: "GET", URL: &url.URL{Path: path}, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}).WithContext(ctx)
	w := &benchWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		s.ServeHTTP(w, req)
		if w.status != 200 {
			b.Fatal(w.status)
		}
	}
	b.ReportMetric(float64(w.writes), "writes/resp")
}

// BenchmarkServeSign1KB is POST /v1/soap/sign of a 1 KB envelope through the
// api handler in process, with an in-memory EC P-256 key (ecdsa in Go, so
// the key's cost is small and the handler's shows), and with RSA-2048.
func BenchmarkServeSign1KB(b *testing.B) {
	s, ctx := benchServer(b)
	env := bench.Envelope(1 << 10)
	for _, profile := range []string{"ec", "default"} {
		b.Run(profile, func(b *testing.B) {
			u, _ := url.Parse("http://wssignd/v1/soap/sign?profile=" + profile)
			w := &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				req := (&http.Request{Method: "POST", URL: u, Header: http.Header{"Content-Type": {"text/xml"}},
					Body: io.NopCloser(strings.NewReader(string(env))), ContentLength: int64(len(env)),
					Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}).WithContext(ctx)
				s.ServeHTTP(w, req)
				if w.status != 200 {
					b.Fatal(w.status)
				}
			}
			b.ReportMetric(float64(w.writes), "writes/resp")
			b.ReportMetric(float64(w.n), "resp-bytes")
		})
	}
}

// countingListener counts the Write calls (write syscalls) of its
// connections.
type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c.(*net.UnixConn), l.writes}, nil
}

type countingConn struct {
	*net.UnixConn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.UnixConn.Write(b)
}

// cpuTime is this process's user and system time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSocket is the api handler behind net/http on a Unix socket with
// one keep-alive client: write syscalls per response (writes/resp), the
// process's CPU per request (cpu-ns/op: server and client, both in this
// process) and the whole round trip of /healthz and of signing 1 KB (EC,
// in-memory key). healthz-bare is the baseline measured in the same run: a
// bare net/http server on its own socket whose handler writes the same
// /healthz answer, with the same client; healthz's cpu-ns/op minus
// healthz-bare's is what the api adds to each request.
func BenchmarkSocket(b *testing.B) {
	s, _ := benchServer(b)
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = writeFixed(w, http.StatusOK, healthBody, healthLength)
	})
	var writes atomic.Int64
	client := func(h http.Handler) *http.Client {
		dir, err := os.MkdirTemp("", "wsapi")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		sock := filepath.Join(dir, "s")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: h, ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return ConnContext(ctx, c.(countingConn).UnixConn)
		}}
		go srv.Serve(countingListener{ln, &writes})
		b.Cleanup(func() { srv.Close() })
		return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	}
	c, cBare := client(s), client(bare)
	env := string(bench.Envelope(1 << 10))
	for _, tc := range []struct {
		name, method, path, body string
		c                        *http.Client
	}{
		{"healthz-bare", "GET", "/healthz", "", cBare},
		{"healthz", "GET", "/healthz", "", c},
		{"sign-1KB-ec", "POST", "/v1/soap/sign?profile=ec", env, c},
		{"sign-1KB-rsa", "POST", "/v1/soap/sign?profile=default", env, c},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			var n int64
			writes.Store(0)
			cpu := cpuTime()
			for b.Loop() {
				req, _ := http.NewRequest(tc.method, "http://wssignd"+tc.path, strings.NewReader(tc.body))
				if tc.body != "" {
					req.Header.Set("Content-Type", "text/xml")
				}
				resp, err := tc.c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(resp.Status)
				}
				n++
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(n), "cpu-ns/op")
			b.ReportMetric(float64(writes.Load())/float64(n), "writes/resp")
		})
	}
}

// TestParseMediaTypeFastPath: the fast path answers as mime.ParseMediaType.
func TestParseMediaTypeFastPath(t *testing.T) {
	for _, ct := range []string{"text/xml", "application/soap+xml", "Text/XML", "text/xml; charset=utf-8", "text/xml;charset=latin1", "", "text/xml "} {
		mt, params, err := parseMediaType(ct)
		wmt, wparams, werr := mime.ParseMediaType(ct)
		if mt != wmt || len(params) != len(wparams) || (err == nil) != (werr == nil) {
			t.Errorf("%q: %q %v %v, want %q %v %v", ct, mt, params, err, wmt, wparams, werr)
		}
		for k, v := range wparams {
			if params[k] != v {
				t.Errorf("%q: param %s = %q, want %q", ct, k, params[k], v)
			}
		}
	}
}

// TestProfileParamFastPath: profileParam answers as r.URL.Query() does.
func TestProfileParamFastPath(t *testing.T) {
	for _, raw := range []string{"profile=default", "profile=", "", "profile", "profile=a&profile=b", "profile=a%20b", "profile=a+b",
		"profile=a;b", "profile=a=b", "explain=1&profile=a", "profile=a&explain=1", "Profile=a", "profile=%zz", "profile=a&", "&profile=a",
		"profile=%61", "x=1", "profile=é", "profile=a#b"} {
		name, n := profileParam(raw)
		q := (&url.URL{RawQuery: raw}).Query()
		if name != q.Get("profile") || n != len(q["profile"]) {
			t.Errorf("%q: %q %d, want %q %d", raw, name, n, q.Get("profile"), len(q["profile"]))
		}
	}
}

package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wssignd/wssignd/wss"
)

func TestBodyPool(t *testing.T) {
	var p bodyPool
	const limit = 4 << 20
	if b := p.get(1000, limit); len(b) != 1000 {
		t.Fatalf("small body: len %d", len(b))
	}
	p.put(make([]byte, 1000), limit)
	if n, k := p.held(); n != 0 || k != 0 {
		t.Errorf("a small buffer was kept: %d bytes in %d", n, k)
	}
	p.put(make([]byte, limit+1), limit)
	if n, _ := p.held(); n != 0 {
		t.Errorf("a buffer over the limit was kept: %d bytes", n)
	}

	a, b := make([]byte, 1<<20), make([]byte, 2<<20)
	p.put(a, limit)
	p.put(b, limit)
	// The smallest buffer that holds the body.
	got := p.get(900<<10, limit)
	if len(got) != 900<<10 || &got[:1][0] != &a[0] {
		t.Errorf("900 KiB body: not the 1 MiB buffer (len %d cap %d)", len(got), cap(got))
	}
	got2 := p.get(1<<20+1, limit)
	if &got2[:1][0] != &b[0] {
		t.Errorf("1 MiB + 1 body: not the 2 MiB buffer (cap %d)", cap(got2))
	}
	if got3 := p.get(1<<20, limit); &got3[:1][0] == &a[0] || &got3[:1][0] == &b[0] {
		t.Error("a buffer in use was handed out again")
	}
	p.put(got, limit)
	p.put(got2, limit)

	// At the limit the smallest go first, and a buffer smaller than all
	// the kept ones is not kept.
	p.put(make([]byte, 3<<20), limit) // 1+2+3 > 4: the 1 and 2 MiB buffers go
	if n, k := p.held(); n != 3<<20 || k != 1 {
		t.Errorf("after a 3 MiB buffer: %d bytes in %d buffers, want 3 MiB in 1", n, k)
	}
	p.put(make([]byte, 2<<20), limit) // 3+2 > 4, and 2 < 3: not kept
	if n, k := p.held(); n != 3<<20 || k != 1 {
		t.Errorf("after a 2 MiB buffer: %d bytes in %d buffers, want 3 MiB in 1", n, k)
	}

	// Unused for bodyPoolIdle: dropped.
	now := time.Now()
	p.mu.Lock()
	p.now = func() time.Time { return now }
	p.mu.Unlock()
	p.put(make([]byte, 1<<20), limit) // used now; the 3 MiB one earlier
	p.mu.Lock()
	p.now = func() time.Time { return now.Add(bodyPoolIdle) }
	p.mu.Unlock()
	p.trimIdle()
	if n, k := p.held(); n != 0 || k != 0 {
		t.Errorf("after bodyPoolIdle: %d bytes in %d buffers kept", n, k)
	}
	p.mu.Lock()
	if p.trim != nil {
		t.Error("the trim timer is armed with nothing to trim")
	}
	p.mu.Unlock()
}

// TestLargeBodyBufferReused: a daemon signing 1 MB envelopes one after the
// other reads each into the buffer of the one before, instead of
// allocating a new one while the last waits for the collector.
func TestLargeBodyBufferReused(t *testing.T) {
	keys := &memKeys{creds: map[string]wss.Credential{"ec": loadCred(t, "ecp256")}}
	s := New(Config{
		Keys:     keys,
		Profiles: map[string]*Profile{"default": {Key: "ec", Access: Access{UIDs: []uint32{uint32(os.Getuid())}}}},
	})
	env := []byte(`<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><p>` +
		strings.Repeat("0123456789abcdef", 1<<16) + `</p></soap:Body></soap:Envelope>`)
	sign := func() {
		req := httptest.NewRequest("POST", "/v1/soap/sign?profile=default", bytes.NewReader(env))
		req.Header.Set("Content-Type", "text/xml")
		req = req.WithContext(context.WithValue(req.Context(), peerKey{}, Peer{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Known: true}))
		w := &discardWriter{h: http.Header{}}
		s.ServeHTTP(w, req)
		if w.code != http.StatusOK || w.n < len(env) {
			t.Fatalf("sign: %d, %d bytes", w.code, w.n)
		}
	}
	sign()
	const n = 8
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range n {
		sign()
	}
	runtime.ReadMemStats(&m1)
	// The response is discarded and the request's reader reads env in
	// place: what is left per request is the handler's own allocation.
	perReq := (m1.TotalAlloc - m0.TotalAlloc) / n
	if limit := uint64(len(env)) / 4; perReq > limit {
		t.Errorf("allocated %d bytes per %d-byte request, want ≤ %d (the body's buffer is not reused)", perReq, len(env), limit)
	}
	t.Logf("%d bytes allocated per %d-byte request", perReq, len(env))
}

// discardWriter is a ResponseWriter that keeps the status and counts the
// body's bytes.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (d *discardWriter) Header() http.Header { return d.h }
func (d *discardWriter) WriteHeader(code int) {
	if d.code == 0 {
		d.code = code
	}
}
func (d *discardWriter) Write(b []byte) (int, error) {
	d.WriteHeader(http.StatusOK)
	d.n += len(b)
	return len(b), nil
}

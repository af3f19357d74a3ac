package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Problem codes of the admission limits.
const (
	CodeTooManyRequests = "too-many-requests" // this caller has its share of requests (or body bytes) in flight
	CodeBodyTimeout     = "body-timeout"      // the body did not arrive in time
)

// Limiter holds what requests in flight use, across every Server that
// shares it (the daemon makes one for the process, so a reload does not
// reset the counts): requests per peer and request-body bytes, in total
// and per peer. The limits themselves are in Config. Safe for concurrent
// use.
type Limiter struct {
	mu        sync.Mutex
	requests  map[peerKeyID]int
	bytes     map[peerKeyID]int64
	bytesUsed int64
	bodies    bodyPool // buffers of large bodies, used again
}

// NewLimiter returns an empty Limiter.
func NewLimiter() *Limiter {
	return &Limiter{requests: map[peerKeyID]int{}, bytes: map[peerKeyID]int64{}}
}

// peerKeyID is who a per-peer limit counts: the uid, or every connection
// without peer credentials together.
type peerKeyID struct {
	uid   uint32
	known bool
}

func peerID(p Peer) peerKeyID { return peerKeyID{uid: p.UID, known: p.Known} }

// enter admits one more request of p, unless p has max in flight; leave
// gives its place back.
func (l *Limiter) enter(p peerKeyID, max int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.requests[p] >= max {
		return false
	}
	l.requests[p]++
	return true
}

func (l *Limiter) leave(p peerKeyID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.requests[p]--; l.requests[p] <= 0 {
		delete(l.requests, p)
	}
}

// reserve sets n body bytes aside for p, unless that would pass total in
// flight or perPeer for p. It reports which limit refused. unreserve
// gives them back.
func (l *Limiter) reserve(p peerKeyID, n, total, perPeer int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bytes[p]+n > perPeer {
		return errPeerBytes
	}
	if l.bytesUsed+n > total {
		return errTotalBytes
	}
	l.bytes[p] += n
	l.bytesUsed += n
	return nil
}

func (l *Limiter) unreserve(p peerKeyID, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bytesUsed -= n
	if l.bytes[p] -= n; l.bytes[p] <= 0 {
		delete(l.bytes, p)
	}
}

var (
	errPeerBytes  = errors.New("this caller's request bodies in flight are at the limit")
	errTotalBytes = errors.New("the request bodies in flight are at the limit")
)

// releases is what a request holds, given back when it ends (run, in the
// reverse order of taking): its place in its peer's count (serve), body
// bytes (readBodyLimited), slots of signing work (takeSlot). Plain fields,
// not closures: holding costs no allocation.
type releases struct {
	l       *Limiter
	peer    peerKeyID
	entered bool          // counted in the peer's requests
	bytes   int64         // body bytes set aside
	slots   chan struct{} // the semaphore nslots slots were taken from
	nslots  int
	body    []byte // the body's buffer, given back to l.bodies
	bodyMax int64  // the pool's limit
}

func (rs *releases) run() {
	for ; rs.nslots > 0; rs.nslots-- {
		<-rs.slots
	}
	if rs.body != nil {
		rs.l.bodies.put(rs.body, rs.bodyMax)
		rs.body = nil
	}
	if rs.bytes > 0 {
		rs.l.unreserve(rs.peer, rs.bytes)
		rs.bytes = 0
	}
	if rs.entered {
		rs.l.leave(rs.peer)
		rs.entered = false
	}
}

// held returns what r's request holds.
func held(r *http.Request) *releases {
	if rw, ok := r.Context().Value(requestIDKey{}).(*respWriter); ok && rw.rel.entered {
		return &rw.rel
	}
	panic("api: hold outside serve") // every handler runs under serve
}

// takeSlot takes one of the MaxConcurrent slots of signing work for the
// rest of r's request. It is taken once the body is read, so that a slow
// client holds a slot only while there is work to do.
func (s *Server) takeSlot(r *http.Request) error {
	select {
	case s.slots <- struct{}{}:
		rs := held(r)
		rs.slots = s.slots
		rs.nslots++
		return nil
	default:
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeOverloaded, Detail: "too many requests in flight", RetryAfter: time.Second}
	}
}

// readBodyLimited reads r's body of at most max bytes before any work is
// done: it sets the body's bytes aside in the Limiter first (the
// announced length, or max for a body without one), each read must
// progress within BodyIdleTimeout, and the bytes stay counted until the
// request ends.
func (s *Server) readBodyLimited(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	tooLarge := func() error {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge, Detail: fmt.Sprintf("the body exceeds %d bytes", max)}
	}
	if r.ContentLength > max {
		return nil, tooLarge()
	}
	n := r.ContentLength
	if n < 0 {
		n = max
	}
	rs := held(r)
	if err := s.cfg.Limiter.reserve(rs.peer, n, s.cfg.MaxInFlightBodyBytes, s.perPeerBodyBytes()); err != nil {
		if errors.Is(err, errPeerBytes) {
			return nil, &Error{Status: http.StatusServiceUnavailable, Code: CodeTooManyRequests, Detail: err.Error(), RetryAfter: time.Second}
		}
		return nil, &Error{Status: http.StatusServiceUnavailable, Code: CodeOverloaded, Detail: err.Error(), RetryAfter: time.Second}
	}
	rs.bytes += n
	rc := http.NewResponseController(w)
	// The body is read by the request deadline: the handler then answers
	// for itself, well before the watchdog would.
	end, ok := r.Context().Deadline()
	if !ok {
		end = time.Now().Add(s.cfg.RequestTimeout)
	}
	ir := &idleReader{r: http.MaxBytesReader(w, r.Body, max), rc: rc, idle: s.cfg.BodyIdleTimeout, end: end}
	var body []byte
	var err error
	if r.ContentLength > 0 {
		// Into one buffer of the announced size (net/http never returns more
		// than it announces), not one grown by doubling; a large one from the
		// pool, given back when the request ends.
		body = s.cfg.Limiter.bodies.get(r.ContentLength, s.cfg.MaxBodyBytes)
		if cap(body) >= minPooledBody {
			rs.body, rs.bodyMax = body, s.cfg.MaxBodyBytes
		}
		_, err = io.ReadFull(ir, body)
	} else {
		body, err = io.ReadAll(ir)
	}
	// The connection must not keep the body's deadline: once the body is
	// read, net/http waits for the next request in the background, and a
	// deadline there would cancel this request's context.
	_ = rc.SetReadDeadline(time.Time{})
	if err != nil {
		var mbe *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &mbe):
			return nil, tooLarge()
		case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
			return nil, &Error{Status: http.StatusRequestTimeout, Code: CodeBodyTimeout, Detail: fmt.Sprintf("the body did not progress for %v", s.cfg.BodyIdleTimeout), Err: err}
		}
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Detail: "could not read the request body", Err: err}
	}
	return body, nil
}

// perPeerBodyBytes is how many body bytes one caller may have in flight: a
// quarter of the total, and at least one body of the largest size.
func (s *Server) perPeerBodyBytes() int64 {
	return max(s.cfg.MaxInFlightBodyBytes/4, s.cfg.MaxBodyBytes)
}

// idleReader gives each read of the body idle to make progress, and the
// whole body until end.
type idleReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
	end  time.Time
}

func (i *idleReader) Read(p []byte) (int, error) {
	d := time.Now().Add(i.idle)
	if d.After(i.end) {
		d = i.end
	}
	if err := i.rc.SetReadDeadline(d); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return 0, err
	}
	return i.r.Read(p)
}

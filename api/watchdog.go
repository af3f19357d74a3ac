package api

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// watchdogGrace is how long past the request deadline the watchdog lets a
// handler answer for itself before it answers in its place. A handler
// whose work honours the deadline answers 504 timeout within microseconds
// of it (a few milliseconds on a loaded machine); one whose goroutine is
// held in a module call that does not return (a hung token called on the
// caller's goroutine) never does. A quarter of a second is far above the
// first and keeps the second's answer close to the deadline, and far below
// the daemon's write timeout (the request timeout plus 5 s).
const watchdogGrace = 250 * time.Millisecond

// errWatchdog is the error the watchdog answers with: the request deadline
// passed, so toProblem makes it 504 timeout like any other.
var errWatchdog = fmt.Errorf("the handler did not answer by the request deadline: %w", context.DeadlineExceeded)

// respWriter is the http.ResponseWriter every handler is given: it records
// the status the client got (for the metrics). On the routes under the
// request deadline it is also the request's state in the handler's context
// (requestIDKey: the request id, what the request holds), and guarded
// (guard): the handler writes its headers into a map of
// its own, copied to net/http's when it writes its header, every use of
// net/http's writer is under one mutex, and a watchdog answers 504 timeout
// in the handler's place when the handler has not answered by the
// deadline plus watchdogGrace. The handler's goroutine may still be held
// (in a token call that does not return); its writes after the watchdog's
// answer are dropped and fail with http.ErrHandlerTimeout, and net/http
// never sees two goroutines at once. Trailers are not supported on guarded
// routes (none of them sends any).
type respWriter struct {
	w        http.ResponseWriter // net/http's
	id       string              // the request id
	idHeader [1]string           // the Wssignd-Request-Id header's value
	start    time.Time
	status   int           // the status the client got, 0 until one is written
	rm       *routeMetrics // the route's metrics series, once routed
	rel      releases      // what the request holds

	// Set by guard before the handler runs, then only read.
	h     http.Header // the handler's header map; nil: not guarded
	ctx   context.Context
	s     *Server
	path  string
	timer *time.Timer

	mu        sync.Mutex
	committed bool // the handler's header went to net/http
	timedOut  bool // the watchdog answered: the handler's writes are dropped
	done      bool // ServeHTTP is returning: the watchdog may not answer
}

// guard makes rw guarded for a request under ctx, whose deadline is
// timeout from now, and arms the watchdog: a timer that fires
// watchdogGrace after the deadline (no goroutine until it fires). A timer
// of its own costs less than context.AfterFunc on ctx, which fires at the
// deadline itself (measured: 2 allocations and about 0.4 µs against 7 and
// 0.9 µs, with the context's Done channel made for it). disarm stops it
// once the handler has returned.
func (rw *respWriter) guard(ctx context.Context, s *Server, path string, timeout time.Duration) {
	rw.h = make(http.Header, 4)
	rw.ctx, rw.s, rw.path = ctx, s, path
	rw.timer = time.AfterFunc(timeout+watchdogGrace, rw.answer)
}

// disarm stops the watchdog's timer; it reports whether that was before
// the timer fired.
func (rw *respWriter) disarm() bool { return rw.timer.Stop() }

// answer answers 504 timeout in the handler's place, unless the handler
// has begun its answer or returned, or the client has gone (the request's
// context was cancelled before its deadline): the same problem+json as
// the one error funnel writes (toProblem, writeProblem), with
// Connection: close (the handler may still be reading the body; the
// connection is not reused) and a Content-Length (the handler has not
// returned, so net/http cannot compute one), flushed at once; logged and
// counted like every error.
func (rw *respWriter) answer() {
	if rw.ctx.Err() == context.Canceled {
		return
	}
	rw.mu.Lock()
	if rw.committed || rw.done || rw.timedOut {
		rw.mu.Unlock()
		return
	}
	rw.timedOut = true
	p := toProblem(errWatchdog)
	rw.w.Header().Set("Connection", "close")
	writeProblem(rw.w, p, rw.id)
	_ = http.NewResponseController(rw.w).Flush()
	rw.status = p.Status
	rw.mu.Unlock()
	rw.s.logProblem(rw.id, rw.path, p, errWatchdog)
	rm := rw.rm
	if rm == nil {
		rm = rw.s.routeMetrics(rw.path)
	}
	rm.observe(p.Status, time.Since(rw.start))
}

// finish is called once the handler returned (and on a panic): the
// watchdog can no longer answer. It reports whether the watchdog had
// answered, in which case the request was counted then.
func (rw *respWriter) finish() (watchdogAnswered bool) {
	if rw.h == nil {
		return false
	}
	rw.mu.Lock()
	defer rw.mu.Unlock()
	rw.done = true
	return rw.timedOut
}

// Header returns the handler's header map.
func (rw *respWriter) Header() http.Header {
	if rw.h != nil {
		return rw.h
	}
	return rw.w.Header()
}

// commitLocked copies the handler's headers to net/http's map before its
// first header goes out (with status code, or implicitly with a Write:
// code 0). Informational (1xx) headers go out without ending the
// handler's chance to answer.
func (rw *respWriter) commitLocked(code int) {
	if !rw.committed {
		dst := rw.w.Header()
		for k, v := range rw.h {
			dst[k] = v
		}
		if code >= 100 && code < 200 {
			return
		}
		rw.committed = true
		if rw.status == 0 {
			rw.status = max(code, http.StatusOK)
		}
	}
}

func (rw *respWriter) WriteHeader(code int) {
	if rw.h == nil {
		if rw.status == 0 {
			rw.status = code
		}
		rw.w.WriteHeader(code)
		return
	}
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.timedOut {
		return
	}
	rw.commitLocked(code)
	rw.w.WriteHeader(code)
}

func (rw *respWriter) Write(b []byte) (int, error) {
	if rw.h == nil {
		if rw.status == 0 {
			rw.status = http.StatusOK
		}
		return rw.w.Write(b)
	}
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.timedOut {
		return 0, http.ErrHandlerTimeout
	}
	rw.commitLocked(0)
	return rw.w.Write(b)
}

// FlushError flushes net/http's buffer (http.ResponseController.Flush
// finds it here, before it would unwrap).
func (rw *respWriter) FlushError() error {
	if rw.h != nil {
		rw.mu.Lock()
		defer rw.mu.Unlock()
		if rw.timedOut {
			return http.ErrHandlerTimeout
		}
		rw.commitLocked(0)
	}
	return http.NewResponseController(rw.w).Flush()
}

// Flush is http.Flusher's FlushError.
func (rw *respWriter) Flush() { _ = rw.FlushError() }

// EnableFullDuplex changes how net/http writes the header: under the
// mutex, like a write.
func (rw *respWriter) EnableFullDuplex() error {
	if rw.h != nil {
		rw.mu.Lock()
		defer rw.mu.Unlock()
		if rw.timedOut {
			return http.ErrHandlerTimeout
		}
	}
	return http.NewResponseController(rw.w).EnableFullDuplex()
}

// Hijack is refused on a guarded request: the watchdog may have to answer
// on the connection.
func (rw *respWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if rw.h != nil {
		return nil, nil, fmt.Errorf("%w: a request under the deadline watchdog cannot be hijacked", http.ErrNotSupported)
	}
	return http.NewResponseController(rw.w).Hijack()
}

// Unwrap lets http.ResponseController reach net/http's writer for what
// respWriter does not implement: SetReadDeadline and SetWriteDeadline,
// which set the connection's deadlines (safe from any goroutine) and touch
// nothing of the response. Everything that does (Flush, EnableFullDuplex,
// Hijack) is implemented above, so ResponseController stops here for it.
func (rw *respWriter) Unwrap() http.ResponseWriter { return rw.w }

package api

import (
	"sync"
	"time"
)

// Large request bodies are read into buffers that are used again by the
// next large bodies. Without that, each 10 MB envelope costs a new 10 MB
// buffer while the last one's waits for the collector (which lets the heap
// grow to about twice what is live before it runs): a daemon signing 10 MB
// envelopes one after the other peaked at 1.8 × the envelope above its
// idle size, with reuse at about 1 ×.
const (
	// minPooledBody is the smallest body whose buffer is kept: smaller ones
	// are cheap for the allocator.
	minPooledBody = 64 << 10
	// bodyPoolIdle is how long an unused buffer is kept.
	bodyPoolIdle = time.Minute
)

// bodyPool keeps up to limit bytes of body buffers (one body of the
// largest size allowed: the caller passes the limit). A request takes the
// smallest buffer that holds its body, and gives it back when it ends (the
// response has been written by then; nothing of a request outlives it).
// Buffers unused for bodyPoolIdle are dropped, so an idle daemon returns to
// its idle size. Safe for concurrent use.
type bodyPool struct {
	mu    sync.Mutex
	bytes int64
	free  []pooledBody
	trim  *time.Timer // armed while free is not empty
	now   func() time.Time
}

type pooledBody struct {
	b    []byte
	used time.Time
}

// get returns a buffer of length n (its contents are not zeroed: the
// caller overwrites all n bytes before it reads any).
func (p *bodyPool) get(n, limit int64) []byte {
	if n < minPooledBody || n > limit {
		return make([]byte, n)
	}
	p.mu.Lock()
	best := -1
	for i, f := range p.free {
		if int64(cap(f.b)) >= n && (best < 0 || cap(f.b) < cap(p.free[best].b)) {
			best = i
		}
	}
	if best < 0 {
		p.mu.Unlock()
		return make([]byte, n)
	}
	b := p.free[best].b
	p.free[best] = p.free[len(p.free)-1]
	p.free[len(p.free)-1] = pooledBody{}
	p.free = p.free[:len(p.free)-1]
	p.bytes -= int64(cap(b))
	p.mu.Unlock()
	return b[:n]
}

// put gives b back. When the pool would pass limit, the smallest buffers
// go first.
func (p *bodyPool) put(b []byte, limit int64) {
	c := int64(cap(b))
	if c < minPooledBody || c > limit {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.bytes+c > limit {
		small := -1
		for i, f := range p.free {
			if small < 0 || cap(f.b) < cap(p.free[small].b) {
				small = i
			}
		}
		if small < 0 || int64(cap(p.free[small].b)) > c {
			return // b is the smallest: keep the larger ones
		}
		p.bytes -= int64(cap(p.free[small].b))
		p.free[small] = p.free[len(p.free)-1]
		p.free[len(p.free)-1] = pooledBody{}
		p.free = p.free[:len(p.free)-1]
	}
	p.free = append(p.free, pooledBody{b: b[:cap(b)], used: p.clock()})
	p.bytes += c
	if p.trim == nil {
		p.trim = time.AfterFunc(bodyPoolIdle, p.trimIdle)
	}
}

func (p *bodyPool) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// trimIdle drops the buffers unused for bodyPoolIdle, and looks again
// later while some are left.
func (p *bodyPool) trimIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trim = nil
	now := p.clock()
	kept := p.free[:0]
	var next time.Duration
	for _, f := range p.free {
		if age := now.Sub(f.used); age < bodyPoolIdle {
			kept = append(kept, f)
			if wait := bodyPoolIdle - age; next == 0 || wait < next {
				next = wait
			}
			continue
		}
		p.bytes -= int64(cap(f.b))
	}
	clear(p.free[len(kept):])
	p.free = kept
	if len(p.free) > 0 {
		p.trim = time.AfterFunc(next, p.trimIdle)
	}
}

// held reports the bytes the pool keeps, for tests.
func (p *bodyPool) held() (int64, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bytes, len(p.free)
}

package wss

import (
	"container/heap"
	"sync"
	"time"
)

// DefaultReplayCacheSize is the capacity of a ReplayCache made with size 0.
const DefaultReplayCacheSize = 100_000

// ReplayCache remembers verified messages (by Timestamp Created and a hash
// of the SignatureValue) until they could no longer pass the Timestamp
// rules. It is bounded: when full, expired entries go first, then the one
// that expires soonest (a message that old is close to being refused by the
// Timestamp rules anyway). Safe for concurrent use.
type ReplayCache struct {
	mu   sync.Mutex
	max  int
	seen map[string]time.Time
	q    expiryHeap
}

// NewReplayCache returns a cache holding at most size entries (0: DefaultReplayCacheSize).
func NewReplayCache(size int) *ReplayCache {
	if size <= 0 {
		size = DefaultReplayCacheSize
	}
	return &ReplayCache{max: size, seen: map[string]time.Time{}}
}

// Add records key until expires and reports true, or reports false when key
// is already recorded and not expired at now.
func (c *ReplayCache) Add(key string, expires, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.q) > 0 && !c.q[0].exp.After(now) {
		e := heap.Pop(&c.q).(expiryEntry)
		if c.seen[e.key].Equal(e.exp) {
			delete(c.seen, e.key)
		}
	}
	if exp, ok := c.seen[key]; ok && exp.After(now) {
		return false
	}
	for len(c.seen) >= c.max && len(c.q) > 0 {
		e := heap.Pop(&c.q).(expiryEntry)
		if c.seen[e.key].Equal(e.exp) {
			delete(c.seen, e.key)
		}
	}
	c.seen[key] = expires
	heap.Push(&c.q, expiryEntry{key: key, exp: expires})
	return true
}

// Len returns the number of entries held.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

type expiryEntry struct {
	key string
	exp time.Time
}

type expiryHeap []expiryEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].exp.Before(h[j].exp) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

package wss

import "bytes"

// nsStack is a stack of namespace bindings with O(1) push, O(1) pop per
// binding and O(1) amortised lookup of the innermost binding of a prefix,
// whatever the number of bindings in force. Up to linearLookup bindings a
// lookup scans them (a handful of comparisons beats hashing, and no map is
// touched: the common case). Beyond, each binding records the index of the
// binding of the same prefix it shadows, and a map from prefix to a slot
// holds the index of the innermost one. Popping restores the shadowed index
// and frees the slot of a prefix no longer bound, so that the map holds the
// prefixes in scope only (not every prefix the input ever used); nothing is
// ever copied per element.
type nsStack struct {
	binds []nsBind
	// indexed: the map is in use (more than linearLookup bindings).
	indexed bool
	// slots[i] is the index in binds of the innermost binding of the
	// prefix whose slot is i.
	slots []int32
	free  []int32          // slots of prefixes no longer bound
	index map[string]int32 // prefix in scope → slot
}

// nsBind is a namespace binding in scope; prefix "" is the default namespace.
type nsBind struct {
	prefix, uri []byte
	prev        int32 // with the index: the binding of the same prefix this one shadows, or -1
	slot        int32 // with the index: the prefix's slot
}

// linearLookup is the number of bindings up to which lookups scan them.
const linearLookup = 8

func (s *nsStack) len() int { return len(s.binds) }

// push binds prefix to uri until popTo(mark) with a mark ≤ the current len.
func (s *nsStack) push(prefix, uri []byte) {
	s.binds = append(s.binds, nsBind{prefix: prefix, uri: uri})
	switch {
	case s.indexed:
		s.link(len(s.binds) - 1)
	case len(s.binds) > linearLookup:
		if s.index == nil {
			s.index = make(map[string]int32)
		}
		s.indexed = true
		for i := range s.binds {
			s.link(i)
		}
	}
}

// link enters binding i, the innermost of its prefix, in the index.
func (s *nsStack) link(i int) {
	b := &s.binds[i]
	slot, ok := s.index[string(b.prefix)]
	if !ok {
		if n := len(s.free); n > 0 {
			slot, s.free = s.free[n-1], s.free[:n-1]
		} else {
			slot = int32(len(s.slots))
			s.slots = append(s.slots, -1)
		}
		s.slots[slot] = -1
		s.index[string(b.prefix)] = slot
	}
	b.prev, b.slot = s.slots[slot], slot
	s.slots[slot] = int32(i)
}

// popTo removes the bindings pushed since len() was mark.
func (s *nsStack) popTo(mark int) {
	for i := len(s.binds) - 1; i >= mark; i-- {
		if b := &s.binds[i]; s.indexed {
			s.slots[b.slot] = b.prev
			if b.prev < 0 {
				delete(s.index, string(b.prefix))
				s.free = append(s.free, b.slot)
			}
		}
		s.binds[i] = nsBind{}
	}
	s.binds = s.binds[:mark]
	if s.indexed && mark <= linearLookup {
		for i := range s.binds {
			delete(s.index, string(s.binds[i].prefix))
		}
		s.slots, s.free, s.indexed = s.slots[:0], s.free[:0], false
	}
}

// lookup returns the URI of the innermost binding of prefix.
func (s *nsStack) lookup(prefix []byte) ([]byte, bool) {
	if !s.indexed {
		for i := len(s.binds) - 1; i >= 0; i-- {
			if bytes.Equal(s.binds[i].prefix, prefix) {
				return s.binds[i].uri, true
			}
		}
		return nil, false
	}
	slot, ok := s.index[string(prefix)]
	if !ok {
		return nil, false
	}
	return s.binds[s.slots[slot]].uri, true
}

// reset empties s, keeping its storage.
func (s *nsStack) reset() {
	clear(s.binds[:cap(s.binds)])
	s.binds = s.binds[:0]
	s.slots = s.slots[:0]
	s.free = s.free[:0]
	s.indexed = false
	clear(s.index)
}

// large reports whether s holds more storage than a pooled object should keep.
func (s *nsStack) large() bool { return cap(s.binds) > 256 || cap(s.slots) > 256 }

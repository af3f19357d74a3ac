package wss

import "bytes"

// nsStack is a stack of namespace bindings with O(1) push, O(1) pop per
// binding and O(1) amortised lookup of the innermost binding of a prefix,
// whatever the number of bindings in force: each binding records the index
// of the binding of the same prefix it shadows, and a map from prefix to a
// slot holds the index of the innermost one. Popping restores the shadowed
// index, and frees the slot of a prefix no longer bound, so that the map
// holds the prefixes in scope only (not every prefix the input ever used);
// nothing is ever copied per element.
type nsStack struct {
	binds []nsBind
	// slots[i] is the index in binds of the innermost binding of the
	// prefix whose slot is i.
	slots []int32
	free  []int32          // slots of prefixes no longer bound
	index map[string]int32 // prefix in scope → slot
}

// nsBind is a namespace binding in scope; prefix "" is the default namespace.
type nsBind struct {
	prefix, uri []byte
	prev        int32 // the binding of the same prefix this one shadows, or -1
	slot        int32
}

// linearLookup is the size up to which a lookup scans the bindings instead
// of asking the map: a handful of comparisons beats hashing.
const linearLookup = 8

func (s *nsStack) len() int { return len(s.binds) }

// push binds prefix to uri until popTo(mark) with a mark ≤ the current len.
func (s *nsStack) push(prefix, uri []byte) {
	if s.index == nil {
		s.index = make(map[string]int32)
	}
	slot, ok := s.index[string(prefix)]
	if !ok {
		if n := len(s.free); n > 0 {
			slot, s.free = s.free[n-1], s.free[:n-1]
		} else {
			slot = int32(len(s.slots))
			s.slots = append(s.slots, -1)
		}
		s.slots[slot] = -1
		s.index[string(prefix)] = slot
	}
	s.binds = append(s.binds, nsBind{prefix: prefix, uri: uri, prev: s.slots[slot], slot: slot})
	s.slots[slot] = int32(len(s.binds) - 1)
}

// popTo removes the bindings pushed since len() was mark.
func (s *nsStack) popTo(mark int) {
	for i := len(s.binds) - 1; i >= mark; i-- {
		b := &s.binds[i]
		s.slots[b.slot] = b.prev
		if b.prev < 0 {
			delete(s.index, string(b.prefix))
			s.free = append(s.free, b.slot)
		}
		*b = nsBind{}
	}
	s.binds = s.binds[:mark]
}

// lookup returns the URI of the innermost binding of prefix.
func (s *nsStack) lookup(prefix []byte) ([]byte, bool) {
	if len(s.binds) <= linearLookup {
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
	clear(s.index)
}

// large reports whether s holds more storage than a pooled object should keep.
func (s *nsStack) large() bool { return cap(s.binds) > 256 || len(s.index) > 256 }

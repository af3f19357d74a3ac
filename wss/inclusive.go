package wss

import (
	"bytes"
	"maps"
	"slices"
)

// inclusiveSink collects, for one element subtree, the prefixes whose
// namespace declarations Canonical XML 1.0 (inclusive) renders: every
// namespace in scope at the subtree's root and every prefix declared inside
// it ("#default" for the default namespace). Exclusive C14N given all of
// them as its InclusiveNamespaces PrefixList treats every namespace node by
// the inclusive rules (Exclusive XML Canonicalization §3), so its output is
// the subtree's Canonical XML 1.0 form, save for the xml:* attributes that
// inclusive C14N copies from ancestors onto the root (checked apart, see
// inheritedXMLAttrs). Sign uses it for References without Transforms,
// whose node-set XML-DSig §4.3.3.2 turns into octets with Canonical XML 1.0.
type inclusiveSink struct {
	set   map[string]struct{}
	depth int
}

func newInclusiveSink() *inclusiveSink { return &inclusiveSink{set: map[string]struct{}{}} }

func (u *inclusiveSink) add(prefix []byte, uri []byte) {
	switch {
	case len(prefix) == 0:
		// An empty default namespace is rendered (xmlns="") only to undo
		// a non-empty one, which is then listed too.
		if len(uri) > 0 {
			u.set["#default"] = struct{}{}
		}
	case string(prefix) == "xml":
	default:
		u.set[string(prefix)] = struct{}{}
	}
}

func (u *inclusiveSink) token(t *xmlTokenizer) bool {
	switch t.kind {
	case tokStart:
		if u.depth == 0 {
			for _, b := range t.ns.binds {
				u.add(b.prefix, b.uri)
			}
		}
		for j := range t.attrs {
			switch a := &t.attrs[j]; {
			case a.decl && a.prefix == nil: // xmlns="…"
				u.add(nil, a.value)
			case a.decl:
				u.add(a.local, a.value)
			}
		}
		u.depth++
	case tokEnd:
		u.depth--
		return u.depth == 0
	}
	return false
}

func (u *inclusiveSink) sorted() []string { return slices.Sorted(maps.Keys(u.set)) }

// inheritedXMLAttrs reports whether an element on the path from the
// Envelope to the Security header (the ancestors of everything Sign
// references) carries an xml:* attribute, which Canonical XML 1.0 would
// copy onto a referenced subtree's root.
func (s *signer) inheritedXMLAttrs() bool {
	for _, el := range []*element{s.env.root, s.env.header, s.sec} {
		if el == nil {
			continue
		}
		for _, a := range el.attrs {
			if a.Name.Space == "xml" {
				return true
			}
		}
	}
	return false
}

// qnamePrefixSink collects the prefixes of the QNames in xsi:type values of
// a subtree ("#default" for an unprefixed one under a default namespace)
// that the element carrying the value does not visibly use itself.
// Exclusive C14N renders the binding of a prefix in scope at an element
// only when that element visibly uses it, so the binding such a QName
// depends on is not signed unless an InclusiveNamespaces PrefixList names
// the prefix: WS-I BSP 1.1 R5405 requires it listed, and R5407 the list
// present when not empty.
type qnamePrefixSink struct {
	set   map[string]struct{}
	depth int
}

func newQNamePrefixSink() *qnamePrefixSink { return &qnamePrefixSink{set: map[string]struct{}{}} }

func (q *qnamePrefixSink) token(t *xmlTokenizer) bool {
	switch t.kind {
	case tokStart:
		q.depth++
		for j := range t.attrs {
			a := &t.attrs[j]
			if a.decl || string(a.local) != "type" || !bytes.Equal(a.uri, bXSI) {
				continue
			}
			v := bytes.TrimSpace(a.value)
			prefix, _, found := bytes.Cut(v, []byte(":"))
			if !found {
				if len(v) == 0 {
					continue
				}
				prefix = nil
			}
			if string(prefix) == "xml" || string(prefix) == "xmlns" {
				continue
			}
			if visiblyUses(t, prefix) {
				continue
			}
			uri, ok := t.lookup(prefix)
			switch {
			case len(prefix) == 0 && len(uri) > 0:
				q.set["#default"] = struct{}{}
			case len(prefix) > 0 && ok:
				q.set[string(prefix)] = struct{}{}
			}
		}
	case tokEnd:
		q.depth--
		return q.depth == 0
	}
	return false
}

func (q *qnamePrefixSink) sorted() []string {
	if q == nil || len(q.set) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(q.set))
}

// teeSink feeds two sinks the same tokens.
type teeSink struct{ a, b tokenSink }

func (s teeSink) token(t *xmlTokenizer) bool {
	s.b.token(t)
	return s.a.token(t)
}

// visiblyUses reports whether the current start tag's name or one of its
// attribute names uses prefix (nil: the element is in the default
// namespace, which unprefixed attributes never use).
func visiblyUses(t *xmlTokenizer, prefix []byte) bool {
	if bytes.Equal(t.prefix, prefix) {
		return true
	}
	if len(prefix) == 0 {
		return false
	}
	for j := range t.attrs {
		if a := &t.attrs[j]; !a.decl && bytes.Equal(a.prefix, prefix) {
			return true
		}
	}
	return false
}

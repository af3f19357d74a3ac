package wss

// A span tree: the elements of one document read by xmlTokenizer, each
// located by byte offsets into the input, with its expanded name, its
// attributes (values normalised as the tokenizer normalises them), its
// namespace declarations, its parent and its children.
//
// It is the one parse Verify and Decrypt make of a message: every question
// they ask (structure, names, attributes, text, Ids) is answered from it,
// and the bytes they canonicalise are the raw bytes of an element's span,
// read again by the same tokenizer with the namespace declarations of the
// element's ancestors in force (spanTree.canonicalize).
//
// Storage is a few chunked arrays indexed by int32 (never copied as they
// grow) plus one byte arena, so the tree costs a constant per element,
// attribute and declaration, plus the bytes of the attribute values that
// normalisation changed: proportional to the input whatever its shape.
// Attribute names, declared prefixes and the values that need no
// normalisation are located in the input, not copied. Character data is not
// stored: the text of an element is read from its span by the same
// tokenizer when asked for (only the text of small leaf elements is).
// Namespace declarations are recorded once, on the element that makes
// them; the bindings in force at an element are found by walking up its
// ancestors. Namespace URIs are interned.

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
)

// spanTree is a parsed document. Element 0 is the document element; the
// elements are in document order (the order of their start tags).
type spanTree struct {
	raw    []byte
	elems  chunks[spanElem]
	attrs  chunks[spanAttr]
	decls  chunks[spanDecl]
	arena  []byte   // attribute values that differ from the value as written
	uris   []string // interned namespace URIs; uris[0] is "" (no namespace)
	uriIdx map[string]int32
	ids    map[string]int32 // Id value → element (the first, when repeated)
	dup    error            // the first repeated Id value, if any
	dupAt  int32            // the element that repeats it
	// textAt lists the elements of depth 1 and 2 (the document element and
	// its children) with character data other than white space directly
	// in them, in document order, each once.
	textAt []int32

	// The context and limits of the parse, applied again whenever a span
	// is read.
	ctx context.Context
	lim Limits
}

// spanElem is one element. Offsets are into spanTree.raw.
type spanElem struct {
	start  int32 // '<' of the start tag
	tagEnd int32 // just past the start tag's '>': where the content starts
	endTag int32 // '<' of the end tag: where the content ends (tagEnd for <x/>)
	end    int32 // just past the end tag's '>' (tagEnd for <x/>)
	uri    int32 // namespace URI, index in spanTree.uris
	parent int32 // -1 for the document element

	next int32 // the next sibling element; -1 for none (the first child, if any, is the next element)

	// The element's attributes (declarations excluded) are spanTree.attrs
	// from index attrs on, its declarations spanTree.decls from index decls
	// on, up to where the next element's begin (attrRange, declRange).
	attrs, decls int32
}

// spanAttr is one attribute (never a namespace declaration). Its QName
// is raw[name:], up to the first white space or '=' (attrView.qname).
type spanAttr struct {
	name int32 // offset of the QName in spanTree.raw
	plen int32 // length of its prefix; 0 when unprefixed
	uri  int32 // namespace URI, index in spanTree.uris (0 for an unprefixed attribute)
	// The normalised value is raw[val:val+vlen] when val >= 0: the value
	// as written, which normalisation leaves unchanged; otherwise it is
	// arena[^val:^val+vlen].
	val, vlen int32
}

// spanDecl is a namespace declaration: xmlns="uri" (plen 0) or xmlns:p="uri".
type spanDecl struct {
	prefix, plen int32 // the declared prefix, in spanTree.raw
	uri          int32 // index in spanTree.uris; 0 undeclares the default namespace
}

// readSpanTree reads raw into a span tree under lim (size, depth, element
// count), with the tokenizer in the mode of scanEnvelope (names that
// encoding/xml refuses are refused). A repeated Id value (wsu:Id, Id, ID,
// xml:id) is recorded in st.dup and st.dupAt, not returned as an error.
func readSpanTree(ctx context.Context, raw []byte, lim Limits) (*spanTree, error) {
	lim = lim.withDefaults()
	if int64(len(raw)) > lim.MaxBytes || len(raw) >= math.MaxInt32 {
		return nil, errorf(CodeTooLarge, "document is %d bytes; the limit is %d", len(raw), min(lim.MaxBytes, math.MaxInt32-1))
	}
	t := getTokenizer(raw)
	defer putTokenizer(t)
	t.bound(ctx, lim)
	t.goNames = true
	st := &spanTree{
		raw:    raw,
		ctx:    ctx,
		lim:    lim,
		uris:   []string{""},
		uriIdx: map[string]int32{"": 0},
		ids:    map[string]int32{},
	}
	var stack, last []int32 // open elements; the last element child of each
	for {
		k, err := t.next()
		if err != nil {
			return nil, err
		}
		switch k {
		case tokEOF:
			if st.elems.n == 0 {
				return nil, errorf(CodeMalformedXML, "no document element")
			}
			return st, nil
		case tokStart:
			i := st.elems.n
			parent := int32(-1)
			if len(stack) > 0 {
				parent = stack[len(stack)-1]
			}
			e := spanElem{
				start: int32(t.start), tagEnd: int32(t.end),
				uri: st.intern(t.uri), parent: parent, next: -1,
				attrs: st.attrs.n, decls: st.decls.n,
			}
			for j := range t.attrs {
				a := &t.attrs[j]
				if a.decl {
					// xmlns:p: the prefix is the local part of the QName.
					off, n := a.at+len(a.qname)-len(a.local), len(a.local)
					if a.prefix == nil {
						off, n = a.at, 0
					}
					st.decls.push(spanDecl{prefix: int32(off), plen: int32(n), uri: st.intern(a.value)})
					continue
				}
				val := int32(a.valAt)
				if a.inBuf {
					val = ^st.keep(a.value)
				}
				st.attrs.push(spanAttr{
					name: int32(a.at), plen: int32(len(a.prefix)),
					uri: st.intern(a.uri), val: val, vlen: int32(len(a.value)),
				})
				if isIDAttrTok(a) {
					if _, seen := st.ids[string(a.value)]; !seen {
						st.ids[string(a.value)] = i
					} else if st.dup == nil {
						st.dup, st.dupAt = errorf(CodeDuplicateID, "the Id %q occurs more than once", a.value), i
					}
				}
			}
			st.elems.push(e)
			if parent >= 0 {
				if l := last[len(last)-1]; l >= 0 {
					st.elems.at(l).next = i
				}
				last[len(last)-1] = i
			}
			stack = append(stack, i)
			last = append(last, -1)
		case tokText, tokCDATA:
			if n := len(stack); n > 0 && n <= 2 && !isWhiteSpace(t.data) {
				if top := stack[n-1]; len(st.textAt) == 0 || st.textAt[len(st.textAt)-1] != top {
					st.textAt = append(st.textAt, top)
				}
			}
		case tokEnd:
			i := stack[len(stack)-1]
			stack, last = stack[:len(stack)-1], last[:len(last)-1]
			n := st.elems.at(i)
			n.endTag, n.end = int32(t.start), int32(t.end)
		}
	}
}

// isIDAttrTok reports whether a is an Id attribute: wsu:Id, an unprefixed
// Id or ID, or xml:id (the attributes scanEnvelope checks for uniqueness).
func isIDAttrTok(a *rawAttr) bool {
	switch {
	case a.uri == nil:
		return string(a.local) == "Id" || string(a.local) == "ID"
	case string(a.local) == "Id":
		return string(a.uri) == NSWSU
	case string(a.local) == "id":
		return string(a.uri) == NSXML
	}
	return false
}

// chunks is an array that grows by fixed-size chunks: nothing is copied as
// it grows (only the first chunk grows, by doubling, up to chunkLen), so
// the storage ever allocated for it is its final size plus at most one
// chunk.
type chunks[T any] struct {
	c [][]T
	n int32
}

const chunkLen = 256

// push appends v and returns its index.
func (s *chunks[T]) push(v T) int32 {
	k := int(s.n / chunkLen)
	if k == len(s.c) {
		size := chunkLen
		if k == 0 {
			size = 8
		}
		s.c = append(s.c, make([]T, 0, size))
	}
	last := s.c[k]
	if len(last) == cap(last) {
		grown := make([]T, len(last), min(2*cap(last), chunkLen))
		copy(grown, last)
		last = grown
	}
	s.c[k] = append(last, v)
	s.n++
	return s.n - 1
}

// at returns the element at index i.
func (s *chunks[T]) at(i int32) *T { return &s.c[i/chunkLen][i%chunkLen] }

// keep copies b into the arena and returns its offset.
func (st *spanTree) keep(b []byte) int32 {
	off := int32(len(st.arena))
	if len(st.arena)+len(b) > cap(st.arena) {
		st.arena = slices.Grow(st.arena, max(len(st.arena), len(b), 256))
	}
	st.arena = append(st.arena, b...)
	return off
}

// intern returns the index of uri in st.uris ("" and nil are 0).
func (st *spanTree) intern(uri []byte) int32 {
	if i, ok := st.uriIdx[string(uri)]; ok {
		return i
	}
	i := int32(len(st.uris))
	s := string(uri)
	st.uris = append(st.uris, s)
	st.uriIdx[s] = i
	return i
}

// rawStr is raw[off:off+n] as a string.
func (st *spanTree) rawStr(off, n int32) string { return string(st.raw[off : off+n]) }

// declPrefix is the prefix declared by d ("" for the default namespace).
func (st *spanTree) declPrefix(d *spanDecl) []byte { return st.raw[d.prefix : d.prefix+d.plen] }

// elemRef is an element of a span tree; the zero value is no element.
type elemRef struct {
	t *spanTree
	i int32
}

func (st *spanTree) root() elemRef { return elemRef{st, 0} }

func (st *spanTree) ref(i int32) elemRef {
	if i < 0 {
		return elemRef{}
	}
	return elemRef{st, i}
}

// byID returns the element whose Id attribute has the value id.
func (st *spanTree) byID(id string) elemRef {
	i, ok := st.ids[id]
	if !ok {
		return elemRef{}
	}
	return elemRef{st, i}
}

func (e elemRef) ok() bool        { return e.t != nil }
func (e elemRef) n() *spanElem    { return e.t.elems.at(e.i) }
func (e elemRef) parent() elemRef { return e.t.ref(e.n().parent) }

// name returns the element's QName as written (raw[s:end], the start
// tag's name: it ends at the first white space, '/' or '>') and the end of
// its prefix (colon, s-1 when unprefixed).
func (e elemRef) name() (s, colon, end int32) {
	raw := e.t.raw
	s = e.n().start + 1
	colon = s - 1
	for end = s; end < int32(len(raw)); end++ {
		switch raw[end] {
		case ' ', '\t', '\r', '\n', '/', '>':
			return s, colon, end
		case ':':
			colon = end
		}
	}
	return s, colon, end
}

// qname is the element's name as written.
func (e elemRef) qname() string {
	s, _, end := e.name()
	return string(e.t.raw[s:end])
}

// local is the element's local name.
func (e elemRef) local() string {
	_, colon, end := e.name()
	return string(e.t.raw[colon+1 : end])
}

// prefix is the element's prefix ("" when unprefixed).
func (e elemRef) prefix() string {
	s, colon, _ := e.name()
	return string(e.t.raw[s:max(s, colon)])
}

// space is the element's namespace URI ("" for none).
func (e elemRef) space() string { return e.t.uris[e.n().uri] }

// is reports whether the element's expanded name is {space}local.
func (e elemRef) is(space, local string) bool {
	_, colon, end := e.name()
	return string(e.t.raw[colon+1:end]) == local && e.t.uris[e.n().uri] == space
}

// firstChild returns the index of the first element child, -1 for none:
// in document order it is the next element, if that one is a child.
func (e elemRef) firstChild() int32 {
	if c := e.i + 1; c < e.t.elems.n && e.t.elems.at(c).parent == e.i {
		return c
	}
	return -1
}

// children returns the element children in document order.
func (e elemRef) children() []elemRef {
	n := e.childCount()
	if n == 0 {
		return nil
	}
	out := make([]elemRef, 0, n)
	for c := e.firstChild(); c >= 0; c = e.t.elems.at(c).next {
		out = append(out, elemRef{e.t, c})
	}
	return out
}

// childCount returns the number of element children.
func (e elemRef) childCount() int {
	n := 0
	for c := e.firstChild(); c >= 0; c = e.t.elems.at(c).next {
		n++
	}
	return n
}

// child returns the first element child named {space}local.
func (e elemRef) child(space, local string) elemRef {
	for c := e.firstChild(); c >= 0; c = e.t.elems.at(c).next {
		if r := (elemRef{e.t, c}); r.is(space, local) {
			return r
		}
	}
	return elemRef{}
}

// hasChildren reports whether the element has an element child.
func (e elemRef) hasChildren() bool { return e.firstChild() >= 0 }

// attrRange returns the bounds of the element's attributes in st.attrs.
func (e elemRef) attrRange() (from, to int32) {
	from, to = e.n().attrs, e.t.attrs.n
	if e.i+1 < e.t.elems.n {
		to = e.t.elems.at(e.i + 1).attrs
	}
	return from, to
}

// declRange returns the bounds of the element's declarations in st.decls.
func (e elemRef) declRange() (from, to int32) {
	from, to = e.n().decls, e.t.decls.n
	if e.i+1 < e.t.elems.n {
		to = e.t.elems.at(e.i + 1).decls
	}
	return from, to
}

// attrView is one attribute of an element.
type attrView struct {
	t *spanTree
	a *spanAttr
}

// nameEnd returns the end of the attribute's QName in spanTree.raw: the
// tokenizer accepted it, so it ends at the first white space or '='.
func (a attrView) nameEnd() int32 {
	raw := a.t.raw
	end := a.a.name
	for end < int32(len(raw)) {
		switch raw[end] {
		case ' ', '\t', '\r', '\n', '=':
			return end
		}
		end++
	}
	return end
}

func (a attrView) qname() string { return a.t.rawStr(a.a.name, a.nameEnd()-a.a.name) }
func (a attrView) prefix() string {
	return a.t.rawStr(a.a.name, a.a.plen)
}
func (a attrView) local() string {
	end := a.nameEnd()
	if a.a.plen == 0 {
		return a.t.rawStr(a.a.name, end-a.a.name)
	}
	return a.t.rawStr(a.a.name+a.a.plen+1, end-a.a.name-a.a.plen-1)
}
func (a attrView) space() string { return a.t.uris[a.a.uri] }
func (a attrView) value() string {
	if v := a.a.val; v >= 0 {
		return a.t.rawStr(v, a.a.vlen)
	}
	return string(a.t.arena[^a.a.val : ^a.a.val+a.a.vlen])
}

// attrList returns the element's attributes (namespace declarations
// excluded) in the order written.
func (e elemRef) attrList() []attrView {
	from, to := e.attrRange()
	out := make([]attrView, to-from)
	for k := range out {
		out[k] = attrView{e.t, e.t.attrs.at(from + int32(k))}
	}
	return out
}

// attr returns the value of the attribute named {space}local; space is ""
// for an unprefixed attribute.
func (e elemRef) attr(space, local string) (string, bool) {
	from, to := e.attrRange()
	for k := from; k < to; k++ {
		a := attrView{e.t, e.t.attrs.at(k)}
		if a.local() == local && a.space() == space {
			return a.value(), true
		}
	}
	return "", false
}

// attrValue is the value of the unprefixed attribute local, "" when absent.
func (e elemRef) attrValue(local string) string {
	v, _ := e.attr("", local)
	return v
}

// attrAnyNS returns the value of the first attribute whose local name is
// local, whatever its namespace.
func (e elemRef) attrAnyNS(local string) (string, bool) {
	from, to := e.attrRange()
	for k := from; k < to; k++ {
		if a := (attrView{e.t, e.t.attrs.at(k)}); a.local() == local {
			return a.value(), true
		}
	}
	return "", false
}

// declaresDefault reports whether the element declares the default namespace.
func (e elemRef) declaresDefault() bool {
	from, to := e.declRange()
	for k := from; k < to; k++ {
		if e.t.decls.at(k).plen == 0 {
			return true
		}
	}
	return false
}

// text returns the character data of the element's own children (text and
// CDATA sections, references decoded, line ends normalised), skipping
// comments and PIs, so that neither can truncate it. An element child is
// an error.
func (e elemRef) text() (string, error) {
	if c := e.firstChild(); c >= 0 {
		return "", fmt.Errorf("unexpected child element <%s>", elemRef{e.t, c}.local())
	}
	return e.charData(false), nil
}

// leadText returns the character data before the element's first child
// element or PI (comments skipped): the text of a leaf element.
func (e elemRef) leadText() string { return e.charData(true) }

// charData reads the element's span again with the tokenizer and returns
// the text and CDATA sections of its content up to its first child element,
// or its first PI with stopAtPI. Only the start tag is read in the
// namespace context of the ancestors, so only the prefixes it uses are
// bound, to the URIs the tree resolved them to: the cost is that of the
// element, whatever the declarations around it. The span was read as part
// of the document already, so an error cannot happen; it would end the
// text.
func (e elemRef) charData(stopAtPI bool) string {
	start, end := e.span()
	t := getTokenizer(e.t.raw[start:end])
	defer putTokenizer(t)
	t.bound(e.t.ctx, e.t.lim)
	t.fragment = true
	if p := e.prefix(); p != "" && p != "xml" {
		t.bind([]byte(p), []byte(e.space()))
	}
	for _, a := range e.attrList() {
		if p := a.prefix(); p != "" && p != "xml" {
			t.bind([]byte(p), []byte(a.space()))
		}
	}
	var b []byte
	for {
		k, err := t.next()
		if err != nil || k == tokEOF || k == tokEnd || k == tokPI && stopAtPI || k == tokStart && t.depth > 1 {
			return string(b)
		}
		switch k {
		case tokText:
			b = appendCharData(b, t.data, true)
		case tokCDATA:
			b = appendCharData(b, t.data, false)
		}
	}
}

// appendCharData appends validated raw character data, with CR LF and CR
// turned into LF and, when refs, character and entity references decoded.
func appendCharData(b, raw []byte, refs bool) []byte {
	for i := 0; i < len(raw); {
		switch c := raw[i]; {
		case c == '\r':
			b = append(b, '\n')
			i++
			if i < len(raw) && raw[i] == '\n' {
				i++
			}
		case c == '&' && refs:
			r, n, ok := decodeRef(raw, i)
			if !ok {
				// Unreachable for tokenizer-validated input.
				b = append(b, c)
				i++
				continue
			}
			b = utf8.AppendRune(b, r)
			i = n
		default:
			j := i + 1
			for j < len(raw) && raw[j] != '\r' && raw[j] != '&' {
				j++
			}
			b = append(b, raw[i:j]...)
			i = j
		}
	}
	return b
}

// path returns /Envelope/Header/... : local names from the root.
func (e elemRef) path() string {
	var parts []string
	for x := e; x.ok(); x = x.parent() {
		parts = append(parts, x.local())
	}
	slices.Reverse(parts)
	return "/" + strings.Join(parts, "/")
}

// span returns the element's byte range, start tag to end tag.
func (e elemRef) span() (start, end int) {
	n := e.n()
	return int(n.start), int(n.end)
}

// scope calls fn for every namespace declaration made by the element's
// ancestors, outermost first, so that binding them in that order leaves
// the innermost binding of each prefix in force: the namespace context in
// which the element's start tag is read.
func (e elemRef) scope(fn func(prefix, uri []byte)) {
	var anc []int32
	for p := e.n().parent; p >= 0; p = e.t.elems.at(p).parent {
		anc = append(anc, p)
	}
	for k := len(anc) - 1; k >= 0; k-- {
		from, to := e.t.ref(anc[k]).declRange()
		for d := from; d < to; d++ {
			dc := e.t.decls.at(d)
			p := e.t.declPrefix(dc)
			if string(p) == "xml" {
				continue // bound implicitly
			}
			fn(p, []byte(e.t.uris[dc.uri]))
		}
	}
}

// canonicalize writes the exclusive canonical form of the element's subtree
// to w: the tokenizer reads the raw bytes of its span as a fragment with
// the namespace declarations of its ancestors in force, and a c14nSink
// renders it. inclusive is the InclusiveNamespaces PrefixList; comments
// selects the WithComments variant. The error is the tokenizer's or w's.
func (e elemRef) canonicalize(w io.Writer, inclusive []string, comments bool) error {
	start, end := e.span()
	t := getTokenizer(e.t.raw[start:end])
	defer putTokenizer(t)
	t.bound(e.t.ctx, e.t.lim)
	t.fragment = true
	e.scope(func(prefix, uri []byte) { t.bind(prefix, uri) })
	sink := newC14NSink(w, inclusive)
	defer sink.release()
	sink.comments = comments
	started := false
	err := streamSinksN(t, 1, func(*xmlTokenizer) tokenSink {
		if started {
			return nil
		}
		started = true
		return sink
	})
	if err != nil {
		return err
	}
	if !started {
		return errorf(CodeInternal, "no element in the span of <%s>", e.qname())
	}
	return sink.out.err
}

// isWhiteSpace reports whether b holds only XML white space (as written:
// a character reference is not white space here).
func isWhiteSpace(b []byte) bool {
	for _, c := range b {
		if !isSpace(c) {
			return false
		}
	}
	return true
}

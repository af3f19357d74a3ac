package wss

// Streaming Exclusive XML Canonicalization 1.0 (without comments, or with
// them for a SignedInfo whose CanonicalizationMethod asks so) over the
// tokens of xmlTokenizer: a c14nSink is started at a start tag and fed every
// token until the element's end tag; it writes the canonical form of that
// element's subtree straight into an io.Writer (a hash in the signing path).
// Namespace declarations of the ancestors come from the tokenizer's scope,
// which holds the whole context of the element. It produces the same bytes
// as the etree canonicaliser kept as a test oracle (internal/etreec14n) for
// the same document, except where etree's parser deviates from XML 1.0
// (attribute-value normalisation, see that package): FuzzC14NDifferential
// and TestC14NStreamOracle check both. Sign and Verify both use it, so both
// read attribute values as libxml2 (xmlsec1) and other spec-conformant
// verifiers do.

import (
	"bytes"
	"io"
	"maps"
	"slices"
	"sync"
	"unicode/utf8"
)

// c14nOut is a buffered writer with a sticky error.
type c14nOut struct {
	w   io.Writer
	buf []byte
	err error
}

func (o *c14nOut) flush() {
	if len(o.buf) > 0 && o.err == nil {
		_, o.err = o.w.Write(o.buf)
	}
	o.buf = o.buf[:0]
}

func (o *c14nOut) room(n int) {
	if len(o.buf)+n > cap(o.buf) {
		o.flush()
	}
}

func (o *c14nOut) bytes(b []byte) {
	if len(o.buf)+len(b) <= cap(o.buf) {
		o.buf = append(o.buf, b...)
		return
	}
	o.flush()
	if len(b) > cap(o.buf) {
		if o.err == nil {
			_, o.err = o.w.Write(b)
		}
		return
	}
	o.buf = append(o.buf, b...)
}

func (o *c14nOut) str(s string) {
	o.room(len(s))
	o.buf = append(o.buf, s...)
}

func (o *c14nOut) byte(c byte) {
	o.room(1)
	o.buf = append(o.buf, c)
}

// Bytes needing attention when copying raw text, CDATA and PI data.
const (
	rtText  = 1 << iota // in raw character data: & > CR
	rtCDATA             // in CDATA content: & < > CR
	rtPI                // in PI data: CR
)

var rawTable = func() (t [256]uint8) {
	t['&'] = rtText | rtCDATA
	t['<'] = rtCDATA
	t['>'] = rtText | rtCDATA
	t['\r'] = rtText | rtCDATA | rtPI
	return t
}()

// escapeRune writes a character that came from a reference, escaped for text.
func (o *c14nOut) escapeRune(r rune, class uint8) {
	if r < 0x80 && escTable[r]&class != 0 {
		o.str(escapeFor(byte(r)))
		return
	}
	o.room(utf8.UTFMax)
	o.buf = utf8.AppendRune(o.buf, r)
}

// copyRaw copies raw (validated) text, CDATA or PI data, normalising line ends
// (CR LF, CR → LF), decoding references in text and escaping for text.
func (o *c14nOut) copyRaw(b []byte, kind uint8) {
	last := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		if rawTable[c]&kind == 0 {
			continue
		}
		o.bytes(b[last:i])
		switch c {
		case '\r':
			o.byte('\n')
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
		case '&':
			if kind == rtText {
				r, n, _ := decodeRef(b, i)
				o.escapeRune(r, escText)
				i = n - 1
			} else {
				o.str("&amp;")
			}
		case '<':
			o.str("&lt;")
		case '>':
			o.str("&gt;")
		}
		last = i + 1
	}
	o.bytes(b[last:])
}

// attrValue writes a normalised attribute value escaped per C14N.
func (o *c14nOut) attrValue(v []byte) {
	last := 0
	for i, c := range v {
		if escTable[c]&escAttr == 0 {
			continue
		}
		o.bytes(v[last:i])
		o.str(escapeFor(c))
		last = i + 1
	}
	o.bytes(v[last:])
}

// c14nSink canonicalises one element subtree from the tokens fed to it.
type c14nSink struct {
	out       c14nOut
	inclusive [][]byte // PrefixList, sorted, without duplicates; "" = the default namespace
	rendered  nsStack  // namespace nodes rendered by output ancestors
	marks     []int
	nsOut     []nsBind
	attrs     []*rawAttr
	depth     int
	comments  bool // exclusive c14n WithComments: comments in the subtree are output
}

// c14nBufPool recycles the output buffers of c14nSinks.
var c14nBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// sortAttrs puts attributes in canonical order: by namespace URI (none
// first), then by local name.
func sortAttrs(attrs []*rawAttr) {
	if len(attrs) < 2 {
		return
	}
	slices.SortFunc(attrs, func(a, b *rawAttr) int {
		if x := bytes.Compare(a.uri, b.uri); x != 0 {
			return x
		}
		return bytes.Compare(a.local, b.local)
	})
}

// startTag writes a canonical start tag: the namespace declarations ns and
// the attributes attrs, each already in canonical order.
func (o *c14nOut) startTag(qname []byte, ns []nsBind, attrs []*rawAttr) {
	o.byte('<')
	o.bytes(qname)
	for _, n := range ns {
		if len(n.prefix) == 0 {
			o.str(` xmlns="`)
		} else {
			o.str(" xmlns:")
			o.bytes(n.prefix)
			o.str(`="`)
		}
		o.attrValue(n.uri)
		o.byte('"')
	}
	for _, a := range attrs {
		o.byte(' ')
		o.bytes(a.qname)
		o.str(`="`)
		o.attrValue(a.value)
		o.byte('"')
	}
	o.byte('>')
}

// endTag writes a canonical end tag.
func (o *c14nOut) endTag(qname []byte) {
	o.str("</")
	o.bytes(qname)
	o.byte('>')
}

// newC14NSink returns a sink writing to w; release returns its buffer.
func newC14NSink(w io.Writer, inclusive []string) *c14nSink {
	c := &c14nSink{out: c14nOut{w: w, buf: (*c14nBufPool.Get().(*[]byte))[:0]}}
	if len(inclusive) == 0 {
		return c
	}
	// One buffer for all the prefixes, sorted and deduplicated: a PrefixList
	// comes from the message and may be long (up to the attribute value
	// limit), so it costs O(n log n) once and O(log n) per question.
	n := 0
	for _, p := range inclusive {
		n += len(p)
	}
	buf := make([]byte, 0, n)
	c.inclusive = make([][]byte, 0, len(inclusive))
	for _, p := range inclusive {
		if p == "#default" {
			p = ""
		}
		if p == "xml" || p == "xmlns" {
			continue
		}
		s := len(buf)
		buf = append(buf, p...)
		c.inclusive = append(c.inclusive, buf[s:len(buf):len(buf)])
	}
	slices.SortFunc(c.inclusive, bytes.Compare)
	c.inclusive = slices.CompactFunc(c.inclusive, bytes.Equal)
	return c
}

// isInclusive reports whether prefix is on the PrefixList.
func (c *c14nSink) isInclusive(prefix []byte) bool {
	if len(c.inclusive) > linearLookup {
		_, ok := slices.BinarySearchFunc(c.inclusive, prefix, bytes.Compare)
		return ok
	}
	for _, p := range c.inclusive {
		if bytes.Equal(p, prefix) {
			return true
		}
	}
	return false
}

// release gives the sink's buffer back to the pool; the sink is unusable after.
func (c *c14nSink) release() {
	b := c.out.buf[:0]
	c.out.buf = nil
	c14nBufPool.Put(&b)
}

// render outputs the namespace node prefix=uri on the current element
// unless the nearest output ancestor rendered the same (an unrendered
// prefix counts as bound to nothing).
func (c *c14nSink) render(prefix, uri []byte) {
	if r, _ := c.rendered.lookup(prefix); bytes.Equal(r, uri) {
		return
	}
	c.rendered.push(prefix, uri)
	c.nsOut = append(c.nsOut, nsBind{prefix: prefix, uri: uri})
}

// token feeds the current token of t; it reports whether the subtree is complete.
func (c *c14nSink) token(t *xmlTokenizer) bool {
	o := &c.out
	switch t.kind {
	case tokStart:
		c.depth++
		c.marks = append(c.marks, c.rendered.len())
		c.nsOut = c.nsOut[:0]
		if !bytes.Equal(t.prefix, bXML) {
			c.render(t.prefix, t.uri)
		}
		c.attrs = c.attrs[:0]
		for j := range t.attrs {
			a := &t.attrs[j]
			if a.decl {
				continue
			}
			c.attrs = append(c.attrs, a)
			if a.prefix != nil && !bytes.Equal(a.prefix, bXML) {
				c.render(a.prefix, a.uri)
			}
		}
		if c.depth == 1 {
			// The apex: every PrefixList prefix in scope.
			for _, p := range c.inclusive {
				if uri, ok := t.lookup(p); ok {
					c.render(p, uri)
				}
			}
		} else if len(c.inclusive) > 0 {
			// Below the apex, every element is output, so what its parent
			// rendered for a PrefixList prefix is the parent's binding:
			// only a prefix this element declares can differ. The work
			// stays proportional to the element, whatever the list's length.
			for j := range t.attrs {
				a := &t.attrs[j]
				if !a.decl {
					continue
				}
				p := a.local
				if a.prefix == nil {
					p = a.local[:0]
				}
				if !c.isInclusive(p) {
					continue
				}
				if uri, ok := t.lookup(p); ok {
					c.render(p, uri)
				}
			}
		}
		if len(c.nsOut) > linearLookup {
			slices.SortFunc(c.nsOut, func(a, b nsBind) int { return bytes.Compare(a.prefix, b.prefix) })
		} else {
			for i := 1; i < len(c.nsOut); i++ {
				for j := i; j > 0 && bytes.Compare(c.nsOut[j].prefix, c.nsOut[j-1].prefix) < 0; j-- {
					c.nsOut[j], c.nsOut[j-1] = c.nsOut[j-1], c.nsOut[j]
				}
			}
		}
		sortAttrs(c.attrs)
		o.startTag(t.qname, c.nsOut, c.attrs)
	case tokEnd:
		o.endTag(t.qname)
		m := c.marks[len(c.marks)-1]
		c.marks = c.marks[:len(c.marks)-1]
		c.rendered.popTo(m)
		c.depth--
		if c.depth == 0 {
			o.flush()
			return true
		}
	case tokText:
		o.copyRaw(t.data, rtText)
	case tokCDATA:
		o.copyRaw(t.data, rtCDATA)
	case tokComment:
		if c.comments {
			o.str("<!--")
			o.copyRaw(t.data, rtPI)
			o.str("-->")
		}
	case tokPI:
		o.str("<?")
		o.bytes(t.target)
		if len(t.data) > 0 {
			o.byte(' ')
			o.copyRaw(t.data, rtPI)
		}
		o.str("?>")
	}
	return false
}

// usedPrefixSink computes the visibly used prefixes of a subtree (an
// InclusiveNamespaces PrefixList) over tokens.
type usedPrefixSink struct {
	set   map[string]struct{}
	depth int
}

var bXSI = []byte(NSXSI)

func (u *usedPrefixSink) token(t *xmlTokenizer) bool {
	switch t.kind {
	case tokStart:
		u.depth++
		switch {
		case t.prefix == nil:
			if uri, _ := t.lookup(nil); len(uri) > 0 {
				u.set["#default"] = struct{}{}
			}
		case bytes.Equal(t.prefix, bXML):
		default:
			u.set[string(t.prefix)] = struct{}{}
		}
		for j := range t.attrs {
			a := &t.attrs[j]
			if a.decl || a.prefix == nil || bytes.Equal(a.prefix, bXML) {
				continue
			}
			u.set[string(a.prefix)] = struct{}{}
			if string(a.local) != "type" || !bytes.Equal(a.uri, bXSI) {
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
			uri, ok := t.lookup(prefix)
			switch {
			case len(prefix) == 0 && len(uri) > 0:
				u.set["#default"] = struct{}{}
			case len(prefix) > 0 && ok:
				u.set[string(prefix)] = struct{}{}
			}
		}
	case tokEnd:
		u.depth--
		return u.depth == 0
	}
	return false
}

func (u *usedPrefixSink) sorted() []string {
	if len(u.set) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(u.set))
}

// tokenSink receives the tokens of one element subtree.
type tokenSink interface {
	token(t *xmlTokenizer) bool // true when the subtree's end tag was fed
}

// streamSinks tokenises t to the end, starting a sink where start returns
// one (at a tokStart) and feeding every active sink each token of its subtree.
func streamSinks(t *xmlTokenizer, start func(t *xmlTokenizer) tokenSink) error {
	return streamSinksN(t, -1, start)
}

// streamSinksN is streamSinks that stops once n sinks were started and all
// of them are complete (n < 0: at the end of the document).
func streamSinksN(t *xmlTokenizer, n int, start func(t *xmlTokenizer) tokenSink) error {
	var active []tokenSink
	started := 0
	for {
		if n >= 0 && started == n && len(active) == 0 {
			return nil
		}
		k, err := t.next()
		if err != nil {
			return err
		}
		if k == tokEOF {
			return nil
		}
		if k == tokStart && start != nil {
			if s := start(t); s != nil {
				active = append(active, s)
				started++
			}
		}
		for i := 0; i < len(active); {
			if active[i].token(t) {
				active = append(active[:i], active[i+1:]...)
				continue
			}
			i++
		}
	}
}

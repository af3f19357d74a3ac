package wss

// A byte-level XML 1.0 tokenizer: the one bounded XML engine that every
// route runs over its untrusted input first.
//
// It reads a UTF-8 document held in memory and hands out one token at a time
// with byte offsets into the input, allocating nothing per token in the
// common case: names, attribute values and text are sub-slices of the input
// (an attribute value that needs normalisation is decoded into a scratch
// buffer reused per start tag). It enforces well-formedness strictly:
//
//   - names per XML 1.0 fifth edition (ASCII fast path, utf8 otherwise),
//     characters per the Char production, matching end tags, one root;
//   - unique attributes by expanded name, Namespaces in XML 1.0 (QNames,
//     bound prefixes, no rebinding of xml/xmlns, no xmlns:p="");
//   - character references and the five predefined entities only; any
//     markup declaration (DOCTYPE, ENTITY, ...) is refused as dtd-forbidden;
//   - UTF-8 only: an XML declaration naming another encoding is refused.
//
// It enforces the Limits (see limits.go) as it reads, before the input
// costs anything: element depth and count, attributes per element,
// namespace declarations in scope and in total, name, text and attribute
// value sizes; and it looks at its context every few thousand tokens or
// tens of KiB. Namespace scopes are an nsStack: O(1) per declaration to
// push and pop, O(1) amortised per lookup.
//
// Attribute values are normalised as XML 1.0 §3.3.3 says for CDATA
// attributes (literal TAB, CR, LF and CR LF become one space each;
// references are replaced, character references are not normalised), and
// line ends in text, CDATA sections, comments and PIs are CR LF / CR → LF
// (the c14n writer applies that while it copies).

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

type tokKind uint8

const (
	tokEOF     tokKind = iota
	tokStart           // a start tag or an empty-element tag (then selfClosing, and a tokEnd follows)
	tokEnd             // an end tag (or the end of an empty-element tag)
	tokText            // character data; data is the raw, undecoded span
	tokCDATA           // a CDATA section; data is its raw content
	tokPI              // a processing instruction other than the XML declaration
	tokComment         // a comment; data is its raw content
)

// rawAttr is one attribute of the current start tag.
type rawAttr struct {
	qname, prefix, local []byte
	uri                  []byte // namespace URI; nil when none
	value                []byte // normalised value
	decl                 bool   // a namespace declaration (xmlns or xmlns:p)
	vs, ve               int    // value span in t.valBuf when inBuf
	inBuf                bool
	at, valAt            int  // offsets in raw of the QName and of the value as written
	litWS                bool // the raw value holds a literal TAB, CR or LF
}

type openElem struct {
	qname  []byte
	uri    []byte
	nsMark int
}

var (
	bNSXML   = []byte(NSXML)
	bNSXMLNS = []byte(NSXMLNS)
	bXMLNS   = []byte("xmlns")
	bXML     = []byte("xml")
)

// xmlTokenizer is the tokenizer state. Set raw (and optionally the limits,
// fragment and the initial bindings in ns) and call next until tokEOF.
type xmlTokenizer struct {
	raw []byte
	pos int

	// The current token.
	kind                      tokKind
	start, end                int    // its span in raw
	qname, prefix, local, uri []byte // tokStart, tokEnd
	selfClosing               bool
	attrs                     []rawAttr // tokStart
	data                      []byte    // tokText, tokCDATA, tokComment, tokPI
	target                    []byte    // tokPI
	depth                     int       // elements open, the current one included for tokStart and tokEnd
	maxDepth, maxElements     int       // 0: no limit
	fragment                  bool      // content of an element: several top-level elements and text allowed
	// goNames makes the tokenizer refuse non-ASCII names that encoding/xml
	// (its older Unicode tables), and so etree and the verifier, refuses
	// although XML 1.0 fifth edition allows them. Envelopes are scanned
	// with it, so that Sign accepts only what Verify can read. Everything
	// else is read as XML 1.0 says, as libxml2 does: attribute values get
	// §3.3.3 normalisation (literal TAB, CR, LF and CR LF → one space each),
	// a leading byte order mark is skipped.
	goNames bool
	// The limits other than maxDepth and maxElements (0: no limit; set
	// them all with bound) and the context, asked every few tokens.
	maxAttrs, maxNSInScope, maxNSDecls, maxName, maxText, maxAttrValue int
	ctx                                                                context.Context
	tokens, ctxPos                                                     int
	nsDecls                                                            int
	elements                                                           int
	stack                                                              []openElem
	ns                                                                 nsStack
	valBuf                                                             []byte
	popPending, endPending                                             bool
	rootSeen, rootDone, begun                                          bool
	std                                                                stdNameChecker
	attrOrder                                                          []int32 // scratch for uniqueAttrs
}

var tokenizerPool = sync.Pool{New: func() any { return new(xmlTokenizer) }}

// getTokenizer returns a tokenizer for raw whose slices come from the pool.
// Give it back with putTokenizer once nothing refers to its tokens.
func getTokenizer(raw []byte) *xmlTokenizer {
	t := tokenizerPool.Get().(*xmlTokenizer)
	ns := t.ns
	ns.reset()
	*t = xmlTokenizer{raw: raw, attrs: t.attrs[:0], stack: t.stack[:0], ns: ns, valBuf: t.valBuf[:0], attrOrder: t.attrOrder[:0]}
	return t
}

// putTokenizer returns t to the pool, without its input: the slices keep
// their capacity, not what they pointed into. Large ones are dropped.
func putTokenizer(t *xmlTokenizer) {
	if cap(t.valBuf) > 64<<10 || cap(t.attrs) > 256 || cap(t.attrOrder) > 256 || cap(t.stack) > 256 || t.ns.large() {
		return
	}
	clear(t.attrs[:cap(t.attrs)])
	clear(t.stack[:cap(t.stack)])
	ns := t.ns
	ns.reset()
	*t = xmlTokenizer{attrs: t.attrs[:0], stack: t.stack[:0], ns: ns, valBuf: t.valBuf[:0], attrOrder: t.attrOrder[:0]}
	tokenizerPool.Put(t)
}

func (t *xmlTokenizer) fail(format string, args ...any) error {
	line := 1 + bytes.Count(t.raw[:min(t.pos, len(t.raw))], []byte{'\n'})
	return &Error{Code: CodeMalformedXML, Msg: fmt.Sprintf("line %d: %s", line, fmt.Sprintf(format, args...))}
}

func (t *xmlTokenizer) failAt(pos int, format string, args ...any) error {
	t.pos = pos
	return t.fail(format, args...)
}

// lookup resolves a prefix ("" = default namespace) in the current scope;
// the default namespace unbound (or undeclared) resolves to nil, true.
func (t *xmlTokenizer) lookup(prefix []byte) ([]byte, bool) {
	if bytes.Equal(prefix, bXML) {
		return bNSXML, true
	}
	if uri, ok := t.ns.lookup(prefix); ok {
		return uri, true
	}
	if len(prefix) == 0 {
		return nil, true
	}
	return nil, false
}

// bind binds prefix to uri in the scope of the current element (or, before
// the first token, of the whole input), as a declaration there would.
func (t *xmlTokenizer) bind(prefix, uri []byte) { t.ns.push(prefix, uri) }

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// Character classes of ASCII bytes.
const (
	cNameStart = 1 << iota // NameStartChar (without ':', handled apart)
	cName                  // NameChar (without ':')
	cPlain                 // ordinary in text: needs no check beyond being ASCII
)

var asciiClass = func() (c [128]uint8) {
	for b := 0x20; b < 0x80; b++ {
		c[b] = cPlain
	}
	for _, b := range []byte{'&', '<', ']', '\r'} {
		c[b] = 0
	}
	c['\t'], c['\n'] = cPlain, cPlain
	for b := 'a'; b <= 'z'; b++ {
		c[b] |= cNameStart | cName
	}
	for b := 'A'; b <= 'Z'; b++ {
		c[b] |= cNameStart | cName
	}
	c['_'] |= cNameStart | cName
	for b := '0'; b <= '9'; b++ {
		c[b] |= cName
	}
	c['-'] |= cName
	c['.'] |= cName
	return c
}()

func isNameStartRune(r rune) bool {
	switch {
	case r < 0x80:
		return asciiClass[r]&cNameStart != 0
	case r >= 0xC0 && r <= 0xD6, r >= 0xD8 && r <= 0xF6, r >= 0xF8 && r <= 0x2FF,
		r >= 0x370 && r <= 0x37D, r >= 0x37F && r <= 0x1FFF, r >= 0x200C && r <= 0x200D,
		r >= 0x2070 && r <= 0x218F, r >= 0x2C00 && r <= 0x2FEF, r >= 0x3001 && r <= 0xD7FF,
		r >= 0xF900 && r <= 0xFDCF, r >= 0xFDF0 && r <= 0xFFFD, r >= 0x10000 && r <= 0xEFFFF:
		return true
	}
	return false
}

func isNameRune(r rune) bool {
	if isNameStartRune(r) {
		return true
	}
	return r == 0xB7 || (r >= 0x300 && r <= 0x36F) || (r >= 0x203F && r <= 0x2040) ||
		(r < 0x80 && asciiClass[r]&cName != 0)
}

func isXMLChar(r rune) bool {
	return r == 0x9 || r == 0xA || r == 0xD || (r >= 0x20 && r <= 0xD7FF) ||
		(r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

// name reads a QName at raw[i:]: it returns the end offset and the offset of
// its colon (-1 if none). A name that is not a QName of Namespaces in XML is
// an error.
func (t *xmlTokenizer) name(i int) (end, colon int, err error) {
	raw := t.raw
	colon = -1
	start, nonASCII := i, false
	partStart := i
	first := true
	for i < len(raw) {
		b := raw[i]
		if !first {
			// Fast path: the ASCII name characters after the first.
			for b < 0x80 && asciiClass[b]&cName != 0 {
				i++
				if i == len(raw) {
					break
				}
				b = raw[i]
			}
			if i == len(raw) {
				break
			}
		}
		if b < 0x80 {
			cl := asciiClass[b]
			if first && cl&cNameStart != 0 || !first && cl&cName != 0 {
				i++
				first = false
				continue
			}
			if b == ':' {
				if colon >= 0 || i == partStart {
					return 0, 0, t.failAt(i, "name is not a namespace-well-formed QName")
				}
				colon = i
				i++
				partStart = i
				first = true
				continue
			}
			break
		}
		r, size := utf8.DecodeRune(raw[i:])
		if r == utf8.RuneError && size <= 1 {
			return 0, 0, t.failAt(i, "invalid UTF-8")
		}
		if first && !isNameStartRune(r) || !first && !isNameRune(r) {
			if first && isNameRune(r) || !isXMLChar(r) {
				return 0, 0, t.failAt(i, "invalid character %U in a name", r)
			}
			break
		}
		first = false
		nonASCII = true
		i += size
	}
	if i == partStart {
		return 0, 0, t.failAt(i, "expected a name")
	}
	if t.maxName > 0 && i-start > t.maxName {
		return 0, 0, tooComplex("a name of more than %d bytes", t.maxName)
	}
	if nonASCII && t.goNames && !t.stdName(raw[start:i]) {
		return 0, 0, t.failAt(start, "name %q is not accepted by encoding/xml", raw[start:i])
	}
	return i, colon, nil
}

// stdName reports whether encoding/xml accepts name (rare: only non-ASCII
// names are asked). encoding/xml decides per character (the first against
// one table, the others against a wider one), so the answers are kept per
// character, for the whole process: a name is put to encoding/xml only when
// one of its characters is new, at most once per character and position
// class over the process's life, whatever the number of distinct names.
func (t *xmlTokenizer) stdName(name []byte) bool {
	known := true
	for i := 0; i < len(name) && known; {
		r, size := utf8.DecodeRune(name[i:])
		if r >= utf8.RuneSelf {
			ok, k := stdRunes.get(r, i == 0)
			if k && !ok {
				return false
			}
			known = k
		}
		i += size
	}
	if known {
		return true
	}
	if !t.std.accepts(name) {
		return false
	}
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRune(name[i:])
		if r >= utf8.RuneSelf {
			stdRunes.setOK(r, i == 0)
		}
		i += size
	}
	return true
}

// stdRunes records, per character, that encoding/xml accepts it first in a
// name or after the first: four bits per rune (first known, first ok, later
// known, later ok), set once and never cleared. Only acceptance is
// recorded: a refused name ends its document.
var stdRunes runeVerdicts

type runeVerdicts struct {
	once  sync.Once
	words []atomic.Uint32
}

func (v *runeVerdicts) init() {
	v.once.Do(func() { v.words = make([]atomic.Uint32, (utf8.MaxRune+1)/8) })
}

func (v *runeVerdicts) get(r rune, first bool) (ok, known bool) {
	v.init()
	shift := uint(r%8) * 4
	if !first {
		shift += 2
	}
	b := v.words[r/8].Load() >> shift
	return b&2 != 0, b&1 != 0
}

func (v *runeVerdicts) setOK(r rune, first bool) {
	v.init()
	shift := uint(r%8) * 4
	if !first {
		shift += 2
	}
	v.words[r/8].Or(3 << shift)
}

// stdNameChecker is an encoding/xml decoder that reads the names it is
// asked about as a stream of empty elements.
type stdNameChecker struct {
	feed bytes.Buffer
	dec  *xml.Decoder
}

func (c *stdNameChecker) Read(p []byte) (int, error) { return c.feed.Read(p) }

// accepts reports whether encoding/xml reads <name/>. A refusal ends the
// decoder (the next question starts a new one).
func (c *stdNameChecker) accepts(name []byte) bool {
	if c.dec == nil {
		c.feed.Reset()
		c.dec = xml.NewDecoder(c)
		c.dec.Strict = true
	}
	c.feed.WriteByte('<')
	c.feed.Write(name)
	c.feed.WriteString("/>")
	tok, err := c.dec.RawToken()
	if _, start := tok.(xml.StartElement); err == nil && start {
		tok, err = c.dec.RawToken() // the end of the empty element
		if _, end := tok.(xml.EndElement); err == nil && end {
			return true
		}
	}
	c.dec = nil
	return false
}

// nonASCIIChar checks the multi-byte UTF-8 sequence at raw[i:e] is one XML
// Char and returns its length.
func (t *xmlTokenizer) nonASCIIChar(i, e int) (int, error) {
	r, size := utf8.DecodeRune(t.raw[i:e])
	if r == utf8.RuneError && size <= 1 {
		return 0, t.failAt(i, "invalid UTF-8")
	}
	if !isXMLChar(r) {
		return 0, t.failAt(i, "invalid character %U", r)
	}
	return size, nil
}

// checkChars validates raw[s:e] as a sequence of Chars.
func (t *xmlTokenizer) checkChars(s, e int) error {
	raw := t.raw
	for i := s; i < e; {
		b := raw[i]
		if b < 0x80 {
			if b < 0x20 && b != '\t' && b != '\n' && b != '\r' {
				return t.failAt(i, "invalid character %#x", b)
			}
			i++
			continue
		}
		size, err := t.nonASCIIChar(i, e)
		if err != nil {
			return err
		}
		i += size
	}
	return nil
}

// decodeRef decodes the reference starting with '&' at b[i]; it returns the
// character (predefined entity or character reference) and the offset past
// the ';'. b must have been validated (or ok is false).
func decodeRef(b []byte, i int) (r rune, next int, ok bool) {
	j := i + 1
	if j < len(b) && b[j] == '#' {
		j++
		base := rune(10)
		if j < len(b) && b[j] == 'x' {
			base = 16
			j++
		}
		start := j
		for ; j < len(b) && b[j] != ';'; j++ {
			var d rune
			c := b[j]
			switch {
			case c >= '0' && c <= '9':
				d = rune(c - '0')
			case base == 16 && c >= 'a' && c <= 'f':
				d = rune(c-'a') + 10
			case base == 16 && c >= 'A' && c <= 'F':
				d = rune(c-'A') + 10
			default:
				return 0, 0, false
			}
			r = r*base + d
			if r > 0x10FFFF {
				return 0, 0, false
			}
		}
		if j == start || j >= len(b) || !isXMLChar(r) {
			return 0, 0, false
		}
		return r, j + 1, true
	}
	k := bytes.IndexByte(b[j:min(len(b), j+6)], ';')
	if k < 0 {
		return 0, 0, false
	}
	switch string(b[j : j+k]) {
	case "lt":
		r = '<'
	case "gt":
		r = '>'
	case "amp":
		r = '&'
	case "apos":
		r = '\''
	case "quot":
		r = '"'
	default:
		return 0, 0, false
	}
	return r, j + k + 1, true
}

// checkText validates character data raw[s:e] (no '<' inside).
func (t *xmlTokenizer) checkText(s, e int) error {
	raw := t.raw
	for i := s; i < e; {
		b := raw[i]
		if b < 0x80 {
			if asciiClass[b]&cPlain != 0 {
				i++
				continue
			}
			switch b {
			case '&':
				_, n, ok := decodeRef(raw[:e], i)
				if !ok {
					return t.failAt(i, "invalid or undefined entity or character reference")
				}
				i = n
			case ']':
				if i+2 < e && raw[i+1] == ']' && raw[i+2] == '>' {
					return t.failAt(i, "]]> in character data")
				}
				i++
			case '\r':
				i++
			default:
				return t.failAt(i, "invalid character %#x", b)
			}
			continue
		}
		size, err := t.nonASCIIChar(i, e)
		if err != nil {
			return err
		}
		i += size
	}
	return nil
}

// next reads the next token.
func (t *xmlTokenizer) next() (tokKind, error) {
	if t.popPending {
		t.popPending = false
		top := t.stack[len(t.stack)-1]
		t.ns.popTo(top.nsMark)
		t.stack = t.stack[:len(t.stack)-1]
		if len(t.stack) == 0 && !t.fragment {
			t.rootDone = true
		}
	}
	if t.endPending {
		t.endPending = false
		t.kind = tokEnd
		top := t.stack[len(t.stack)-1]
		t.start = t.end
		t.depth = len(t.stack)
		t.uri = top.uri
		t.popPending = true
		return tokEnd, nil
	}
	if !t.begun {
		t.begun = true
		if !t.fragment {
			if bytes.HasPrefix(t.raw, []byte("\xEF\xBB\xBF")) {
				t.pos = 3
			}
			if bytes.HasPrefix(t.raw[t.pos:], []byte("<?xml")) && len(t.raw) > t.pos+5 && (isSpace(t.raw[t.pos+5]) || t.raw[t.pos+5] == '?') {
				if err := t.xmlDecl(); err != nil {
					return 0, err
				}
			}
		}
	}
	if err := t.checkCtx(); err != nil {
		return 0, err
	}
	raw := t.raw
	for {
		if t.pos >= len(raw) {
			if len(t.stack) > 0 {
				return 0, t.fail("unexpected end of document inside <%s>", t.stack[len(t.stack)-1].qname)
			}
			if !t.rootSeen && !t.fragment {
				return 0, t.fail("no document element")
			}
			t.kind = tokEOF
			return tokEOF, nil
		}
		if raw[t.pos] != '<' {
			s := t.pos
			e := bytes.IndexByte(raw[s:], '<')
			if e < 0 {
				e = len(raw)
			} else {
				e += s
			}
			if len(t.stack) == 0 && !t.fragment {
				for i := s; i < e; i++ {
					if !isSpace(raw[i]) {
						return 0, t.failAt(i, "text outside the document element")
					}
				}
				t.pos = e
				continue
			}
			if t.maxText > 0 && e-s > t.maxText {
				return 0, tooComplex("a text node of more than %d bytes", t.maxText)
			}
			if err := t.checkText(s, e); err != nil {
				return 0, err
			}
			t.pos = e
			t.kind, t.start, t.end, t.data = tokText, s, e, raw[s:e]
			return tokText, nil
		}
		if t.pos+1 >= len(raw) {
			return 0, t.fail("unexpected end of document")
		}
		switch raw[t.pos+1] {
		case '/':
			return t.endTag()
		case '?':
			k, err := t.pi()
			if err != nil {
				return 0, err
			}
			return k, nil
		case '!':
			switch {
			case bytes.HasPrefix(raw[t.pos:], []byte("<!--")):
				return t.comment()
			case bytes.HasPrefix(raw[t.pos:], []byte("<![CDATA[")):
				if len(t.stack) == 0 {
					return 0, t.fail("CDATA section outside the document element")
				}
				s := t.pos + 9
				k := bytes.Index(raw[s:], []byte("]]>"))
				if k < 0 {
					return 0, t.fail("unterminated CDATA section")
				}
				if t.maxText > 0 && k > t.maxText {
					return 0, tooComplex("a CDATA section of more than %d bytes", t.maxText)
				}
				if err := t.checkChars(s, s+k); err != nil {
					return 0, err
				}
				t.kind, t.start, t.end, t.data = tokCDATA, t.pos, s+k+3, raw[s:s+k]
				t.pos = s + k + 3
				return tokCDATA, nil
			}
			return 0, errorf(CodeDTDForbidden, "DOCTYPE and other markup declarations are not accepted")
		default:
			return t.startTag()
		}
	}
}

func (t *xmlTokenizer) comment() (tokKind, error) {
	raw := t.raw
	s := t.pos + 4
	k := bytes.Index(raw[s:], []byte("--"))
	if k < 0 {
		return 0, t.fail("unterminated comment")
	}
	if s+k+2 >= len(raw) || raw[s+k+2] != '>' {
		return 0, t.failAt(s+k, "-- inside a comment")
	}
	if t.maxText > 0 && k > t.maxText {
		return 0, tooComplex("a comment of more than %d bytes", t.maxText)
	}
	if err := t.checkChars(s, s+k); err != nil {
		return 0, err
	}
	t.kind, t.start, t.end, t.data = tokComment, t.pos, s+k+3, raw[s:s+k]
	t.pos = s + k + 3
	return tokComment, nil
}

func (t *xmlTokenizer) pi() (tokKind, error) {
	raw := t.raw
	s := t.pos + 2
	e, colon, err := t.name(s)
	if err != nil {
		return 0, err
	}
	if colon >= 0 {
		return 0, t.failAt(s, "processing instruction target with a colon")
	}
	if e-s == 3 && (raw[s]|0x20) == 'x' && (raw[s+1]|0x20) == 'm' && (raw[s+2]|0x20) == 'l' {
		return 0, t.failAt(s, "XML declaration not at the start of the document, or reserved PI target")
	}
	ds := e
	if !bytes.HasPrefix(raw[e:], []byte("?>")) {
		if e >= len(raw) || !isSpace(raw[e]) {
			return 0, t.failAt(e, "bad processing instruction")
		}
		for ds < len(raw) && isSpace(raw[ds]) {
			ds++
		}
	}
	k := bytes.Index(raw[ds:], []byte("?>"))
	if k < 0 {
		return 0, t.fail("unterminated processing instruction")
	}
	if t.maxText > 0 && k > t.maxText {
		return 0, tooComplex("a processing instruction of more than %d bytes", t.maxText)
	}
	if err := t.checkChars(ds, ds+k); err != nil {
		return 0, err
	}
	t.kind, t.start, t.end = tokPI, t.pos, ds+k+2
	t.target, t.data = raw[s:e], raw[ds:ds+k]
	t.pos = ds + k + 2
	return tokPI, nil
}

// xmlDecl reads the XML declaration at t.pos.
func (t *xmlTokenizer) xmlDecl() error {
	raw := t.raw
	i := t.pos + 5
	k := bytes.Index(raw[i:], []byte("?>"))
	if k < 0 {
		return t.fail("unterminated XML declaration")
	}
	end := i + k
	// Pseudo-attributes in order: version (required), encoding, standalone.
	names := []string{"version", "encoding", "standalone"}
	next := 0
	for {
		sp := i
		for i < end && isSpace(raw[i]) {
			i++
		}
		if i == end {
			break
		}
		if i == sp {
			return t.failAt(i, "malformed XML declaration")
		}
		j := i
		for j < end && raw[j] >= 'a' && raw[j] <= 'z' {
			j++
		}
		n := string(raw[i:j])
		found := false
		for next < len(names) {
			if names[next] == n {
				found = true
				next++
				break
			}
			if next == 0 {
				break // version first
			}
			next++
		}
		if !found {
			return t.failAt(i, "malformed XML declaration")
		}
		i = j
		for i < end && isSpace(raw[i]) {
			i++
		}
		if i >= end || raw[i] != '=' {
			return t.failAt(i, "malformed XML declaration")
		}
		i++
		for i < end && isSpace(raw[i]) {
			i++
		}
		if i >= end || (raw[i] != '"' && raw[i] != '\'') {
			return t.failAt(i, "malformed XML declaration")
		}
		q := raw[i]
		vs := i + 1
		ve := bytes.IndexByte(raw[vs:end], q)
		if ve < 0 {
			return t.failAt(i, "malformed XML declaration")
		}
		v := string(raw[vs : vs+ve])
		i = vs + ve + 1
		switch n {
		case "version":
			if v != "1.0" {
				return t.failAt(vs, "XML version %q is not supported", v)
			}
		case "encoding":
			if !bytes.EqualFold([]byte(v), []byte("UTF-8")) {
				return t.failAt(vs, "encoding %q is not supported; only UTF-8 is", v)
			}
		case "standalone":
			if v != "yes" && v != "no" {
				return t.failAt(vs, "malformed XML declaration")
			}
		}
	}
	if next == 0 {
		return t.fail("XML declaration without version")
	}
	t.pos = end + 2
	return nil
}

func (t *xmlTokenizer) endTag() (tokKind, error) {
	raw := t.raw
	s := t.pos + 2
	e, _, err := t.name(s)
	if err != nil {
		return 0, err
	}
	i := e
	for i < len(raw) && isSpace(raw[i]) {
		i++
	}
	if i >= len(raw) || raw[i] != '>' {
		return 0, t.failAt(i, "malformed end tag")
	}
	if len(t.stack) == 0 {
		return 0, t.failAt(t.pos, "unexpected end tag </%s>", raw[s:e])
	}
	top := t.stack[len(t.stack)-1]
	if !bytes.Equal(top.qname, raw[s:e]) {
		return 0, t.failAt(t.pos, "element <%s> closed by </%s>", top.qname, raw[s:e])
	}
	t.kind, t.start, t.end = tokEnd, t.pos, i+1
	t.qname = top.qname
	t.uri = top.uri
	t.setPrefixLocal(top.qname)
	t.depth = len(t.stack)
	t.pos = i + 1
	t.popPending = true
	return tokEnd, nil
}

func (t *xmlTokenizer) setPrefixLocal(q []byte) {
	if c := bytes.IndexByte(q, ':'); c >= 0 {
		t.prefix, t.local = q[:c], q[c+1:]
	} else {
		t.prefix, t.local = nil, q
	}
}

func (t *xmlTokenizer) startTag() (tokKind, error) {
	raw := t.raw
	if t.rootDone {
		return 0, t.fail("more than one document element")
	}
	t.elements++
	if t.maxElements > 0 && t.elements > t.maxElements {
		return 0, errorf(CodeTooComplex, "more than %d elements", t.maxElements)
	}
	if t.maxDepth > 0 && len(t.stack)+1 > t.maxDepth {
		return 0, errorf(CodeTooComplex, "elements nested deeper than %d", t.maxDepth)
	}
	tagStart := t.pos
	s := t.pos + 1
	e, colon, err := t.name(s)
	if err != nil {
		return 0, err
	}
	qn := raw[s:e]
	t.attrs = t.attrs[:0]
	t.valBuf = t.valBuf[:0]
	i := e
	self := false
	for {
		sp := i
		for i < len(raw) && isSpace(raw[i]) {
			i++
		}
		if i >= len(raw) {
			return 0, t.failAt(i, "unexpected end of document in a start tag")
		}
		if raw[i] == '>' {
			i++
			break
		}
		if raw[i] == '/' {
			if i+1 >= len(raw) || raw[i+1] != '>' {
				return 0, t.failAt(i, "malformed start tag")
			}
			i += 2
			self = true
			break
		}
		if i == sp {
			return 0, t.failAt(i, "attributes must be separated by white space")
		}
		ns, nc, err := t.name(i)
		if err != nil {
			return 0, err
		}
		a := rawAttr{qname: raw[i:ns], at: i}
		if nc >= 0 {
			a.prefix, a.local = raw[i:nc], raw[nc+1:ns]
		} else {
			a.local = a.qname
		}
		i = ns
		for i < len(raw) && isSpace(raw[i]) {
			i++
		}
		if i >= len(raw) || raw[i] != '=' {
			return 0, t.failAt(i, "attribute %s without a value", a.qname)
		}
		i++
		for i < len(raw) && isSpace(raw[i]) {
			i++
		}
		if i >= len(raw) || (raw[i] != '"' && raw[i] != '\'') {
			return 0, t.failAt(i, "unquoted attribute value")
		}
		q := raw[i]
		vs := i + 1
		a.valAt = vs
		k := bytes.IndexByte(raw[vs:], q)
		if k < 0 {
			return 0, t.failAt(i, "unterminated attribute value")
		}
		ve := vs + k
		if t.maxAttrValue > 0 && k > t.maxAttrValue {
			return 0, tooComplex("an attribute value of more than %d bytes on <%s>", t.maxAttrValue, qn)
		}
		if err := t.attrValue(&a, vs, ve); err != nil {
			return 0, err
		}
		if t.maxAttrs > 0 && len(t.attrs) >= t.maxAttrs {
			return 0, tooComplex("more than %d attributes on <%s>", t.maxAttrs, qn)
		}
		t.attrs = append(t.attrs, a)
		i = ve + 1
	}
	for j := range t.attrs {
		if a := &t.attrs[j]; a.inBuf {
			a.value = t.valBuf[a.vs:a.ve]
		}
	}
	t.pos = i

	// Namespaces: the declarations first, they apply to the element itself.
	nsMark := t.ns.len()
	for j := range t.attrs {
		a := &t.attrs[j]
		var p []byte
		switch {
		case a.prefix == nil && bytes.Equal(a.local, bXMLNS):
			p = a.local[:0]
		case bytes.Equal(a.prefix, bXMLNS):
			p = a.local
		default:
			continue
		}
		a.decl = true
		a.uri = bNSXMLNS
		v := a.value
		isXMLp := bytes.Equal(p, bXML)
		if bytes.Equal(p, bXMLNS) || (isXMLp && !bytes.Equal(v, bNSXML)) || (len(p) > 0 && len(v) == 0) ||
			(!isXMLp && (bytes.Equal(v, bNSXML) || bytes.Equal(v, bNSXMLNS))) {
			t.ns.popTo(nsMark)
			return 0, t.failAt(tagStart, "illegal namespace declaration of prefix %q", p)
		}
		if isXMLp {
			continue
		}
		t.nsDecls++
		if t.maxNSDecls > 0 && t.nsDecls > t.maxNSDecls {
			t.ns.popTo(nsMark)
			return 0, tooComplex("more than %d namespace declarations in the document", t.maxNSDecls)
		}
		if t.maxNSInScope > 0 && t.ns.len() >= t.maxNSInScope {
			t.ns.popTo(nsMark)
			return 0, tooComplex("more than %d namespace declarations in scope at <%s>", t.maxNSInScope, qn)
		}
		if a.inBuf {
			v = bytes.Clone(v) // the scratch buffer is reused by the next tag
		}
		t.ns.push(p, v)
	}
	if colon >= 0 {
		t.prefix, t.local = raw[s:colon], raw[colon+1:e]
	} else {
		t.prefix, t.local = nil, qn
	}
	if bytes.Equal(t.prefix, bXMLNS) {
		t.ns.popTo(nsMark)
		return 0, t.failAt(tagStart, "element <%s> uses the reserved prefix xmlns", qn)
	}
	uri, ok := t.lookup(t.prefix)
	if !ok {
		t.ns.popTo(nsMark)
		return 0, t.failAt(tagStart, "unbound namespace prefix %q on <%s>", t.prefix, qn)
	}
	for j := range t.attrs {
		a := &t.attrs[j]
		if a.decl || a.prefix == nil {
			continue
		}
		u, ok := t.lookup(a.prefix)
		if !ok || bytes.Equal(a.prefix, bXMLNS) {
			t.ns.popTo(nsMark)
			return 0, t.failAt(tagStart, "unbound namespace prefix %q on attribute %s", a.prefix, a.qname)
		}
		a.uri = u
	}
	if err := t.uniqueAttrs(tagStart, qn); err != nil {
		t.ns.popTo(nsMark)
		return 0, err
	}
	t.stack = append(t.stack, openElem{qname: qn, uri: uri, nsMark: nsMark})
	t.rootSeen = true
	t.kind, t.start, t.end = tokStart, tagStart, i
	t.qname, t.uri, t.selfClosing = qn, uri, self
	t.depth = len(t.stack)
	if self {
		t.endPending = true
	}
	return tokStart, nil
}

// uniqueAttrs refuses two attributes with the same expanded name.
func (t *xmlTokenizer) uniqueAttrs(tagStart int, qn []byte) error {
	n := len(t.attrs)
	if n <= 24 {
		for j := 1; j < n; j++ {
			for k := 0; k < j; k++ {
				if bytes.Equal(t.attrs[j].local, t.attrs[k].local) && bytes.Equal(t.attrs[j].uri, t.attrs[k].uri) &&
					(t.attrs[j].uri == nil) == (t.attrs[k].uri == nil) {
					return t.failAt(tagStart, "attribute %s appears twice on <%s>", t.attrs[j].qname, qn)
				}
			}
		}
		return nil
	}
	// Sorted by expanded name, then position: the duplicates are
	// neighbours, and the one reported is the first repeat in document
	// order, as the pairwise check above reports. Nothing is allocated
	// once t.attrOrder has grown.
	order := t.attrOrder[:0]
	for j := range n {
		order = append(order, int32(j))
	}
	t.attrOrder = order
	key := func(j int32) (bool, []byte, []byte) {
		a := &t.attrs[j]
		return a.uri != nil, a.uri, a.local
	}
	slices.SortFunc(order, func(x, y int32) int {
		xs, xu, xl := key(x)
		ys, yu, yl := key(y)
		switch {
		case xs != ys:
			if xs {
				return 1
			}
			return -1
		}
		if c := bytes.Compare(xu, yu); c != 0 {
			return c
		}
		if c := bytes.Compare(xl, yl); c != 0 {
			return c
		}
		return int(x - y)
	})
	first := int32(-1)
	for k := 1; k < len(order); k++ {
		xs, xu, xl := key(order[k-1])
		ys, yu, yl := key(order[k])
		if xs == ys && bytes.Equal(xu, yu) && bytes.Equal(xl, yl) && (first < 0 || order[k] < first) {
			first = order[k]
		}
	}
	if first >= 0 {
		return t.failAt(tagStart, "attribute %s appears twice on <%s>", t.attrs[first].qname, qn)
	}
	return nil
}

// attrValue validates and normalises the attribute value raw[vs:ve].
func (t *xmlTokenizer) attrValue(a *rawAttr, vs, ve int) error {
	raw := t.raw
	clean := true
	for i := vs; i < ve; {
		b := raw[i]
		if b < 0x80 {
			switch {
			case b == '&':
				_, n, ok := decodeRef(raw[:ve], i)
				if !ok {
					return t.failAt(i, "invalid or undefined entity or character reference in an attribute value")
				}
				clean = false
				i = n
			case b == '<':
				return t.failAt(i, "< in an attribute value")
			case b == '\t' || b == '\n':
				clean = false
				a.litWS = true
				i++
			case b == '\r':
				clean = false
				a.litWS = true
				i++
			case b < 0x20:
				return t.failAt(i, "invalid character %#x", b)
			default:
				i++
			}
			continue
		}
		size, err := t.nonASCIIChar(i, ve)
		if err != nil {
			return err
		}
		i += size
	}
	if clean {
		a.value = raw[vs:ve]
		return nil
	}
	a.inBuf = true
	a.vs = len(t.valBuf)
	for i := vs; i < ve; {
		switch b := raw[i]; b {
		case '&':
			r, n, _ := decodeRef(raw[:ve], i)
			t.valBuf = utf8.AppendRune(t.valBuf, r)
			i = n
		case '\r':
			t.valBuf = append(t.valBuf, ' ')
			i++
			if i < ve && raw[i] == '\n' {
				i++
			}
		case '\t', '\n':
			t.valBuf = append(t.valBuf, ' ')
			i++
		default:
			t.valBuf = append(t.valBuf, b)
			i++
		}
	}
	a.ve = len(t.valBuf)
	return nil
}

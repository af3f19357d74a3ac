// Package etreec14n is Exclusive XML Canonicalization 1.0 over an etree
// tree. It is a test oracle: wss canonicalises messages with its own
// streaming canonicaliser over its tokenizer, and fuzzes that one against
// this one (and both against libxml2); tests that read signed output with
// etree check digests with it. No production package imports it (the
// dependency-rule test in internal/deptest enforces that).
package etreec14n

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/beevik/etree"
)

// Exclusive XML Canonicalization 1.0 (https://www.w3.org/TR/xml-exc-c14n/),
// written from the W3C specifications over an etree tree.
//
// The canonicaliser walks the element tree once and writes straight into the
// destination through a small pooled buffer: it builds no detached copy of the
// tree and never modifies the element or its ancestors.
//
// The node-set canonicalised is the "document subset" made of the element and
// all its descendants, with all their attribute and namespace nodes, which is
// what a same-document reference (URI="#id") followed by the exc-c14n transform
// selects. Namespace declarations made by the element's ancestors are in scope
// (they are namespace nodes of the element in the XPath data model) and are
// rendered where the exclusive rules require it; xml:* attributes of the
// ancestors are not inherited (that is the point of the exclusive variant).
//
// Sign and Verify do not use this canonicaliser: they canonicalise from the
// raw bytes with the streaming canonicaliser of package wss, which has none
// of the limitations below. This one is the reference the streaming one is
// fuzzed against.
//
// Known limitations, inherited from encoding/xml under etree:
//   - Attribute-value normalisation (XML 1.0 §3.3.3) is not applied by the
//     parser: a literal tab or newline inside an attribute value stays a tab
//     or newline (and is canonicalised as &#x9; / &#xA;), where a conformant
//     parser such as libxml2 turns it into a space. Documents whose attribute
//     values contain literal whitespace characters other than the space
//     therefore canonicalise differently from libxml2. Character references
//     (&#x9; &#xA; &#xD;) are unaffected.
//   - encoding/xml applies end-of-line handling to text and attribute values
//     but not to comments and processing instructions; the canonicaliser
//     therefore normalises CR LF and lone CR to LF in those itself, which is
//     what a conformant parser would have handed over.
//   - Entity references other than the predefined ones and DTD-supplied
//     attribute defaults are not supported (etree does not read DTDs).

const (
	nsXML   = "http://www.w3.org/XML/1998/namespace"
	nsXMLNS = "http://www.w3.org/2000/xmlns/"
	nsXSI   = "http://www.w3.org/2001/XMLSchema-instance"
)

// C14NOptions selects the Exclusive XML Canonicalization 1.0 variant.
type C14NOptions struct {
	// InclusivePrefixes is the InclusiveNamespaces PrefixList; "#default" names the default namespace.
	InclusivePrefixes []string
	// WithComments selects http://www.w3.org/2001/10/xml-exc-c14n#WithComments.
	WithComments bool
}

// CanonicalizeExclusive writes the exclusive canonical form of the subtree rooted at el to w.
// el is not modified. Namespace declarations inherited from el's ancestors (el.Parent() chain) are
// taken into account exactly as the W3C spec says (an element subset = the subtree, i.e. the
// "document subset" of a same-document reference with the exc-c14n transform).
//
// An element or attribute prefix that is not bound in scope, a name that is not
// namespace-well-formed, an illegal namespace declaration (xmlns:p="", a rebinding
// of xml or xmlns) or two attributes with the same expanded name are errors; so is
// any error returned by w. On error, part of the output may already have been
// written to w.
func CanonicalizeExclusive(w io.Writer, el *etree.Element, opts C14NOptions) error {
	if el == nil {
		return errors.New("etreec14n: nil element")
	}
	if w == nil {
		return errors.New("etreec14n: nil writer")
	}
	st := c14nPool.Get().(*c14nState)
	defer st.release()
	st.out.w = w
	st.withComments = opts.WithComments
	for _, p := range opts.InclusivePrefixes {
		if p == "#default" {
			p = ""
		}
		if p == "xml" || p == "xmlns" || slices.Contains(st.inclusive, p) {
			continue
		}
		st.inclusive = append(st.inclusive, p)
	}
	if err := st.pushAncestorScope(el); err != nil {
		return err
	}
	if err := st.element(el); err != nil {
		return err
	}
	st.out.flush()
	return st.out.err
}

// VisiblyUsedPrefixes returns the sorted set of namespace prefixes ("#default" for the default
// namespace when it is non-empty and used by an unprefixed element) that are visibly utilised anywhere in the subtree of el
// (element prefixes and attribute prefixes, never "xml"), plus prefixes used in attribute values of
// the form QName for xsi:type (http://www.w3.org/2001/XMLSchema-instance type attribute) whose prefix
// is bound in scope. Used to compute an InclusiveNamespaces PrefixList automatically.
//
// An unprefixed xsi:type value resolves against the default namespace, so it
// contributes "#default" when the default namespace in scope is non-empty.
// Element and attribute prefixes are reported even when they are unbound
// (CanonicalizeExclusive reports those as errors).
func VisiblyUsedPrefixes(el *etree.Element) []string {
	if el == nil {
		return nil
	}
	st := c14nPool.Get().(*c14nState)
	defer st.release()
	// Ancestor declarations that are not namespace-well-formed are ignored here;
	// CanonicalizeExclusive reports them.
	_ = st.pushAncestorScope(el)
	set := make(map[string]struct{})
	st.collectUsed(el, set)
	if len(set) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(set))
}

// nsBinding is a namespace prefix ("" for the default namespace) and its URI.
type nsBinding struct {
	prefix, uri string
}

// attrRef is an attribute to render together with its namespace URI (the sort key).
type attrRef struct {
	uri string
	a   *etree.Attr
}

type c14nState struct {
	out          c14nWriter
	withComments bool
	inclusive    []string    // InclusiveNamespaces PrefixList, "" = default namespace
	inScope      []nsBinding // namespace bindings in scope, innermost last
	rendered     []nsBinding // namespace nodes rendered by output ancestors, innermost last
	nsOut        []nsBinding // scratch: namespace nodes rendered on the current element
	attrs        []attrRef   // scratch: attributes of the current element
	ancestors    []*etree.Element
}

const c14nBufSize = 16 << 10

var c14nPool = sync.Pool{New: func() any {
	return &c14nState{out: c14nWriter{buf: make([]byte, 0, c14nBufSize)}}
}}

func (st *c14nState) release() {
	st.out.w = nil
	st.out.err = nil
	st.out.buf = st.out.buf[:0]
	st.withComments = false
	st.inclusive = st.inclusive[:0]
	clear(st.inScope)
	st.inScope = st.inScope[:0]
	clear(st.rendered)
	st.rendered = st.rendered[:0]
	clear(st.nsOut)
	st.nsOut = st.nsOut[:0]
	clear(st.attrs)
	st.attrs = st.attrs[:0]
	clear(st.ancestors)
	st.ancestors = st.ancestors[:0]
	if cap(st.inScope) > 1024 || cap(st.rendered) > 1024 || cap(st.attrs) > 1024 || cap(st.ancestors) > 1024 {
		return // do not keep huge scratch space alive in the pool
	}
	c14nPool.Put(st)
}

// pushAncestorScope pushes the namespace declarations of el's ancestors,
// outermost first, so that lookups (which scan from the end) find the nearest.
func (st *c14nState) pushAncestorScope(el *etree.Element) error {
	for p := el.Parent(); p != nil; p = p.Parent() {
		st.ancestors = append(st.ancestors, p)
	}
	for i := len(st.ancestors) - 1; i >= 0; i-- {
		if err := st.pushDecls(st.ancestors[i]); err != nil {
			return err
		}
	}
	return nil
}

// pushDecls pushes the namespace declarations made on el itself.
func (st *c14nState) pushDecls(el *etree.Element) error {
	for i := range el.Attr {
		a := &el.Attr[i]
		switch {
		case a.Space == "xmlns":
			if err := checkDecl(a.Key, a.Value); err != nil {
				return err
			}
			if a.Key == "xml" {
				continue // binding xml to its own URI is allowed and never rendered
			}
			st.inScope = append(st.inScope, nsBinding{a.Key, a.Value})
		case a.Space == "" && a.Key == "xmlns":
			if a.Value == nsXML || a.Value == nsXMLNS {
				return fmt.Errorf("etreec14n: the default namespace cannot be %q", a.Value)
			}
			st.inScope = append(st.inScope, nsBinding{"", a.Value})
		}
	}
	return nil
}

func checkDecl(prefix, uri string) error {
	switch {
	case prefix == "" || strings.IndexByte(prefix, ':') >= 0:
		return fmt.Errorf("etreec14n: invalid namespace declaration xmlns:%s", prefix)
	case prefix == "xmlns":
		return errors.New("etreec14n: the xmlns prefix cannot be declared")
	case prefix == "xml":
		if uri != nsXML {
			return fmt.Errorf("etreec14n: the xml prefix cannot be bound to %q", uri)
		}
	case uri == "":
		return fmt.Errorf("etreec14n: empty namespace name for prefix %q (undeclaring a prefix is not allowed in XML 1.0)", prefix)
	case uri == nsXML || uri == nsXMLNS:
		return fmt.Errorf("etreec14n: prefix %q cannot be bound to %q", prefix, uri)
	}
	return nil
}

// lookup resolves prefix ("" = default namespace) in the current scope.
func (st *c14nState) lookup(prefix string) (string, bool) {
	if prefix == "xml" {
		return nsXML, true
	}
	for i := len(st.inScope) - 1; i >= 0; i-- {
		if st.inScope[i].prefix == prefix {
			return st.inScope[i].uri, true
		}
	}
	return "", false
}

// renderedURI is the value with which prefix was last rendered by an output
// ancestor (or earlier on the current element); "" when never rendered, which
// for the default namespace is the same as having rendered xmlns="".
func (st *c14nState) renderedURI(prefix string) string {
	for i := len(st.rendered) - 1; i >= 0; i-- {
		if st.rendered[i].prefix == prefix {
			return st.rendered[i].uri
		}
	}
	return ""
}

// render decides whether the namespace node for prefix (bound to uri in scope)
// is output on the current element: only when the nearest output ancestor
// rendering that prefix rendered it with another value. Because the rendered
// stack is updated immediately, a prefix used several times by one element is
// rendered once.
func (st *c14nState) render(prefix, uri string) {
	if st.renderedURI(prefix) == uri {
		return
	}
	st.rendered = append(st.rendered, nsBinding{prefix, uri})
	st.nsOut = append(st.nsOut, nsBinding{prefix, uri})
}

// useVisibly handles a prefix visibly utilised by the current element.
func (st *c14nState) useVisibly(el *etree.Element, prefix string) error {
	if prefix == "xml" {
		return nil
	}
	if prefix == "xmlns" {
		return fmt.Errorf("etreec14n: element <%s> uses the reserved prefix xmlns", el.FullTag())
	}
	uri, ok := st.lookup(prefix)
	if !ok && prefix != "" {
		return fmt.Errorf("etreec14n: namespace prefix %q used in <%s> is not bound", prefix, el.FullTag())
	}
	st.render(prefix, uri)
	return nil
}

func validName(s string) bool {
	return s != "" && strings.IndexByte(s, ':') < 0
}

func (st *c14nState) element(el *etree.Element) error {
	if !validName(el.Tag) {
		return fmt.Errorf("etreec14n: element name %q is not namespace-well-formed", el.FullTag())
	}
	scopeMark, renderedMark := len(st.inScope), len(st.rendered)
	if err := st.pushDecls(el); err != nil {
		return err
	}

	// Namespace axis. First the namespaces visibly utilised by the element
	// (exclusive rules), then the InclusiveNamespaces PrefixList (inclusive
	// rules: rendered wherever in scope unless the nearest output ancestor
	// already rendered the same value).
	st.nsOut = st.nsOut[:0]
	if err := st.useVisibly(el, el.Space); err != nil {
		return err
	}
	for i := range el.Attr {
		a := &el.Attr[i]
		if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
			continue
		}
		if !validName(a.Key) {
			return fmt.Errorf("etreec14n: attribute name %q on <%s> is not namespace-well-formed", a.FullKey(), el.FullTag())
		}
		if a.Space != "" {
			if err := st.useVisibly(el, a.Space); err != nil {
				return err
			}
		}
	}
	for _, p := range st.inclusive {
		uri, ok := st.lookup(p)
		if !ok && p != "" {
			continue
		}
		st.render(p, uri)
	}
	sortNS(st.nsOut)

	// Attribute axis, sorted by namespace URI then local name.
	st.attrs = st.attrs[:0]
	for i := range el.Attr {
		a := &el.Attr[i]
		if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
			continue
		}
		var uri string
		if a.Space != "" {
			uri, _ = st.lookup(a.Space) // bound: checked above
		}
		st.attrs = append(st.attrs, attrRef{uri, a})
	}
	sortAttrs(st.attrs)
	for i := 1; i < len(st.attrs); i++ {
		if st.attrs[i].uri == st.attrs[i-1].uri && st.attrs[i].a.Key == st.attrs[i-1].a.Key {
			return fmt.Errorf("etreec14n: duplicate attribute {%s}%s on <%s>", st.attrs[i].uri, st.attrs[i].a.Key, el.FullTag())
		}
	}

	// Start tag.
	o := &st.out
	o.byte('<')
	o.qname(el.Space, el.Tag)
	for _, ns := range st.nsOut {
		if ns.prefix == "" {
			o.str(` xmlns="`)
		} else {
			o.str(" xmlns:")
			o.str(ns.prefix)
			o.str(`="`)
		}
		o.attrValue(ns.uri)
		o.byte('"')
	}
	for _, ar := range st.attrs {
		o.byte(' ')
		o.qname(ar.a.Space, ar.a.Key)
		o.str(`="`)
		o.attrValue(ar.a.Value)
		o.byte('"')
	}
	o.byte('>')

	// Content.
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.Element:
			if err := st.element(t); err != nil {
				return err
			}
		case *etree.CharData:
			// CDATA sections and plain text alike are rendered as escaped text.
			o.text(t.Data)
		case *etree.Comment:
			if st.withComments {
				o.str("<!--")
				o.eolNormalised(t.Data)
				o.str("-->")
			}
		case *etree.ProcInst:
			o.str("<?")
			o.str(t.Target)
			if t.Inst != "" {
				o.byte(' ')
				o.eolNormalised(t.Inst)
			}
			o.str("?>")
		case *etree.Directive:
			// Not part of the XPath data model (and not allowed inside elements).
		}
		if o.err != nil {
			return o.err
		}
	}

	// End tag.
	o.str("</")
	o.qname(el.Space, el.Tag)
	o.byte('>')

	clear(st.inScope[scopeMark:])
	st.inScope = st.inScope[:scopeMark]
	clear(st.rendered[renderedMark:])
	st.rendered = st.rendered[:renderedMark]
	return o.err
}

// sortNS sorts namespace nodes by prefix, the default namespace ("") first.
// The lists are tiny: insertion sort.
func sortNS(s []nsBinding) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].prefix < s[j-1].prefix; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func attrLess(a, b attrRef) bool {
	if a.uri != b.uri {
		return a.uri < b.uri
	}
	return a.a.Key < b.a.Key
}

// sortAttrs sorts attributes by namespace URI (unqualified first) then local name.
func sortAttrs(s []attrRef) {
	if len(s) > 16 {
		slices.SortFunc(s, func(a, b attrRef) int {
			if c := strings.Compare(a.uri, b.uri); c != 0 {
				return c
			}
			return strings.Compare(a.a.Key, b.a.Key)
		})
		return
	}
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && attrLess(s[j], s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// collectUsed implements VisiblyUsedPrefixes for the subtree of el.
func (st *c14nState) collectUsed(el *etree.Element, set map[string]struct{}) {
	scopeMark := len(st.inScope)
	_ = st.pushDecls(el)
	switch el.Space {
	case "":
		if uri, _ := st.lookup(""); uri != "" {
			set["#default"] = struct{}{}
		}
	case "xml", "xmlns":
	default:
		set[el.Space] = struct{}{}
	}
	for i := range el.Attr {
		a := &el.Attr[i]
		switch a.Space {
		case "", "xml", "xmlns":
			continue
		}
		set[a.Space] = struct{}{}
		if a.Key != "type" {
			continue
		}
		if uri, _ := st.lookup(a.Space); uri != nsXSI {
			continue
		}
		v := strings.TrimSpace(a.Value)
		prefix, _, found := strings.Cut(v, ":")
		if !found {
			if v == "" {
				continue
			}
			prefix = ""
		}
		if prefix == "xml" || prefix == "xmlns" {
			continue
		}
		uri, ok := st.lookup(prefix)
		switch {
		case prefix == "" && uri != "":
			set["#default"] = struct{}{}
		case prefix != "" && ok:
			set[prefix] = struct{}{}
		}
	}
	for _, t := range el.Child {
		if c, ok := t.(*etree.Element); ok {
			st.collectUsed(c, set)
		}
	}
	clear(st.inScope[scopeMark:])
	st.inScope = st.inScope[:scopeMark]
}

// c14nWriter is a minimal buffered writer with a sticky error and the
// canonical escaping rules.
type c14nWriter struct {
	w   io.Writer
	buf []byte
	err error
}

func (b *c14nWriter) flush() {
	if len(b.buf) > 0 && b.err == nil {
		_, b.err = b.w.Write(b.buf)
	}
	b.buf = b.buf[:0]
}

func (b *c14nWriter) byte(c byte) {
	if len(b.buf) == cap(b.buf) {
		b.flush()
	}
	b.buf = append(b.buf, c)
}

func (b *c14nWriter) str(s string) {
	if len(b.buf)+len(s) <= cap(b.buf) {
		b.buf = append(b.buf, s...)
		return
	}
	for len(s) > 0 {
		if len(b.buf) == cap(b.buf) {
			b.flush()
		}
		n := min(len(s), cap(b.buf)-len(b.buf))
		b.buf = append(b.buf, s[:n]...)
		s = s[n:]
	}
}

func (b *c14nWriter) qname(space, local string) {
	if space != "" {
		b.str(space)
		b.byte(':')
	}
	b.str(local)
}

// Escape classes: bit 1 = escaped in text, bit 2 = escaped in attribute values.
const (
	escText = 1 << iota
	escAttr
)

var escTable = [256]uint8{
	'&':  escText | escAttr,
	'<':  escText | escAttr,
	'>':  escText,
	'"':  escAttr,
	'\t': escAttr,
	'\n': escAttr,
	'\r': escText | escAttr,
}

func escapeFor(c byte) string {
	switch c {
	case '&':
		return "&amp;"
	case '<':
		return "&lt;"
	case '>':
		return "&gt;"
	case '"':
		return "&quot;"
	case '\t':
		return "&#x9;"
	case '\n':
		return "&#xA;"
	default: // '\r'
		return "&#xD;"
	}
}

func (b *c14nWriter) escaped(s string, class uint8) {
	last := 0
	for i := 0; i < len(s); i++ {
		if escTable[s[i]]&class == 0 {
			continue
		}
		b.str(s[last:i])
		b.str(escapeFor(s[i]))
		last = i + 1
	}
	b.str(s[last:])
}

// text writes character content: & < > and CR are escaped.
func (b *c14nWriter) text(s string) { b.escaped(s, escText) }

// attrValue writes an attribute value: & < " TAB LF CR are escaped.
func (b *c14nWriter) attrValue(s string) { b.escaped(s, escAttr) }

// eolNormalised writes comment and PI data verbatim except that CR LF and lone
// CR become LF (XML 1.0 §2.11; encoding/xml does not do it for these tokens).
func (b *c14nWriter) eolNormalised(s string) {
	for {
		i := strings.IndexByte(s, '\r')
		if i < 0 {
			b.str(s)
			return
		}
		b.str(s[:i])
		b.byte('\n')
		s = s[i+1:]
		if s != "" && s[0] == '\n' {
			s = s[1:]
		}
	}
}

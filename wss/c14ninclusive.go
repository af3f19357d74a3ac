package wss

// Canonical XML 1.0 (inclusive C14N, W3C REC-xml-c14n-20010315) of an
// element subtree selected by a same-document "#id" reference: the
// document subset is the element and its descendants, so
//
//   - the apex renders every namespace node in scope (the declarations of
//     its ancestors and its own, the nearest binding of each prefix; an
//     empty default namespace is not rendered), and every descendant renders
//     only the declarations it makes itself that differ from what its
//     parent rendered (xmlns="" when it undeclares a rendered default);
//   - the apex carries the xml:* attributes (xml:lang, xml:space, xml:base,
//     xml:id) of its nearest ancestors that it does not have itself (C14N
//     1.0 §2.4), merged and sorted with its own attributes;
//   - comments are output only for WithComments (Verify asks for them only
//     for a SignedInfo: a "#id" reference selects no comments).
//
// It is used by Verify only, when a profile admits inclusive C14N; Sign
// always uses exclusive C14N. The work is proportional to the subtree plus
// the declarations and attributes of its ancestors: the rendered bindings
// are a map, and below the apex only the element's own declarations are
// looked at.

import (
	"bytes"
	"io"
	"slices"
)

// Canonical XML 1.0 algorithm URIs.
const (
	AlgC14N10             = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
	AlgC14N10WithComments = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments"
)

// isInclusiveC14N reports whether uri is a Canonical XML 1.0 algorithm.
func isInclusiveC14N(uri string) bool { return uri == AlgC14N10 || uri == AlgC14N10WithComments }

// incC14NSink renders one element subtree in Canonical XML 1.0.
type incC14NSink struct {
	out      c14nOut
	comments bool
	depth    int
	scope    map[string]string // the ancestors' bindings, prefix ("" = default) → URI
	xmlAttrs []rawAttr         // the ancestors' xml:* attributes, nearest first, one per local name
	rendered map[string]string // what the output ancestors rendered
	undo     []incUndo
	marks    []int
	nsOut    []nsBind
	attrs    []*rawAttr
}

type incUndo struct {
	prefix, prev string
	had          bool
}

// render outputs prefix=uri on the current element unless the nearest
// output ancestor rendered the same binding (nothing rendered counts as
// the empty default namespace).
func (c *incC14NSink) render(prefix, uri string) {
	if prefix == "xml" || prefix == "xmlns" {
		return
	}
	prev, had := c.rendered[prefix]
	if had && prev == uri || !had && uri == "" {
		return
	}
	c.undo = append(c.undo, incUndo{prefix, prev, had})
	c.rendered[prefix] = uri
	c.nsOut = append(c.nsOut, nsBind{prefix: []byte(prefix), uri: []byte(uri)})
}

func declPrefix(a *rawAttr) string {
	if a.prefix == nil {
		return ""
	}
	return string(a.local)
}

func (c *incC14NSink) token(t *xmlTokenizer) bool {
	o := &c.out
	switch t.kind {
	case tokStart:
		c.depth++
		c.marks = append(c.marks, len(c.undo))
		c.nsOut = c.nsOut[:0]
		c.attrs = c.attrs[:0]
		if c.depth == 1 {
			own := map[string]string{}
			for j := range t.attrs {
				if a := &t.attrs[j]; a.decl {
					own[declPrefix(a)] = string(a.value)
				}
			}
			for p, u := range c.scope {
				if _, mine := own[p]; !mine {
					c.render(p, u)
				}
			}
			for p, u := range own {
				c.render(p, u)
			}
		} else {
			for j := range t.attrs {
				if a := &t.attrs[j]; a.decl {
					c.render(declPrefix(a), string(a.value))
				}
			}
		}
		for j := range t.attrs {
			if a := &t.attrs[j]; !a.decl {
				c.attrs = append(c.attrs, a)
			}
		}
		if c.depth == 1 && len(c.xmlAttrs) > 0 {
			own := map[string]bool{}
			for _, a := range c.attrs {
				if bytes.Equal(a.uri, bNSXML) {
					own[string(a.local)] = true
				}
			}
			for k := range c.xmlAttrs {
				if x := &c.xmlAttrs[k]; !own[string(x.local)] {
					c.attrs = append(c.attrs, x)
				}
			}
		}
		slices.SortFunc(c.nsOut, func(a, b nsBind) int { return bytes.Compare(a.prefix, b.prefix) })
		sortAttrs(c.attrs)
		o.startTag(t.qname, c.nsOut, c.attrs)
	case tokEnd:
		o.endTag(t.qname)
		m := c.marks[len(c.marks)-1]
		c.marks = c.marks[:len(c.marks)-1]
		for i := len(c.undo) - 1; i >= m; i-- {
			u := c.undo[i]
			if u.had {
				c.rendered[u.prefix] = u.prev
			} else {
				delete(c.rendered, u.prefix)
			}
		}
		c.undo = c.undo[:m]
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

// canonicalizeInclusive writes the Canonical XML 1.0 form of the element's
// subtree (as a "#id" reference selects it) to w; comments selects the
// WithComments variant. The error is the tokenizer's or w's.
func (e elemRef) canonicalizeInclusive(w io.Writer, comments bool) error {
	start, end := e.span()
	t := getTokenizer(e.t.raw[start:end])
	defer putTokenizer(t)
	t.bound(e.t.ctx, e.t.lim)
	t.fragment = true
	sink := &incC14NSink{
		out:      c14nOut{w: w, buf: (*c14nBufPool.Get().(*[]byte))[:0]},
		comments: comments,
		scope:    map[string]string{},
		rendered: map[string]string{},
	}
	defer func() {
		b := sink.out.buf[:0]
		c14nBufPool.Put(&b)
	}()
	e.scope(func(prefix, uri []byte) {
		t.bind(prefix, uri)
		sink.scope[string(prefix)] = string(uri)
	})
	seen := map[string]bool{}
	for p := e.parent(); p.ok(); p = p.parent() {
		for _, a := range p.attrList() {
			if a.space() != NSXML || seen[a.local()] {
				continue
			}
			seen[a.local()] = true
			sink.xmlAttrs = append(sink.xmlAttrs, rawAttr{
				qname: []byte(a.qname()), prefix: []byte(a.prefix()), local: []byte(a.local()),
				uri: bNSXML, value: []byte(a.value()),
			})
		}
	}
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

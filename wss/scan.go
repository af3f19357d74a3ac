package wss

import (
	"bytes"
	"context"
	"encoding/xml"
)

// nsScope is the namespace scope inside a recorded element: the element's
// own declarations over its parent's scope ("" is the default namespace).
// Scopes are shared, never copied: recording an element costs O(its own
// declarations), and a lookup walks the declaring recorded ancestors (the
// scan records elements to depth 3 only). A nil *nsScope is empty.
type nsScope struct {
	parent *nsScope
	own    map[string]string
}

// baseScope binds xml, the only prefix bound before any declaration.
var baseScope = &nsScope{own: map[string]string{"xml": NSXML}}

// newScope returns own over parent (parent itself when own is empty).
func newScope(parent *nsScope, own map[string]string) *nsScope {
	if len(own) == 0 {
		return parent
	}
	return &nsScope{parent: parent, own: own}
}

// lookup returns the URI prefix is bound to in s.
func (s *nsScope) lookup(prefix string) (string, bool) {
	for ; s != nil; s = s.parent {
		if u, ok := s.own[prefix]; ok {
			return u, true
		}
	}
	return "", false
}

// all returns every binding in force in s, the innermost of each prefix:
// O(the declarations of the chain), which the scope limit bounds.
func (s *nsScope) all() map[string]string {
	m := map[string]string{}
	for ; s != nil; s = s.parent {
		for p, u := range s.own {
			if _, shadowed := m[p]; !shadowed {
				m[p] = u
			}
		}
	}
	return m
}

// element is one element of the raw envelope, located by byte offsets.
type element struct {
	rawName     string // qualified name as written, e.g. "soap:Body"
	prefix      string
	space       string // namespace URI
	local       string
	start       int  // offset of '<'
	startEnd    int  // offset just past the start tag's '>'
	selfClosing bool // <x/>
	endStart    int  // offset of the end tag's '<' (== startEnd for self-closing)
	depth       int  // 0 for the document element
	wsuID       string
	scope       *nsScope // namespaces in scope inside this element (its own declarations included)
	attrs       []xml.Attr
	children    []*element // recorded only for the Envelope, the Header and Security headers
	idPrefix    string     // see wsuPrefix
	idDecl      bool
}

// wsuPrefix is the prefix of the wsu:Id attribute Sign adds to el, and
// whether el must declare it. It is chosen once, so that the digest pass
// and the output cannot differ.
func (el *element) wsuPrefix() (string, bool) {
	if el.idPrefix == "" {
		el.idPrefix, el.idDecl = prefixFor(el.scope, NSWSU, "wsu")
	}
	return el.idPrefix, el.idDecl
}

// envelope is what one scan learns about a SOAP envelope.
type envelope struct {
	ctx      context.Context // the caller's, for every later pass over raw
	lim      Limits          // with defaults, as the scan enforced them
	raw      []byte
	version  soapVersion
	root     *element
	header   *element // nil when there is none
	body     *element
	security []*element // wsse:Security header blocks, in document order
	ids      map[string]bool
}

func (e *element) attr(space, local string) (string, bool) {
	for _, a := range e.attrs {
		if a.Name.Local == local && e.attrSpace(a) == space {
			return a.Value, true
		}
	}
	return "", false
}

func (e *element) attrSpace(a xml.Attr) string {
	switch a.Name.Space {
	case "":
		return ""
	case "xmlns":
		return NSXMLNS
	case "xml":
		return NSXML
	}
	u, _ := e.scope.lookup(a.Name.Space)
	return u
}

// place checks el's position in the SOAP structure and records the parts
// that signing and verification need.
func (env *envelope) place(el *element, stack []*element) error {
	if el.depth == 0 {
		switch {
		case el.local == "Envelope" && el.space == NSSOAP11:
			env.version = soap11
		case el.local == "Envelope" && el.space == NSSOAP12:
			env.version = soap12
		default:
			return errorf(CodeNotSOAP, "the document element is {%s}%s, not a SOAP 1.1 or 1.2 Envelope", el.space, el.local)
		}
		env.root = el
		return nil
	}
	soapNS := env.version.ns
	parent := stack[len(stack)-1]
	if el.depth == 1 {
		parent.children = append(parent.children, el)
		switch {
		case el.space == soapNS && el.local == "Header":
			if env.header != nil || env.body != nil || len(parent.children) > 1 {
				return errorf(CodeInvalidSOAP, "the Header must be the first child of the Envelope, and only one")
			}
			env.header = el
		case el.space == soapNS && el.local == "Body":
			if env.body != nil {
				return errorf(CodeInvalidSOAP, "the Envelope has more than one Body")
			}
			env.body = el
		case env.body == nil:
			return errorf(CodeInvalidSOAP, "unexpected element {%s}%s before the Body", el.space, el.local)
		case env.version == soap12 || el.space == soapNS:
			return errorf(CodeInvalidSOAP, "unexpected element {%s}%s after the Body", el.space, el.local)
		}
		return nil
	}
	if el.space == soapNS && (el.local == "Envelope" || el.local == "Header" || el.local == "Body") {
		return errorf(CodeInvalidSOAP, "a SOAP %s element inside <%s> is not accepted", el.local, parent.rawName)
	}
	if el.depth == 2 && parent == env.header {
		parent.children = append(parent.children, el)
		if el.space == NSWSSE && el.local == "Security" {
			env.security = append(env.security, el)
		}
	}
	if el.depth == 3 && len(env.security) > 0 && parent == env.security[len(env.security)-1] {
		parent.children = append(parent.children, el)
	}
	return nil
}

// scanEnvelope tokenises raw once, enforcing lim, refusing DTDs, checking that
// all Ids are unique and that the document is a SOAP envelope of sane shape.
// It allocates an element only for the Envelope, its children, the header
// blocks and the children of the last Security header: the rest of the
// document costs no allocation beyond the Ids it holds.
func scanEnvelope(ctx context.Context, raw []byte, lim Limits) (*envelope, error) {
	return scanEnvelopeBody(ctx, raw, lim, nil)
}

// scanEnvelopeBody is scanEnvelope; onBody, if not nil, is called on the
// Body's start tag (recorded and checked) and may return a sink that then
// gets the Body's tokens, its start tag included, in the same pass. The
// sink must not change the tokenizer's namespace bindings: the scan goes on
// with them.
func scanEnvelopeBody(ctx context.Context, raw []byte, lim Limits, onBody func(t *xmlTokenizer, body *element) tokenSink) (*envelope, error) {
	if err := ctxError(ctx); err != nil {
		return nil, err
	}
	lim = lim.withDefaults()
	if int64(len(raw)) > lim.MaxBytes {
		return nil, errorf(CodeTooLarge, "envelope is %d bytes; the limit is %d", len(raw), lim.MaxBytes)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errorf(CodeMalformedXML, "empty document")
	}
	t := getTokenizer(raw)
	defer putTokenizer(t)
	t.bound(ctx, lim)
	t.goNames = true
	env := &envelope{ctx: ctx, lim: lim, raw: raw, ids: map[string]bool{}}
	base := baseScope
	var recorded []*element // per open element: its record, or nil
	// Structural errors wait until the whole document is known to be
	// well-formed, so that malformed input is reported as such.
	var deferred error
	var bodySink tokenSink
	for {
		k, err := t.next()
		if err != nil {
			return nil, err
		}
		if k == tokEOF {
			break
		}
		if bodySink != nil && bodySink.token(t) {
			bodySink = nil
		}
		switch k {
		case tokEnd:
			if el := recorded[len(recorded)-1]; el != nil {
				if el.selfClosing {
					el.endStart = el.startEnd
				} else {
					el.endStart = t.start
				}
			}
			recorded = recorded[:len(recorded)-1]
			continue
		case tokText, tokCDATA:
			// Character data directly in the Envelope or the Header is not
			// SOAP (only header blocks and the Body are): it would be
			// signed as if it meant something.
			if n := len(recorded); deferred == nil && n > 0 && n <= 2 && !isWhiteSpace(t.data) {
				if el := recorded[n-1]; el != nil && (el == env.root || el == env.header) {
					deferred = errorf(CodeInvalidSOAP, "character data directly inside the %s is not SOAP", el.local)
				}
			}
			continue
		case tokStart:
		default:
			continue
		}
		depth := t.depth - 1
		var parent *element
		if depth > 0 {
			parent = recorded[depth-1]
		}
		var wsuID []byte
		for j := range t.attrs {
			a := &t.attrs[j]
			if a.decl {
				continue
			}
			isID := false
			switch {
			case a.uri == nil:
				isID = string(a.local) == "Id" || string(a.local) == "ID"
			case string(a.local) == "Id":
				isID = string(a.uri) == NSWSU
			case string(a.local) == "id":
				isID = string(a.uri) == NSXML
			}
			if !isID {
				continue
			}
			if env.ids[string(a.value)] && deferred == nil {
				deferred = errorf(CodeDuplicateID, "the Id %q occurs more than once", a.value)
			}
			env.ids[string(a.value)] = true
			if a.uri != nil && string(a.uri) == NSWSU {
				wsuID = a.value
			}
		}
		record := depth <= 1 ||
			(depth == 2 && parent != nil && parent == env.header) ||
			(depth == 3 && parent != nil && len(env.security) > 0 && parent == env.security[len(env.security)-1])
		if deferred != nil {
			record = false
		}
		if !record {
			if deferred == nil && depth >= 2 && string(t.uri) == env.version.ns &&
				(string(t.local) == "Envelope" || string(t.local) == "Header" || string(t.local) == "Body") {
				deferred = errorf(CodeInvalidSOAP, "a SOAP %s element inside <%s> is not accepted", t.local, t.stack[len(t.stack)-2].qname)
			}
			recorded = append(recorded, nil)
			continue
		}
		el := &element{
			rawName:     string(t.qname),
			prefix:      string(t.prefix),
			space:       string(t.uri),
			local:       string(t.local),
			start:       t.start,
			startEnd:    t.end,
			selfClosing: t.selfClosing,
			depth:       depth,
			wsuID:       string(wsuID),
			attrs:       make([]xml.Attr, len(t.attrs)),
		}
		scope := base
		if parent != nil {
			scope = parent.scope
		}
		for j := range t.attrs {
			a := &t.attrs[j]
			el.attrs[j] = xml.Attr{Name: xml.Name{Space: string(a.prefix), Local: string(a.local)}, Value: string(a.value)}
		}
		el.scope = elementScope(scope, t.attrs)
		recorded = append(recorded, el)
		// place looks only at the innermost open element, recorded (non-nil)
		// for every element recorded.
		deferred = env.place(el, recorded[:len(recorded)-1])
		if onBody != nil && deferred == nil && env.body == el {
			if bodySink = onBody(t, el); bodySink != nil && bodySink.token(t) {
				bodySink = nil
			}
		}
	}
	if deferred != nil {
		return nil, deferred
	}
	if env.body == nil {
		return nil, errorf(CodeInvalidSOAP, "the Envelope has no Body")
	}
	return env, nil
}

// elementScope is outer extended by the namespace declarations among attrs
// (outer itself when there are none). outer is shared, not copied.
func elementScope(outer *nsScope, attrs []rawAttr) *nsScope {
	var own map[string]string
	for j := range attrs {
		a := &attrs[j]
		if !a.decl {
			continue
		}
		p := string(a.local)
		if a.prefix == nil {
			p = ""
		}
		if own == nil {
			own = make(map[string]string, 2)
		}
		own[p] = string(a.value)
	}
	return newScope(outer, own)
}

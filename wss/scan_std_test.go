package wss

// The encoding/xml scanner that the tokenizer-based scanEnvelope replaced:
// a test oracle only (FuzzScanEnvelopeDifferential, TestScanEnvelopeDifferential).

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// scanEnvelopeStd is the encoding/xml implementation of scanEnvelope that
// the tokenizer-based one replaced; FuzzScanEnvelopeDifferential checks
// that both find the same structure wherever both accept a document.
func scanEnvelopeStd(raw []byte, lim Limits) (*envelope, error) {
	ctx := context.Background()
	lim = lim.withDefaults()
	if int64(len(raw)) > lim.MaxBytes {
		return nil, errorf(CodeTooLarge, "envelope is %d bytes; the limit is %d", len(raw), lim.MaxBytes)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errorf(CodeMalformedXML, "empty document")
	}
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	env := &envelope{ctx: ctx, lim: lim, raw: raw, ids: map[string]bool{}}
	var stack []*element
	scope := map[string]string{"xml": NSXML}
	var scopes []map[string]string // saved outer scopes
	elements := 0
	rootDone := false
	// Structural errors wait until the whole document is known to be
	// well-formed, so that malformed input is reported as such.
	var deferred error
	for {
		off := int(d.InputOffset())
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, syntaxError(err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			if bytes.HasPrefix(bytes.TrimSpace(t), []byte("DOCTYPE")) || bytes.Contains(t, []byte("ENTITY")) {
				return nil, errorf(CodeDTDForbidden, "DOCTYPE and entity declarations are not accepted")
			}
			return nil, errorf(CodeDTDForbidden, "markup declarations are not accepted")
		case xml.ProcInst:
			if t.Target == "xml" && off != 0 {
				return nil, errorf(CodeMalformedXML, "XML declaration not at the start of the document")
			}
		case xml.CharData:
			if len(stack) == 0 && len(bytes.TrimSpace(t)) > 0 {
				return nil, errorf(CodeMalformedXML, "text outside the document element")
			}
		case xml.StartElement:
			if rootDone {
				return nil, errorf(CodeMalformedXML, "more than one document element")
			}
			elements++
			if elements > lim.MaxElements {
				return nil, errorf(CodeTooComplex, "more than %d elements", lim.MaxElements)
			}
			if len(stack)+1 > lim.MaxDepth {
				return nil, errorf(CodeTooComplex, "elements nested deeper than %d", lim.MaxDepth)
			}
			if !ncNames(t.Name) {
				return nil, errorf(CodeMalformedXML, "element name %q is not namespace-well-formed", qname(t.Name))
			}
			for _, a := range t.Attr {
				if !ncNames(a.Name) {
					return nil, errorf(CodeMalformedXML, "attribute name %q on <%s> is not namespace-well-formed", qname(a.Name), qname(t.Name))
				}
			}
			// Namespace declarations first: they apply to the element's own name and attributes.
			var decl map[string]string
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					if decl == nil {
						decl = map[string]string{}
					}
					p := a.Name.Local
					if a.Name.Space == "" {
						p = ""
					}
					if p == "xmlns" || (p == "xml" && a.Value != NSXML) || (p != "" && a.Value == "") ||
						(p != "xml" && (a.Value == NSXML || a.Value == NSXMLNS)) {
						return nil, errorf(CodeMalformedXML, "illegal namespace declaration of prefix %q", p)
					}
					decl[p] = a.Value
				}
			}
			scopes = append(scopes, scope)
			if decl != nil {
				ns := make(map[string]string, len(scope)+len(decl))
				for k, v := range scope {
					ns[k] = v
				}
				for k, v := range decl {
					ns[k] = v
				}
				scope = ns
			}
			uri, ok := scope[t.Name.Space]
			if !ok && t.Name.Space != "" {
				return nil, errorf(CodeMalformedXML, "unbound namespace prefix %q on <%s>", t.Name.Space, qname(t.Name))
			}
			end := int(d.InputOffset())
			el := &element{
				rawName:     qname(t.Name),
				prefix:      t.Name.Space,
				space:       uri,
				local:       t.Name.Local,
				start:       off,
				startEnd:    end,
				selfClosing: end >= 2 && raw[end-2] == '/',
				depth:       len(stack),
				scope:       &nsScope{own: scope},
				attrs:       t.Attr,
			}
			seenAttr := map[xml.Name]bool{}
			for _, a := range t.Attr {
				if a.Name.Space != "" && a.Name.Space != "xmlns" && a.Name.Space != "xml" {
					if _, ok := scope[a.Name.Space]; !ok {
						return nil, errorf(CodeMalformedXML, "unbound namespace prefix %q on attribute %s", a.Name.Space, qname(a.Name))
					}
				}
				full := xml.Name{Space: el.attrSpace(a), Local: a.Name.Local}
				if seenAttr[full] {
					return nil, errorf(CodeMalformedXML, "attribute %s appears twice on <%s>", qname(a.Name), el.rawName)
				}
				seenAttr[full] = true
				if isIDAttr(full) {
					if env.ids[a.Value] && deferred == nil {
						deferred = errorf(CodeDuplicateID, "the Id %q occurs more than once", a.Value)
					}
					env.ids[a.Value] = true
					if full.Space == NSWSU {
						el.wsuID = a.Value
					}
				}
			}
			if deferred == nil {
				deferred = env.place(el, stack)
			}
			stack = append(stack, el)
		case xml.EndElement:
			if len(stack) == 0 {
				return nil, errorf(CodeMalformedXML, "unexpected end tag </%s>", qname(t.Name))
			}
			el := stack[len(stack)-1]
			if qname(t.Name) != el.rawName {
				return nil, errorf(CodeMalformedXML, "element <%s> closed by </%s>", el.rawName, qname(t.Name))
			}
			if el.selfClosing {
				el.endStart = el.startEnd
			} else {
				el.endStart = off
			}
			stack = stack[:len(stack)-1]
			scope = scopes[len(scopes)-1]
			scopes = scopes[:len(scopes)-1]
			if len(stack) == 0 {
				rootDone = true
			}
		}
	}
	if !rootDone {
		if len(stack) > 0 {
			return nil, errorf(CodeMalformedXML, "unexpected end of document inside <%s>", stack[len(stack)-1].rawName)
		}
		return nil, errorf(CodeMalformedXML, "no document element")
	}
	if deferred != nil {
		return nil, deferred
	}
	if env.body == nil {
		return nil, errorf(CodeInvalidSOAP, "the Envelope has no Body")
	}
	return env, nil
}

func isIDAttr(n xml.Name) bool {
	switch {
	case n.Space == NSWSU && n.Local == "Id":
		return true
	case n.Space == "" && (n.Local == "Id" || n.Local == "ID"):
		return true
	case n.Space == NSXML && n.Local == "id":
		return true
	}
	return false
}

// ncNames reports whether a raw name is a QName of Namespaces in XML 1.0:
// an NCName, or two joined by one colon (encoding/xml splits at the first
// colon and leaves names such as ":", "a:" or "a:b:c" partly in Local).
func ncNames(n xml.Name) bool {
	return n.Local != "" && !strings.Contains(n.Local, ":") && !strings.Contains(n.Space, ":")
}

func qname(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

func syntaxError(err error) error {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return errorf(CodeMalformedXML, "line %d: %s", se.Line, se.Msg)
	}
	return &Error{Code: CodeMalformedXML, Msg: fmt.Sprintf("not well-formed: %v", err)}
}

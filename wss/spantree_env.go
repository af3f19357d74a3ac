package wss

import (
	"bytes"
	"context"
)

// parseEnvelopeTree reads the SOAP envelope raw once, into a span tree,
// with the checks and verdicts of scanEnvelope: lim and the tokenizer's
// well-formedness rules first, then, in document order with the first
// failure winning, unique Ids, a SOAP 1.1 or 1.2 Envelope as the document
// element, at most one Header and it first, exactly one Body, nothing but
// SOAP 1.1 extension elements after the Body, and no SOAP Envelope, Header
// or Body deeper down, and no character data but white space directly in
// the Envelope or the Header. It returns the tree and the SOAP version.
func parseEnvelopeTree(ctx context.Context, raw []byte, lim Limits) (*spanTree, soapVersion, error) {
	lim = lim.withDefaults()
	if int64(len(raw)) > lim.MaxBytes {
		return nil, soapVersion{}, errorf(CodeTooLarge, "envelope is %d bytes; the limit is %d", len(raw), lim.MaxBytes)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, soapVersion{}, errorf(CodeMalformedXML, "empty document")
	}
	st, err := readSpanTree(ctx, raw, lim)
	if err != nil {
		return nil, soapVersion{}, err
	}
	var ver soapVersion
	children, header, body := 0, false, false
	for i := range st.elems.n {
		if st.dup != nil && st.dupAt == int32(i) {
			return nil, soapVersion{}, st.dup
		}
		e := st.ref(int32(i))
		switch parent := e.n().parent; {
		case parent < 0:
			switch {
			case e.is(NSSOAP11, "Envelope"):
				ver = soap11
			case e.is(NSSOAP12, "Envelope"):
				ver = soap12
			default:
				return nil, soapVersion{}, errorf(CodeNotSOAP, "the document element is {%s}%s, not a SOAP 1.1 or 1.2 Envelope", e.space(), e.local())
			}
		case parent == 0:
			children++
			switch {
			case e.is(ver.ns, "Header"):
				if header || body || children > 1 {
					return nil, soapVersion{}, errorf(CodeInvalidSOAP, "the Header must be the first child of the Envelope, and only one")
				}
				header = true
			case e.is(ver.ns, "Body"):
				if body {
					return nil, soapVersion{}, errorf(CodeInvalidSOAP, "the Envelope has more than one Body")
				}
				body = true
			case !body:
				return nil, soapVersion{}, errorf(CodeInvalidSOAP, "unexpected element {%s}%s before the Body", e.space(), e.local())
			case ver == soap12 || e.space() == ver.ns:
				return nil, soapVersion{}, errorf(CodeInvalidSOAP, "unexpected element {%s}%s after the Body", e.space(), e.local())
			}
		default:
			if e.space() == ver.ns && (e.is(ver.ns, "Envelope") || e.is(ver.ns, "Header") || e.is(ver.ns, "Body")) {
				return nil, soapVersion{}, errorf(CodeInvalidSOAP, "a SOAP %s element inside <%s> is not accepted", e.local(), e.parent().qname())
			}
		}
	}
	if !body {
		return nil, soapVersion{}, errorf(CodeInvalidSOAP, "the Envelope has no Body")
	}
	for _, i := range st.textAt {
		if e := st.ref(i); i == 0 || e.is(ver.ns, "Header") {
			return nil, soapVersion{}, errorf(CodeInvalidSOAP, "character data directly inside the %s is not SOAP", e.local())
		}
	}
	return st, ver, nil
}

package wss

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"slices"
	"strings"
)

// insertion is what Sign adds to the envelope, rendered once: the tokens,
// the Timestamp and the Signature around its SignedInfo and SignatureValue,
// each as it will be in the output, with the namespace scopes the
// canonicaliser reads them in.
type insertion struct {
	// open and close are the start and end tags of a new Security header;
	// both are empty when Sign extends the caller's.
	open, close string
	// scope is in force for the Security header's children (ut, bst, ts,
	// the Signature); siScope inside the Signature, for SignedInfo.
	scope, siScope *nsScope
	ut, bst, ts    []byte
	sc             [][]byte // the SignatureConfirmations
	sigOpen        string   // <ds:Signature …>
	signedInfo     []byte   // with the digests; set by canonicalizeSignedInfo
	keyInfo        string   // </ds:SignatureValue><ds:KeyInfo>…</ds:Signature>
	ds, ec         string   // prefixes inside the Signature
}

// cat returns the concatenation of parts as one new byte slice.
func cat(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// render renders everything Sign inserts except SignedInfo and the
// SignatureValue. It needs the Ids, the times and the BST value.
func (s *signer) render() {
	in := &s.ins
	var prefixScope *nsScope
	if s.sec != nil {
		// Extend the caller's Security header: each element declares what
		// the header's scope lacks.
		in.scope, prefixScope = s.sec.scope, s.sec.scope
	} else {
		env := s.env
		outer := env.root.scope
		if env.header != nil {
			outer = env.header.scope
		}
		soapP, soapDecl := prefixFor(outer, env.version.ns, "soapenv")
		// Our declarations shadow the scope inside the header, so only the
		// SOAP prefix (used on Security itself) must not be reused.
		wsse := freePrefix(nil, "wsse", []string{soapP})
		wsu := freePrefix(nil, "wsu", []string{soapP})
		var b strings.Builder
		b.WriteString("<" + wsse + ":Security xmlns:" + wsse + "=\"" + NSWSSE + "\" xmlns:" + wsu + "=\"" + NSWSU + "\"")
		if soapDecl {
			b.WriteString(" xmlns:" + soapP + "=\"" + env.version.ns + "\"")
		}
		if !s.opts.NoMustUnderstand {
			b.WriteString(" " + soapP + ":mustUnderstand=\"" + env.version.mustUnderstand + "\"")
		}
		if s.opts.Actor != "" {
			b.WriteString(" " + soapP + ":" + actorAttr(env.version) + "=\"" + escapeAttr(s.opts.Actor) + "\"")
		}
		b.WriteString(">")
		in.open, in.close = b.String(), "</"+wsse+":Security>"
		own := map[string]string{wsse: NSWSSE, wsu: NSWSU, soapP: env.version.ns}
		prefixScope = &nsScope{own: own}
		in.scope = newScope(outer, own)
	}

	wsse, wsseDecl := prefixFor(prefixScope, NSWSSE, "wsse")
	wsu, wsuDecl := prefixFor(prefixScope, NSWSU, "wsu")
	if wsuDecl && wsu == wsse {
		wsu = freePrefix(prefixScope, "wsu", []string{wsse})
	}
	decls := func(wantWSSE, wantWSU bool) string {
		d := ""
		if wantWSSE && wsseDecl {
			d += " xmlns:" + wsse + "=\"" + NSWSSE + "\""
		}
		if wantWSU && wsuDecl {
			d += " xmlns:" + wsu + "=\"" + NSWSU + "\""
		}
		return d
	}
	if s.utID != "" {
		in.ut = []byte(renderUsernameToken(s.opts.UsernameToken, wsse, wsu, decls(true, true), s.utID, s.nonce, s.created))
	}
	bstVT := s.opts.BSTValueType
	if bstVT == "" {
		bstVT = ValueTypeX509v3
	}
	if s.bstID != "" {
		in.bst = cat("<", wsse, ":BinarySecurityToken", decls(true, true), ` EncodingType="`, EncodingBase64, `" ValueType="`, bstVT, `" `,
			wsu, `:Id="`, s.bstID, `">`, s.bst, "</", wsse, ":BinarySecurityToken>")
	}
	expires := ""
	if s.expires != "" {
		expires = "<" + wsu + ":Expires>" + s.expires + "</" + wsu + ":Expires>"
	}
	if s.tsID != "" {
		in.ts = cat("<", wsu, ":Timestamp", decls(false, true), " ", wsu, `:Id="`, s.tsID, `"><`, wsu, ":Created>", s.created, "</", wsu, ":Created>",
			expires, "</", wsu, ":Timestamp>")
	}

	in.sc = renderConfirmations(s.opts.ConfirmValues, s.scIDs, wsu, decls(false, true))
	in.ds = freePrefix(nil, "ds", []string{wsse, wsu})
	in.ec = freePrefix(nil, "ec", []string{wsse, wsu, in.ds})
	in.sigOpen = "<" + in.ds + ":Signature xmlns:" + in.ds + "=\"" + NSDSig + "\"" + decls(true, true) + " Id=\"" + s.sigID + "\">"
	sigDecls := map[string]string{in.ds: NSDSig}
	if wsseDecl {
		sigDecls[wsse] = NSWSSE
	}
	if wsuDecl {
		sigDecls[wsu] = NSWSU
	}
	in.siScope = newScope(in.scope, sigDecls)
	ds := in.ds
	if s.opts.NoSignature {
		return
	}
	in.keyInfo = "</" + ds + ":SignatureValue><" + ds + ":KeyInfo><" + wsse + ":SecurityTokenReference " + wsu + `:Id="` + s.strID + `"` +
		strTokenType(s.opts.TokenReference, bstVT, []string{ds, wsse, wsu}) + `>` +
		strContent(s.opts.TokenReference, s.leaf, s.bstID, bstVT, ds, wsse) + "</" + wsse + ":SecurityTokenReference></" + ds + ":KeyInfo></" + ds + ":Signature>"
}

// renderSignedInfo renders SignedInfo with digests. With digests nil,
// DigestValues are empty and PrefixLists hold a placeholder.
func (s *signer) renderSignedInfo(digests []string) []byte {
	ds, ec := s.ins.ds, s.ins.ec
	inclusive := func(pl []string) string {
		if !s.opts.InclusivePrefixes && len(pl) == 0 {
			return ""
		}
		v := "placeholder"
		if digests != nil {
			if len(pl) == 0 {
				return ""
			}
			v = strings.Join(pl, " ")
		}
		return "<" + ec + ":InclusiveNamespaces xmlns:" + ec + "=\"" + AlgExcC14N + "\" PrefixList=\"" + v + "\"/>"
	}
	b := make([]byte, 0, 256+len(s.refs)*(256+len(s.dm)))
	b = append(b, "<"+ds+":SignedInfo><"+ds+":CanonicalizationMethod Algorithm=\""+AlgExcC14N+"\""...)
	if s.opts.InclusivePrefixes {
		b = append(b, ">"+inclusive(s.siPL)+"</"+ds+":CanonicalizationMethod>"...)
	} else {
		b = append(b, "/>"...)
	}
	b = append(b, "<"+ds+":SignatureMethod Algorithm=\""+s.sm+"\"/>"...)
	for i, r := range s.refs {
		dv := ""
		var pl []string
		if digests != nil {
			dv = digests[i]
			if s.refPL != nil {
				pl = s.refPL[i]
			}
		}
		b = append(b, "<"+ds+":Reference URI=\"#"+r.id+"\">"...)
		if !s.opts.NoTransforms {
			b = append(b, "<"+ds+":Transforms><"+ds+":Transform Algorithm=\""+AlgExcC14N+"\""...)
			if in := inclusive(pl); in != "" {
				b = append(b, ">"+in+"</"+ds+":Transform>"...)
			} else {
				b = append(b, "/>"...)
			}
			b = append(b, "</"+ds+":Transforms>"...)
		}
		b = append(b, "<"+ds+":DigestMethod Algorithm=\""+s.dm+"\"/><"+ds+":DigestValue>"+dv+"</"+ds+":DigestValue></"+ds+":Reference>"...)
	}
	return append(b, "</"+ds+":SignedInfo>"...)
}

// edit replaces raw[off:off+del] by ins.
type edit struct {
	off, del int
	ins      string
}

func prependChild(parent *element, content string) edit {
	if parent.selfClosing {
		return edit{off: parent.startEnd - 2, del: 2, ins: ">" + content + "</" + parent.rawName + ">"}
	}
	return edit{off: parent.startEnd, ins: content}
}

// segEdit replaces raw[off:off+del] by the segments ins.
type segEdit struct {
	off, del int
	ins      [][]byte
}

// splice returns the signed envelope as segments: slices of the caller's
// bytes and of what Sign inserts (the Security header and the wsu:Id
// attributes), in order. Nothing of the envelope is copied.
func (s *signer) splice(sigValue string) [][]byte {
	env, in := s.env, &s.ins
	var edits []segEdit
	for _, r := range s.refs {
		if r.kind != refElement || !r.addID {
			continue
		}
		p, decl := r.el.wsuPrefix()
		attr := " " + p + ":Id=\"" + r.id + "\""
		if decl {
			attr = " xmlns:" + p + "=\"" + NSWSU + "\"" + attr
		}
		off := r.el.startEnd - 1
		if r.el.selfClosing {
			off--
		}
		edits = append(edits, segEdit{off: off, ins: [][]byte{[]byte(attr)}})
	}

	sig := [][]byte{[]byte(in.sigOpen), in.signedInfo, []byte("<" + in.ds + ":SignatureValue>" + sigValue + in.keyInfo)}
	if s.opts.NoSignature {
		sig = nil
	}
	sig = slices.Concat(in.sc, sig)
	var head, tail [][]byte
	switch s.opts.Layout {
	case LayoutTimestampFirst:
		head = [][]byte{in.ts}
		tail = slices.Concat([][]byte{in.ut, in.bst}, sig)
	case LayoutTimestampLast:
		tail = slices.Concat([][]byte{in.ut, in.bst}, sig, [][]byte{in.ts})
	default:
		tail = slices.Concat([][]byte{in.ut, in.bst, in.ts}, sig)
	}
	if s.sec != nil {
		// Extend the caller's Security header: our elements go last (the
		// Timestamp first with LayoutTimestampFirst).
		switch {
		case head == nil:
			edits = append(edits, appendSegs(s.sec, tail))
		case s.sec.selfClosing:
			edits = append(edits, prependSegs(s.sec, slices.Concat(head, tail)))
		default:
			edits = append(edits, prependSegs(s.sec, head), appendSegs(s.sec, tail))
		}
	} else {
		sec := slices.Concat([][]byte{[]byte(in.open)}, head, tail, [][]byte{[]byte(in.close)})
		if h := env.header; h != nil {
			edits = append(edits, prependSegs(h, sec))
		} else {
			hn := "Header"
			if env.root.prefix != "" {
				hn = env.root.prefix + ":Header"
			}
			edits = append(edits, segEdit{off: env.body.start, ins: slices.Concat([][]byte{[]byte("<" + hn + ">")}, sec, [][]byte{[]byte("</" + hn + ">")})})
		}
	}
	slices.SortStableFunc(edits, func(a, b segEdit) int { return a.off - b.off })
	out := make([][]byte, 0, 2*len(edits)+8)
	pos := 0
	for _, e := range edits {
		out = append(out, env.raw[pos:e.off])
		for _, b := range e.ins {
			if len(b) > 0 {
				out = append(out, b)
			}
		}
		pos = e.off + e.del
	}
	return append(out, env.raw[pos:])
}

func prependSegs(parent *element, content [][]byte) segEdit {
	if parent.selfClosing {
		return segEdit{off: parent.startEnd - 2, del: 2, ins: slices.Concat([][]byte{[]byte(">")}, content, [][]byte{[]byte("</" + parent.rawName + ">")})}
	}
	return segEdit{off: parent.startEnd, ins: content}
}

func appendSegs(parent *element, content [][]byte) segEdit {
	if parent.selfClosing {
		return prependSegs(parent, content)
	}
	return segEdit{off: parent.endStart, ins: content}
}

// prefixFor returns a prefix bound to uri in scope (want if it is, else the
// least in byte order: the digest pass and the output must pick the same
// one), or a fresh one (based on want) with decl=true when none is.
func prefixFor(scope *nsScope, uri, want string) (prefix string, decl bool) {
	if u, ok := scope.lookup(want); ok && u == uri {
		return want, false
	}
	found := false
	for p, u := range scope.all() {
		if u == uri && p != "" && (!found || p < prefix) {
			prefix, found = p, true
		}
	}
	if found {
		return prefix, false
	}
	return freePrefix(scope, want, nil), true
}

// freePrefix returns want, or want1, want2, ... : the first that scope does
// not bind and taken does not hold.
func freePrefix(scope *nsScope, want string, taken []string) string {
	p := want
	for i := 1; ; i++ {
		if _, bound := scope.lookup(p); !bound && !slices.Contains(taken, p) {
			return p
		}
		p = fmt.Sprintf("%s%d", want, i)
	}
}

// Len is the size of the signed envelope in bytes.
func (r *SignResult) Len() int {
	if r.Envelope != nil {
		return len(r.Envelope)
	}
	n := 0
	for _, b := range r.parts {
		n += len(b)
	}
	return n
}

// Bytes returns the signed envelope: Envelope, or with SignOptions.NoCopy a
// new copy joined from the input and what Sign inserted.
func (r *SignResult) Bytes() []byte {
	if r.Envelope != nil {
		return r.Envelope
	}
	return bytes.Join(r.parts, nil)
}

// WriteTo writes the signed envelope to w. With SignOptions.NoCopy it
// writes the input's bytes and the inserted ones in turn (one writev on a
// connection) without joining them.
func (r *SignResult) WriteTo(w io.Writer) (int64, error) {
	if r.Envelope != nil {
		n, err := w.Write(r.Envelope)
		return int64(n), err
	}
	bufs := net.Buffers(slices.Clone(r.parts))
	return bufs.WriteTo(w)
}

// isBodyPart reports whether p names the SOAP Body.
func isBodyPart(p Part) bool {
	return p.Local == "Body" && (p.Space == NSSOAP11 || p.Space == NSSOAP12 || p.Space == "")
}

// bodyDigest canonicalises the Body into h during the scan (see
// scanEnvelopeBody), with the wsu:Id Sign adds to it, if any, in its start
// tag as it will be in the output.
type bodyDigest struct {
	h     hash.Hash
	rnd   io.Reader
	id    string // the Body's wsu:Id: its own, or the one Sign adds
	addID bool
	sink  *c14nSink
	// qnames finds the prefixes the Body's xsi:type values use; if there
	// are any, the Body is digested again with them as its PrefixList.
	qnames *qnamePrefixSink
	err    error
}

// hook returns the scan's callback at the Body start tag (nil for a nil b).
func (b *bodyDigest) hook() func(t *xmlTokenizer, el *element) tokenSink {
	if b == nil {
		return nil
	}
	return func(t *xmlTokenizer, el *element) tokenSink {
		b.id = el.wsuID
		if b.id == "" {
			var r [16]byte
			if _, err := io.ReadFull(b.rnd, r[:]); err != nil {
				b.err = &Error{Code: CodeInternal, Msg: "random source", Err: err}
				return nil
			}
			b.id, b.addID = "id-"+hex.EncodeToString(r[:]), true
			// Only the attribute: the sink renders its prefix's declaration
			// from the attribute's namespace, and the scan must go on with
			// the input's own bindings.
			p, _ := el.wsuPrefix()
			t.attrs = append(t.attrs, rawAttr{qname: []byte(p + ":Id"), prefix: []byte(p), local: []byte("Id"), uri: bNSWSU, value: []byte(b.id)})
		}
		b.sink = newC14NSink(b.h, nil)
		b.qnames = newQNamePrefixSink()
		return teeSink{b.sink, b.qnames}
	}
}

// settle checks the Body digest after the scan: a canonicalisation error
// fails; an added Id that the document turned out to hold already makes Sign
// digest the Body the usual way, with a new Id.
func (b *bodyDigest) settle(env *envelope) error {
	if b == nil {
		return nil
	}
	if b.err != nil {
		return b.err
	}
	if b.sink == nil {
		return errorf(CodeInternal, "the Body was not canonicalised during the scan")
	}
	if err := b.sink.out.err; err != nil {
		return &Error{Code: CodeInternal, Msg: "canonicalisation of the Body", Err: err}
	}
	if b.addID {
		if env.ids[b.id] {
			return errBodyIDTaken
		}
		env.ids[b.id] = true
	}
	return nil
}

var errBodyIDTaken = errors.New("the Id drawn for the Body is in the document")

func (b *bodyDigest) release() {
	if b != nil && b.sink != nil {
		b.sink.release()
		b.sink = nil
	}
}

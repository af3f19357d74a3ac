package wss

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"
	"github.com/wssignd/wssignd/internal/testutil"
)

// compareSpanTree checks the span tree of raw against etree's tree of the
// same bytes, wherever both accept them: the same elements in the same
// order, with the same names, namespace URIs, parents, attributes (values
// and namespace URIs, which are attribute values, compared modulo XML 1.0
// §3.3.3 whitespace, see attrWS), namespace
// declarations, text (etree's Text and, for leaf elements, all character
// data) and Ids. Offsets must point at the tags they describe, and each
// element's span must hold it whole. A document the span tree accepts must
// be one etree accepts.
func compareSpanTree(t *testing.T, raw []byte) {
	t.Helper()
	lim := Limits{MaxBytes: 1 << 20, MaxDepth: 64, MaxElements: 1 << 14}
	st, err := parseSpanTree(context.Background(), raw, lim)
	doc := etree.NewDocument()
	werr := doc.ReadFromBytes(raw)
	if err != nil {
		if CodeOf(err) == "" || CodeOf(err) == CodeInternal {
			t.Fatalf("error without a client code: %v", err)
		}
		return // the tokenizer may be stricter
	}
	if werr != nil || doc.Root() == nil {
		t.Fatalf("the span tree accepts what etree refuses (%v): %q", werr, raw)
	}
	want := allElements(doc.Root())
	if len(want) != int(st.elems.n) {
		t.Fatalf("%d elements, etree has %d: %q", st.elems.n, len(want), raw)
	}
	index := map[*etree.Element]int{}
	for i, w := range want {
		index[w] = i
	}
	for i, w := range want {
		e := st.ref(int32(i))
		n := e.n()
		where := e.path()
		wuri := etreeURI(w.Space, w.NamespaceURI())
		if e.qname() != w.FullTag() || e.local() != w.Tag || e.prefix() != w.Space || attrWS.Replace(e.space()) != attrWS.Replace(wuri) || !e.is(e.space(), w.Tag) {
			t.Fatalf("element %d: %s %q {%s}%s, etree %s {%s}%s", i, e.qname(), e.prefix(), e.space(), e.local(), w.FullTag(), wuri, w.Tag)
		}
		if p := w.Parent(); p == nil || p.Parent() == nil {
			if e.parent().ok() {
				t.Fatalf("%s: the document element has a parent", where)
			}
		} else if !e.parent().ok() || int(e.parent().i) != index[p] {
			t.Fatalf("%s: parent %d, etree %d", where, e.parent().i, index[p])
		}
		kids := e.children()
		wk := w.ChildElements()
		if len(kids) != len(wk) {
			t.Fatalf("%s: %d children, etree %d", where, len(kids), len(wk))
		}
		for k := range kids {
			if int(kids[k].i) != index[wk[k]] {
				t.Fatalf("%s: child %d is element %d, etree %d", where, k, kids[k].i, index[wk[k]])
			}
		}
		if e.hasChildren() != (len(wk) > 0) {
			t.Fatalf("%s: hasChildren %v", where, e.hasChildren())
		}
		// Attributes and declarations, in the order written.
		var wattrs []etree.Attr
		var wdecls []string
		for _, a := range w.Attr {
			switch {
			case a.Space == "xmlns":
				wdecls = append(wdecls, a.Key+"="+attrWS.Replace(a.Value))
			case a.Space == "" && a.Key == "xmlns":
				wdecls = append(wdecls, "="+attrWS.Replace(a.Value))
			default:
				wattrs = append(wattrs, a)
			}
		}
		got := e.attrList()
		if len(got) != len(wattrs) {
			t.Fatalf("%s: %d attributes, etree %d", where, len(got), len(wattrs))
		}
		for k, a := range got {
			wa := wattrs[k]
			wq := wa.Key
			if wa.Space != "" {
				wq = wa.Space + ":" + wa.Key
			}
			if a.qname() != wq || a.local() != wa.Key || a.prefix() != wa.Space || attrWS.Replace(a.space()) != attrWS.Replace(etreeURI(wa.Space, wa.NamespaceURI())) ||
				attrWS.Replace(a.value()) != attrWS.Replace(wa.Value) {
				t.Fatalf("%s: attribute %d %s {%s}%s=%q, etree %s {%s}%s=%q", where, k, a.qname(), a.space(), a.local(), a.value(), wq, wa.NamespaceURI(), wa.Key, wa.Value)
			}
			if v, ok := e.attr(a.space(), a.local()); !ok || v != a.value() {
				t.Fatalf("%s: attr(%s, %s) = %q, %v", where, a.space(), a.local(), v, ok)
			}
		}
		var gdecls []string
		dfrom, dto := e.declRange()
		for d := dfrom; d < dto; d++ {
			dc := st.decls.at(d)
			gdecls = append(gdecls, string(st.declPrefix(dc))+"="+attrWS.Replace(st.uris[dc.uri]))
		}
		if strings.Join(gdecls, " ") != strings.Join(wdecls, " ") {
			t.Fatalf("%s: declarations %q, etree %q", where, gdecls, wdecls)
		}
		if e.declaresDefault() != strings.Contains(" "+strings.Join(wdecls, " "), " =") {
			t.Fatalf("%s: declaresDefault %v with %q", where, e.declaresDefault(), wdecls)
		}
		// Text: etree's Text, and all character data of a leaf element.
		if got, want := e.leadText(), w.Text(); got != want {
			t.Fatalf("%s: leadText %q, etree Text %q", where, got, want)
		}
		txt, terr := e.text()
		if (terr != nil) != (len(wk) > 0) {
			t.Fatalf("%s: text error %v with %d children", where, terr, len(wk))
		}
		if terr == nil {
			var b strings.Builder
			for _, c := range w.Child {
				if cd, ok := c.(*etree.CharData); ok {
					b.WriteString(cd.Data)
				}
			}
			if txt != b.String() {
				t.Fatalf("%s: text %q, etree %q", where, txt, b.String())
			}
		}
		// Offsets.
		q := "<" + e.qname()
		if !bytes.HasPrefix(raw[n.start:], []byte(q)) || raw[n.tagEnd-1] != '>' || n.tagEnd > n.endTag || n.endTag > n.end || raw[n.end-1] != '>' {
			t.Fatalf("%s: bad offsets %d %d %d %d", where, n.start, n.tagEnd, n.endTag, n.end)
		}
		if n.endTag == n.tagEnd && n.end == n.tagEnd {
			if !bytes.HasSuffix(raw[n.start:n.tagEnd], []byte("/>")) {
				t.Fatalf("%s: empty span for a non-empty element", where)
			}
		} else if !bytes.HasPrefix(raw[n.endTag:n.end], []byte("</"+e.qname())) {
			t.Fatalf("%s: end tag at %d is %q", where, n.endTag, raw[n.endTag:n.end])
		}
		if p := e.parent(); p.ok() && (n.start < p.n().tagEnd || n.end > p.n().endTag) {
			t.Fatalf("%s: span outside its parent's content", where)
		}
	}
	wids := indexIDs(doc.Root())
	if len(wids) != len(st.ids) {
		t.Fatalf("%d Ids, etree %d", len(st.ids), len(wids))
	}
	for id, el := range wids {
		if e := st.byID(id); !e.ok() || int(e.i) != index[el] {
			t.Fatalf("Id %q: element %v, etree %d", id, e, index[el])
		}
	}
}

// etreeURI is the namespace URI etree gives a name with prefix, the xml
// prefix (which etree does not resolve) bound as Namespaces in XML binds it.
func etreeURI(prefix, uri string) string {
	if prefix == "xml" {
		return NSXML
	}
	return uri
}

// FuzzSpanTreeDifferential compares the span tree with etree
// (compareSpanTree) on any input.
//
//	go test ./wss -run '^$' -fuzz FuzzSpanTreeDifferential -fuzztime 2m
func FuzzSpanTreeDifferential(f *testing.F) {
	fuzzSeeds(f, func(b []byte) { f.Add(b) })
	for _, data := range readFiles(f, filepath.Join(c14nCorpusDir, "*.xml")) {
		f.Add(data)
	}
	for _, s := range c14nSeedDocs {
		f.Add([]byte(s))
	}
	f.Add([]byte("<a xmlns:p=\"urn:p\" p:x=\"1&#10;2\" y='a\tb'>t&amp;<!--c-->u<![CDATA[<v>\r\n]]>w<?pi x?>z<b/>tail</a>"))
	f.Add([]byte("<a xmlns='urn:d'><b xmlns=''><c xmlns:q='urn:q' q:Id='1' Id='x' xml:id='y'/></b></a>"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		compareSpanTree(t, raw)
	})
}

// TestSpanTreeCorpus runs compareSpanTree over the seed envelopes, the c14n
// corpus and generated envelopes, and checks that it compared something.
func TestSpanTreeCorpus(t *testing.T) {
	docs := readFiles(t, filepath.Join(testutil.RepoRoot(t), "testdata", "envelope-*.xml"))
	docs = append(docs, readFiles(t, filepath.Join(c14nCorpusDir, "*.xml"))...)
	docs = append(docs, genEnvelope(20))
	accepted := 0
	for _, d := range docs {
		compareSpanTree(t, d)
		if _, err := parseSpanTree(context.Background(), d, Limits{}); err == nil {
			accepted++
		}
	}
	if accepted < 10 {
		t.Fatalf("only %d of %d documents were compared", accepted, len(docs))
	}
}

// TestSpanTreeCanonicalize: an element canonicalised from its span, read
// with its ancestors' declarations in force, gives the bytes of the
// one-pass canonicaliser over the whole document, for every element and
// PrefixList of the corpus.
func TestSpanTreeCanonicalize(t *testing.T) {
	docs := readFiles(t, filepath.Join(c14nCorpusDir, "*.xml"))
	docs = append(docs, genEnvelope(5), []byte("<r xmlns:p=\"urn:p\" xmlns=\"urn:d\"><!--top--><p:a x=\"1\"><!-- in\r\na --><b xmlns=\"\"><c/></b></p:a><p:c xmlns:p=\"urn:q\"><d/></p:c></r>"))
	compared := 0
	for _, doc := range docs {
		st, err := parseSpanTree(context.Background(), doc, Limits{})
		if err != nil {
			continue
		}
		for i := range st.elems.n {
			for _, o := range []struct {
				pl       []string
				comments bool
			}{{nil, false}, {nil, true}, {[]string{"#default", "p"}, false}} {
				want := &c14nTarget{n: int(i), w: new(bytes.Buffer), inclusive: o.pl, comments: o.comments}
				if err := canonicalizeRawMany(context.Background(), doc, Limits{}, []*c14nTarget{want}); err != nil || !want.found {
					t.Fatalf("canonicalizeRawMany: %v", err)
				}
				var got bytes.Buffer
				if err := st.ref(int32(i)).canonicalize(&got, o.pl, o.comments); err != nil {
					t.Fatalf("element %d: %v", i, err)
				}
				if w := want.w.(*bytes.Buffer).Bytes(); !bytes.Equal(got.Bytes(), w) {
					t.Fatalf("element %d %+v:\n got %q\nwant %q", i, o, got.Bytes(), w)
				}
				compared++
			}
		}
	}
	if compared < 100 {
		t.Fatalf("only %d canonical forms compared", compared)
	}
}

// TestSpanTreeDuplicateID: a repeated Id value is refused, after the whole
// document was found well-formed.
func TestSpanTreeDuplicateID(t *testing.T) {
	_, err := parseSpanTree(context.Background(), []byte(`<a><b Id="x"/><c xml:id="x"/></a>`), Limits{})
	if CodeOf(err) != CodeDuplicateID {
		t.Fatalf("got %v", err)
	}
	_, err = parseSpanTree(context.Background(), []byte(`<a><b Id="x"/><c Id="x"/></a`), Limits{})
	if CodeOf(err) != CodeMalformedXML {
		t.Fatalf("got %v", err)
	}
	_, err = parseSpanTree(context.Background(), []byte(`<a><b Id="x"/><c q:Id="x" xmlns:q="urn:q"/></a>`), Limits{})
	if err != nil {
		t.Fatalf("an Id in another namespace is not an Id: %v", err)
	}
}

// compareEnvelopeTree checks parseEnvelopeTree against scanEnvelope: the
// same verdict (code and message) on every input, and the same SOAP
// version, Id set, Envelope, Header, Body and Security headers (by offset)
// where both accept it.
func compareEnvelopeTree(t *testing.T, raw []byte, lim Limits) {
	t.Helper()
	st, ver, err := parseEnvelopeTree(context.Background(), raw, lim)
	env, werr := scanEnvelope(context.Background(), raw, lim)
	if (err == nil) != (werr == nil) || err != nil && (CodeOf(err) != CodeOf(werr) || err.Error() != werr.Error()) {
		t.Fatalf("parseEnvelopeTree: %v\n     scanEnvelope: %v\n%q", err, werr, raw)
	}
	if err != nil {
		return
	}
	if ver != env.version || len(st.ids) != len(env.ids) {
		t.Fatalf("version %v / %v, %d / %d Ids", ver, env.version, len(st.ids), len(env.ids))
	}
	for id := range env.ids {
		if !st.byID(id).ok() {
			t.Fatalf("Id %q missing", id)
		}
	}
	root := st.root()
	if int(root.n().start) != env.root.start {
		t.Fatal("Envelope offsets differ")
	}
	var sec []int
	for _, c := range root.children() {
		switch {
		case c.is(ver.ns, "Header"):
			if env.header == nil || int(c.n().start) != env.header.start || int(c.n().endTag) != env.header.endStart {
				t.Fatal("Header differs")
			}
			for _, h := range c.children() {
				if h.is(NSWSSE, "Security") {
					sec = append(sec, int(h.n().start))
				}
			}
		case c.is(ver.ns, "Body"):
			if int(c.n().start) != env.body.start || int(c.n().tagEnd) != env.body.startEnd || int(c.n().endTag) != env.body.endStart {
				t.Fatal("Body differs")
			}
		}
	}
	if len(sec) != len(env.security) {
		t.Fatalf("%d Security headers, scanEnvelope %d", len(sec), len(env.security))
	}
	for k, s := range sec {
		if s != env.security[k].start {
			t.Fatalf("Security header %d differs", k)
		}
	}
}

// FuzzEnvelopeTreeDifferential: parseEnvelopeTree (Verify's and Decrypt's
// one parse) decides every input as scanEnvelope (Sign's) does.
//
//	go test ./wss -run '^$' -fuzz FuzzEnvelopeTreeDifferential -fuzztime 2m
func FuzzEnvelopeTreeDifferential(f *testing.F) {
	fuzzSeeds(f, func(b []byte) { f.Add(b) })
	for _, b := range readFiles(f, filepath.Join(testutil.RepoRoot(f), "testdata", "attacks", "*.xml")) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		compareEnvelopeTree(t, raw, Limits{MaxBytes: 1 << 20, MaxDepth: 64, MaxElements: 1 << 14})
	})
}

// TestEnvelopeTreeVerdicts: every structural verdict of scanEnvelope, and
// the attack corpus, decided alike by parseEnvelopeTree.
func TestEnvelopeTreeVerdicts(t *testing.T) {
	const s11 = `xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"`
	const s12 = `xmlns:s="http://www.w3.org/2003/05/soap-envelope"`
	cases := []struct {
		doc  string
		want Code
	}{
		{`<s:Envelope ` + s11 + `><s:Header/><s:Body/></s:Envelope>`, ""},
		{`<s:Envelope ` + s12 + `><s:Body/><x/></s:Envelope>`, CodeInvalidSOAP},
		{`<s:Envelope ` + s11 + `><s:Body/><x/></s:Envelope>`, ""},
		{`<s:Envelope ` + s11 + `><s:Body/><s:x/></s:Envelope>`, CodeInvalidSOAP},
		{`<s:Envelope ` + s11 + `><x/><s:Body/></s:Envelope>`, CodeInvalidSOAP},
		{`<s:Envelope ` + s11 + `><s:Body/><s:Header/></s:Envelope>`, CodeInvalidSOAP},
		{`<s:Envelope ` + s11 + `><s:Header/><s:Header/><s:Body/></s:Envelope>`, CodeInvalidSOAP},
		{`<s:Envelope ` + s11 + `><s:Body/><s:Body/></s:Envelope>`, CodeInvalidSOAP},
		{`<s:Envelope ` + s11 + `><s:Header/></s:Envelope>`, CodeInvalidSOAP},
		{`<s:Envelope ` + s11 + `><s:Body><a><s:Body/></a></s:Body></s:Envelope>`, CodeInvalidSOAP},
		{`<s:Envelope ` + s11 + `><s:Body Id="a"><b Id="a"/></s:Body><s:Body/></s:Envelope>`, CodeDuplicateID},
		{`<s:Envelope ` + s11 + `><s:Body/><s:Body Id="a"><b Id="a"/></s:Body></s:Envelope>`, CodeInvalidSOAP},
		{`<Envelope/>`, CodeNotSOAP},
		{`<s:Envelope ` + s11 + `><s:Body/></s:Envelope`, CodeMalformedXML},
		{" \n ", CodeMalformedXML},
		{`<!DOCTYPE x><x/>`, CodeDTDForbidden},
	}
	for _, c := range cases {
		compareEnvelopeTree(t, []byte(c.doc), Limits{})
		_, _, err := parseEnvelopeTree(context.Background(), []byte(c.doc), Limits{})
		if CodeOf(err) != c.want {
			t.Errorf("%s: %v, want %q", c.doc, err, c.want)
		}
	}
	compareEnvelopeTree(t, []byte(`<s:Envelope `+s11+`><s:Body><a><b/></a></s:Body></s:Envelope>`), Limits{MaxDepth: 3})
	compareEnvelopeTree(t, []byte(`<s:Envelope `+s11+`><s:Body><a/><b/></s:Body></s:Envelope>`), Limits{MaxElements: 3})
	compareEnvelopeTree(t, []byte(`<s:Envelope `+s11+`><s:Body/></s:Envelope>`), Limits{MaxBytes: 10})
	attacks := readFiles(t, filepath.Join(testutil.RepoRoot(t), "testdata", "attacks", "*.xml"))
	if len(attacks) < 10 {
		t.Fatalf("only %d attack files", len(attacks))
	}
	for _, b := range attacks {
		compareEnvelopeTree(t, b, Limits{})
	}
}

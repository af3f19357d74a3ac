package wss

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/beevik/etree"

	"github.com/wssignd/wssignd/internal/testutil"
)

// The -update flag rewrites testdata/c14n/*.golden. It is registered only if
// no other test file of the package registered a flag of that name already.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
}

func c14nUpdate() bool {
	f := flag.Lookup("update")
	if f == nil {
		return false
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	b, _ := g.Get().(bool)
	return b
}

const c14nCorpusDir = "../testdata/c14n"

const systemPython = "/usr/bin/python3"

// requireTool skips the test (or fails it when CI=true) when an oracle tool is
// not installed.
func requireTool(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func canon(t testing.TB, el *etree.Element, opts C14NOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := CanonicalizeExclusive(&buf, el, opts); err != nil {
		t.Fatalf("CanonicalizeExclusive(<%s>, %+v): %v", el.FullTag(), opts, err)
	}
	return buf.Bytes()
}

func parseDoc(t testing.TB, data []byte) *etree.Document {
	t.Helper()
	doc := etree.NewDocument()
	doc.ReadSettings.PreserveCData = true
	if err := doc.ReadFromBytes(data); err != nil {
		t.Fatalf("parse: %v", err)
	}
	return doc
}

// genEnvelope generates a SOAP 1.1 envelope with a WS-Security header and a
// body of n order lines exercising namespaces, attribute order and escaping.
func genEnvelope(n int) []byte {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <soapenv:Header>
    <wsse:Security soapenv:mustUnderstand="1">
      <wsu:Timestamp wsu:Id="TS-1"><wsu:Created>2024-01-01T00:00:00Z</wsu:Created><wsu:Expires>2024-01-01T00:05:00Z</wsu:Expires></wsu:Timestamp>
    </wsse:Security>
  </soapenv:Header>
  <soapenv:Body wsu:Id="id-body">
    <ord:Orders xmlns:ord="urn:example:orders" xmlns:z="urn:a-sorts-first" xmlns="urn:example:default">
`)
	for i := range n {
		fmt.Fprintf(&b, `      <ord:Line num="%d" z:flag="y" ord:kind="std" xsi:type="ord:LineType">
        <Product code="P-%05d" qty="%d">Widget &amp; gadget &lt;%d&gt;</Product>
        <ord:Price currency="EUR">%d.%02d</ord:Price>
        <Note xmlns="">free text with "quotes" and a tab&#9;and a CR&#13;here</Note>
        <!-- line %d -->
      </ord:Line>
`, i, i, i%7+1, i, i*3, i%100, i)
	}
	b.WriteString("    </ord:Orders>\n  </soapenv:Body>\n</soapenv:Envelope>\n")
	return []byte(b.String())
}

// corpusFile is one document of the conformance corpus.
type corpusFile struct {
	name string // base name
	path string // absolute path, for the oracles
	doc  *etree.Document
	// subtreeLimit caps the number of subtrees per level (0 = all).
	subtreeLimit int
}

func loadCorpus(t *testing.T) []corpusFile {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(c14nCorpusDir, "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 20 {
		t.Fatalf("corpus has %d documents, want at least 20", len(names))
	}
	var files []corpusFile
	for _, name := range names {
		abs, err := filepath.Abs(name)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(abs)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, corpusFile{name: filepath.Base(name), path: abs, doc: parseDoc(t, data)})
	}
	// A large body (about 1.2 MB), generated rather than committed.
	big := genEnvelope(4000)
	bigPath := filepath.Join(t.TempDir(), "large-body.xml")
	if err := os.WriteFile(bigPath, big, 0o600); err != nil {
		t.Fatal(err)
	}
	files = append(files, corpusFile{name: "large-body.xml (generated)", path: bigPath, doc: parseDoc(t, big), subtreeLimit: 3})
	return files
}

// subtreePaths returns the root and the elements at depth 1 and 2, each as a
// path of child-element indexes from the root.
func subtreePaths(root *etree.Element, limit int) [][]int {
	paths := [][]int{{}}
	for i, c := range root.ChildElements() {
		if limit > 0 && i >= limit {
			break
		}
		paths = append(paths, []int{i})
		for j := range c.ChildElements() {
			if limit > 0 && j >= limit {
				break
			}
			paths = append(paths, []int{i, j})
		}
	}
	return paths
}

func elementAt(root *etree.Element, path []int) *etree.Element {
	el := root
	for _, i := range path {
		el = el.ChildElements()[i]
	}
	return el
}

// declaredPrefixes lists every prefix declared anywhere in the document plus
// "#default" and a prefix that is never bound.
func declaredPrefixes(root *etree.Element) []string {
	set := map[string]bool{"#default": true, "nosuchprefix": true}
	var walk func(*etree.Element)
	walk = func(el *etree.Element) {
		for _, a := range el.Attr {
			if a.Space == "xmlns" {
				set[a.Key] = true
			}
		}
		for _, c := range el.ChildElements() {
			walk(c)
		}
	}
	walk(root)
	var out []string
	for p := range set {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// oracleJob is one canonicalisation asked of libxml2 (through lxml).
type oracleJob struct {
	File     string   `json:"file"`
	Path     []int    `json:"path"`
	Comments bool     `json:"comments"`
	Prefixes []string `json:"prefixes"`
}

type oracleResult struct {
	Out []byte
	Err string
}

// lxmlOracle canonicalises, for each job, the subtree at Path of File with
// libxml2's exclusive c14n. lxml's tostring(el, method="c14n") canonicalises a
// subtree in the context of its ancestors' namespace declarations.
const lxmlOracle = `
import json, sys
from lxml import etree

# lxml passes an InclusiveNamespaces prefix to libxml2 only if the string is
# already in the (per-thread, shared) parser dictionary, and silently drops it
# otherwise: "#default" would never reach libxml2. Interning it through a
# namespace URI of a throw-away document works around that; check it did.
etree.fromstring(b'<x xmlns:d="#default"/>')
probe = etree.fromstring(b'<p:a xmlns:p="urn:p" xmlns="urn:d"/>')
got = etree.tostring(probe, method="c14n", exclusive=True, inclusive_ns_prefixes=["#default"])
if got != b'<p:a xmlns="urn:d" xmlns:p="urn:p"></p:a>':
    sys.exit("cannot pass #default to libxml2 through lxml: %r" % got)

jobs = json.load(sys.stdin)
docs = {}
out = sys.stdout.buffer
for job in jobs:
    path = job["file"]
    if path not in docs:
        parser = etree.XMLParser(huge_tree=True, remove_blank_text=False, resolve_entities=False)
        docs[path] = etree.parse(path, parser)
    el = docs[path].getroot()
    for i in job["path"] or []:
        el = [c for c in el if isinstance(c.tag, str)][i]
    try:
        res = etree.tostring(el, method="c14n", exclusive=True,
                             with_comments=job["comments"],
                             inclusive_ns_prefixes=job["prefixes"] or None)
        status = b"ok"
    except Exception as e:
        status, res = b"err", repr(e).encode("utf-8", "replace")
    # Framing: "<status> <length>\n" then the bytes.
    out.write(b"%s %d\n" % (status, len(res)))
    out.write(res)
out.flush()
`

func runLxmlOracle(t *testing.T, jobs []oracleJob) []oracleResult {
	t.Helper()
	testutil.SkipIfShort(t, "the libxml2 oracle (python3-lxml)")
	if _, err := os.Stat(systemPython); err != nil {
		requireTool(t, "libxml2 oracle unavailable: "+systemPython+" missing (apt-get install python3 python3-lxml)")
	}
	if err := exec.Command(systemPython, "-c", "import lxml.etree").Run(); err != nil {
		requireTool(t, "libxml2 oracle unavailable: lxml not importable by "+systemPython+" (apt-get install python3-lxml)")
	}
	in, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(systemPython, "-c", lxmlOracle)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("lxml oracle: %v\n%s", err, stderr.String())
	}
	results := make([]oracleResult, 0, len(jobs))
	for len(out) > 0 {
		header, rest, ok := bytes.Cut(out, []byte("\n"))
		var status string
		var n int
		if _, err := fmt.Sscanf(string(header), "%s %d", &status, &n); !ok || err != nil || n > len(rest) {
			t.Fatalf("lxml oracle: bad frame header %q", header)
		}
		r := oracleResult{Out: rest[:n]}
		if status != "ok" {
			r = oracleResult{Err: string(rest[:n])}
		}
		results = append(results, r)
		out = rest[n:]
	}
	if len(results) != len(jobs) {
		t.Fatalf("lxml oracle returned %d results for %d jobs", len(results), len(jobs))
	}
	return results
}

// diffBytes describes the first difference between got and want.
func diffBytes(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	lo := max(0, i-80)
	excerpt := func(b []byte) string {
		return fmt.Sprintf("%q", b[min(lo, len(b)):min(i+80, len(b))])
	}
	return fmt.Sprintf("first difference at byte %d (len got %d, want %d)\n got: …%s…\nwant: …%s…",
		i, len(got), len(want), excerpt(got), excerpt(want))
}

// TestCanonicalizeExclusiveLibxml2 compares our output with libxml2's for every
// corpus document, for the root and every element at depth 1 and 2, with and
// without comments, and with several InclusiveNamespaces PrefixLists.
func TestCanonicalizeExclusiveLibxml2(t *testing.T) {
	files := loadCorpus(t)
	type local struct {
		file string
		opts C14NOptions
		out  []byte
		err  error
	}
	var jobs []oracleJob
	var ours []local
	for _, f := range files {
		root := f.doc.Root()
		all := declaredPrefixes(root)
		for _, path := range subtreePaths(root, f.subtreeLimit) {
			el := elementAt(root, path)
			lists := [][]string{nil, {"#default"}, all, VisiblyUsedPrefixes(el)}
			for _, prefixes := range lists {
				for _, comments := range []bool{false, true} {
					opts := C14NOptions{InclusivePrefixes: prefixes, WithComments: comments}
					var buf bytes.Buffer
					err := CanonicalizeExclusive(&buf, el, opts)
					jobs = append(jobs, oracleJob{File: f.path, Path: path, Comments: comments, Prefixes: prefixes})
					ours = append(ours, local{file: f.name, opts: opts, out: buf.Bytes(), err: err})
				}
			}
		}
	}
	results := runLxmlOracle(t, jobs)
	passed := 0
	for i, r := range results {
		j, o := jobs[i], ours[i]
		name := fmt.Sprintf("%s path=%v comments=%v prefixes=%q", o.file, j.Path, j.Comments, j.Prefixes)
		switch {
		case r.Err != "":
			t.Errorf("%s: libxml2 failed: %s", name, r.Err)
		case o.err != nil:
			t.Errorf("%s: %v", name, o.err)
		case !bytes.Equal(o.out, r.Out):
			t.Errorf("%s: output differs from libxml2: %s", name, diffBytes(o.out, r.Out))
		default:
			passed++
		}
	}
	t.Logf("%d/%d libxml2 (lxml) comparisons passed over %d documents", passed, len(jobs), len(files))
}

// randomNSDoc generates a random document that is namespace-well-formed but
// dense in the cases canonicalisation gets wrong: few prefixes rebound to few
// URIs, default namespaces declared and undeclared, prefixed attributes of
// different namespaces with equal local names, mixed content.
func randomNSDoc(r *rand.Rand) []byte {
	prefixes := []string{"a", "b", "c"}
	uris := []string{"urn:1", "urn:2", "urn:3", "http://example.com/z"}
	texts := []string{"t", " ", "\n  ", "&amp;", "&lt;x&gt;", "&#13;", "\"'", "é✓"}
	var b strings.Builder
	var gen func(depth int, scope map[string]string)
	gen = func(depth int, scope map[string]string) {
		local := maps.Clone(scope)
		var decls []string
		for _, p := range prefixes {
			if r.IntN(4) == 0 {
				u := uris[r.IntN(len(uris))]
				local[p] = u
				decls = append(decls, fmt.Sprintf(` xmlns:%s="%s"`, p, u))
			}
		}
		if r.IntN(4) == 0 {
			u := ""
			if r.IntN(2) == 0 {
				u = uris[r.IntN(len(uris))]
			}
			decls = append(decls, fmt.Sprintf(` xmlns="%s"`, u))
		}
		var bound []string
		for _, p := range prefixes {
			if local[p] != "" {
				bound = append(bound, p)
			}
		}
		name := "e"
		if len(bound) > 0 && r.IntN(2) == 0 {
			name = bound[r.IntN(len(bound))] + ":e"
		}
		b.WriteString("<" + name)
		for _, d := range decls {
			b.WriteString(d)
		}
		seen := map[string]bool{}
		for range r.IntN(4) {
			key := []string{"x", "y", "z"}[r.IntN(3)]
			qname, expanded := key, "{}"+key
			if len(bound) > 0 && r.IntN(2) == 0 {
				p := bound[r.IntN(len(bound))]
				qname, expanded = p+":"+key, "{"+local[p]+"}"+key
			}
			if !seen[expanded] {
				seen[expanded] = true
				fmt.Fprintf(&b, ` %s="v%d&#9;&quot;"`, qname, r.IntN(10))
			}
		}
		b.WriteString(">")
		for range r.IntN(4) {
			switch n := r.IntN(10); {
			case n < 5 && depth < 6:
				gen(depth+1, local)
			case n < 8:
				b.WriteString(texts[r.IntN(len(texts))])
			case n < 9:
				b.WriteString("<!-- c -->")
			default:
				b.WriteString("<?pi d?>")
			}
		}
		b.WriteString("</" + name + ">")
	}
	gen(0, map[string]string{})
	return []byte(b.String())
}

// TestCanonicalizeExclusiveLibxml2Random compares our output with libxml2's on
// generated documents (deterministic seed), random subtrees and PrefixLists.
func TestCanonicalizeExclusiveLibxml2Random(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	var jobs []oracleJob
	var ours [][]byte
	for i := range 300 {
		data := randomNSDoc(r)
		path := filepath.Join(dir, fmt.Sprintf("r%03d.xml", i))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		root := parseDoc(t, data).Root()
		paths := subtreePaths(root, 0)
		for range 3 {
			p := paths[r.IntN(len(paths))]
			var prefixes []string
			for _, q := range []string{"#default", "a", "b", "c"} {
				if r.IntN(3) == 0 {
					prefixes = append(prefixes, q)
				}
			}
			opts := C14NOptions{InclusivePrefixes: prefixes, WithComments: r.IntN(2) == 0}
			jobs = append(jobs, oracleJob{File: path, Path: p, Comments: opts.WithComments, Prefixes: prefixes})
			ours = append(ours, canon(t, elementAt(root, p), opts))
		}
	}
	results := runLxmlOracle(t, jobs)
	passed := 0
	for i, res := range results {
		j := jobs[i]
		switch {
		case res.Err != "":
			t.Errorf("%s path=%v: libxml2 failed: %s", j.File, j.Path, res.Err)
		case !bytes.Equal(ours[i], res.Out):
			data, _ := os.ReadFile(j.File)
			t.Errorf("%s path=%v comments=%v prefixes=%q: output differs from libxml2: %s\ndocument: %s",
				filepath.Base(j.File), j.Path, j.Comments, j.Prefixes, diffBytes(ours[i], res.Out), data)
		default:
			passed++
		}
	}
	t.Logf("%d/%d libxml2 (lxml) comparisons passed on generated documents", passed, len(jobs))
}

// documentC14N renders a whole document the way Canonical XML renders a
// document node: comments (if kept) and PIs outside the root element are
// separated from it by a newline; the XML declaration and the DTD are dropped.
func documentC14N(t *testing.T, doc *etree.Document, opts C14NOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	seenRoot := false
	for _, tok := range doc.Child {
		var s string
		switch tok := tok.(type) {
		case *etree.Element:
			if err := CanonicalizeExclusive(&buf, tok, opts); err != nil {
				t.Fatal(err)
			}
			seenRoot = true
			continue
		case *etree.Comment:
			if !opts.WithComments {
				continue
			}
			s = "<!--" + tok.Data + "-->"
		case *etree.ProcInst:
			if tok.Target == "xml" {
				continue
			}
			s = "<?" + tok.Target
			if tok.Inst != "" {
				s += " " + tok.Inst
			}
			s += "?>"
		default:
			continue
		}
		if seenRoot {
			buf.WriteString("\n" + s)
		} else {
			buf.WriteString(s + "\n")
		}
	}
	return buf.Bytes()
}

// TestCanonicalizeExclusiveXmllint is the second oracle: xmllint --exc-c14n
// canonicalises whole documents, keeping comments.
func TestCanonicalizeExclusiveXmllint(t *testing.T) {
	xmllint := testutil.RequireTool(t, "xmllint", "libxml2-utils")
	files := loadCorpus(t)
	passed := 0
	for _, f := range files {
		want, err := exec.Command(xmllint, "--huge", "--exc-c14n", f.path).Output()
		if err != nil {
			t.Errorf("%s: xmllint: %v", f.name, err)
			continue
		}
		got := documentC14N(t, f.doc, C14NOptions{WithComments: true})
		if !bytes.Equal(got, want) {
			t.Errorf("%s: output differs from xmllint --exc-c14n: %s", f.name, diffBytes(got, want))
			continue
		}
		passed++
	}
	t.Logf("%d/%d xmllint comparisons passed", passed, len(files))
}

// TestCanonicalizeExclusiveGolden pins the canonical form of each corpus
// document's root (no comments, empty PrefixList). go test -run Golden -update
// rewrites the files; the libxml2 test is what validates them.
func TestCanonicalizeExclusiveGolden(t *testing.T) {
	names, err := filepath.Glob(filepath.Join(c14nCorpusDir, "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		t.Run(filepath.Base(name), func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			got := canon(t, parseDoc(t, data).Root(), C14NOptions{})
			golden := strings.TrimSuffix(name, ".xml") + ".golden"
			if c14nUpdate() {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./wss -run Golden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("differs from %s: %s", golden, diffBytes(got, want))
			}
		})
	}
}

// TestCanonicalizeExclusiveCases pins hand-checked outputs, including the
// examples of the Exclusive XML Canonicalization specification.
func TestCanonicalizeExclusiveCases(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		path []int // subtree to canonicalise
		opts C14NOptions
		want string
	}{
		{
			name: "exc-c14n spec §2.2 example, elem2 subtree",
			doc: `<n0:local xmlns:n0="foo:bar" xmlns:n3="ftp://example.org"><n1:elem2 xmlns:n1="http://example.net" xml:lang="en">` +
				`<n3:stuff xmlns:n3="ftp://example.org"/></n1:elem2></n0:local>`,
			path: []int{0},
			want: `<n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"></n3:stuff></n1:elem2>`,
		},
		{
			name: "exc-c14n spec §2.2 example, other context",
			doc: `<n2:pdu xmlns:n1="http://example.com" xmlns:n2="http://foo.example" xml:lang="fr" xml:foo="bar"><n1:elem2 xmlns:n1="http://example.net" xml:lang="en">` +
				`<n3:stuff xmlns:n3="ftp://example.org"/></n1:elem2></n2:pdu>`,
			path: []int{0},
			want: `<n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"></n3:stuff></n1:elem2>`,
		},
		{
			name: "attributes sorted by namespace URI, not prefix or local name",
			doc:  `<e xmlns:a="urn:z" xmlns:z="urn:a" a:x="1" z:y="2" b="3" a:a="4"/>`,
			want: `<e xmlns:a="urn:z" xmlns:z="urn:a" b="3" z:y="2" a:a="4" a:x="1"></e>`,
		},
		{
			name: "namespaces not visibly used are dropped",
			doc:  `<r xmlns="urn:d" xmlns:u="urn:u"><p:e xmlns:p="urn:p"/></r>`,
			path: []int{0},
			want: `<p:e xmlns:p="urn:p"></p:e>`,
		},
		{
			name: "inclusive prefixes rendered at the apex only",
			doc:  `<r xmlns="urn:d" xmlns:u="urn:u"><p:e xmlns:p="urn:p"><p:f/></p:e></r>`,
			path: []int{0},
			opts: C14NOptions{InclusivePrefixes: []string{"#default", "u", "unbound"}},
			want: `<p:e xmlns="urn:d" xmlns:p="urn:p" xmlns:u="urn:u"><p:f></p:f></p:e>`,
		},
		{
			name: "xmlns empty not emitted at the apex",
			doc:  `<r xmlns="urn:d"><e xmlns=""><f/></e></r>`,
			path: []int{0},
			want: `<e><f></f></e>`,
		},
		{
			name: "xmlns empty emitted below a rendered default",
			doc:  `<r xmlns="urn:d"><e xmlns=""><f/></e></r>`,
			want: `<r xmlns="urn:d"><e xmlns=""><f></f></e></r>`,
		},
		{
			name: "escaping",
			doc:  "<e a=\"&amp;&lt;&gt;&quot;'&#9;&#10;&#13;\">&amp;&lt;&gt;\"'&#9;&#10;&#13;</e>",
			want: "<e a=\"&amp;&lt;>&quot;'&#x9;&#xA;&#xD;\">&amp;&lt;&gt;\"'\t\n&#xD;</e>",
		},
		{
			name: "comments dropped",
			doc:  `<e>a<!--c-->b<?pi x?></e>`,
			want: `<e>ab<?pi x?></e>`,
		},
		{
			name: "comments kept",
			doc:  `<e>a<!--c-->b<?pi?></e>`,
			opts: C14NOptions{WithComments: true},
			want: `<e>a<!--c-->b<?pi?></e>`,
		},
		{
			name: "xml prefix never declared",
			doc:  `<r xmlns:xml="http://www.w3.org/XML/1998/namespace"><xml:e xml:lang="en"/></r>`,
			opts: C14NOptions{InclusivePrefixes: []string{"xml"}},
			want: `<r><xml:e xml:lang="en"></xml:e></r>`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := parseDoc(t, []byte(tt.doc))
			got := canon(t, elementAt(doc.Root(), tt.path), tt.opts)
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestCanonicalizeExclusiveErrors(t *testing.T) {
	unbound := etree.NewElement("p:e")
	badAttr := etree.NewElement("e")
	badAttr.CreateAttr("q:a", "v")
	tests := []struct {
		name string
		doc  string
		el   *etree.Element // used when doc is empty
	}{
		{name: "unbound element prefix", el: unbound},
		{name: "unbound attribute prefix", el: badAttr},
		{name: "undeclared prefix", doc: `<r xmlns:p="urn:p"><p:e xmlns:p=""/></r>`},
		{name: "xml rebound", doc: `<r xmlns:xml="urn:x"/>`},
		{name: "xmlns declared", doc: `<r xmlns:xmlns="urn:x"/>`},
		{name: "prefix bound to xml namespace", doc: `<r xmlns:x="http://www.w3.org/XML/1998/namespace"/>`},
		{name: "duplicate expanded attribute", doc: `<r xmlns:a="urn:a" xmlns:b="urn:a" a:x="1" b:x="2"/>`},
		{name: "colon in local name", doc: `<r a:="1"/>`},
		{name: "bad ancestor declaration", doc: `<r xmlns:p=""><e/></r>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			el := tt.el
			if tt.doc != "" {
				el = parseDoc(t, []byte(tt.doc)).Root()
				if c := el.ChildElements(); len(c) > 0 {
					el = c[0]
				}
			}
			if err := CanonicalizeExclusive(io.Discard, el, C14NOptions{}); err == nil {
				t.Error("no error")
			}
		})
	}
	if err := CanonicalizeExclusive(io.Discard, nil, C14NOptions{}); err == nil {
		t.Error("nil element: no error")
	}
}

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n <= 0 {
		return 0, errors.New("boom")
	}
	w.n--
	return len(p), nil
}

func TestCanonicalizeExclusiveWriterError(t *testing.T) {
	doc := parseDoc(t, genEnvelope(200))
	for n := range 3 {
		err := CanonicalizeExclusive(&failingWriter{n: n}, doc.Root(), C14NOptions{})
		if err == nil || err.Error() != "boom" {
			t.Errorf("after %d writes: err = %v, want boom", n, err)
		}
	}
}

// TestCanonicalizeExclusiveNoMutation checks that neither the element nor its
// ancestors are modified, and that concurrent use is safe.
func TestCanonicalizeExclusiveNoMutation(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(c14nCorpusDir, "soap11-wss.xml"))
	if err != nil {
		t.Fatal(err)
	}
	doc := parseDoc(t, data)
	before, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	body := doc.FindElement("//Body")
	want := canon(t, body, C14NOptions{InclusivePrefixes: []string{"#default", "wsse"}})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				var buf bytes.Buffer
				if err := CanonicalizeExclusive(&buf, body, C14NOptions{InclusivePrefixes: []string{"#default", "wsse"}}); err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(buf.Bytes(), want) {
					t.Error("concurrent output differs")
					return
				}
				_ = VisiblyUsedPrefixes(doc.Root())
			}
		})
	}
	wg.Wait()
	after, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("document modified by canonicalisation")
	}
}

func TestVisiblyUsedPrefixes(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		path []int
		want []string
	}{
		{name: "none", doc: `<r><e a="1"/></r>`, want: nil},
		{name: "empty default is not reported", doc: `<r xmlns=""><e/></r>`, want: nil},
		{name: "default", doc: `<r xmlns="urn:d"/>`, want: []string{"#default"}},
		{name: "default inherited", doc: `<r xmlns="urn:d"><e/></r>`, path: []int{0}, want: []string{"#default"}},
		{name: "default undeclared below", doc: `<p:r xmlns:p="urn:p" xmlns="urn:d"><p:e xmlns=""><f/></p:e></p:r>`, path: []int{0}, want: []string{"p"}},
		{name: "element and attribute prefixes", doc: `<a:r xmlns:a="urn:a" xmlns:b="urn:b" xmlns:c="urn:c"><a:e b:x="1"/></a:r>`, want: []string{"a", "b"}},
		{name: "xml never", doc: `<r xml:lang="en"><xml:e/></r>`, want: nil},
		{name: "declared but unused", doc: `<r xmlns:u="urn:u" xmlns:v="urn:v"><u:e/></r>`, want: []string{"u"}},
		{name: "xsi:type value prefix", doc: `<r xmlns:xsi="` + nsXSI + `" xmlns:xsd="urn:xsd" xsi:type="xsd:string"/>`, want: []string{"xsd", "xsi"}},
		{name: "xsi:type value with whitespace", doc: `<r xmlns:xsi="` + nsXSI + `" xmlns:xsd="urn:xsd" xsi:type=" xsd:int "/>`, want: []string{"xsd", "xsi"}},
		{name: "xsi:type unbound value prefix ignored", doc: `<r xmlns:xsi="` + nsXSI + `" xsi:type="nope:T"/>`, want: []string{"xsi"}},
		{name: "xsi:type unprefixed value uses default", doc: `<p:r xmlns:p="urn:p" xmlns="urn:d" xmlns:xsi="` + nsXSI + `" xsi:type="T"/>`, want: []string{"#default", "p", "xsi"}},
		{name: "xsi:type under another prefix", doc: `<r xmlns:i="` + nsXSI + `" xmlns:b="urn:b"><e i:type="b:T"/></r>`, want: []string{"b", "i"}},
		{name: "type attribute of another namespace", doc: `<r xmlns:t="urn:t" xmlns:b="urn:b" t:type="b:T"/>`, want: []string{"t"}},
		{name: "unqualified type attribute", doc: `<r xmlns:b="urn:b" type="b:T"/>`, want: nil},
		{name: "xsi:type prefix bound inside the subtree", doc: `<r xmlns:xsi="` + nsXSI + `"><e xmlns:q="urn:q"><f xsi:type="q:T"/></e></r>`, path: []int{0}, want: []string{"q", "xsi"}},
		{name: "deep usage", doc: `<r xmlns:a="urn:a"><e><f><a:g/></f></e></r>`, want: []string{"a"}},
		{name: "rebound prefix reported once", doc: `<p:r xmlns:p="urn:1"><p:e xmlns:p="urn:2"/></p:r>`, want: []string{"p"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			el := elementAt(parseDoc(t, []byte(tt.doc)).Root(), tt.path)
			got := VisiblyUsedPrefixes(el)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if got := VisiblyUsedPrefixes(nil); got != nil {
		t.Errorf("nil element: got %q", got)
	}
}

// BenchmarkCanonicalizeExclusive canonicalises a generated ~100 KB SOAP
// envelope (throughput in input bytes) and its Body into SHA-256 (throughput
// in canonical bytes hashed).
func BenchmarkCanonicalizeExclusive(b *testing.B) {
	data := genEnvelope(300) // about 103 KB
	doc := parseDoc(b, data)
	root := doc.Root()
	body := doc.FindElement("//Body")
	opts := C14NOptions{InclusivePrefixes: []string{"xsi"}}
	b.Run("envelope-discard", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if err := CanonicalizeExclusive(io.Discard, root, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("body-sha256", func(b *testing.B) {
		h := sha256.New()
		b.SetBytes(int64(len(canon(b, body, opts))))
		b.ReportAllocs()
		for b.Loop() {
			h.Reset()
			if err := CanonicalizeExclusive(h, body, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// preorderIndex is the document-order index of el below root (0 = root).
func preorderIndex(root, el *etree.Element) int {
	return slices.Index(allElements(root), el)
}

// allElements lists root and its descendant elements in document order.
func allElements(root *etree.Element) []*etree.Element {
	all := []*etree.Element{root}
	for _, c := range root.ChildElements() {
		all = append(all, allElements(c)...)
	}
	return all
}

// TestC14NStreamLibxml2 runs the streaming canonicaliser of the signing
// path (c14nstream.go, in its XML 1.0 attribute mode) over the same corpus
// as TestCanonicalizeExclusiveLibxml2, plus generated documents and
// documents whose attribute values hold literal TAB/CR/LF (where it
// normalises per XML 1.0 §3.3.3 and CanonicalizeExclusive cannot): for the
// root and the elements at depth 1 and 2, with several PrefixLists, its
// output must equal libxml2's (without comments, the variant Sign uses).
func TestC14NStreamLibxml2(t *testing.T) {
	files := loadCorpus(t)
	dir := t.TempDir()
	extra := []string{
		"<a x=\"1\t2\n3\r\n4\r5\" y=\"&#9;&#10;&#13;\"><b z=\"\n\"/></a>",
		"<p:a xmlns:p=\"urn:p\" p:x=\" \t lead\"><p:b q=\"&amp;\t&lt;\"/>t\r\nu\rv</p:a>",
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 50 {
		extra = append(extra, string(randomNSDoc(r)))
	}
	for i, s := range extra {
		path := filepath.Join(dir, fmt.Sprintf("x%03d.xml", i))
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, corpusFile{name: filepath.Base(path), path: path, doc: parseDoc(t, []byte(s))})
	}
	var jobs []oracleJob
	var ours [][]byte
	var names []string
	for _, f := range files {
		data, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		root := f.doc.Root()
		all := declaredPrefixes(root)
		for _, path := range subtreePaths(root, f.subtreeLimit) {
			el := elementAt(root, path)
			for _, prefixes := range [][]string{nil, {"#default"}, all, VisiblyUsedPrefixes(el)} {
				var buf bytes.Buffer
				ok, err := canonicalizeRawNth(&buf, data, preorderIndex(root, el), prefixes, false)
				if err != nil || !ok {
					t.Fatalf("%s path=%v: stream canonicaliser: ok=%v %v", f.name, path, ok, err)
				}
				jobs = append(jobs, oracleJob{File: f.path, Path: path, Prefixes: prefixes})
				ours = append(ours, buf.Bytes())
				names = append(names, f.name)
			}
		}
	}
	results := runLxmlOracle(t, jobs)
	passed := 0
	for i, res := range results {
		j := jobs[i]
		switch {
		case res.Err != "":
			t.Errorf("%s path=%v: libxml2 failed: %s", names[i], j.Path, res.Err)
		case !bytes.Equal(ours[i], res.Out):
			t.Errorf("%s path=%v prefixes=%q: stream output differs from libxml2: %s", names[i], j.Path, j.Prefixes, diffBytes(ours[i], res.Out))
		default:
			passed++
		}
	}
	t.Logf("%d/%d libxml2 (lxml) comparisons of the streaming canonicaliser passed over %d documents", passed, len(jobs), len(files))
}

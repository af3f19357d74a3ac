package wss

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/beevik/etree"
)

// FuzzCanonicalizeExclusive checks, for any document etree accepts and for the
// root and a few subtrees, under several option sets, that the canonicaliser
// does not panic, does not modify the document, produces well-formed XML when
// it succeeds, and is idempotent: the canonical form re-parsed and
// canonicalised again gives the same bytes.
//
//	go test ./wss -run '^$' -fuzz FuzzCanonicalizeExclusive -fuzztime 2m
//
// c14nSeedDocs are seeds of the canonicalisation fuzzers beside the corpus:
// default namespace undeclared, xsi:type prefixes, CR in comments and PIs,
// character references in attributes, CDATA.
var c14nSeedDocs = []string{
	`<a xmlns="urn:x"><b xmlns=""><c/></b></a>`,
	`<p:a xmlns:p="urn:p" xmlns="urn:d"><b xsi:type="p:T" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/></p:a>`,
	"<a>\r\n<!--\r\n-->&#13;<?pi \r?></a>",
	`<a x="&#9;&#10;&#13;&lt;&amp;&quot;"><![CDATA[]]>]]&gt;</a>`,
}

func FuzzCanonicalizeExclusive(f *testing.F) {
	for _, data := range readFiles(f, filepath.Join(c14nCorpusDir, "*.xml")) {
		f.Add(data)
	}
	for _, s := range c14nSeedDocs {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		doc := etree.NewDocument()
		doc.ReadSettings.PreserveCData = true
		if err := doc.ReadFromBytes(data); err != nil {
			return
		}
		root := doc.Root()
		if root == nil {
			return
		}
		before, err := doc.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}

		all := allElements(root)
		subtrees := []*etree.Element{root}
		if n := len(all); n > 1 {
			step := max(1, n/4)
			for i := 1; i < n; i += step {
				subtrees = append(subtrees, all[i])
			}
		}

		for _, el := range subtrees {
			used := VisiblyUsedPrefixes(el)
			for _, opts := range []C14NOptions{
				{},
				{WithComments: true},
				{InclusivePrefixes: append([]string{"#default"}, used...)},
				{InclusivePrefixes: used, WithComments: true},
			} {
				var out bytes.Buffer
				if err := CanonicalizeExclusive(&out, el, opts); err != nil {
					continue // not namespace-well-formed: an error is fine, a panic is not
				}
				doc2 := etree.NewDocument()
				if err := doc2.ReadFromBytes(out.Bytes()); err != nil {
					t.Fatalf("canonical form of <%s> %+v does not parse: %v\n%q", el.FullTag(), opts, err, out.Bytes())
				}
				if doc2.Root() == nil {
					t.Fatalf("canonical form of <%s> %+v has no root element: %q", el.FullTag(), opts, out.Bytes())
				}
				var again bytes.Buffer
				if err := CanonicalizeExclusive(&again, doc2.Root(), opts); err != nil {
					t.Fatalf("canonicalising the canonical form of <%s> %+v: %v\n%q", el.FullTag(), opts, err, out.Bytes())
				}
				if !bytes.Equal(out.Bytes(), again.Bytes()) {
					t.Fatalf("not idempotent for <%s> %+v:\n first %q\nsecond %q", el.FullTag(), opts, out.Bytes(), again.Bytes())
				}
			}
		}

		after, err := doc.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Fatalf("document modified:\nbefore %q\n after %q", before, after)
		}
	})
}

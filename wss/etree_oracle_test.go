package wss

import (
	"io"

	"github.com/beevik/etree"
	"github.com/wssignd/wssignd/internal/etreec14n"
)

// The etree canonicaliser, the oracle of the streaming one (see package
// etreec14n), under the names the tests use.
type C14NOptions = etreec14n.C14NOptions

func CanonicalizeExclusive(w io.Writer, el *etree.Element, opts C14NOptions) error {
	return etreec14n.CanonicalizeExclusive(w, el, opts)
}

func VisiblyUsedPrefixes(el *etree.Element) []string { return etreec14n.VisiblyUsedPrefixes(el) }

const nsXSI = NSXSI

// indexIDs maps every wsu:Id, Id, ID and xml:id value in an etree tree to
// its element: the tests' own reading of signed output, independent of the
// span tree Verify uses.
func indexIDs(root *etree.Element) map[string]*etree.Element {
	m := map[string]*etree.Element{}
	var walk func(el *etree.Element)
	walk = func(el *etree.Element) {
		for i := range el.Attr {
			a := &el.Attr[i]
			switch {
			case a.Space == "" && (a.Key == "Id" || a.Key == "ID"):
				m[a.Value] = el
			case a.Space == "xml" && a.Key == "id":
				m[a.Value] = el
			case a.Space != "" && a.Key == "Id" && a.NamespaceURI() == NSWSU:
				m[a.Value] = el
			}
		}
		for _, c := range el.ChildElements() {
			walk(c)
		}
	}
	walk(root)
	return m
}

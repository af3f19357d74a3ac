package wss

import (
	"bytes"
	"strconv"
)

// Generators of hostile envelopes: shapes that cost a naive XML engine far
// more than their size (namespace scopes copied per element, linear prefix
// lookups, unbounded attribute lists, per-node overhead).

const hostileHead = `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"`

// hostileEnvelope writes an Envelope with extra attributes envAttrs on its
// start tag, header blocks header and body content body.
func hostileEnvelope(envAttrs func(b *bytes.Buffer), header, body func(b *bytes.Buffer)) []byte {
	var b bytes.Buffer
	b.WriteString(hostileHead)
	if envAttrs != nil {
		envAttrs(&b)
	}
	b.WriteString(">")
	if header != nil {
		b.WriteString("<soap:Header>")
		header(&b)
		b.WriteString("</soap:Header>")
	}
	b.WriteString(`<soap:Body>`)
	if body != nil {
		body(&b)
	}
	b.WriteString(`</soap:Body></soap:Envelope>`)
	return b.Bytes()
}

// nsDecls writes n declarations xmlns:nI="urn:nI".
func nsDecls(b *bytes.Buffer, n int) {
	for i := range n {
		b.WriteString(` xmlns:n`)
		b.WriteString(strconv.Itoa(i))
		b.WriteString(`="urn:n`)
		b.WriteString(strconv.Itoa(i))
		b.WriteString(`"`)
	}
}

// hostileNSChurn: 10 000 declarations on the Envelope, then 4 000 header
// blocks each declaring one prefix (about 262 KB). A scope copied per
// declaring element costs 4 000 × 10 000 map entries.
func hostileNSChurn() []byte {
	return hostileEnvelope(func(b *bytes.Buffer) { nsDecls(b, 10_000) }, func(b *bytes.Buffer) {
		for i := range 4_000 {
			b.WriteString(`<h:B xmlns:h="urn:h`)
			b.WriteString(strconv.Itoa(i % 10))
			b.WriteString(`"/>`)
		}
	}, func(b *bytes.Buffer) { b.WriteString(`<x/>`) })
}

// hostileManyDeclsManyElems: 100 000 declarations on the Envelope and
// 450 000 prefixed empty elements in the Body (about 4.9 MB). A linear
// prefix lookup costs 450 000 × 100 000 comparisons.
func hostileManyDeclsManyElems() []byte {
	return hostileEnvelope(func(b *bytes.Buffer) { nsDecls(b, 100_000) }, nil, func(b *bytes.Buffer) {
		for i := range 450_000 {
			b.WriteString(`<n`)
			b.WriteString(strconv.Itoa(i % 7))
			b.WriteString(`:e/>`)
		}
	})
}

// hostileManyAttrs: one element with 1 000 000 attributes (about 11.9 MB).
func hostileManyAttrs() []byte {
	return hostileEnvelope(nil, nil, func(b *bytes.Buffer) {
		b.WriteString(`<x`)
		for i := range 1_000_000 {
			b.WriteString(` a`)
			b.WriteString(strconv.Itoa(i))
			b.WriteString(`="1"`)
		}
		b.WriteString(`/>`)
	})
}

// hostileDeepChurn: chains of 200 nested elements, each level declaring
// (and so shadowing) the same 40 prefixes anew, repeated.
func hostileDeepChurn() []byte { return deepChurn(50) }

// deepChurn is hostileDeepChurn with reps chains.
func deepChurn(reps int) []byte {
	return hostileEnvelope(nil, nil, func(b *bytes.Buffer) {
		for range reps {
			for d := range 200 {
				b.WriteString(`<d:e xmlns:d="urn:d`)
				b.WriteString(strconv.Itoa(d))
				b.WriteString(`"`)
				for p := range 40 {
					b.WriteString(` xmlns:p`)
					b.WriteString(strconv.Itoa(p))
					b.WriteString(`="urn:`)
					b.WriteString(strconv.Itoa(d))
					b.WriteString(`"`)
				}
				b.WriteString(`>`)
			}
			for range 200 {
				b.WriteString(`</d:e>`)
			}
		}
	})
}

// hostileDistinctPrefixes: 100 000 sibling elements in the Body, each
// declaring and using its own prefix.
func hostileDistinctPrefixes() []byte {
	return hostileEnvelope(nil, nil, func(b *bytes.Buffer) {
		for i := range 100_000 {
			p := "q" + strconv.Itoa(i)
			b.WriteString(`<` + p + `:e xmlns:` + p + `="urn:q"/>`)
		}
	})
}

// hostileGiantAttr: one attribute value of 8 MiB, half of it character
// references that normalisation must decode.
func hostileGiantAttr() []byte {
	return hostileEnvelope(nil, nil, func(b *bytes.Buffer) {
		b.WriteString(`<x a="`)
		for range 8 << 20 / 16 {
			b.WriteString(`abcdefgh&#x9;&lt;`)
		}
		b.WriteString(`"/>`)
	})
}

// hostileSmallTexts: 250 000 one-byte text nodes separated by comments.
func hostileSmallTexts() []byte {
	return hostileEnvelope(nil, nil, func(b *bytes.Buffer) {
		b.WriteString(`<x>`)
		for range 250_000 {
			b.WriteString(`t<!---->`)
		}
		b.WriteString(`</x>`)
	})
}

// hostileCharRefs: one text node of 200 000 character references, and an
// attribute value of 50 000.
func hostileCharRefs() []byte {
	return hostileEnvelope(nil, nil, func(b *bytes.Buffer) {
		b.WriteString(`<x a="`)
		for range 50_000 {
			b.WriteString(`&#x1F600;`)
		}
		b.WriteString(`">`)
		for i := range 200_000 {
			if i%2 == 0 {
				b.WriteString(`&#x1F600;`)
			} else {
				b.WriteString(`&#65;`)
			}
		}
		b.WriteString(`</x>`)
	})
}

// hostileAttrsDistinctNS: 1 000 000 attributes on one element, each in a
// namespace of its own prefix (100 prefixes declared on the element).
func hostileAttrsNS() []byte {
	return hostileEnvelope(nil, nil, func(b *bytes.Buffer) {
		b.WriteString(`<x`)
		for p := range 100 {
			b.WriteString(` xmlns:p` + strconv.Itoa(p) + `="urn:p` + strconv.Itoa(p) + `"`)
		}
		for i := range 1_000_000 {
			b.WriteString(` p` + strconv.Itoa(i%100) + `:a` + strconv.Itoa(i) + `="1"`)
		}
		b.WriteString(`/>`)
	})
}

// hostileAttrsEverywhere: 500 elements of 255 attributes each, just within
// the attribute limit: the per-attribute work (uniqueness, sorting for
// C14N) runs at every element.
func hostileAttrsEverywhere() []byte {
	return hostileEnvelope(nil, nil, func(b *bytes.Buffer) {
		for range 500 {
			b.WriteString("<x")
			for i := range 255 {
				b.WriteString(" a" + strconv.Itoa(i) + `=""`)
			}
			b.WriteString("/>")
		}
	})
}

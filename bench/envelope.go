// Package bench generates the SOAP envelopes that the measurement harness
// (bench/cmd/wssignd-bench, run by `make bench`) and the Go benchmarks of
// package wss sign. It depends on the standard library only, so that any
// package's tests may import it.
package bench

import (
	"fmt"
	"strings"
)

// Size is one envelope size the benchmarks measure.
type Size struct {
	Name  string // as printed in tables: "1KB", "10KB", "100KB", "1MB", "10MB"
	Bytes int
}

// Sizes are the envelope sizes the harness measures (binary units: 1KB is
// 1024 bytes).
var Sizes = []Size{
	{"1KB", 1 << 10},
	{"10KB", 10 << 10},
	{"100KB", 100 << 10},
	{"1MB", 1 << 20},
	{"10MB", 10 << 20},
}

// Marker strings that appear exactly once in every envelope Envelope
// returns, so that callers can splice in a header block or an Id (the
// xmlsec1 template of the harness does).
const (
	HeaderOpen = "<soapenv:Header>"
	BodyOpen   = "<soapenv:Body>"
)

const head = `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <soapenv:Header>
    <wsa:Action xmlns:wsa="http://www.w3.org/2005/08/addressing">urn:example:invoice:1/Submit</wsa:Action>
    <wsa:MessageID xmlns:wsa="http://www.w3.org/2005/08/addressing">urn:uuid:6b1e2f0a-4c1d-4e8b-9a57-0c3d2e1f4a5b</wsa:MessageID>
  </soapenv:Header>
  <soapenv:Body>
    <inv:SubmitInvoice xmlns:inv="urn:example:invoice:1" xmlns:cac="urn:example:common:aggregate" xmlns:cbc="urn:example:common:basic">
      <cbc:ID>INV-2026-0042</cbc:ID>
      <cac:Party><cbc:Name>Tom &amp; Jerry &lt;GmbH&gt;</cbc:Name><cac:Address country="DE"><cbc:City>K&#246;ln</cbc:City></cac:Address></cac:Party>
      <inv:Lines>
`

const tail = `      </inv:Lines>
      <inv:Note>%s</inv:Note>
    </inv:SubmitInvoice>
  </soapenv:Body>
</soapenv:Envelope>
`

// line renders invoice line i: six levels below the Body, three namespaces
// plus a default namespace declared and undeclared, an xsi:type QName in an
// attribute value, xml:lang, character and entity references, a comment.
func line(i int) string {
	return fmt.Sprintf(`        <inv:Line num="%d" xsi:type="inv:LineType">
          <cac:Item><cbc:Description xml:lang="en">Widget &amp; gadget &lt;model %d&gt; "deluxe"</cbc:Description><cac:Classification listID="UNSPSC"><cbc:Code>%08d</cbc:Code></cac:Classification></cac:Item>
          <cbc:Quantity unitCode="EA">%d</cbc:Quantity><cac:Price><cbc:Amount currencyID="EUR">%d.%02d</cbc:Amount></cac:Price>
          <ext:Extension xmlns:ext="urn:example:ext" xmlns="urn:example:ext:default"><Data ref="L%d">tab&#9;cr&#13;end</Data><Plain xmlns="">x</Plain></ext:Extension><!-- line %d -->
        </inv:Line>
`, i, i, 43211503+i, i%7+1, (i*37)%1000, i%100, i, i)
}

// filler is the text that pads the Note to the exact size.
const filler = "Lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor. "

// Envelope returns a well-formed SOAP 1.1 envelope of exactly size bytes
// (or of the smallest size possible, about 900 bytes, if size is smaller):
// WS-Addressing header blocks, and a Body holding an invoice with as many
// lines as fit, the rest made up by the text of a Note. It has no
// wsse:Security header and no wsu:Id. The same size gives the same bytes.
func Envelope(size int) []byte {
	var b strings.Builder
	b.Grow(size)
	b.WriteString(head)
	for i := 1; ; i++ {
		l := line(i)
		if b.Len()+len(l)+len(tail)-len("%s") > size {
			break
		}
		b.WriteString(l)
	}
	pad := max(0, size-b.Len()-(len(tail)-len("%s")))
	var note strings.Builder
	for note.Len() < pad {
		note.WriteString(filler)
	}
	b.WriteString(fmt.Sprintf(tail, note.String()[:pad]))
	return []byte(b.String())
}

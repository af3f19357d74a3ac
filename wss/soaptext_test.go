package wss

import (
	"context"
	"testing"
)

// TestTextInEnvelopeOrHeader: character data other than white space
// directly in the Envelope or the Header is refused as invalid-soap by the
// scan (Sign, Encrypt) and by the span tree (Verify, Decrypt) alike; white
// space, comments, and text inside header blocks or the Body are SOAP.
func TestTextInEnvelopeOrHeader(t *testing.T) {
	const ns = `xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"`
	for _, tc := range []struct {
		env string
		bad bool
	}{
		{`<s:Envelope ` + ns + `>pay 100<s:Header/><s:Body><x/></s:Body></s:Envelope>`, true},
		{`<s:Envelope ` + ns + `><s:Header/>pay 100<s:Body><x/></s:Body></s:Envelope>`, true},
		{`<s:Envelope ` + ns + `><s:Body><x/></s:Body>pay 100</s:Envelope>`, true},
		{`<s:Envelope ` + ns + `><s:Header>pay 100</s:Header><s:Body><x/></s:Body></s:Envelope>`, true},
		{`<s:Envelope ` + ns + `><s:Header><h/>pay 100</s:Header><s:Body><x/></s:Body></s:Envelope>`, true},
		{`<s:Envelope ` + ns + `><s:Header><![CDATA[pay]]></s:Header><s:Body><x/></s:Body></s:Envelope>`, true},
		{`<s:Envelope ` + ns + `>&#32;<s:Body><x/></s:Body></s:Envelope>`, true},
		{`<s:Envelope ` + ns + `>` + "\n\t " + `<s:Header> <h>pay 100</h> <!-- note --> </s:Header>` + "\r\n" + `<s:Body>pay 100<x/></s:Body> </s:Envelope>`, false},
	} {
		_, serr := scanEnvelope(context.Background(), []byte(tc.env), Limits{})
		_, _, terr := parseEnvelopeTree(context.Background(), []byte(tc.env), Limits{})
		for name, err := range map[string]error{"scan": serr, "tree": terr} {
			switch {
			case tc.bad && CodeOf(err) != CodeInvalidSOAP:
				t.Errorf("%s: %s: %v, want %s", name, tc.env, err, CodeInvalidSOAP)
			case !tc.bad && err != nil:
				t.Errorf("%s: %s: %v, want accepted", name, tc.env, err)
			}
		}
	}
}

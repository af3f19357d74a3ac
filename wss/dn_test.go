package wss

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// TestDNEqual: the one issuer-name matcher of X509IssuerSerial, used by
// Verify and Decrypt, accepts the forms toolkits write and nothing else.
func TestDNEqual(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	name := pkix.Name{CommonName: "Test CA, Inc", Organization: []string{"Example"}, Country: []string{"BE"}}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: name, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{cert.Issuer.String(), true},                              // RFC 4514, as Go writes it
		{`CN=Test CA\, Inc,O=Example,C=BE`, true},                 // RFC 2253 order
		{`C=BE, O=Example, CN=Test CA\, Inc`, true},               // the other order, spaces
		{`cn=test ca\2c inc;o=EXAMPLE;c=be`, true},                // hex escape, ';', case
		{`2.5.4.3=Test CA\, Inc,OID.2.5.4.10=Example,C=BE`, true}, // OIDs
		{`CN=Test CA\, Inc,O=Example`, false},                     // an RDN short
		{`CN=Test CA\, Inc,O=Other,C=BE`, false},                  // a value differs
		{`CN=Test CA, Inc,O=Example,C=BE`, false},                 // unescaped comma: four RDNs
		{`not a name`, false},
	} {
		if got := dnEqual(tc.s, cert); got != tc.want {
			t.Errorf("dnEqual(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

package wss

import (
	"context"
	"crypto"
	"testing"

	"github.com/wssignd/wssignd/internal/testutil"
)

// FuzzDecrypt feeds mutated encrypted envelopes to Decrypt with an
// in-memory key and every algorithm allowed. Decrypt must never panic;
// every error must carry a Code; a success must be an envelope that passes
// the scanner again.
func FuzzDecrypt(f *testing.F) {
	cred := loadCredential(f, "rsa2048")
	cert := cred.Chain[0]
	dec := cred.Signer.(crypto.Decrypter)
	for _, file := range []string{"envelope-soap11.xml", "envelope-wsa.xml", "envelope-existing-security.xml"} {
		raw := testutil.ReadTestdata(f, file)
		for _, o := range []EncryptOptions{
			{},
			{DataAlgorithm: AlgAES128CBC, AllowCBC: true, KeyTransport: AlgRSA15, AllowRSA15: true},
			{KeyTransport: AlgRSAOAEPMGF1P, RecipientRef: RecipientSKI},
			{RecipientRef: RecipientThumbprint, Parts: []Part{PartBody(), {Space: "http://www.w3.org/2005/08/addressing", Local: "Action", Optional: true}}},
		} {
			o.Recipient = cert
			res, err := Encrypt(context.Background(), raw, o)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(res.Envelope)
		}
	}
	opts := DecryptOptions{Certificate: cert, DataAlgorithms: allData, KeyTransports: allTransports}
	f.Fuzz(func(t *testing.T, msg []byte) {
		res, err := Decrypt(context.Background(), msg, dec, opts)
		if err != nil {
			if CodeOf(err) == "" {
				t.Fatalf("error without a code: %v", err)
			}
			return
		}
		if _, err := scanEnvelope(context.Background(), res.Envelope, Limits{}); err != nil {
			t.Fatalf("decrypted envelope does not scan: %v", err)
		}
	})
}

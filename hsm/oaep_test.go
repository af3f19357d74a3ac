package hsm

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"testing"
)

var oaepHashes = []crypto.Hash{crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512}

// rawRSA is textbook RSA decryption with a software key, as CKM_RSA_X_509 does in a token.
func rawRSA(k *rsa.PrivateKey, c []byte) []byte {
	m := new(big.Int).Exp(new(big.Int).SetBytes(c), k.D, k.N)
	return m.Bytes() // leading zeros dropped, as some tokens do
}

// TestDecodeOAEP checks decodeOAEP against crypto/rsa's OAEP encryption for every hash pair, with
// and without label, and that tampering, a wrong label or wrong hashes all fail with the same
// error.
func TestDecodeOAEP(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range oaepHashes {
		for _, mh := range oaepHashes {
			for _, label := range [][]byte{nil, []byte("wss label")} {
				msg := make([]byte, 1+int(h)%32)
				_, _ = rand.Read(msg)
				o := &rsa.OAEPOptions{Hash: h, MGFHash: mh, Label: label}
				ct, err := rsa.EncryptOAEPWithOptions(rand.Reader, &k.PublicKey, msg, o)
				if err != nil {
					t.Fatal(err)
				}
				got, err := decodeOAEP(rawRSA(k, ct), k.Size(), h, mh, label)
				if err != nil || !bytes.Equal(got, msg) {
					t.Errorf("%v/%v label=%q: %x, %v; want %x", h, mh, label, got, err, msg)
				}
				if _, err := decodeOAEP(rawRSA(k, ct), k.Size(), h, mh, []byte("other")); !errors.Is(err, errOAEPDecoding) {
					t.Errorf("%v/%v: wrong label: %v", h, mh, err)
				}
				other := crypto.SHA256
				if mh == crypto.SHA256 {
					other = crypto.SHA384
				}
				if _, err := decodeOAEP(rawRSA(k, ct), k.Size(), h, other, label); !errors.Is(err, errOAEPDecoding) {
					t.Errorf("%v/%v: wrong mgf hash: %v", h, mh, err)
				}
				ct[len(ct)-1] ^= 1
				if _, err := decodeOAEP(rawRSA(k, ct), k.Size(), h, mh, label); !errors.Is(err, errOAEPDecoding) {
					t.Errorf("%v/%v: tampered: %v", h, mh, err)
				}
			}
		}
	}
	if _, err := decodeOAEP(make([]byte, 300), 256, crypto.SHA256, crypto.SHA256, nil); !errors.Is(err, errOAEPDecoding) {
		t.Errorf("oversized input: %v", err)
	}
}

// TestTokenOAEP: the token key decrypts OAEP with every hash pair and label; SoftHSM2 does
// SHA-1/MGF1-SHA-1 without label itself and the rest through raw RSA plus decoding here. The
// refusals do not take the token offline.
func TestTokenOAEP(t *testing.T) {
	tok, _ := newTestToken(t)
	s, err := tok.GenerateRSA(KeyRef{Label: "r", ID: []byte{9}}, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub := s.Public().(*rsa.PublicKey)
	d := s.(crypto.Decrypter)
	for _, h := range oaepHashes {
		for _, mh := range oaepHashes {
			for _, label := range [][]byte{nil, []byte("L")} {
				o := &rsa.OAEPOptions{Hash: h, MGFHash: mh, Label: label}
				ct, err := rsa.EncryptOAEPWithOptions(rand.Reader, pub, []byte("secret"), o)
				if err != nil {
					t.Fatal(err)
				}
				pt, err := d.Decrypt(rand.Reader, ct, o)
				if err != nil || string(pt) != "secret" {
					t.Errorf("%v/%v label=%q: %q, %v", h, mh, label, pt, err)
				}
				ct[10] ^= 0x80
				if _, err := d.Decrypt(rand.Reader, ct, o); err == nil {
					t.Errorf("%v/%v: tampered ciphertext decrypted", h, mh)
				}
			}
		}
	}
	if st := tok.Status(); st.State != StateOnline || st.Recoveries != 0 {
		t.Errorf("status after the OAEP runs: %+v, want online without recovery", st)
	}
}

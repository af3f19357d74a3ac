package hsm

//lint:file-ignore SA1019 RSA PKCS #1 v1.5 key transport (XML Encryption rsa-1_5) is a deliberate, opt-in legacy algorithm here; failures are decoded in constant time with implicit rejection.

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"testing"

	"github.com/miekg/pkcs11"
)

// TestDecodePKCS1v15: good blocks decode to their message; every bad one
// (and, with a session key length, a message of another length) yields
// the synthetic message, without an error.
func TestDecodePKCS1v15(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	size := k.Size()
	for _, n := range []int{0, 1, 16, 32, size - 11} {
		msg := make([]byte, n)
		_, _ = rand.Read(msg)
		ct, err := rsa.EncryptPKCS1v15(rand.Reader, &k.PublicKey, msg)
		if err != nil {
			t.Fatal(err)
		}
		synth, synthLen := syntheticPKCS1v15(k.N, ct, size)
		got, err := decodePKCS1v15(rawRSA(k, ct), size, 0, synth, synthLen)
		if err != nil || !bytes.Equal(got, msg) {
			t.Errorf("%d-byte message: %x, %v", n, got, err)
		}
		if n > 0 {
			got, err = decodePKCS1v15(rawRSA(k, ct), size, n, synth, synthLen)
			if err != nil || !bytes.Equal(got, msg) {
				t.Errorf("%d-byte message with its session key length: %x, %v", n, got, err)
			}
		}
		if n != 32 {
			got, err = decodePKCS1v15(rawRSA(k, ct), size, 32, synth, synthLen)
			if err != nil || !bytes.Equal(got, synth[size-32:]) {
				t.Errorf("%d-byte message, session key length 32: %x, %v; want the synthetic key", n, got, err)
			}
		}
	}
	block := func(mod func(em []byte)) []byte {
		em := make([]byte, size)
		em[1] = 2
		for i := 2; i < size; i++ {
			em[i] = 0x5a // padding, and a message of 32 non-zero bytes
		}
		em[size-33] = 0 // the separator
		mod(em)
		return new(big.Int).Exp(new(big.Int).SetBytes(em), big.NewInt(int64(k.E)), k.N).FillBytes(make([]byte, size))
	}
	for name, ct := range map[string][]byte{
		"first byte not zero": block(func(em []byte) { em[0] = 1 }),
		"block type 1":        block(func(em []byte) { em[1] = 1 }),
		"no separator":        block(func(em []byte) { em[size-33] = 0x5a }),
		"short padding":       block(func(em []byte) { em[5] = 0 }),
	} {
		synth, synthLen := syntheticPKCS1v15(k.N, ct, size)
		got, err := decodePKCS1v15(rawRSA(k, ct), size, 0, synth, synthLen)
		if err != nil || !bytes.Equal(got, synth[size-synthLen:]) || synthLen > size-11 {
			t.Errorf("%s: %x, %v; want the synthetic message", name, got, err)
		}
		again, _ := syntheticPKCS1v15(k.N, ct, size)
		if !bytes.Equal(again, synth) {
			t.Errorf("%s: the synthetic message changes between calls", name)
		}
		got, err = decodePKCS1v15(rawRSA(k, ct), size, 32, synth, synthLen)
		if err != nil || !bytes.Equal(got, synth[size-32:]) {
			t.Errorf("%s with a session key length: %x, %v", name, got, err)
		}
	}
}

// TestTokenDecryptFailuresTakeOnePath: through the token, a bad PKCS #1
// v1.5 padding is not an error (implicit rejection, the same synthetic
// message each time) and a bad OAEP padding (rsa-oaep-mgf1p: SHA-1, which
// the token would otherwise check itself) is the one decoding error, not a
// token error: no session is dropped, no probe, no recovery.
func TestTokenDecryptFailuresTakeOnePath(t *testing.T) {
	tok, _ := newTestToken(t)
	s, err := tok.GenerateRSA(KeyRef{Label: "r", ID: []byte{9}}, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub := s.Public().(*rsa.PublicKey)
	d := s.(crypto.Decrypter)
	bad, err := rand.Int(rand.Reader, pub.N)
	if err != nil {
		t.Fatal(err)
	}
	ct := bad.FillBytes(make([]byte, pub.Size()))
	for _, opts := range []crypto.DecrypterOpts{nil, &rsa.PKCS1v15DecryptOptions{}, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32}} {
		a, err := d.Decrypt(rand.Reader, ct, opts)
		b, err2 := d.Decrypt(rand.Reader, ct, opts)
		if err != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("pkcs1v15 %#v, bad padding: %x %v / %x %v; want one synthetic message, no error", opts, a, err, b, err2)
		}
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	good, err := rsa.EncryptPKCS1v15(rand.Reader, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := d.Decrypt(rand.Reader, good, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 32}); err != nil || !bytes.Equal(got, key) {
		t.Errorf("pkcs1v15 good: %x, %v", got, err)
	}
	for _, o := range []*rsa.OAEPOptions{{Hash: crypto.SHA1, MGFHash: crypto.SHA1}, {Hash: crypto.SHA256}} {
		for range 20 {
			_, err := d.Decrypt(rand.Reader, ct, o)
			var rv pkcs11.Error
			if !errors.Is(err, errOAEPDecoding) || errors.As(err, &rv) {
				t.Fatalf("oaep %v, bad padding: %v; want the decoding error only", o.Hash, err)
			}
		}
		good, err := rsa.EncryptOAEPWithOptions(rand.Reader, pub, key, o)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := d.Decrypt(rand.Reader, good, o); err != nil || !bytes.Equal(got, key) {
			t.Errorf("oaep %v good: %x, %v", o.Hash, got, err)
		}
	}
	if st := tok.Status(); st.State != StateOnline || st.Recoveries != 0 {
		t.Errorf("status after the failures: %+v", st)
	}
}

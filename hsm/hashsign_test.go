package hsm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"testing"

	"github.com/miekg/pkcs11"
)

// TestSignMessage: SignMessage gives the same RSA PKCS #1 v1.5 signature through the token's
// hash-and-sign mechanism as through a digest, for every hash, and hashes here for ECDSA and PSS.
func TestSignMessage(t *testing.T) {
	tok, _ := newTestToken(t)
	rs, err := tok.GenerateRSA(KeyRef{Label: "r", ID: []byte{1}}, 2048)
	if err != nil {
		t.Fatal(err)
	}
	es, err := tok.GenerateEC(KeyRef{Label: "e", ID: []byte{2}}, elliptic.P256())
	if err != nil {
		t.Fatal(err)
	}
	k := inner(t, rs)
	// SoftHSM2 offers the hash-and-sign mechanisms: force them, whatever the measurement chose.
	k.mu.Lock()
	k.msgMechs = map[crypto.Hash]uint{crypto.SHA256: pkcs11.CKM_SHA256_RSA_PKCS, crypto.SHA512: pkcs11.CKM_SHA512_RSA_PKCS}
	k.mu.Unlock()
	msg := []byte("<ds:SignedInfo>…</ds:SignedInfo>")
	ms := rs.(crypto.MessageSigner)
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA512, crypto.SHA384} {
		hh := h.New()
		hh.Write(msg)
		digest := hh.Sum(nil)
		viaMsg, err := ms.SignMessage(rand.Reader, msg, h)
		if err != nil {
			t.Fatalf("%v: %v", h, err)
		}
		viaDigest, err := rs.Sign(rand.Reader, digest, h)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(viaMsg, viaDigest) {
			t.Errorf("%v: SignMessage and Sign differ", h)
		}
		if err := rsa.VerifyPKCS1v15(rs.Public().(*rsa.PublicKey), h, digest, viaMsg); err != nil {
			t.Errorf("%v: %v", h, err)
		}
	}
	pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	sig, err := ms.SignMessage(rand.Reader, msg, pss)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(msg)
	if err := rsa.VerifyPSS(rs.Public().(*rsa.PublicKey), crypto.SHA256, d[:], sig, pss); err != nil {
		t.Errorf("pss: %v", err)
	}
	sig, err = es.(crypto.MessageSigner).SignMessage(rand.Reader, msg, crypto.SHA512)
	if err != nil {
		t.Fatal(err)
	}
	d512 := sha512.Sum512(msg)
	if !ecdsa.VerifyASN1(es.Public().(*ecdsa.PublicKey), d512[:], sig) {
		t.Error("ecdsa SignMessage does not verify")
	}
	if _, err := ms.SignMessage(rand.Reader, msg, nil); err == nil {
		t.Error("SignMessage without options succeeded")
	}
}

// TestChooseRSAMechanism: the measurement at FindKey records the hash-and-sign mechanisms the
// token lists for the key, or none; either way signatures of messages verify.
func TestChooseRSAMechanism(t *testing.T) {
	tok, _ := newTestToken(t)
	ref := KeyRef{Label: "r", ID: []byte{1}}
	s, err := tok.GenerateRSA(ref, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := SelfSignedCertificate(s, "choose", 3600e9)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.ImportCertificate(ref, cert); err != nil {
		t.Fatal(err)
	}
	key, err := tok.FindKey(ref)
	if err != nil {
		t.Fatal(err)
	}
	k := key.entry()
	k.mu.Lock()
	mechs := k.msgMechs
	k.mu.Unlock()
	for h, m := range mechs {
		if rsaHashMech[h] != m {
			t.Errorf("%v: mechanism 0x%x", h, m)
		}
	}
	t.Logf("hash-and-sign mechanisms chosen: %d", len(mechs))
	msg := []byte("message")
	sig, err := key.Signer.(crypto.MessageSigner).SignMessage(rand.Reader, msg, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(msg)
	if err := rsa.VerifyPKCS1v15(key.Signer.Public().(*rsa.PublicKey), crypto.SHA256, d[:], sig); err != nil {
		t.Error(err)
	}
}

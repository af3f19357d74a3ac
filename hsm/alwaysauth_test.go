package hsm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
)

// TestAlwaysAuthenticateKey: a key with CKA_ALWAYS_AUTHENTICATE (a smart card's signature key)
// cannot sign without a context-specific login; FindKey accepts it, self-tests it, and its signer
// signs, also from several goroutines at once (C_SignInit, C_Login(CKU_CONTEXT_SPECIFIC) and
// C_Sign under the key's lock).
func TestAlwaysAuthenticateKey(t *testing.T) {
	tok, _ := newTestToken(t)
	ref := KeyRef{Label: "qes", ID: []byte{0x51}}
	s, err := tok.generate(ref, ref, keyAlg{curve: elliptic.P256(), alwaysAuth: true}, true)
	if err != nil {
		t.Fatal(err)
	}
	k := inner(t, s)
	if !k.attrs.AlwaysAuthenticate {
		t.Fatal("SoftHSM2 did not set CKA_ALWAYS_AUTHENTICATE")
	}
	cert, err := SelfSignedCertificate(s, "qes", time.Hour)
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
	if !key.Attributes.AlwaysAuthenticate {
		t.Error("FindKey does not report CKA_ALWAYS_AUTHENTICATE")
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := sha256.Sum256([]byte(strconv.Itoa(i)))
			sig, err := key.Signer.Sign(rand.Reader, d[:], crypto.SHA256)
			if err != nil {
				t.Error(err)
				return
			}
			if !ecdsa.VerifyASN1(cert.PublicKey.(*ecdsa.PublicKey), d[:], sig) {
				t.Error("signature does not verify")
			}
		}()
	}
	wg.Wait()
	if st := tok.State(); st != StateOnline {
		t.Errorf("state %s after always-authenticate signing", st)
	}
	// Without the context-specific login the token refuses to sign (CKR_USER_NOT_LOGGED_IN, which
	// also starts a recovery: done last).
	d := sha256.Sum256([]byte("no auth"))
	if _, err := tok.admin(func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) ([]byte, error) {
		return rawSign(p, sh, k.handle, k.pub, d[:], crypto.SHA256, nil)
	}); err == nil {
		t.Fatal("the always-authenticate key signed without a context-specific login")
	}
}

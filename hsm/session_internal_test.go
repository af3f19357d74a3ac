package hsm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
)

// TestSessionErrorRetriedOnce: a pooled session that the module has closed behind the pool's
// back (as an HSM that drops idle sessions does) fails with CKR_SESSION_HANDLE_INVALID; the sign
// is retried once on a fresh session and succeeds, and the token stays online.
func TestSessionErrorRetriedOnce(t *testing.T) {
	tok, _ := newTestToken(t)
	s, err := tok.GenerateEC(KeyRef{Label: "k", ID: []byte{7}}, elliptic.P256())
	if err != nil {
		t.Fatal(err)
	}
	// Fill the pool with several idle sessions.
	d := sha256.Sum256([]byte("x"))
	done := make(chan error)
	for range 4 {
		go func() { _, err := s.Sign(rand.Reader, d[:], crypto.SHA256); done <- err }()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// Close every idle pooled session in the module, keeping the handles in the pool.
	tok.mu.Lock()
	idle := append([]pkcs11.SessionHandle(nil), tok.idle...)
	tok.mu.Unlock()
	if len(idle) == 0 {
		t.Fatal("no idle session after a sign")
	}
	for _, sh := range idle {
		if err := tok.m.p.CloseSession(sh); err != nil {
			t.Fatal(err)
		}
	}
	sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("sign on a dead pooled session was not retried: %v", err)
	}
	if !ecdsa.VerifyASN1(s.Public().(*ecdsa.PublicKey), d[:], sig) {
		t.Error("signature does not verify")
	}
	if st := tok.State(); st != StateOnline {
		t.Errorf("state after a session error = %s, want online", st)
	}
	// The other dead sessions still in the pool fail once each, and are replaced the same way.
	for range len(idle) {
		if _, err := s.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
			t.Fatalf("sign on a dead pooled session was not retried: %v", err)
		}
	}
}

// TestOfflineFailsFast: calls on a token that is not online fail at once with
// ErrTokenUnavailable, whatever their deadline, and State answers without the module.
func TestOfflineFailsFast(t *testing.T) {
	tok, _ := newTestToken(t)
	s, err := tok.GenerateEC(KeyRef{Label: "k", ID: []byte{7}}, elliptic.P256())
	if err != nil {
		t.Fatal(err)
	}
	tok.markDown(StateRecovering, errors.New("test"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	d := sha256.Sum256([]byte("x"))
	_, err = s.(ContextSigner).SignContext(ctx, rand.Reader, d[:], crypto.SHA256)
	if !errors.Is(err, ErrTokenUnavailable) {
		t.Fatalf("sign while recovering: %v, want ErrTokenUnavailable", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the call waited for its deadline")
	}
	if st := tok.Status(); st.State != StateRecovering || st.Err != "test" {
		t.Errorf("status %+v", st)
	}
	tok.mu.Lock()
	tok.state = StateOnline
	tok.mu.Unlock()
}

// TestModuleRecoveryDirect: a module error on SoftHSM2 itself (no p11-kit) finalises and
// initialises the module, logs in again, finds the key again, and the signer handed out before
// signs again.
func TestModuleRecoveryDirect(t *testing.T) {
	tok, _ := newTestToken(t)
	s, err := tok.GenerateEC(KeyRef{Label: "k", ID: []byte{7}}, elliptic.P256())
	if err != nil {
		t.Fatal(err)
	}
	genBefore := tok.m.gen.Load()
	tok.m.startRecovery(tok, ClassModule, errors.New("injected module error"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for tok.State() != StateOnline {
		select {
		case <-ctx.Done():
			t.Fatalf("not online again: %+v", tok.Status())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if tok.m.gen.Load() == genBefore {
		t.Error("the module was not re-initialised")
	}
	d := sha256.Sum256([]byte("after"))
	sig, err := s.(ContextSigner).SignContext(ctx, rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(s.Public().(*ecdsa.PublicKey), d[:], sig) {
		t.Error("signature after recovery does not verify")
	}
	if tok.Status().Recoveries != 1 {
		t.Errorf("recoveries = %d, want 1", tok.Status().Recoveries)
	}
}

// TestCheckSign: the token reports the mechanisms of its RSA and EC keys (C_GetMechanismInfo).
func TestCheckSign(t *testing.T) {
	tok, _ := newTestToken(t)
	for _, ref := range []KeyRef{{Label: "r", ID: []byte{1}}, {Label: "e", ID: []byte{2}}} {
		var s crypto.Signer
		var err error
		if ref.Label == "r" {
			s, err = tok.GenerateRSA(ref, 2048)
		} else {
			s, err = tok.GenerateEC(ref, elliptic.P384())
		}
		if err != nil {
			t.Fatal(err)
		}
		k := &Key{Ref: ref, Signer: s}
		if err := k.CheckSign(context.Background(), crypto.SHA256); err != nil {
			t.Errorf("%s: %v", ref.Label, err)
		}
		if ref.Label == "r" {
			if err := k.CheckSign(context.Background(), &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
				t.Errorf("pss: %v", err)
			}
		}
	}
	if err := tok.checkMechanism(context.Background(), pkcs11.CKM_RSA_PKCS, pkcs11.CKF_SIGN, 64); !errors.Is(err, ErrMechanism) {
		t.Errorf("64-bit RSA: %v, want ErrMechanism", err)
	}
	if err := tok.checkMechanism(context.Background(), pkcs11.CKM_VENDOR_DEFINED+0x1234, pkcs11.CKF_SIGN, 0); !errors.Is(err, ErrMechanism) {
		t.Errorf("unknown mechanism: %v, want ErrMechanism", err)
	}
}

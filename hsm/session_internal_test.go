package hsm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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
	d := sha256.Sum256([]byte("x"))
	if _, err := s.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
		t.Fatal(err)
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
	tok.mu.Lock()
	for _, sh := range tok.idle {
		for _, dead := range idle {
			if sh == dead {
				t.Errorf("dead session %d returned to the pool", sh)
			}
		}
	}
	tok.mu.Unlock()
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

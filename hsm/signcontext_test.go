package hsm_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/wssignd/wssignd/hsm"
)

// TestKeySignContextNoPanic: Key.SignContext is exported and Key's fields
// are too, so a Key whose Signer is not one of the token's (or is nil)
// gets an error or a signature, never a panic.
func TestKeySignContextNoPanic(t *testing.T) {
	sw, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("x"))
	call := func(k *hsm.Key, ctx context.Context) (sig []byte, err error) {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("SignContext panicked: %v", r)
			}
		}()
		return k.SignContext(ctx, rand.Reader, d[:], crypto.SHA256)
	}
	sig, err := call(&hsm.Key{Signer: sw}, context.Background())
	if err != nil || rsa.VerifyPKCS1v15(&sw.PublicKey, crypto.SHA256, d[:], sig) != nil {
		t.Errorf("software signer: %v", err)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := call(&hsm.Key{Signer: sw}, done); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	if _, err := call(&hsm.Key{}, context.Background()); err == nil {
		t.Error("Key without Signer: no error")
	}
	var nilKey *hsm.Key
	if _, err := call(nilKey, context.Background()); err == nil {
		t.Error("nil Key: no error")
	}
}

package daemon

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"github.com/wssignd/wssignd/internal/testutil"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/hsm"
	"github.com/wssignd/wssignd/hsm/hsmtest"
)

// TestKeyStoreErrorsWrapAPI: a signer from Credential reports a token outage as
// api.ErrTokenUnavailable (what the API maps to 503 token-unavailable), and keeps hsm's error.
func TestKeyStoreErrorsWrapAPI(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{hsm.ErrTokenUnavailable, true},
		{hsm.ErrBusy, true},
		{hsm.ErrClosed, true},
		{hsm.ErrKeyNotFound, false},
		{errors.New("sign: unsupported hash"), false},
	} {
		got := apiError(tc.err)
		if errors.Is(got, api.ErrTokenUnavailable) != tc.want || !errors.Is(got, tc.err) {
			t.Errorf("apiError(%v) = %v; api.ErrTokenUnavailable %t, want %t", tc.err, got, !tc.want, tc.want)
		}
	}
	if apiError(nil) != nil {
		t.Error("apiError(nil) != nil")
	}
}

// TestKeyStoreCredentialBound: Credential's signer signs with the token key within the request
// context, and a closed key store reports token-unavailable, not an internal error.
func TestKeyStoreCredentialBound(t *testing.T) {
	env := hsmtest.New(t)
	dir := shortDir(t)
	c := testutil.LoadConfig(t, dir, testutil.ModuleConfig(filepath.Join(dir, "s.sock"), filepath.Join(dir, "state"), env.Soft.Module, env.Soft.Label, env.Soft.PINFile, ""))
	ks, err := openKeyStore(defaultSeams(), c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := ks.Credential(context.Background(), "rsa")
	if err != nil {
		t.Fatal(err)
	}
	if !cred.Chain[0].Equal(env.RSA.Chain[0]) {
		t.Fatal("credential chain is not the token's certificate")
	}
	digest := sha256.Sum256([]byte("bound"))
	sig, err := cred.Signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(cred.Chain[0].PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], sig); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
	if _, ok := cred.Signer.(crypto.Decrypter); !ok {
		t.Error("the RSA credential's signer is not a crypto.Decrypter")
	}
	states, err := ks.Ready(context.Background())
	if err != nil || states["t"] != "online" {
		t.Errorf("Ready = %v, %v", states, err)
	}
	ks.Close()
	if _, err := cred.Signer.Sign(rand.Reader, digest[:], crypto.SHA256); !errors.Is(err, api.ErrTokenUnavailable) {
		t.Errorf("sign after Close: %v, want api.ErrTokenUnavailable", err)
	}
	if _, err := ks.Credential(context.Background(), "rsa"); !errors.Is(err, api.ErrTokenUnavailable) {
		t.Errorf("Credential after Close: %v, want api.ErrTokenUnavailable", err)
	}
}

// TestKeyStoreCheckSign: the token offers the mechanisms of the configured keys.
func TestKeyStoreCheckSign(t *testing.T) {
	env := hsmtest.New(t)
	dir := shortDir(t)
	c := testutil.LoadConfig(t, dir, testutil.ModuleConfig(filepath.Join(dir, "s.sock"), filepath.Join(dir, "state"), env.Soft.Module, env.Soft.Label, env.Soft.PINFile, ""))
	ks, err := openKeyStore(defaultSeams(), c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	for _, opts := range []crypto.SignerOpts{crypto.SHA256, &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}} {
		if err := ks.CheckSign(context.Background(), "rsa", opts); err != nil {
			t.Errorf("CheckSign(rsa, %T): %v", opts, err)
		}
	}
	if err := ks.CheckSign(context.Background(), "nope", crypto.SHA256); err == nil {
		t.Error("CheckSign of an unknown key succeeded")
	}
}

package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/hsm"
	"github.com/wssignd/wssignd/hsm/hsmtest"
	"github.com/wssignd/wssignd/internal/testutil"
)

// TestTokenInitialisedAfterStart: the daemon starts while its token does not exist yet (not
// ready, 503 token-unavailable); the token is then initialised and provisioned, and the daemon
// brings it online without a restart.
func TestTokenInitialisedAfterStart(t *testing.T) {
	saved := [2]time.Duration{openRetryMin, openRetryMax}
	openRetryMin, openRetryMax = 10*time.Millisecond, 100*time.Millisecond
	t.Cleanup(func() { openRetryMin, openRetryMax = saved[0], saved[1] })

	// A SoftHSM2 directory with another token only.
	softDir := t.TempDir()
	other, err := hsm.InitSoftHSMToken(softDir, "other")
	if errors.Is(err, hsm.ErrSoftHSMNotInstalled) && !testutil.InCI() {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", other.ConfigFile)
	dir := shortDir(t)
	sock := filepath.Join(dir, "s.sock")
	cfgText := moduleConfig(sock, filepath.Join(dir, "state"), other.Module, "late", other.PINFile, "")
	d := startDaemon(t, cfgText, sock)

	resp, body := d.do(t, "GET", "/readyz", "", nil)
	if resp.StatusCode != 503 || !strings.Contains(string(body), `"offline"`) {
		t.Errorf("readyz before the token exists: %d %s", resp.StatusCode, body)
	}
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	resp, body = d.do(t, "POST", "/v1/soap/sign?profile=default", "text/xml", in)
	if resp.StatusCode != 503 || !strings.Contains(string(body), "token-unavailable") {
		t.Errorf("sign before the token exists: %d %s", resp.StatusCode, body)
	}

	// Initialise and provision the token (same directory, so same PIN files).
	late, err := hsm.InitSoftHSMToken(softDir, "late")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := hsm.Open(hsm.Config{Module: late.Module, TokenLabel: "late", PINFile: late.PINFile})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := tok.GenerateRSA(hsmtest.RSARef, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := hsm.SelfSignedCertificate(signer, "late rsa", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.ImportCertificate(hsmtest.RSARef, cert); err != nil {
		t.Fatal(err)
	}
	if err := tok.Close(); err != nil {
		t.Fatal(err)
	}

	until(t, nil, 30*time.Second, "readyz 200 once the token exists", func() bool {
		resp, _ := d.do(t, "GET", "/readyz", "", nil)
		return resp.StatusCode == 200
	})
	resp, out := d.do(t, "POST", "/v1/soap/sign?profile=default", "text/xml", in)
	if resp.StatusCode != 200 {
		t.Fatalf("sign after the token came online: %d %s", resp.StatusCode, out)
	}
	if xo, ok := testutil.XMLSec1Verify(t, out, cert); !ok {
		t.Errorf("xmlsec1 rejects the signature: %s", xo)
	}
}

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
	c := loadConfig(t, dir, moduleConfig(filepath.Join(dir, "s.sock"), filepath.Join(dir, "state"), env.Soft.Module, env.Soft.Label, env.Soft.PINFile, ""))
	ks, err := openKeyStore(c, slog.New(slog.DiscardHandler))
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
	c := loadConfig(t, dir, moduleConfig(filepath.Join(dir, "s.sock"), filepath.Join(dir, "state"), env.Soft.Module, env.Soft.Label, env.Soft.PINFile, ""))
	ks, err := openKeyStore(c, slog.New(slog.DiscardHandler))
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

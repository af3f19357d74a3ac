package hsm_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wssignd/wssignd/hsm"
	"github.com/wssignd/wssignd/hsm/hsmtest"
)

// TestPINRejectedMarker: a rejected PIN leaves a marker (no PIN in it) in the state directory;
// the next Open with the same PIN source fails without a login, so the token's failed-login
// flag stays as the single failure left it; a corrected PIN file clears the marker.
func TestPINRejectedMarker(t *testing.T) {
	env := hsmtest.New(t)
	if err := env.Token.Close(); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(t.TempDir(), "state")
	pinFile := filepath.Join(t.TempDir(), "pin")
	const wrong = "27182818"
	if err := os.WriteFile(pinFile, []byte(wrong+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := env.Config
	cfg.PINFile, cfg.StateDir = pinFile, stateDir

	_, err := hsm.Open(cfg)
	if !errors.Is(err, hsm.ErrPINRejected) {
		t.Fatalf("first Open: %v, want ErrPINRejected", err)
	}
	markers, _ := filepath.Glob(filepath.Join(stateDir, "pin-rejected-*.json"))
	if len(markers) != 1 {
		t.Fatalf("markers %v, want one", markers)
	}
	b, err := os.ReadFile(markers[0])
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(wrong)) {
		t.Errorf("marker holds the PIN:\n%s", b)
	}
	if fi, _ := os.Stat(markers[0]); fi.Mode().Perm() != 0o600 {
		t.Errorf("marker mode %v, want 0600", fi.Mode().Perm())
	}

	for range 3 {
		_, err = hsm.Open(cfg)
		if !errors.Is(err, hsm.ErrPINRejected) || !strings.Contains(err.Error(), "no login attempted") {
			t.Fatalf("Open with a marked PIN: %v, want ErrPINRejected without login", err)
		}
		if strings.Contains(err.Error(), wrong) {
			t.Errorf("error holds the PIN: %v", err)
		}
	}

	// Without a state directory the marker is not consulted: that Open reaches the token.
	// (Not done here: it would spend another PIN attempt.)

	right, err := os.ReadFile(env.Soft.PINFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pinFile, right, 0o600); err != nil {
		t.Fatal(err)
	}
	tok, err := hsm.Open(cfg)
	if err != nil {
		t.Fatalf("Open with the corrected PIN: %v", err)
	}
	defer tok.Close()
	if !tok.PINCountLow() || !tok.Status().PINCountLow {
		t.Error("the token's CKF_USER_PIN_COUNT_LOW after the failed login is not reported")
	}
	if _, err := os.Stat(markers[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("marker not removed after the PIN changed: %v", err)
	}
	if _, err := tok.FindKey(hsmtest.RSARef); err != nil {
		t.Error(err)
	}
}

// TestHardenProcess: after HardenProcess the process is not dumpable.
func TestHardenProcess(t *testing.T) {
	if err := hsm.HardenProcess(); err != nil {
		t.Fatal(err)
	}
	d, err := hsm.Dumpable()
	if err != nil {
		t.Fatal(err)
	}
	if d {
		t.Error("process still dumpable after HardenProcess")
	}
}

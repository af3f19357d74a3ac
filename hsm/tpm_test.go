package hsm_test

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm"
	"github.com/wssignd/wssignd/hsm/hsmtest"
)

// waitState waits, at most limit, until tok is in state s.
func waitState(t *testing.T, tok *hsm.Token, s hsm.State, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for tok.State() != s {
		if time.Since(start) > limit {
			t.Fatalf("token state %s (%s), want %s within %v", tok.State(), tok.Status().Err, s, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// TestTPMLockoutIsNotARejectedPIN: a TPM in dictionary-attack lockout answers C_Login with
// CKR_PIN_LOCKED even to the right PIN. That is ErrPINLocked, not ErrPINRejected, and leaves no
// marker; once the lockout is cleared the same PIN opens the token. A Token that meets the
// lockout while it runs goes to pin-locked and comes back by itself after PINLockedRetry.
func TestTPMLockoutIsNotARejectedPIN(t *testing.T) {
	env := hsmtest.NewTPM(t)
	if err := env.Token.Close(); err != nil { // else the process's login hides every PIN
		t.Fatal(err)
	}
	env.TPM.SetDictionaryAttack(1, time.Hour, time.Hour) // one failure locks the TPM out
	stateDir := filepath.Join(t.TempDir(), "state")
	wrong := filepath.Join(t.TempDir(), "wrong-pin")
	if err := os.WriteFile(wrong, []byte("not-the-pin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := env.Config
	cfg.StateDir = stateDir
	bad := cfg
	bad.PINFile = wrong
	if _, err := hsm.Open(bad); !errors.Is(err, hsm.ErrPINRejected) || errors.Is(err, hsm.ErrPINLocked) {
		t.Fatalf("Open with a wrong PIN: %v, want ErrPINRejected", err)
	}
	if !env.TPM.InLockout() {
		t.Fatal("the TPM is not in lockout after one failure with max-tries 1")
	}
	_, err := hsm.Open(cfg)
	if !errors.Is(err, hsm.ErrPINLocked) || errors.Is(err, hsm.ErrPINRejected) {
		t.Fatalf("Open with the right PIN during the lockout: %v, want ErrPINLocked and not ErrPINRejected", err)
	}
	if markers, _ := filepath.Glob(filepath.Join(stateDir, "pin-rejected-*.json")); len(markers) != 0 {
		t.Fatalf("a lockout left a pin-rejected marker: %v", markers)
	}
	env.TPM.ClearLockout()
	cfg.PINLockedRetry = time.Second
	tok, err := hsm.Open(cfg)
	if err != nil {
		t.Fatalf("Open after the lockout was cleared: %v", err)
	}
	defer tok.Close()
	key, err := tok.FindKey(hsmtest.RSARef)
	if err != nil {
		t.Fatal(err)
	}

	// The lockout again, from another process, while the Token runs; the TPM restarts, so the
	// Token must log in again.
	pkcs11Tool, err := exec.LookPath("pkcs11-tool")
	if err != nil {
		t.Skip("pkcs11-tool (opensc) not found")
	}
	out, _ := exec.Command(pkcs11Tool, "--module", env.Config.Module, "--token-label", env.Config.TokenLabel,
		"--login", "--pin", "not-the-pin", "-O").CombinedOutput()
	if !env.TPM.InLockout() {
		t.Fatalf("the TPM is not in lockout after a wrong login from another process: %s", out)
	}
	env.TPM.Kill()
	env.TPM.Start()
	d := sha256.Sum256([]byte("lockout"))
	if _, err := key.Signer.Sign(rand.Reader, d[:], crypto.SHA256); err == nil {
		t.Fatal("a signature went through right after the TPM restarted")
	}
	waitState(t, tok, hsm.StatePINLocked, time.Minute)
	if st := tok.Status(); st.State != hsm.StatePINLocked {
		t.Fatalf("status %+v", st)
	}
	if markers, _ := filepath.Glob(filepath.Join(stateDir, "pin-rejected-*.json")); len(markers) != 0 {
		t.Fatalf("a lockout left a pin-rejected marker: %v", markers)
	}
	env.TPM.ClearLockout()
	took := waitState(t, tok, hsm.StateOnline, time.Minute)
	t.Logf("online again %v after the lockout was cleared (PINLockedRetry 1s)", took.Round(time.Millisecond))
	if _, err := key.Signer.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
		t.Fatalf("sign after the lockout: %v", err)
	}
}

// TestTPMTwoTokensListAndRecover: tpm2-pkcs11 gives both tokens of a store the serial
// 0000000000000000 and pads the model with NULs. Both are reported as they are, without the
// padding, the serial marked as not unique; a certificate stored without CKA_ID is listed with
// the rest; and after the TPM restarts the Token is found again by its label, not by the serial
// it shares.
func TestTPMTwoTokensListAndRecover(t *testing.T) {
	env := hsmtest.NewTPM(t)
	other := env.TPM.AddToken("second")
	if err := env.Token.Close(); err != nil { // tpm2-pkcs11 lists the tokens of its store at C_Initialize
		t.Fatal(err)
	}
	slots, err := hsm.ListSlots(env.Config.Module)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]hsm.SlotInfo{}
	for _, s := range slots {
		if s.TokenPresent && s.Initialized {
			labels[s.Label] = s
		}
		for _, f := range []string{s.Label, s.Serial, s.Model, s.Manufacturer, s.Description} {
			if strings.ContainsAny(f, "\x00") || strings.HasSuffix(f, " ") {
				t.Errorf("slot %d: padded string %q", s.SlotID, f)
			}
		}
	}
	a, b := labels[hsmtest.TPMLabel], labels[other.Label]
	if a.Serial != "0000000000000000" || b.Serial != a.Serial || a.SerialUnique || b.SerialUnique {
		t.Errorf("serials %q (unique %t) and %q (unique %t), want both 0000000000000000, not unique", a.Serial, a.SerialUnique, b.Serial, b.SerialUnique)
	}

	cfg := env.Config
	cfg.RetryMax = time.Second
	tok, err := hsm.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if strings.ContainsAny(tok.Label()+tok.Serial(), "\x00") {
		t.Errorf("label %q serial %q", tok.Label(), tok.Serial())
	}
	signer, err := tok.KeySigner(hsmtest.RSARef)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := hsm.SelfSignedCertificate(signer, "no id", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.ImportCertificate(hsm.KeyRef{Label: "no-id"}, cert); err != nil {
		t.Fatal(err)
	}
	objs, err := tok.Objects()
	if err != nil {
		t.Fatalf("Objects with a certificate without CKA_ID: %v", err)
	}
	var found bool
	for _, o := range objs {
		if o.Class == "certificate" && o.Label == "no-id" && len(o.ID) == 0 && o.Certificate != nil && o.Certificate.Equal(cert) {
			found = true
		}
	}
	if !found || len(objs) < 5 {
		t.Errorf("objects %+v lack the certificate without CKA_ID", objs)
	}

	key, err := tok.FindKey(hsmtest.ECRef)
	if err != nil {
		t.Fatal(err)
	}
	env.TPM.Kill()
	env.TPM.Start()
	d := sha256.Sum256([]byte("two tokens"))
	_, _ = key.Signer.Sign(rand.Reader, d[:], crypto.SHA256) // finds out about the restart
	waitState(t, tok, hsm.StateOnline, time.Minute)
	if _, err := key.Signer.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
		t.Fatalf("sign after the TPM restart: %v", err)
	}
}

// Package hsmtest builds test tokens: SoftHSM2 (New), TPM 2.0 through tpm2-pkcs11 on a software
// TPM (NewTPM, StartTPM), and SoftHSM2 behind p11-kit server (StartP11Kit). It uses only package
// hsm (no PKCS#11 imports). In go test -short mode the token helpers skip the test.
package hsmtest

import (
	"crypto"
	"crypto/elliptic"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm"
)

// Label is the label of the token New builds.
const Label = "wssignd-test"

// The keys New generates.
var (
	RSARef = hsm.KeyRef{Label: "rsa", ID: []byte{0x01}}
	ECRef  = hsm.KeyRef{Label: "ec", ID: []byte{0x02}}
)

// Kind is a kind of test token.
type Kind string

// The kinds of test token.
const (
	SoftHSM Kind = "softhsm" // SoftHSM2 (New)
	TPM2    Kind = "tpm"     // TPM 2.0 through tpm2-pkcs11 over swtpm (NewTPM)
)

// Kinds are every kind of test token, for suites that run on each.
var Kinds = []Kind{SoftHSM, TPM2}

// NewKind is New for SoftHSM and SharedTPM for TPM2: a test that uses it on either kind must
// leave the token as it found it (no kill, no lockout, no new objects).
func NewKind(t testing.TB, k Kind) *Env {
	t.Helper()
	if k == TPM2 {
		return SharedTPM(t)
	}
	return New(t)
}

// Env is a fresh token with two keys, and what a config file needs to open it again.
type Env struct {
	Kind   Kind
	Token  *hsm.Token       // open and logged in; closed in t.Cleanup
	Config hsm.Config       // Module, TokenLabel and PINFile of the token (Log nil)
	Soft   hsm.SoftHSMToken // SoftHSM2: the directory, config file and PIN files
	// TPM: the running software TPM and the token's store, TCTI and PIN files.
	TPM      *TPM
	TPMToken hsm.TPMToken
	RSA      *hsm.Key // RSA-2048, label "rsa", ID 0x01, self-signed certificate on the token
	EC       *hsm.Key // ECDSA P-256, label "ec", ID 0x02, self-signed certificate on the token
}

// New builds a fresh SoftHSM2 token in t.TempDir() (t.Setenv("SOFTHSM2_CONF", ...)), opens it,
// generates an RSA-2048 key (label "rsa", ID 0x01) and an EC P-256 key (label "ec", ID 0x02) on
// the token, each with a self-signed certificate stored on the token, and returns the open Token
// plus what a config file needs.
//
// The token is closed in t.Cleanup, so the next test can see its own token (SoftHSM2 reads
// SOFTHSM2_CONF only when the module is initialised, and the module stays initialised while any
// Token of it is open). Because of t.Setenv, tests using New cannot be parallel.
//
// When SoftHSM2 is not installed, New fails the test if the CI environment variable is "true"
// and skips it otherwise, naming the apt package. In -short mode it skips the test.
func New(t testing.TB) *Env {
	t.Helper()
	skipShort(t)
	soft, err := hsm.InitSoftHSMToken(t.TempDir(), Label)
	if errors.Is(err, hsm.ErrSoftHSMNotInstalled) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("hsmtest: %v (apt-get install softhsm2)", err)
		}
		t.Skipf("hsmtest: %v (apt-get install softhsm2)", err)
	}
	if err != nil {
		t.Fatalf("hsmtest: %v", err)
	}
	t.Setenv("SOFTHSM2_CONF", soft.ConfigFile)
	env := &Env{Kind: SoftHSM, Config: hsm.Config{Module: soft.Module, TokenLabel: soft.Label, PINFile: soft.PINFile}, Soft: soft}
	env.populate(t)
	return env
}

// PINFile is the token's user PIN file.
func (e *Env) PINFile() string { return e.Config.PINFile }

// Module is the token's PKCS#11 module.
func (e *Env) Module() string { return e.Config.Module }

// Label is the token's label.
func (e *Env) Label() string { return e.Config.TokenLabel }

// populate opens the token of e.Config and generates the two keys with their certificates.
func (e *Env) populate(t testing.TB) {
	t.Helper()
	tok, err := hsm.Open(e.Config)
	if err != nil {
		t.Fatalf("hsmtest: %v", err)
	}
	t.Cleanup(func() {
		if err := tok.Close(); err != nil {
			t.Errorf("hsmtest: %v", err)
		}
	})
	e.Token = tok
	rsaSigner, err := tok.GenerateRSA(RSARef, 2048)
	if err != nil {
		t.Fatalf("hsmtest: %v", err)
	}
	ecSigner, err := tok.GenerateEC(ECRef, elliptic.P256())
	if err != nil {
		t.Fatalf("hsmtest: %v", err)
	}
	for _, k := range []struct {
		ref  hsm.KeyRef
		cn   string
		dst  **hsm.Key
		sign crypto.Signer
	}{
		{RSARef, "wssignd test rsa", &e.RSA, rsaSigner},
		{ECRef, "wssignd test ec", &e.EC, ecSigner},
	} {
		cert, err := hsm.SelfSignedCertificate(k.sign, k.cn, 24*time.Hour)
		if err != nil {
			t.Fatalf("hsmtest: %v", err)
		}
		if err := tok.ImportCertificate(k.ref, cert); err != nil {
			t.Fatalf("hsmtest: %v", err)
		}
		if *k.dst, err = tok.FindKey(k.ref); err != nil {
			t.Fatalf("hsmtest: %v", err)
		}
	}
}

package hsmtest_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm"
	"github.com/wssignd/wssignd/hsm/hsmtest"
)

// TestNewInSequence checks that each test sees its own token: the previous Env's Token is closed
// in its Cleanup, so the module re-reads SOFTHSM2_CONF.
func TestNewInSequence(t *testing.T) {
	var serials []string
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			env := hsmtest.New(t)
			serials = append(serials, env.Token.Serial())
			if env.Config.TokenLabel != hsmtest.Label || env.Config.PINFile != env.Soft.PINFile || env.Config.Module != env.Soft.Module {
				t.Errorf("config %+v does not match %+v", env.Config, env.Soft)
			}
			if !strings.HasPrefix(env.Soft.ConfigFile, env.Soft.Dir) {
				t.Errorf("config file %s outside %s", env.Soft.ConfigFile, env.Soft.Dir)
			}
			d := sha256.Sum256([]byte("hsmtest"))
			sig, err := env.RSA.Signer.Sign(rand.Reader, d[:], crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if err := rsa.VerifyPKCS1v15(env.RSA.Chain[0].PublicKey.(*rsa.PublicKey), crypto.SHA256, d[:], sig); err != nil {
				t.Error(err)
			}
			sig, err = env.EC.Signer.Sign(rand.Reader, d[:], crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if !ecdsa.VerifyASN1(env.EC.Chain[0].PublicKey.(*ecdsa.PublicKey), d[:], sig) {
				t.Error("ecdsa signature does not verify")
			}
			if !bytesEqual(env.RSA.Ref.ID, hsmtest.RSARef.ID) || env.EC.Ref.Label != "ec" {
				t.Errorf("refs %v, %v", env.RSA.Ref, env.EC.Ref)
			}
			// The Config reopens the token alongside.
			tok, err := hsm.Open(env.Config)
			if err != nil {
				t.Fatal(err)
			}
			tok.Close()
		})
	}
	if len(serials) == 2 && serials[0] == serials[1] {
		t.Errorf("both Envs have token serial %s", serials[0])
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// stopTB records Skipf/Fatalf instead of ending the test.
type stopTB struct {
	testing.TB
	skipped, failed string
}

type stop struct{}

func (s *stopTB) Skipf(format string, args ...any) {
	s.skipped = fmt.Sprintf(format, args...)
	panic(stop{})
}

func (s *stopTB) Fatalf(format string, args ...any) {
	s.failed = fmt.Sprintf(format, args...)
	panic(stop{})
}

func TestNewWithoutSoftHSM(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("PATH", t.TempDir()) // no softhsm2-util
			t.Setenv("CI", ci)
			tb := &stopTB{TB: t}
			func() {
				defer func() {
					if r := recover(); r != nil {
						if _, ok := r.(stop); !ok {
							panic(r)
						}
					}
				}()
				hsmtest.New(tb)
			}()
			got := tb.skipped
			if ci == "true" {
				got = tb.failed
				if tb.skipped != "" {
					t.Errorf("skipped under CI: %s", tb.skipped)
				}
			} else if tb.failed != "" {
				t.Errorf("failed outside CI: %s", tb.failed)
			}
			if !strings.Contains(got, "apt-get install softhsm2") {
				t.Errorf("message %q does not name the apt package", got)
			}
		})
	}
}

// TestNewTPM: the TPM token signs with both keys, its processes stop with the test, and Kill and
// Start bring the same TPM back (the token and its keys are still there).
func TestNewTPM(t *testing.T) {
	start := time.Now()
	env := hsmtest.NewTPM(t)
	t.Logf("TPM token with two keys ready in %v", time.Since(start).Round(time.Millisecond))
	d := sha256.Sum256([]byte("hsmtest tpm"))
	check := func() {
		t.Helper()
		sig, err := env.RSA.Signer.Sign(rand.Reader, d[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if err := rsa.VerifyPKCS1v15(env.RSA.Chain[0].PublicKey.(*rsa.PublicKey), crypto.SHA256, d[:], sig); err != nil {
			t.Error(err)
		}
		sig, err = env.EC.Signer.Sign(rand.Reader, d[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.VerifyASN1(env.EC.Chain[0].PublicKey.(*ecdsa.PublicKey), d[:], sig) {
			t.Error("ecdsa signature does not verify")
		}
	}
	check()
	if env.Kind != hsmtest.TPM2 || env.Token.Label() != hsmtest.TPMLabel {
		t.Errorf("kind %s label %q", env.Kind, env.Token.Label())
	}
	if err := env.Token.Close(); err != nil {
		t.Fatal(err)
	}
	env.TPM.Kill()
	env.TPM.Start()
	tok, err := hsm.Open(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if env.RSA, err = tok.FindKey(hsmtest.RSARef); err != nil {
		t.Fatal(err)
	}
	if env.EC, err = tok.FindKey(hsmtest.ECRef); err != nil {
		t.Fatal(err)
	}
	check()
}

// TestStartTPMWithoutTools: with a tool missing, StartTPM fails the test under CI=true and
// skips it otherwise, naming the Debian package.
func TestStartTPMWithoutTools(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Run("CI="+ci, func(t *testing.T) {
			t.Setenv("PATH", t.TempDir()) // no swtpm
			t.Setenv("CI", ci)
			tb := &stopTB{TB: t}
			func() {
				defer func() {
					if r := recover(); r != nil {
						if _, ok := r.(stop); !ok {
							panic(r)
						}
					}
				}()
				hsmtest.StartTPM(tb)
			}()
			got := tb.skipped
			if ci == "true" {
				got = tb.failed
				if tb.skipped != "" {
					t.Errorf("skipped under CI: %s", tb.skipped)
				}
			} else if tb.failed != "" {
				t.Errorf("failed outside CI: %s", tb.failed)
			}
			if !strings.Contains(got, "apt-get install swtpm") {
				t.Errorf("message %q does not name the apt package", got)
			}
		})
	}
}

// TestSharedTPM: two tests on the shared TPM each get a Token of their own on the same token,
// with keys that sign.
func TestSharedTPM(t *testing.T) {
	var serials []string
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			env := hsmtest.SharedTPM(t)
			if env.TPM != nil || env.Kind != hsmtest.TPM2 {
				t.Errorf("env %+v", env)
			}
			d := sha256.Sum256([]byte("shared"))
			sig, err := env.EC.Signer.Sign(rand.Reader, d[:], crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if !ecdsa.VerifyASN1(env.EC.Chain[0].PublicKey.(*ecdsa.PublicKey), d[:], sig) {
				t.Error("ecdsa signature does not verify")
			}
			serials = append(serials, env.RSA.Chain[0].SerialNumber.String())
		})
	}
	if len(serials) == 2 && serials[0] != serials[1] {
		t.Errorf("the two tests saw different certificates: %v", serials)
	}
}

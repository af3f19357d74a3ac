package hsm_test

//lint:file-ignore SA1019 RSA PKCS #1 v1.5 key transport (XML Encryption rsa-1_5) is a deliberate, opt-in legacy algorithm here; failures are decoded in constant time with implicit rejection.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm"
	"github.com/wssignd/wssignd/hsm/hsmtest"
)

func readPINFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(string(b), "\n")
}

func TestOpenClose(t *testing.T) {
	env := hsmtest.New(t)
	tok := env.Token
	if got := tok.Label(); got != hsmtest.Label {
		t.Errorf("Label() = %q, want %q", got, hsmtest.Label)
	}
	if tok.Serial() == "" {
		t.Error("Serial() is empty")
	}
	if err := tok.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := tok.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := tok.FindKey(hsmtest.RSARef); !errors.Is(err, hsm.ErrClosed) {
		t.Errorf("FindKey after Close: %v, want ErrClosed", err)
	}
	d := sha256.Sum256([]byte("x"))
	if _, err := env.RSA.Signer.Sign(rand.Reader, d[:], crypto.SHA256); !errors.Is(err, hsm.ErrClosed) {
		t.Errorf("Sign after Close: %v, want ErrClosed", err)
	}
	// The module is finalised: a new Open re-reads SOFTHSM2_CONF and finds the token again.
	tok2, err := hsm.Open(env.Config)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer tok2.Close()
	if _, err := tok2.FindKey(hsmtest.ECRef); err != nil {
		t.Fatalf("FindKey after reopen: %v", err)
	}
}

func TestOpenConfigErrors(t *testing.T) {
	env := hsmtest.New(t)
	good := env.Config
	tests := []struct {
		name string
		edit func(c *hsm.Config)
		want string
	}{
		{"no token", func(c *hsm.Config) { c.TokenLabel = "" }, "one of token label and token serial is required"},
		{"label and serial", func(c *hsm.Config) { c.TokenSerial = "1234" }, "mutually exclusive"},
		{"max sessions 1", func(c *hsm.Config) { c.MaxSessions = 1 }, "at least 2"},
		{"relative module", func(c *hsm.Config) { c.Module = "libsofthsm2.so" }, "not absolute"},
		{"missing module", func(c *hsm.Config) { c.Module = "/nonexistent/libx.so" }, "no such file"},
		{"no pin file", func(c *hsm.Config) { c.PINFile = "" }, "pin file is required"},
		{"missing pin file", func(c *hsm.Config) { c.PINFile = filepath.Join(t.TempDir(), "nope") }, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.edit(&cfg)
			tok, err := hsm.Open(cfg)
			if err == nil {
				tok.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestTokenNotFound(t *testing.T) {
	env := hsmtest.New(t)
	pin := readPINFile(t, env.Soft.PINFile)
	for _, cfg := range []hsm.Config{
		{Module: env.Config.Module, TokenLabel: "no-such-token", PINFile: env.Config.PINFile},
		{Module: env.Config.Module, TokenSerial: "0000000000000000", PINFile: env.Config.PINFile},
	} {
		tok, err := hsm.Open(cfg)
		if err == nil {
			tok.Close()
			t.Fatal("Open of a missing token succeeded")
		}
		if !errors.Is(err, hsm.ErrTokenNotFound) {
			t.Errorf("error %v is not ErrTokenNotFound", err)
		}
		if strings.Contains(err.Error(), pin) {
			t.Errorf("error %q contains the pin", err)
		}
	}
}

func TestOpenBySerialAlongside(t *testing.T) {
	env := hsmtest.New(t)
	// A second Token on the same module and token: crypto11 shares the module instance.
	tok2, err := hsm.Open(hsm.Config{Module: env.Config.Module, TokenSerial: env.Token.Serial(), PINFile: env.Config.PINFile})
	if err != nil {
		t.Fatalf("Open by serial: %v", err)
	}
	if tok2.Label() != hsmtest.Label {
		t.Errorf("Label() = %q", tok2.Label())
	}
	k, err := tok2.FindKey(hsmtest.ECRef)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok2.Close(); err != nil {
		t.Fatal(err)
	}
	// Closing the second Token must leave the module initialised for the first.
	d := sha256.Sum256([]byte("still here"))
	sig, err := env.EC.Signer.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("Sign on the first token after closing the second: %v", err)
	}
	if !ecdsa.VerifyASN1(k.Chain[0].PublicKey.(*ecdsa.PublicKey), d[:], sig) {
		t.Error("signature does not verify")
	}
}

func TestWrongPIN(t *testing.T) {
	env := hsmtest.New(t)
	goodPIN := readPINFile(t, env.Soft.PINFile)
	if err := env.Token.Close(); err != nil { // the normal case: the first login of the process
		t.Fatal(err)
	}
	const wrongPIN = "wrong-7a1c9e33"
	var logs bytes.Buffer
	for _, content := range []string{wrongPIN + "\n", "Zq8#Wv\r\n", strings.Repeat("9", 300)} {
		pinFile := filepath.Join(t.TempDir(), "pin")
		if err := os.WriteFile(pinFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := env.Config
		cfg.PINFile = pinFile
		cfg.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		tok, err := hsm.Open(cfg)
		if err == nil {
			tok.Close()
			t.Fatalf("Open with pin file %q succeeded", content)
		}
		if !errors.Is(err, hsm.ErrPINRejected) {
			t.Errorf("error %v is not ErrPINRejected", err)
		}
		pin := strings.TrimRight(content, "\r\n")
		for _, secret := range []string{pin, goodPIN} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains a pin", err)
			}
		}
		t.Logf("%v", err)
	}
	if s := logs.String(); strings.Contains(s, wrongPIN) || strings.Contains(s, goodPIN) {
		t.Errorf("logs contain a pin: %s", s)
	}
	// The right PIN still works (SoftHSM2 does not lock).
	tok, err := hsm.Open(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	tok.Close()
}

func TestLogsHaveNoPIN(t *testing.T) {
	env := hsmtest.New(t)
	pin := readPINFile(t, env.Soft.PINFile)
	env.Token.Close()
	var logs bytes.Buffer
	cfg := env.Config
	cfg.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tok, err := hsm.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.FindKey(hsmtest.RSARef); err != nil {
		t.Fatal(err)
	}
	tok.Close()
	s := logs.String()
	for _, want := range []string{"token opened", "key ready", "token closed"} {
		if !strings.Contains(s, want) {
			t.Errorf("logs lack %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, pin) {
		t.Errorf("logs contain the pin:\n%s", s)
	}
}

func TestFindKey(t *testing.T) {
	env := hsmtest.New(t)
	tests := []struct {
		name     string
		ref      hsm.KeyRef
		wantType string
		wantErr  error
	}{
		{"rsa by label", hsm.KeyRef{Label: "rsa"}, "RSA", nil},
		{"rsa by id", hsm.KeyRef{ID: []byte{1}}, "RSA", nil},
		{"rsa by both", hsm.KeyRef{Label: "rsa", ID: []byte{1}}, "RSA", nil},
		{"ec by label", hsm.KeyRef{Label: "ec"}, "EC", nil},
		{"ec by id", hsm.KeyRef{ID: []byte{2}}, "EC", nil},
		{"ec by both", hsm.KeyRef{Label: "ec", ID: []byte{2}}, "EC", nil},
		{"unknown label", hsm.KeyRef{Label: "nope"}, "", hsm.ErrKeyNotFound},
		{"unknown id", hsm.KeyRef{ID: []byte{9, 9}}, "", hsm.ErrKeyNotFound},
		{"label and id of different keys", hsm.KeyRef{Label: "rsa", ID: []byte{2}}, "", hsm.ErrKeyNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := env.Token.FindKey(tt.ref)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("FindKey: %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.ref.String()) {
					t.Errorf("error %q does not name the reference %s", err, tt.ref)
				}
				return
			}
			if err != nil {
				t.Fatalf("FindKey: %v", err)
			}
			if k.Attributes.Type != tt.wantType {
				t.Errorf("type %q, want %q", k.Attributes.Type, tt.wantType)
			}
			if len(k.Chain) != 1 {
				t.Fatalf("chain has %d certificates, want 1", len(k.Chain))
			}
			if !k.Chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Signer.Public()) {
				t.Error("certificate public key differs from Signer.Public()")
			}
			a := k.Attributes
			if !a.Token || !a.Private || !a.Sensitive || a.Extractable || !a.AlwaysSensitive || !a.NeverExtractable || a.AlwaysAuthenticate {
				t.Errorf("attributes %+v", a)
			}
		})
	}
	if _, err := env.Token.FindKey(hsm.KeyRef{}); err == nil {
		t.Error("FindKey with an empty reference succeeded")
	}
}

func TestGenerateRefusals(t *testing.T) {
	env := hsmtest.New(t)
	tests := []struct {
		name    string
		gen     func() (crypto.Signer, error)
		wantErr error
	}{
		{"label taken", func() (crypto.Signer, error) {
			return env.Token.GenerateEC(hsm.KeyRef{Label: "rsa", ID: []byte{0x77}}, elliptic.P256())
		}, hsm.ErrKeyExists},
		{"id taken", func() (crypto.Signer, error) {
			return env.Token.GenerateEC(hsm.KeyRef{Label: "new", ID: []byte{0x02}}, elliptic.P256())
		}, hsm.ErrKeyExists},
		{"no id", func() (crypto.Signer, error) {
			return env.Token.GenerateEC(hsm.KeyRef{Label: "new"}, elliptic.P256())
		}, nil},
		{"small rsa", func() (crypto.Signer, error) {
			return env.Token.GenerateRSA(hsm.KeyRef{Label: "small", ID: []byte{0x78}}, 1024)
		}, nil},
		{"unsupported curve", func() (crypto.Signer, error) {
			return env.Token.GenerateEC(hsm.KeyRef{Label: "p224", ID: []byte{0x79}}, elliptic.P224())
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.gen()
			if err == nil {
				t.Fatal("generation succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestSignaturesVerify(t *testing.T) {
	env := hsmtest.New(t)
	rsaPub := env.RSA.Chain[0].PublicKey.(*rsa.PublicKey)
	ecPub := env.EC.Chain[0].PublicKey.(*ecdsa.PublicKey)
	if rsaPub.N.BitLen() != 2048 {
		t.Errorf("rsa key has %d bits", rsaPub.N.BitLen())
	}
	if ecPub.Curve != elliptic.P256() {
		t.Errorf("ec key curve %s", ecPub.Curve.Params().Name)
	}
	for i := range 20 {
		d := sha256.Sum256([]byte{byte(i)})

		sig, err := env.RSA.Signer.Sign(rand.Reader, d[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("rsa pkcs1v15: %v", err)
		}
		if err := rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, d[:], sig); err != nil {
			t.Fatalf("rsa pkcs1v15 verify: %v", err)
		}

		pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
		sig, err = env.RSA.Signer.Sign(rand.Reader, d[:], pss)
		if err != nil {
			t.Fatalf("rsa pss: %v", err)
		}
		if err := rsa.VerifyPSS(rsaPub, crypto.SHA256, d[:], sig, &rsa.PSSOptions{SaltLength: 32}); err != nil {
			t.Fatalf("rsa pss verify (salt 32): %v", err)
		}

		sig, err = env.EC.Signer.Sign(rand.Reader, d[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("ecdsa: %v", err)
		}
		if !ecdsa.VerifyASN1(ecPub, d[:], sig) {
			t.Fatal("ecdsa signature does not verify")
		}
	}

	d := sha256.Sum256([]byte("opts"))
	bad := []struct {
		name   string
		signer crypto.Signer
		digest []byte
		opts   crypto.SignerOpts
	}{
		{"rsa nil opts", env.RSA.Signer, d[:], nil},
		{"rsa no hash", env.RSA.Signer, d[:], crypto.Hash(0)},
		{"rsa sha3", env.RSA.Signer, d[:], crypto.SHA3_256},
		{"rsa short digest", env.RSA.Signer, d[:20], crypto.SHA256},
		{"rsa pss auto salt", env.RSA.Signer, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: crypto.SHA256}},
		{"ec pss", env.EC.Signer, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}},
		{"ec long digest", env.EC.Signer, append(d[:], 0), crypto.SHA256},
	}
	for _, tt := range bad {
		if _, err := tt.signer.Sign(rand.Reader, tt.digest, tt.opts); err == nil {
			t.Errorf("%s: Sign succeeded", tt.name)
		}
	}
}

func TestRSADecrypt(t *testing.T) {
	env := hsmtest.New(t)
	dec, ok := env.RSA.Signer.(crypto.Decrypter)
	if !ok {
		t.Fatalf("RSA signer %T is not a crypto.Decrypter", env.RSA.Signer)
	}
	if _, ok := env.EC.Signer.(crypto.Decrypter); ok {
		t.Error("EC signer is a crypto.Decrypter")
	}
	pub := env.RSA.Chain[0].PublicKey.(*rsa.PublicKey)
	msg := []byte("session key 0123456789abcdef")
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, msg)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := dec.Decrypt(rand.Reader, ct, nil)
	if err != nil {
		t.Fatalf("pkcs1v15 decrypt: %v", err)
	}
	if !bytes.Equal(pt, msg) {
		t.Errorf("pkcs1v15 decrypt = %q", pt)
	}
	ct, err = rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	pt, err = dec.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA1})
	if err != nil {
		t.Fatalf("oaep sha-1 decrypt: %v", err)
	}
	if !bytes.Equal(pt, msg) {
		t.Errorf("oaep sha-1 decrypt = %q", pt)
	}
	// SoftHSM2 2.6 implements OAEP with SHA-1 only; other hashes fail with CKR_ARGUMENTS_BAD.
	ct, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err = dec.Decrypt(rand.Reader, ct, &rsa.OAEPOptions{Hash: crypto.SHA256}); err != nil {
		t.Logf("oaep sha-256 decrypt: %v", err)
	} else if !bytes.Equal(pt, msg) {
		t.Errorf("oaep sha-256 decrypt = %q", pt)
	}
}

func TestConcurrentSigning(t *testing.T) {
	env := hsmtest.New(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := env.EC
			if g%2 == 0 {
				k = env.RSA
			}
			for i := range 10 {
				d := sha256.Sum256([]byte{byte(g), byte(i)})
				if _, err := k.Signer.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestChainFromToken(t *testing.T) {
	env := hsmtest.New(t)
	tok := env.Token
	caRef := hsm.KeyRef{Label: "ca", ID: []byte{0x50}}
	leafRef := hsm.KeyRef{Label: "leaf", ID: []byte{0x51}}
	caSigner, err := tok.GenerateEC(caRef, elliptic.P256())
	if err != nil {
		t.Fatal(err)
	}
	leafSigner, err := tok.GenerateEC(leafRef, elliptic.P256())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caSigner.Public(), caSigner)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "test leaf"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, leafSigner.Public(), caSigner)
	if err != nil {
		t.Fatal(err)
	}
	leafCert, _ := x509.ParseCertificate(leafDER)
	if err := tok.ImportCertificate(caRef, caCert); err != nil {
		t.Fatal(err)
	}
	if err := tok.ImportCertificate(leafRef, leafCert); err != nil {
		t.Fatal(err)
	}

	k, err := tok.FindKey(hsm.KeyRef{Label: "leaf"})
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Chain) != 2 || !k.Chain[0].Equal(leafCert) || !k.Chain[1].Equal(caCert) {
		t.Fatalf("chain %v, want [leaf, ca]", subjects(k.Chain))
	}
	k, err = tok.FindKey(caRef)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Chain) != 1 {
		t.Errorf("ca chain %v, want [ca]", subjects(k.Chain))
	}
	// Self-signed leaves from hsmtest stop at themselves.
	if len(env.RSA.Chain) != 1 {
		t.Errorf("rsa chain %v", subjects(env.RSA.Chain))
	}
}

func subjects(chain []*x509.Certificate) []string {
	var s []string
	for _, c := range chain {
		s = append(s, c.Subject.CommonName)
	}
	return s
}

func TestSelfSignedCertificate(t *testing.T) {
	env := hsmtest.New(t)
	for _, k := range []*hsm.Key{env.RSA, env.EC} {
		c := k.Chain[0]
		if len(c.SubjectKeyId) != 20 {
			t.Errorf("%s: subject key id %x", c.Subject, c.SubjectKeyId)
		}
		if c.KeyUsage&x509.KeyUsageDigitalSignature == 0 || c.IsCA {
			t.Errorf("%s: key usage %v, ca %t", c.Subject, c.KeyUsage, c.IsCA)
		}
		if time.Until(c.NotAfter) < 23*time.Hour || time.Until(c.NotAfter) > 25*time.Hour {
			t.Errorf("%s: not after %v", c.Subject, c.NotAfter)
		}
	}
	if env.RSA.Chain[0].SignatureAlgorithm != x509.SHA256WithRSA || env.EC.Chain[0].SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("signature algorithms %v, %v", env.RSA.Chain[0].SignatureAlgorithm, env.EC.Chain[0].SignatureAlgorithm)
	}
	if _, err := hsm.SelfSignedCertificate(env.EC.Signer, "x", 0); err == nil {
		t.Error("zero validity accepted")
	}
}

func TestInitSoftHSMTokenReuse(t *testing.T) {
	dir := t.TempDir()
	a, err := hsm.InitSoftHSMToken(dir, "reuse")
	if errors.Is(err, hsm.ErrSoftHSMNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	pin, soPIN := readPINFile(t, a.PINFile), readPINFile(t, a.SOPINFile)
	if len(pin) != 32 || len(soPIN) != 32 || pin == soPIN {
		t.Errorf("pins of length %d and %d (equal: %t), want two different 32-digit pins", len(pin), len(soPIN), pin == soPIN)
	}
	for _, f := range []string{a.PINFile, a.SOPINFile} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if a.ConfigFile != filepath.Join(dir, "softhsm2.conf") || a.Label != "reuse" || a.Dir != dir {
		t.Errorf("unexpected %+v", a)
	}
	conf, err := os.ReadFile(a.ConfigFile)
	if err != nil || !strings.Contains(string(conf), "directories.tokendir = "+filepath.Join(dir, "tokens")) {
		t.Errorf("config file %q (%v)", conf, err)
	}

	b, err := hsm.InitSoftHSMToken(dir, "reuse")
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("second call returned %+v, want %+v", b, a)
	}
	if readPINFile(t, b.PINFile) != pin || readPINFile(t, b.SOPINFile) != soPIN {
		t.Error("pin files changed on reuse")
	}
	// Still exactly one token with that label, and the PIN opens it.
	t.Setenv("SOFTHSM2_CONF", a.ConfigFile)
	tok, err := hsm.Open(hsm.Config{Module: a.Module, TokenLabel: "reuse", PINFile: a.PINFile})
	if err != nil {
		t.Fatal(err)
	}
	tok.Close()
}

func TestTokenAmbiguous(t *testing.T) {
	env := hsmtest.New(t)
	env.Token.Close() // SoftHSM2 sees new tokens at C_Initialize
	cmd := exec.Command("softhsm2-util", "--init-token", "--free", "--label", hsmtest.Label, "--so-pin", "12345678", "--pin", "12345678")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util: %v: %s", err, out)
	}
	tok, err := hsm.Open(env.Config)
	if err == nil {
		tok.Close()
		t.Fatal("Open with two tokens of the same label succeeded")
	}
	if !errors.Is(err, hsm.ErrTokenAmbiguous) {
		t.Errorf("error %v is not ErrTokenAmbiguous", err)
	}
	if _, err := hsm.InitSoftHSMToken(env.Soft.Dir, hsmtest.Label); !errors.Is(err, hsm.ErrTokenAmbiguous) {
		t.Errorf("InitSoftHSMToken: %v, want ErrTokenAmbiguous", err)
	}
}

func TestTwoTokensTwoModulePaths(t *testing.T) {
	dir := t.TempDir()
	a, err := hsm.InitSoftHSMToken(dir, "first")
	if errors.Is(err, hsm.ErrSoftHSMNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := hsm.InitSoftHSMToken(dir, "second")
	if err != nil {
		t.Fatal(err)
	}
	if b.PINFile != a.PINFile {
		t.Fatalf("pin files differ: %s, %s", a.PINFile, b.PINFile)
	}
	t.Setenv("SOFTHSM2_CONF", a.ConfigFile)
	resolved, err := filepath.EvalSymlinks(a.Module)
	if err != nil {
		t.Fatal(err)
	}
	if resolved == a.Module {
		t.Logf("%s is not a symlink; both tokens use one spelling", a.Module)
	}
	// Two spellings of one library must share one module instance.
	t1, err := hsm.Open(hsm.Config{Module: a.Module, TokenLabel: "first", PINFile: a.PINFile})
	if err != nil {
		t.Fatal(err)
	}
	defer t1.Close()
	t2, err := hsm.Open(hsm.Config{Module: resolved, TokenLabel: "second", PINFile: b.PINFile})
	if err != nil {
		t.Fatalf("second token through %s: %v", resolved, err)
	}
	defer t2.Close()
	if t1.Serial() == t2.Serial() {
		t.Error("both Tokens opened the same token")
	}
	for _, tok := range []*hsm.Token{t1, t2} {
		s, err := tok.GenerateEC(hsm.KeyRef{Label: "k", ID: []byte{1}}, elliptic.P256())
		if err != nil {
			t.Fatal(err)
		}
		d := sha256.Sum256([]byte(tok.Label()))
		sig, err := s.Sign(rand.Reader, d[:], crypto.SHA256)
		if err != nil || !ecdsa.VerifyASN1(s.Public().(*ecdsa.PublicKey), d[:], sig) {
			t.Fatalf("%s: sign: %v", tok.Label(), err)
		}
	}
}

package hsm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
)

// newTestToken is hsmtest.New without keys (hsmtest imports hsm, so internal tests cannot use it).
func newTestToken(t testing.TB) (*Token, SoftHSMToken) {
	t.Helper()
	soft, err := InitSoftHSMToken(t.TempDir(), "internal")
	if errors.Is(err, ErrSoftHSMNotInstalled) {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", soft.ConfigFile)
	tok, err := Open(Config{Module: soft.Module, TokenLabel: soft.Label, PINFile: soft.PINFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok, soft
}

// inner returns the key entry behind a signer from this package.
func inner(t *testing.T, s crypto.Signer) *keyEntry {
	t.Helper()
	switch s := s.(type) {
	case *tokenSigner:
		return s.k
	case tokenRSASigner:
		return s.k
	}
	t.Fatalf("signer %T is not from package hsm", s)
	return nil
}

// getAttr reads one attribute of an object on a fresh session.
func getAttr(t *testing.T, tok *Token, h pkcs11.ObjectHandle, typ uint) ([]byte, error) {
	t.Helper()
	out, err := tok.admin(func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, _ uint64) ([]byte, error) {
		v, err := p.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, nil)})
		if err != nil {
			return nil, err
		}
		return v[0].Value, nil
	})
	return out, err
}

// publicHandle finds the public key object with the key's ID.
func publicHandle(t *testing.T, tok *Token, k *keyEntry) pkcs11.ObjectHandle {
	t.Helper()
	var h pkcs11.ObjectHandle
	_, err := tok.admin(func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, _ uint64) ([]byte, error) {
		hs, err := findObjects(p, sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_ID, k.attrs.ID),
		})
		if err == nil && len(hs) != 1 {
			err = fmt.Errorf("%d public keys", len(hs))
		}
		if err == nil {
			h = hs[0]
		}
		return nil, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestReadPIN(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		want    string
		wantErr string
	}{
		{"plain", "1234", "1234", ""},
		{"newline", "1234\n", "1234", ""},
		{"crlf", "1234\r\n", "1234", ""},
		{"only one newline trimmed", "1234\n\n", "1234\n", ""},
		{"blanks kept", " 12 34 \t", " 12 34 \t", ""},
		{"carriage return alone kept", "1234\r", "1234\r", ""},
		{"empty", "", "", "empty"},
		{"only newline", "\n", "", "empty"},
		{"too large", strings.Repeat("1", maxPINFileSize+1), "", "larger than"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, string(rune('a'+i)))
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readPIN(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("readPIN = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				if tt.content != "" && strings.TrimSpace(tt.content) != "" && strings.Contains(err.Error(), tt.content) {
					t.Errorf("error %q contains the file content", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("readPIN = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := readPIN(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := readPIN(""); err == nil {
		t.Error("empty path accepted")
	}
}

// TestGeneratedKeyAttributes reads the attributes of generated keys back from the token.
func TestGeneratedKeyAttributes(t *testing.T) {
	tok, _ := newTestToken(t)
	rsaSigner, err := tok.GenerateRSA(KeyRef{Label: "rsa", ID: []byte{1}}, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecSigner, err := tok.GenerateEC(KeyRef{Label: "ec", ID: []byte{2}}, elliptic.P256())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		name   string
		signer crypto.Signer
		secret uint // an attribute holding private key material
	}{
		{"rsa", rsaSigner, pkcs11.CKA_PRIVATE_EXPONENT},
		{"ec", ecSigner, pkcs11.CKA_VALUE},
	} {
		t.Run(k.name, func(t *testing.T) {
			key := inner(t, k.signer)
			want := map[uint]bool{
				pkcs11.CKA_TOKEN:             true,
				pkcs11.CKA_PRIVATE:           true,
				pkcs11.CKA_SENSITIVE:         true,
				pkcs11.CKA_EXTRACTABLE:       false,
				pkcs11.CKA_ALWAYS_SENSITIVE:  true,
				pkcs11.CKA_NEVER_EXTRACTABLE: true,
				pkcs11.CKA_SIGN:              true,
			}
			for typ, w := range want {
				a, err := getAttr(t, tok, key.handle, typ)
				if err != nil {
					t.Fatalf("attribute 0x%x: %v", typ, err)
				}
				if len(a) != 1 {
					t.Fatalf("attribute 0x%x: %v", typ, a)
				}
				if got := a[0] != 0; got != w {
					t.Errorf("attribute 0x%x = %t, want %t", typ, got, w)
				}
			}
			// The key material cannot be read.
			if a, err := getAttr(t, tok, key.handle, k.secret); err == nil {
				t.Errorf("private key material readable: %d bytes", len(a))
			} else if rv, _ := ckr(err); rv != pkcs11.CKR_ATTRIBUTE_SENSITIVE {
				t.Errorf("reading private key material: %v, want CKR_ATTRIBUTE_SENSITIVE", err)
			}
			// The public half is a public token object.
			ph := publicHandle(t, tok, key)
			priv, err1 := getAttr(t, tok, ph, pkcs11.CKA_PRIVATE)
			onToken, err2 := getAttr(t, tok, ph, pkcs11.CKA_TOKEN)
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			if priv[0] != 0 || onToken[0] != 1 {
				t.Errorf("public key CKA_PRIVATE=%x CKA_TOKEN=%x", priv, onToken)
			}
		})
	}
}

func TestFindKeyAmbiguous(t *testing.T) {
	tok, _ := newTestToken(t)
	if _, err := tok.GenerateEC(KeyRef{Label: "dup", ID: []byte{0x10}}, elliptic.P256()); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.GenerateEC(KeyRef{Label: "dup", ID: []byte{0x11}}, elliptic.P256()); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("GenerateEC with a taken label: %v, want ErrKeyExists", err)
	}
	// Bypass the check, as another tool would.
	ref := KeyRef{Label: "dup", ID: []byte{0x11}}
	if _, err := tok.generate(ref, ref, keyAlg{curve: elliptic.P256()}, false); err != nil {
		t.Fatal(err)
	}
	_, err := tok.FindKey(KeyRef{Label: "dup"})
	if !errors.Is(err, ErrKeyAmbiguous) {
		t.Fatalf("FindKey: %v, want ErrKeyAmbiguous", err)
	}
	for _, want := range []string{`label "dup" id 10`, `label "dup" id 11`, "2 private keys"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	// By ID the key is unique, but it has no certificate.
	if _, err := tok.FindKey(KeyRef{ID: []byte{0x10}}); !errors.Is(err, ErrCertificateNotFound) {
		t.Errorf("FindKey of a key without certificate: %v, want ErrCertificateNotFound", err)
	}
}

// softwareKey makes an in-memory key, for certificates that do not belong to a token key.
func softwareKey(t *testing.T, rsaKey bool) crypto.Signer {
	t.Helper()
	var s crypto.Signer
	var err error
	if rsaKey {
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCertificateChecks(t *testing.T) {
	tok, _ := newTestToken(t)
	ec := keyAlg{curve: elliptic.P256()}
	tests := []struct {
		name    string
		priv    KeyRef
		pub     KeyRef                                                // differs from priv: no public key object matches the private key
		certBy  func(t *testing.T, own crypto.Signer) []crypto.Signer // signers whose self-signed certificates are imported
		wantErr error
		wantMsg string
	}{
		{
			name: "own certificate", priv: KeyRef{Label: "ok", ID: []byte{0x20}}, pub: KeyRef{Label: "ok", ID: []byte{0x20}},
			certBy: func(t *testing.T, own crypto.Signer) []crypto.Signer { return []crypto.Signer{own} },
		},
		{
			name: "other key's certificate", priv: KeyRef{Label: "mm1", ID: []byte{0x21}}, pub: KeyRef{Label: "mm1", ID: []byte{0x21}},
			certBy:  func(t *testing.T, own crypto.Signer) []crypto.Signer { return []crypto.Signer{softwareKey(t, false)} },
			wantErr: ErrCertificateMismatch, wantMsg: "public key object",
		},
		{
			name: "certificate of another key type", priv: KeyRef{Label: "mm2", ID: []byte{0x22}}, pub: KeyRef{Label: "mm2", ID: []byte{0x22}},
			certBy:  func(t *testing.T, own crypto.Signer) []crypto.Signer { return []crypto.Signer{softwareKey(t, true)} },
			wantErr: ErrCertificateMismatch, wantMsg: "RSA public key",
		},
		{
			name: "no public key object, own certificate", priv: KeyRef{Label: "solo", ID: []byte{0x30}}, pub: KeyRef{Label: "solo-pub", ID: []byte{0x31}},
			certBy: func(t *testing.T, own crypto.Signer) []crypto.Signer { return []crypto.Signer{own} },
		},
		{
			name: "no public key object, other key's certificate", priv: KeyRef{Label: "lonely", ID: []byte{0x32}}, pub: KeyRef{Label: "lonely-pub", ID: []byte{0x33}},
			certBy:  func(t *testing.T, own crypto.Signer) []crypto.Signer { return []crypto.Signer{softwareKey(t, false)} },
			wantErr: ErrCertificateMismatch, wantMsg: "self-test",
		},
		{
			name: "two certificates", priv: KeyRef{Label: "twice", ID: []byte{0x34}}, pub: KeyRef{Label: "twice", ID: []byte{0x34}},
			certBy:  func(t *testing.T, own crypto.Signer) []crypto.Signer { return []crypto.Signer{own, own} },
			wantMsg: "2 certificates have id 34",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			own, err := tok.generate(tt.priv, tt.pub, ec, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.certBy(t, own) {
				cert, err := SelfSignedCertificate(s, tt.name, time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				if err := tok.ImportCertificate(tt.priv, cert); err != nil {
					t.Fatal(err)
				}
			}
			k, err := tok.FindKey(KeyRef{Label: tt.priv.Label})
			if tt.wantErr == nil && tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("FindKey: %v", err)
				}
				d := sha256.Sum256([]byte(tt.name))
				sig, err := k.Signer.Sign(rand.Reader, d[:], crypto.SHA256)
				if err != nil || !ecdsa.VerifyASN1(k.Chain[0].PublicKey.(*ecdsa.PublicKey), d[:], sig) {
					t.Fatalf("signature does not verify (%v)", err)
				}
				return
			}
			if err == nil {
				t.Fatal("FindKey succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("FindKey: %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestPINErrorsAlongside(t *testing.T) {
	tok, soft := newTestToken(t)
	pin, err := readPIN(soft.PINFile)
	if err != nil {
		t.Fatal(err)
	}
	// While tok holds the login, the token would accept any PIN; Open must refuse a different one.
	wrong := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(wrong, []byte("not-the-pin-5e2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Module: soft.Module, TokenLabel: soft.Label, PINFile: wrong}
	t2, err := Open(cfg)
	if err == nil {
		t2.Close()
		t.Fatal("second Open with a wrong pin succeeded")
	}
	if !errors.Is(err, ErrPINMismatch) || errors.Is(err, ErrPINRejected) {
		t.Errorf("error %v, want ErrPINMismatch and not ErrPINRejected", err)
	}
	if strings.Contains(err.Error(), "not-the-pin-5e2") || strings.Contains(err.Error(), pin) {
		t.Errorf("error %q contains a pin", err)
	}
	// The right PIN is fine, and the login record follows the Tokens.
	cfg.PINFile = soft.PINFile
	t2, err = Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok.m.lock()
	refs := tok.m.logins[tok.loginKey].refs
	logins := tok.m.logins
	tok.m.unlock()
	if refs != 2 {
		t.Errorf("login refs = %d, want 2", refs)
	}
	t2.Close()
	tok.Close()
	n := len(logins)
	if n != 0 {
		t.Errorf("%d login records left after closing every Token", n)
	}
}

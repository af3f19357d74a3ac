package api

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math/big"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wssignd/wssignd/internal/testutil"
	"github.com/wssignd/wssignd/wss"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testCert(t *testing.T, pub, priv any, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "recipient"},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func bodyOf(t *testing.T, env []byte) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<(\w+:)?Body[^>]*>(.*)</(\w+:)?Body>`).FindSubmatch(env)
	if m == nil {
		t.Fatalf("no Body in %s", env)
	}
	return string(m[2])
}

func newCryptServer(t *testing.T) (*memKeys, *syncBuffer, func(method, path, ctype, body string, hdr map[string]string) (int, []byte, map[string][]string)) {
	keys := &memKeys{creds: map[string]wss.Credential{"rsa": loadCred(t, "rsa2048"), "ec": loadCred(t, "ecp256")}}
	me := Access{UIDs: []uint32{uint32(os.Getuid())}}
	rcpt := keys.creds["rsa"].Chain[0]
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherCA := testCert(t, &otherKey.PublicKey, otherKey, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	pool := x509.NewCertPool()
	pool.AddCert(otherCA)
	audit := &syncBuffer{}
	trust, err := wss.NewTrustStore(wss.TrustConfig{Pinned: []*x509.Certificate{rcpt}})
	if err != nil {
		t.Fatal(err)
	}
	c := serveUnix(t, New(Config{
		Keys:           keys,
		Profiles:       map[string]*Profile{"sign": {Key: "rsa", Access: me}},
		VerifyProfiles: map[string]*VerifyProfile{"v": {Verify: wss.VerifyOptions{Trust: trust, AllowUnsignedAddressing: true}, Access: me}},
		EncryptProfiles: map[string]*EncryptProfile{
			"default": {Encrypt: wss.EncryptOptions{Recipient: rcpt}, Access: me},
			"cbc":     {Encrypt: wss.EncryptOptions{Recipient: rcpt, DataAlgorithm: wss.AlgAES256CBC, AllowCBC: true}, Access: me},
			"hdr":     {AllowRecipientHeader: true, Access: me},
			"trusted": {AllowRecipientHeader: true, TrustAnchors: pool, Access: me},
			"nobody":  {Encrypt: wss.EncryptOptions{Recipient: rcpt}, Access: Access{UIDs: []uint32{4_000_000_000}}},
		},
		DecryptProfiles: map[string]*DecryptProfile{
			"default": {Key: "rsa", Access: me},
			"signed":  {Key: "rsa", VerifyProfile: "v", Access: me},
			"nobody":  {Key: "rsa", Access: Access{UIDs: []uint32{4_000_000_000}}},
		},
		Audit: slog.New(slog.NewJSONHandler(audit, nil)),
	}))
	return keys, audit, func(method, path, ctype, body string, hdr map[string]string) (int, []byte, map[string][]string) {
		t.Helper()
		resp, b := do(t, c, method, path, ctype, body, hdr)
		return resp.StatusCode, b, resp.Header
	}
}

// TestEncryptDecryptOverSocket: encrypt, then decrypt with the key of the
// KeyStore, over a real Unix socket; the content type is kept, one audit
// event is written for the private-key use, and it holds no secrets.
func TestEncryptDecryptOverSocket(t *testing.T) {
	_, audit, call := newCryptServer(t)
	for _, file := range []string{"envelope-soap11.xml", "envelope-soap12.xml"} {
		env := string(testutil.ReadTestdata(t, file))
		ct := "text/xml"
		if strings.Contains(file, "12") {
			ct = "application/soap+xml; charset=utf-8"
		}
		st, enc, hdr := call("POST", "/v1/soap/encrypt?profile=default", ct, env, nil)
		if st != 200 || hdr["Content-Type"][0] != ct {
			t.Fatalf("%s encrypt: %d %v %s", file, st, hdr["Content-Type"], enc)
		}
		if strings.Contains(string(enc), bodyOf(t, []byte(env))) || !strings.Contains(string(enc), "EncryptedData") {
			t.Fatalf("%s: not encrypted: %s", file, enc)
		}
		st, dec, hdr := call("POST", "/v1/soap/decrypt?profile=default", ct, string(enc), nil)
		if st != 200 || hdr["Content-Type"][0] != ct || hdr["Wssignd-Key"][0] != "rsa" {
			t.Fatalf("%s decrypt: %d %v %s", file, st, hdr, dec)
		}
		if bodyOf(t, dec) != bodyOf(t, []byte(env)) {
			t.Errorf("%s: Body differs after the round trip:\n%s", file, dec)
		}
	}
	log := audit.String()
	if n := strings.Count(log, `"operation":"decrypt"`); n != 2 {
		t.Errorf("%d decrypt audit events, want 2:\n%s", n, log)
	}
	for _, want := range []string{`"outcome":"decrypted"`, `"peer_uid":`, `"wrapped_key_sha256":"`, `"cert_serial":"1001"`} {
		if !strings.Contains(log, want) {
			t.Errorf("audit lacks %s:\n%s", want, log)
		}
	}
}

// TestDecryptFailuresLookAlike: a GCM tag failure, an RSA-OAEP padding
// failure and a CBC message for a GCM profile give the same status and the
// same problem (but the request id), and each is audited.
func TestDecryptFailuresLookAlike(t *testing.T) {
	_, audit, call := newCryptServer(t)
	env := string(testutil.ReadTestdata(t, "envelope-soap11.xml"))
	_, enc, _ := call("POST", "/v1/soap/encrypt?profile=default", "text/xml", env, nil)
	_, cbc, _ := call("POST", "/v1/soap/encrypt?profile=cbc", "text/xml", env, nil)
	flip := func(s []byte, re string) string {
		m := regexp.MustCompile(re).FindSubmatchIndex(s)
		v, _ := base64.StdEncoding.DecodeString(string(s[m[2]:m[3]]))
		v[len(v)-1] ^= 1
		return string(s[:m[2]]) + base64.StdEncoding.EncodeToString(v) + string(s[m[3]:])
	}
	var first []byte
	for name, msg := range map[string]string{
		"tag":     flip(enc, `(?s)EncryptedData.*?CipherValue>([^<]+)<`),
		"padding": flip(enc, `(?s)EncryptedKey.*?CipherValue>([^<]+)<`),
		"cbc":     string(cbc),
	} {
		st, body, _ := call("POST", "/v1/soap/decrypt?profile=default", "text/xml", msg, nil)
		var p Problem
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		if st != 422 || p.Code != string(wss.CodeDecryptionFailed) {
			t.Errorf("%s: %d %s", name, st, body)
		}
		p.RequestID = ""
		norm, _ := json.Marshal(p)
		if first == nil {
			first = norm
		} else if !bytes.Equal(first, norm) {
			t.Errorf("%s: problem %s differs from %s", name, norm, first)
		}
	}
	if n := strings.Count(audit.String(), `"outcome":"error"`); n != 3 {
		t.Errorf("%d failed decrypt audit events, want 3:\n%s", n, audit.String())
	}
}

// TestRecipientHeader: the Wssignd-Recipient-Cert header is taken only
// where the profile allows it, and only for a valid RSA certificate that
// passes the profile's trust settings.
func TestRecipientHeader(t *testing.T) {
	keys, _, call := newCryptServer(t)
	env := string(testutil.ReadTestdata(t, "envelope-soap11.xml"))
	b64 := func(c *x509.Certificate) string { return base64.StdEncoding.EncodeToString(c.Raw) }
	good := keys.creds["rsa"].Chain[0]
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	expired := testCert(t, &rk.PublicKey, rk, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecCert := testCert(t, &ek.PublicKey, ek, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	for _, tc := range []struct {
		name, profile, hdr string
		status             int
		code               string
	}{
		{"header cert", "hdr", b64(good), 200, ""},
		{"no cert", "hdr", "", 400, CodeBadRequest},
		{"not base64", "hdr", "%%%", 400, CodeBadRequest},
		{"not a certificate", "hdr", base64.StdEncoding.EncodeToString([]byte("hello")), 400, CodeBadRequest},
		{"expired", "hdr", b64(expired), 422, CodeRecipientRejected},
		{"ec key", "hdr", b64(ecCert), 422, CodeRecipientRejected},
		{"untrusted", "trusted", b64(good), 422, CodeRecipientRejected},
		{"header not allowed", "default", b64(good), 403, CodeForbidden},
		{"forbidden profile", "nobody", "", 403, CodeForbidden},
		{"unknown profile", "nope", "", 403, CodeForbidden},
	} {
		hdr := map[string]string{}
		if tc.hdr != "" {
			hdr[RecipientCertHeader] = tc.hdr
		}
		st, body, _ := call("POST", "/v1/soap/encrypt?profile="+tc.profile, "text/xml", env, hdr)
		if st != tc.status {
			t.Errorf("%s: %d, want %d: %s", tc.name, st, tc.status, body)
			continue
		}
		if tc.code != "" && !strings.Contains(string(body), `"code":"`+tc.code+`"`) {
			t.Errorf("%s: %s, want code %s", tc.name, body, tc.code)
		}
		if st == 200 {
			if _, body, _ := call("POST", "/v1/soap/decrypt?profile=default", "text/xml", string(body), nil); bodyOf(t, body) != bodyOf(t, []byte(env)) {
				t.Errorf("%s: round trip failed: %s", tc.name, body)
			}
		}
	}
	if st, body, _ := call("POST", "/v1/soap/decrypt?profile=nobody", "text/xml", env, nil); st != 403 {
		t.Errorf("forbidden decrypt profile: %d %s", st, body)
	}
	if st, body, _ := call("POST", "/v1/soap/decrypt?profile=default", "text/xml", env, nil); st != 422 || !strings.Contains(string(body), string(wss.CodeNoEncryptedKey)) {
		t.Errorf("plain envelope: %d %s", st, body)
	}
}

// TestDecryptRequireSignedBody: a decrypt profile bound to a verify profile
// decrypts a signed-then-encrypted envelope (signed by the sign endpoint)
// and refuses an unsigned one with the opaque failure.
func TestDecryptRequireSignedBody(t *testing.T) {
	_, audit, call := newCryptServer(t)
	env := string(testutil.ReadTestdata(t, "envelope-soap11.xml"))
	st, signed, _ := call("POST", "/v1/soap/sign?profile=sign", "text/xml", env, nil)
	if st != 200 {
		t.Fatalf("sign: %d %s", st, signed)
	}
	_, enc, _ := call("POST", "/v1/soap/encrypt?profile=default", "text/xml", string(signed), nil)
	st, dec, _ := call("POST", "/v1/soap/decrypt?profile=signed", "text/xml", string(enc), nil)
	if st != 200 || !bytes.Equal(dec, signed) {
		t.Fatalf("signed then encrypted: %d %s", st, dec)
	}
	if !strings.Contains(audit.String(), `"signed_body":"sign-then-encrypt"`) {
		t.Errorf("audit lacks signed_body: %s", audit.String())
	}
	_, enc, _ = call("POST", "/v1/soap/encrypt?profile=default", "text/xml", env, nil)
	st, body, _ := call("POST", "/v1/soap/decrypt?profile=signed", "text/xml", string(enc), nil)
	if st != 422 || !strings.Contains(string(body), `"code":"decryption-failed"`) {
		t.Errorf("unsigned: %d %s", st, body)
	}
}

// TestEncryptWithProfile is the hook for sign profiles: the named encrypt
// profile encrypts a signed envelope, which decrypts back to the signed bytes.
func TestEncryptWithProfile(t *testing.T) {
	cred := loadCred(t, "rsa2048")
	s := New(Config{Keys: &memKeys{creds: map[string]wss.Credential{"rsa": cred}},
		EncryptProfiles: map[string]*EncryptProfile{"e": {Encrypt: wss.EncryptOptions{Recipient: cred.Chain[0]}}}})
	signed, err := wss.Sign(context.Background(), testutil.ReadTestdata(t, "envelope-soap11.xml"), cred, wss.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("POST", "/v1/soap/sign?profile=x", nil)
	enc, err := s.encryptWithProfile(req, "e", signed.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := wss.Decrypt(context.Background(), enc, cred.Signer.(crypto.Decrypter), wss.DecryptOptions{Certificate: cred.Chain[0]})
	if err != nil || !bytes.Equal(dec.Envelope, signed.Envelope) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := s.encryptWithProfile(req, "nope", signed.Envelope); err == nil {
		t.Error("an unknown encrypt profile was accepted")
	}
}

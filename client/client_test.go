package client_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/api/apitest"
	"github.com/wssignd/wssignd/client"
	"github.com/wssignd/wssignd/internal/testutil"
	"github.com/wssignd/wssignd/wss"
)

// serveClient serves the real API handler with cfg on a fresh Unix socket
// (with peer credentials, as the daemon does) and returns a Client for it.
func serveClient(t *testing.T, cfg api.Config) *client.Client {
	t.Helper()
	return client.New(apitest.Serve(t, api.New(cfg)))
}

// clientTestConfig is apitest.Config with a 4 KiB body limit.
func clientTestConfig(t *testing.T, keys *apitest.MemKeys) api.Config {
	t.Helper()
	cfg := apitest.Config(t, keys)
	cfg.MaxBodyBytes = 4096
	return cfg
}

// TestClientSign: the client's output is what the server signed, accepted
// by xmlsec1, and the metadata names the key and certificate used.
func TestClientSign(t *testing.T) {
	keys := apitest.Keys(t)
	c := serveClient(t, clientTestConfig(t, keys))
	ctx := context.Background()
	for _, tc := range []struct{ profile, key, file, ctype string }{
		{"default", "rsa", "envelope-soap11.xml", "text/xml; charset=utf-8"},
		{"ec", "ec", "envelope-soap12.xml", "application/soap+xml"},
	} {
		in := testutil.ReadTestdata(t, tc.file)
		out, meta, err := c.SignMeta(ctx, tc.profile, in, tc.ctype)
		if err != nil {
			t.Fatalf("%s: %v", tc.profile, err)
		}
		cert := keys.Creds[tc.key].Chain[0]
		if meta.Key != tc.key || meta.CertSerial != hexSerial(cert) || len(meta.RequestID) != 24 {
			t.Errorf("%s: meta %+v, want key %s serial %s", tc.profile, meta, tc.key, hexSerial(cert))
		}
		if xo, ok := testutil.XMLSec1Verify(t, out, cert); !ok {
			t.Errorf("%s: xmlsec1 rejects the client's result: %s", tc.profile, xo)
		}
		// Sign (without metadata) returns the same kind of result.
		out2, err := c.Sign(ctx, tc.profile, in, tc.ctype)
		if err != nil || !strings.Contains(string(out2), "SignatureValue") {
			t.Errorf("%s: Sign: %v", tc.profile, err)
		}
	}
}

// TestClientProblemErrors: every refusal reaches the caller as a
// *client.ProblemError carrying the server's problem document, so callers branch
// on Code; nothing signed comes back.
func TestClientProblemErrors(t *testing.T) {
	c := serveClient(t, clientTestConfig(t, apitest.Keys(t)))
	ctx := context.Background()
	env := testutil.ReadTestdata(t, "envelope-soap11.xml")
	digest := sha256.Sum256([]byte("x"))
	b64 := base64.StdEncoding.EncodeToString(digest[:])
	cases := []struct {
		name   string
		call   func() error
		status int
		code   string
	}{
		{"forbidden profile", func() error { _, err := c.Sign(ctx, "nobody", env, "text/xml"); return err }, 403, api.CodeForbidden},
		{"unknown profile looks forbidden", func() error { _, err := c.Sign(ctx, "nope", env, "text/xml"); return err }, 403, api.CodeForbidden},
		{"wrong content type", func() error { _, err := c.Sign(ctx, "default", env, "application/json"); return err }, 415, api.CodeUnsupportedMedia},
		{"malformed xml", func() error { _, err := c.Sign(ctx, "default", []byte("<a><b></a>"), "text/xml"); return err }, 400, string(wss.CodeMalformedXML)},
		{"oversize", func() error {
			_, err := c.Sign(ctx, "default", append(env, strings.Repeat(" ", 5000)...), "text/xml")
			return err
		}, 413, api.CodeBodyTooLarge},
		{"empty profile", func() error { _, err := c.Sign(ctx, "", env, "text/xml"); return err }, 400, api.CodeBadRequest},
		{"raw sign forbidden key", func() error {
			_, err := c.RawSign(ctx, "other", client.RawSignRequest{Digest: b64, Hash: "SHA-256", Scheme: "pkcs1v15"})
			return err
		}, 403, api.CodeForbidden},
		{"raw sign unknown key", func() error {
			_, err := c.RawSign(ctx, "no-such-key", client.RawSignRequest{Digest: b64, Hash: "SHA-256", Scheme: "pkcs1v15"})
			return err
		}, 403, api.CodeForbidden},
		{"raw sign short digest", func() error {
			_, err := c.RawSign(ctx, "rsa", client.RawSignRequest{Digest: base64.StdEncoding.EncodeToString(digest[:20]), Hash: "SHA-256", Scheme: "pkcs1v15"})
			return err
		}, 400, api.CodeBadRequest},
		{"raw sign scheme of another key type", func() error {
			_, err := c.RawSign(ctx, "ec", client.RawSignRequest{Digest: b64, Hash: "SHA-256", Scheme: "pkcs1v15"})
			return err
		}, 400, api.CodeBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var pe *client.ProblemError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T), want *client.ProblemError", err, err)
			}
			if pe.Status != tc.status || pe.Code != tc.code || pe.Type != api.ProblemTypeBase+tc.code || pe.Title == "" {
				t.Errorf("problem %+v, want status %d code %s", pe.Problem, tc.status, tc.code)
			}
			if len(pe.RequestID) != 24 {
				t.Errorf("request id %q", pe.RequestID)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, pe.Title) || !strings.HasSuffix(msg, "("+tc.code+", request "+pe.RequestID+")") {
				t.Errorf("Error() = %q", msg)
			}
		})
	}
}

func TestClientKeys(t *testing.T) {
	keys := apitest.Keys(t)
	c := serveClient(t, clientTestConfig(t, keys))
	got, err := c.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "ec" || got[1].Name != "rsa" {
		t.Fatalf("keys %+v", got)
	}
	// "nobody" uses key ec as well, but this caller may not: not listed.
	if strings.Join(got[0].Profiles, ",") != "ec" || got[0].Algorithm != "EC-P-256" {
		t.Errorf("ec entry %+v", got[0])
	}
	if got[1].Serial != hexSerial(keys.Creds["rsa"].Chain[0]) || !got[1].NotAfter.Equal(keys.Creds["rsa"].Chain[0].NotAfter) {
		t.Errorf("rsa entry %+v", got[1])
	}
}

// TestClientRawSign: every scheme and format the client sends yields a
// signature that the key's public half verifies, and the wrong digest does
// not (the check can fail).
func TestClientRawSign(t *testing.T) {
	keys := apitest.Keys(t)
	c := serveClient(t, clientTestConfig(t, keys))
	ctx := context.Background()
	digest := sha256.Sum256([]byte("raw signing through the client"))
	other := sha256.Sum256([]byte("something else"))
	rsaPub := keys.Creds["rsa"].Signer.Public().(*rsa.PublicKey)
	ecPub := keys.Creds["ec"].Signer.Public().(*ecdsa.PublicKey)
	for _, tc := range []struct {
		key, scheme, format string
		verify              func(d, sig []byte) bool
	}{
		{"rsa", "pkcs1v15", "", func(d, sig []byte) bool { return rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, d, sig) == nil }},
		{"rsa", "pss", "", func(d, sig []byte) bool {
			return rsa.VerifyPSS(rsaPub, crypto.SHA256, d, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}},
		{"ec", "ecdsa", "", func(d, sig []byte) bool { return ecdsa.VerifyASN1(ecPub, d, sig) }},
		{"ec", "ecdsa", "der", func(d, sig []byte) bool { return ecdsa.VerifyASN1(ecPub, d, sig) }},
		{"ec", "ecdsa", "raw", func(d, sig []byte) bool {
			if len(sig) != 64 {
				return false
			}
			r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			return ecdsa.Verify(ecPub, d, r, s)
		}},
	} {
		name := tc.key + "/" + tc.scheme + "/" + tc.format
		sig, err := c.RawSign(ctx, tc.key, client.RawSignRequest{
			Digest: base64.StdEncoding.EncodeToString(digest[:]), Hash: "SHA-256", Scheme: tc.scheme, Format: tc.format,
		})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !tc.verify(digest[:], sig) {
			t.Errorf("%s: the signature does not verify", name)
		}
		if tc.verify(other[:], sig) {
			t.Errorf("%s: the signature verifies over another digest", name)
		}
	}
}

func TestClientHealthReady(t *testing.T) {
	c := serveClient(t, clientTestConfig(t, apitest.Keys(t)))
	ctx := context.Background()
	h, err := c.Health(ctx)
	if err != nil || h.Status != "alive" {
		t.Errorf("health %+v, %v", h, err)
	}
	r, err := c.Ready(ctx)
	if err != nil || r.Status != "ready" || r.Tokens["mem"] != "online" {
		t.Errorf("ready %+v, %v", r, err)
	}
}

// TestClientTokenOffline: a down token is client.ErrNotReady with the states from
// Ready, and a ProblemError with Retry-After from Sign; health stays up.
func TestClientTokenOffline(t *testing.T) {
	keys := apitest.Keys(t)
	keys.Offline = true
	c := serveClient(t, clientTestConfig(t, keys))
	ctx := context.Background()
	r, err := c.Ready(ctx)
	if !errors.Is(err, client.ErrNotReady) || r == nil || r.Status != "not-ready" || r.Tokens["mem"] != "offline" {
		t.Errorf("ready %+v, %v; want client.ErrNotReady with the token states", r, err)
	}
	_, err = c.Sign(ctx, "default", testutil.ReadTestdata(t, "envelope-soap11.xml"), "text/xml")
	var pe *client.ProblemError
	if !errors.As(err, &pe) || pe.Code != api.CodeTokenUnavailable || pe.Status != 503 || pe.RetryAfter != 5*time.Second {
		t.Errorf("sign with the token offline: %v (%+v)", err, pe)
	}
	if _, err := c.Health(ctx); err != nil {
		t.Errorf("health while the token is offline: %v", err)
	}
}

// TestClientUnreachable: no socket, and a socket nobody listens on, are
// both client.ErrUnreachable (the CLI's exit status 3), never a ProblemError.
func TestClientUnreachable(t *testing.T) {
	dir, err := os.MkdirTemp("", "wscl")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	stale := filepath.Join(dir, "stale")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	for _, sock := range []string{filepath.Join(dir, "missing"), stale} {
		_, err := client.New(sock).Keys(context.Background())
		var pe *client.ProblemError
		if !errors.Is(err, client.ErrUnreachable) || errors.As(err, &pe) {
			t.Errorf("%s: %v, want client.ErrUnreachable", filepath.Base(sock), err)
		}
	}
}

// TestClientVerifyRefused: a verify request the server refuses is a
// ProblemError, not a verdict.
func TestClientVerifyRefused(t *testing.T) {
	c := serveClient(t, clientTestConfig(t, apitest.Keys(t)))
	res, err := c.Verify(context.Background(), "no-such-verify-profile", testutil.ReadTestdata(t, "envelope-soap11.xml"), "text/xml", true)
	var pe *client.ProblemError
	if res != nil || !errors.As(err, &pe) || pe.Status < 400 || pe.Code == "" {
		t.Errorf("verify with an unknown profile: %+v, %v", res, err)
	}
}

// TestClientVerify: the client decodes the handler's verdicts: valid with
// signer, signed parts, timestamp and algorithms; per-reference records
// with explain; a tampered message is a verdict (nil error), not a
// problem.
func TestClientVerify(t *testing.T) {
	keys := apitest.Keys(t)
	c := serveClient(t, clientTestConfig(t, keys))
	ctx := context.Background()
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	cert := keys.Creds["rsa"].Chain[0]
	sum := sha256.Sum256(cert.Raw)
	for _, explain := range []bool{false, true} {
		signed, err := c.Sign(ctx, "default", in, "text/xml")
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Verify(ctx, "rsa", signed, "text/xml", explain)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Valid || res.Code != "" || res.Signer == nil || res.Signer.SHA256 != hex.EncodeToString(sum[:]) ||
			res.Signer.Serial != hexSerial(cert) || !res.Signer.NotAfter.Equal(cert.NotAfter) ||
			!slices.Contains(res.Signed, "/Envelope/Body") || res.Timestamp == nil || res.Timestamp.Created.IsZero() ||
			res.Algorithms == nil || res.Algorithms.Signature == "" || len(res.Raw) == 0 {
			t.Errorf("explain %v: verdict %+v", explain, res)
		}
		if explain != (len(res.Explain) > 0) {
			t.Errorf("explain %v: %d explain records", explain, len(res.Explain))
		}
		for _, e := range res.Explain {
			if !e.Match || e.Expected != e.Computed || e.CanonicalLength == 0 {
				t.Errorf("explain record %+v", e)
			}
		}
	}
	signed, err := c.Sign(ctx, "default", in, "text/xml")
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(signed, []byte(">1234.50<"), []byte(">9234.50<"), 1)
	res, err := c.Verify(ctx, "rsa", tampered, "text/xml", false)
	if err != nil || res.Valid || res.Code != "digest-mismatch" {
		t.Errorf("tampered: %+v, %v", res, err)
	}
}

// TestClientEncryptDecrypt: encrypt for the profile's recipient or for a
// certificate sent with the request, decrypt with the key, get the Body
// back; the refusals are ProblemErrors with their codes.
func TestClientEncryptDecrypt(t *testing.T) {
	keys := apitest.Keys(t)
	c := serveClient(t, clientTestConfig(t, keys))
	ctx := context.Background()
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	secret := []byte(">1234.50<")
	cert := keys.Creds["rsa"].Chain[0]
	for _, tc := range []struct {
		profile   string
		recipient *x509.Certificate
	}{{"to-rsa", nil}, {"requester", cert}} {
		enc, err := c.Encrypt(ctx, tc.profile, in, "text/xml", tc.recipient)
		if err != nil {
			t.Fatalf("%s: %v", tc.profile, err)
		}
		if bytes.Contains(enc, secret) || !bytes.Contains(enc, []byte("EncryptedData")) {
			t.Fatalf("%s: the Body is not encrypted:\n%s", tc.profile, enc)
		}
		dec, err := c.Decrypt(ctx, "rsa", enc, "text/xml")
		if err != nil {
			t.Fatalf("%s: decrypt: %v", tc.profile, err)
		}
		if !bytes.Contains(dec, secret) || bytes.Contains(dec, []byte("EncryptedData")) {
			t.Errorf("%s: decrypted:\n%s", tc.profile, dec)
		}
	}
	for _, tc := range []struct {
		name string
		call func() error
		code string
	}{
		{"recipient header refused by the profile", func() error { _, err := c.Encrypt(ctx, "to-rsa", in, "text/xml", cert); return err }, api.CodeForbidden},
		{"no recipient at all", func() error { _, err := c.Encrypt(ctx, "requester", in, "text/xml", nil); return err }, api.CodeBadRequest},
		{"nothing to decrypt", func() error { _, err := c.Decrypt(ctx, "rsa", in, "text/xml"); return err }, string(wss.CodeNoEncryptedKey)},
	} {
		var pe *client.ProblemError
		if err := tc.call(); !errors.As(err, &pe) || pe.Code != tc.code {
			t.Errorf("%s: %v, want a problem with code %s", tc.name, err, tc.code)
		}
	}
}

// hexSerial is a certificate serial as the daemon writes it: lowercase hex.
func hexSerial(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// TestClientSignConfirming: the response carries one signed
// SignatureConfirmation per request SignatureValue the client passed, or
// one without Value for an unsigned request; a confirming profile refuses
// a plain Sign.
func TestClientSignConfirming(t *testing.T) {
	keys := apitest.Keys(t)
	c := serveClient(t, clientTestConfig(t, keys))
	ctx := context.Background()
	env := testutil.ReadTestdata(t, "envelope-soap11.xml")
	request, err := c.Sign(ctx, "default", env, "text/xml")
	if err != nil {
		t.Fatal(err)
	}
	sv, err := wss.RequestSignatureValues(context.Background(), request, "", wss.Limits{})
	if err != nil || len(sv) != 1 {
		t.Fatalf("request signature values %d, %v", len(sv), err)
	}
	for _, tc := range []struct {
		name   string
		values [][]byte
		want   []string
	}{
		{"signed request", sv, []string{`Value="` + base64.StdEncoding.EncodeToString(sv[0]) + `"`}},
		{"unsigned request", nil, []string{"SignatureConfirmation", "/>"}},
	} {
		out, _, err := c.SignConfirming(ctx, "confirm", env, "text/xml", tc.values)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if n := bytes.Count(out, []byte("<wsse11:SignatureConfirmation")); n != 1 {
			t.Errorf("%s: %d SignatureConfirmation elements, want 1", tc.name, n)
		}
		for _, w := range tc.want {
			if !bytes.Contains(out, []byte(w)) {
				t.Errorf("%s: response lacks %q", tc.name, w)
			}
		}
		if tc.values == nil && bytes.Contains(out, []byte("SignatureConfirmation Value=")) {
			t.Errorf("%s: a Value on the confirmation of an unsigned request", tc.name)
		}
	}
	var pe *client.ProblemError
	if _, err := c.Sign(ctx, "confirm", env, "text/xml"); !errors.As(err, &pe) || pe.Code != api.CodeBadRequest {
		t.Errorf("plain sign with a confirming profile: %v, want %s", err, api.CodeBadRequest)
	}
}

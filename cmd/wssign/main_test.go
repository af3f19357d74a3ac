package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/api/apitest"
	"github.com/wssignd/wssignd/client"
	"github.com/wssignd/wssignd/internal/testutil"
	"github.com/wssignd/wssignd/wss"
)

// ctypeRecorder remembers the Content-Type of the last request, to check
// what the CLI sent.
type ctypeRecorder struct {
	h    http.Handler
	mu   sync.Mutex
	last string
}

func (c *ctypeRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.last = r.Header.Get("Content-Type")
	c.mu.Unlock()
	c.h.ServeHTTP(w, r)
}

func (c *ctypeRecorder) lastType() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

type testServer struct {
	socket string
	keys   *apitest.MemKeys
	rec    *ctypeRecorder
}

// startServer serves the real API handler (apitest.Config) on a fresh Unix
// socket, with peer credentials as in the daemon.
func startServer(t *testing.T, offline bool) *testServer {
	t.Helper()
	keys := apitest.Keys(t)
	keys.Offline = offline
	rec := &ctypeRecorder{h: api.New(apitest.Config(t, keys))}
	return &testServer{socket: apitest.Serve(t, rec), keys: keys, rec: rec}
}

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(stdin string, args ...string) result {
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// problemLine is how a refused request is reported on stderr.
var problemLine = regexp.MustCompile(`^wssign: [A-Z][^:]+: .+ \(([a-z-]+), request [0-9a-f]{24}\)\n$`)

// TestCLISign: sign from a file and from standard input, with the socket
// from the flag (before or after the command) or $WSSIGN_SOCKET; xmlsec1
// accepts every output; SOAP 1.2 is sent as application/soap+xml.
func TestCLISign(t *testing.T) {
	srv := startServer(t, false)
	file := filepath.Join(testutil.RepoRoot(t), "testdata", "envelope-soap11.xml")
	soap12 := string(testutil.ReadTestdata(t, "envelope-soap12.xml"))
	cases := []struct {
		name      string
		env       string // WSSIGN_SOCKET
		stdin     string
		args      []string
		key       string
		wantCType string
	}{
		{"file global -socket", "", "", []string{"-socket", srv.socket, "sign", file}, "rsa", "text/xml"},
		{"file command -socket", "", "", []string{"sign", "-socket", srv.socket, "-profile", "default", file}, "rsa", "text/xml"},
		{"stdin dash env socket soap 1.2 sniffed", srv.socket, soap12, []string{"sign", "-profile", "ec", "-"}, "ec", "application/soap+xml"},
		{"stdin explicit content type", srv.socket, soap12, []string{"sign", "-profile", "ec", "-content-type", "application/soap+xml; charset=utf-8"}, "ec", "application/soap+xml; charset=utf-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			getenv = func(k string) string {
				if k == "WSSIGN_SOCKET" {
					return tc.env
				}
				return ""
			}
			defer func() { getenv = os.Getenv }()
			r := runCLI(tc.stdin, tc.args...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			if got := srv.rec.lastType(); got != tc.wantCType {
				t.Errorf("sent Content-Type %q, want %q", got, tc.wantCType)
			}
			if xo, ok := testutil.XMLSec1Verify(t, []byte(r.stdout), srv.keys.Creds[tc.key].Chain[0]); !ok {
				t.Errorf("xmlsec1 rejects the CLI's output: %s", xo)
			}
		})
	}
}

// TestCLIExitCodes: each documented exit status, with the problem printed
// from the daemon's problem document on stderr.
func TestCLIExitCodes(t *testing.T) {
	srv := startServer(t, false)
	env := string(testutil.ReadTestdata(t, "envelope-soap11.xml"))
	gone := filepath.Join(t.TempDir(), "no-such.sock")
	s := srv.socket
	cases := []struct {
		name    string
		stdin   string
		args    []string
		code    int
		problem string // the code in the problem line, if any
		stderr  string // a substring of stderr otherwise
	}{
		{"forbidden profile", env, []string{"-socket", s, "sign", "-profile", "nobody"}, 1, "forbidden", ""},
		{"malformed xml", "<a><b></a>", []string{"-socket", s, "sign"}, 1, "malformed-xml", ""},
		{"not soap", "<a/>", []string{"-socket", s, "sign"}, 1, "not-soap", ""},
		{"raw sign forbidden key", "", []string{"-socket", s, "raw-sign", "-key", "other", "-scheme", "pkcs1v15", strings.Repeat("ab", 32)}, 1, "forbidden", ""},
		{"raw sign wrong scheme", "", []string{"-socket", s, "raw-sign", "-key", "ec", "-scheme", "pss", strings.Repeat("ab", 32)}, 1, "bad-request", ""},
		{"no command", "", []string{"-socket", s}, 2, "", "usage:"},
		{"unknown command", "", []string{"-socket", s, "frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"unknown flag", "", []string{"sign", "-nope"}, 2, "", "flag provided but not defined"},
		{"missing file", "", []string{"-socket", s, "sign", "/nonexistent/envelope.xml"}, 2, "", "no such file"},
		{"two files", "", []string{"-socket", s, "sign", "a", "b"}, 2, "", "one input file"},
		{"raw sign without key", "", []string{"-socket", s, "raw-sign", "-scheme", "ecdsa", strings.Repeat("ab", 32)}, 2, "", "-key and -scheme"},
		{"raw sign short digest", "", []string{"-socket", s, "raw-sign", "-key", "rsa", "-scheme", "pkcs1v15", "abcd"}, 2, "", "neither"},
		{"raw sign bad hash", "", []string{"-socket", s, "raw-sign", "-key", "rsa", "-scheme", "pkcs1v15", "-hash", "MD5", "ab"}, 2, "", "-hash"},
		{"keys with an argument", "", []string{"-socket", s, "keys", "x"}, 2, "", "no arguments"},
		{"no socket", env, []string{"-socket", gone, "sign"}, 3, "", "cannot reach wssignd at " + gone},
		{"no socket keys", "", []string{"-socket", gone, "keys"}, 3, "", "cannot reach wssignd"},
		{"no socket health", "", []string{"-socket", gone, "health"}, 3, "", "cannot reach wssignd"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(tc.stdin, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", r.code, tc.code, r.stderr)
			}
			if tc.problem != "" {
				m := problemLine.FindStringSubmatch(r.stderr)
				if m == nil || m[1] != tc.problem {
					t.Errorf("stderr %q, want a problem line with code %s", r.stderr, tc.problem)
				}
			} else if !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr %q, want it to contain %q", r.stderr, tc.stderr)
			}
			if tc.code != 0 && r.stdout != "" {
				t.Errorf("a failed command wrote to stdout: %q", r.stdout)
			}
		})
	}
}

func TestCLIHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}} {
		r := runCLI("", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Exit status") {
			t.Errorf("%v: exit %d, stdout %q", args, r.code, r.stdout)
		}
	}
}

func TestCLIKeys(t *testing.T) {
	srv := startServer(t, false)
	r := runCLI("", "-socket", srv.socket, "keys")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.HasPrefix(lines[1], "ec ") || !strings.Contains(lines[1], "EC-P-256") ||
		!strings.HasPrefix(lines[2], "rsa ") || !strings.Contains(lines[2], "RSA-2048") {
		t.Errorf("keys table:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "nobody") {
		t.Error("keys lists a profile this caller may not use")
	}
	r = runCLI("", "-socket", srv.socket, "keys", "-json")
	var got struct{ Keys []client.KeyInfo }
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got.Keys) != 2 {
		t.Fatalf("keys -json: %v %s", err, r.stdout)
	}
	b, _ := pem.Decode([]byte(got.Keys[1].CertificatePEM))
	if b == nil || !bytes.Equal(b.Bytes, srv.keys.Creds["rsa"].Chain[0].Raw) {
		t.Error("keys -json: the rsa certificate is not the key's")
	}
}

func TestCLIHealth(t *testing.T) {
	up := startServer(t, false)
	r := runCLI("", "-socket", up.socket, "health")
	if r.code != 0 || r.stdout != "alive: alive\nready: ready\ntoken mem: online\n" {
		t.Errorf("health: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	down := startServer(t, true)
	r = runCLI("", "-socket", down.socket, "health")
	if r.code != 1 || !strings.Contains(r.stdout, "token mem: offline") || !strings.Contains(r.stderr, "not ready") {
		t.Errorf("health with the token offline: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(string(testutil.ReadTestdata(t, "envelope-soap11.xml")), "-socket", down.socket, "sign")
	if m := problemLine.FindStringSubmatch(r.stderr); r.code != 1 || m == nil || m[1] != "token-unavailable" {
		t.Errorf("sign with the token offline: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestCLIRawSign: digests given as hex, as a binary file, as a hex file
// and on standard input; every output encoding; signatures checked with
// the public key, and not valid for another digest.
func TestCLIRawSign(t *testing.T) {
	srv := startServer(t, false)
	digest := sha256.Sum256([]byte("raw signing from the command line"))
	other := sha256.Sum256([]byte("another message"))
	dir := t.TempDir()
	binFile := filepath.Join(dir, "digest.bin")
	hexFile := filepath.Join(dir, "digest.hex")
	if err := os.WriteFile(binFile, digest[:], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hexFile, []byte(hex.EncodeToString(digest[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rsaPub := srv.keys.Creds["rsa"].Signer.Public().(*rsa.PublicKey)
	ecPub := srv.keys.Creds["ec"].Signer.Public().(*ecdsa.PublicKey)
	pkcs1 := func(d, sig []byte) bool { return rsa.VerifyPKCS1v15(rsaPub, crypto.SHA256, d, sig) == nil }
	der := func(d, sig []byte) bool { return ecdsa.VerifyASN1(ecPub, d, sig) }
	hexArg := hex.EncodeToString(digest[:])
	cases := []struct {
		name   string
		stdin  string
		args   []string
		decode func(string) ([]byte, error)
		verify func(d, sig []byte) bool
	}{
		{"rsa pkcs1v15 hex arg", "", []string{"-key", "rsa", "-scheme", "pkcs1v15", hexArg}, b64, pkcs1},
		{"rsa pss binary file hex out", "", []string{"-key", "rsa", "-scheme", "pss", "-encoding", "hex", binFile}, unhex, func(d, sig []byte) bool {
			return rsa.VerifyPSS(rsaPub, crypto.SHA256, d, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		}},
		{"ec der hex file", "", []string{"-key", "ec", "-scheme", "ecdsa", hexFile}, b64, der},
		{"ec raw stdin binary out", string(digest[:]), []string{"-key", "ec", "-scheme", "ecdsa", "-format", "raw", "-encoding", "binary", "-"}, func(s string) ([]byte, error) { return []byte(s), nil },
			func(d, sig []byte) bool {
				if len(sig) != 64 {
					return false
				}
				return ecdsa.Verify(ecPub, d, new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(tc.stdin, append([]string{"-socket", srv.socket, "raw-sign"}, tc.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			sig, err := tc.decode(r.stdout)
			if err != nil {
				t.Fatalf("output %q: %v", r.stdout, err)
			}
			if !tc.verify(digest[:], sig) {
				t.Error("the signature does not verify")
			}
			if tc.verify(other[:], sig) {
				t.Error("the signature verifies over another digest")
			}
		})
	}
}

func b64(s string) ([]byte, error)   { return base64.StdEncoding.DecodeString(strings.TrimSpace(s)) }
func unhex(s string) ([]byte, error) { return hex.DecodeString(strings.TrimSpace(s)) }

// TestCLIVerifyRefused: a verify request the daemon refuses is exit 1 with
// the problem line, not a verdict (exit 4 is for "not valid" verdicts,
// exercised against the daemon in cmd/wssignd).
func TestCLIVerifyRefused(t *testing.T) {
	srv := startServer(t, false)
	r := runCLI(string(testutil.ReadTestdata(t, "envelope-soap11.xml")), "-socket", srv.socket, "verify", "-profile", "no-such-profile")
	if r.code != 1 || problemLine.FindStringSubmatch(r.stderr) == nil || r.stdout != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestSniffContentType(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>`, "text/xml"},
		{`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"/>`, "application/soap+xml"},
		{``, "text/xml"},
	} {
		if got := sniffContentType([]byte(tc.in)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestCLIVerify: sign → verify round trip in process: a valid verdict is
// exit 0 with the JSON verdict on stdout; a tampered message and a replay
// are exit 4 with the failed check on stderr; -explain adds the
// per-reference records.
func TestCLIVerify(t *testing.T) {
	srv := startServer(t, false)
	in := string(testutil.ReadTestdata(t, "envelope-soap11.xml"))
	sign := func() string {
		t.Helper()
		r := runCLI(in, "-socket", srv.socket, "sign")
		if r.code != 0 {
			t.Fatalf("sign: exit %d: %s", r.code, r.stderr)
		}
		return r.stdout
	}
	type verdict struct {
		Valid   bool
		Code    string
		Explain []struct{ Match bool }
	}
	check := func(name, stdin string, args []string, code int, valid bool, vcode string, explain bool) {
		t.Helper()
		r := runCLI(stdin, append([]string{"-socket", srv.socket, "verify", "-profile", "rsa"}, args...)...)
		var v verdict
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Fatalf("%s: %v: %q", name, err, r.stdout)
		}
		if r.code != code || v.Valid != valid || v.Code != vcode || explain != (len(v.Explain) > 0) {
			t.Errorf("%s: exit %d, verdict %+v, stderr %q", name, r.code, v, r.stderr)
		}
		if !valid && !strings.HasPrefix(r.stderr, "wssign: the signature is not valid: "+vcode+": ") {
			t.Errorf("%s: stderr %q", name, r.stderr)
		}
	}
	signed := sign()
	check("valid", signed, nil, 0, true, "", false)
	check("replay", signed, nil, 4, false, "replay", false)
	check("explain", sign(), []string{"-explain"}, 0, true, "", true)
	check("tampered", strings.Replace(sign(), ">1234.50<", ">9234.50<", 1), nil, 4, false, "digest-mismatch", false)
}

// TestCLIEncryptDecrypt: encrypt (for the profile's recipient, or for a
// -recipient-cert PEM file) then decrypt gives the Body back; a bad
// certificate file is a usage error.
func TestCLIEncryptDecrypt(t *testing.T) {
	srv := startServer(t, false)
	in := string(testutil.ReadTestdata(t, "envelope-soap11.xml"))
	pemFile := filepath.Join(t.TempDir(), "recipient.pem")
	if err := os.WriteFile(pemFile, testutil.CertPEM(srv.keys.Creds["rsa"].Chain[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-profile", "to-rsa"}, {"-profile", "requester", "-recipient-cert", pemFile}} {
		r := runCLI(in, append([]string{"-socket", srv.socket, "encrypt"}, args...)...)
		if r.code != 0 || strings.Contains(r.stdout, ">1234.50<") || !strings.Contains(r.stdout, "EncryptedData") {
			t.Fatalf("encrypt %v: exit %d, stderr %q", args, r.code, r.stderr)
		}
		d := runCLI(r.stdout, "-socket", srv.socket, "decrypt", "-profile", "rsa")
		if d.code != 0 || !strings.Contains(d.stdout, ">1234.50<") {
			t.Errorf("decrypt after encrypt %v: exit %d, stderr %q", args, d.code, d.stderr)
		}
	}
	r := runCLI(in, "-socket", srv.socket, "encrypt", "-profile", "requester", "-recipient-cert", filepath.Join(testutil.RepoRoot(t), "go.mod"))
	if r.code != 2 || !strings.Contains(r.stderr, "-recipient-cert") {
		t.Errorf("encrypt with a bad certificate file: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(in, "-socket", srv.socket, "decrypt", "-profile", "rsa")
	if m := problemLine.FindStringSubmatch(r.stderr); r.code != 1 || m == nil || m[1] != "no-encrypted-key" {
		t.Errorf("decrypt of a plain envelope: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestCLISignConfirm: -confirm sends the answered request's SignatureValues
// (or "unsigned") to a confirming profile; a bad value is a usage error.
func TestCLISignConfirm(t *testing.T) {
	srv := startServer(t, false)
	env := string(testutil.ReadTestdata(t, "envelope-soap11.xml"))
	req := runCLI(env, "-socket", srv.socket, "sign")
	if req.code != 0 {
		t.Fatalf("sign: exit %d, %s", req.code, req.stderr)
	}
	sv, err := wss.RequestSignatureValues(context.Background(), []byte(req.stdout), "", wss.Limits{})
	if err != nil || len(sv) != 1 {
		t.Fatalf("request signature values %d, %v", len(sv), err)
	}
	b64 := base64.StdEncoding.EncodeToString(sv[0])
	r := runCLI(env, "-socket", srv.socket, "sign", "-profile", "confirm", "-confirm", b64)
	if r.code != 0 || !strings.Contains(r.stdout, `SignatureConfirmation`) || !strings.Contains(r.stdout, `Value="`+b64+`"`) {
		t.Errorf("confirm a signed request: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(env, "-socket", srv.socket, "sign", "-profile", "confirm", "-confirm", "unsigned")
	if r.code != 0 || !strings.Contains(r.stdout, `SignatureConfirmation`) || strings.Contains(r.stdout, `SignatureConfirmation Value=`) {
		t.Errorf("confirm an unsigned request: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := runCLI(env, "-socket", srv.socket, "sign", "-profile", "confirm", "-confirm", "not base64!"); r.code != 2 {
		t.Errorf("bad -confirm value: exit %d, want 2 (usage)", r.code)
	}
	if r := runCLI(env, "-socket", srv.socket, "sign", "-profile", "confirm"); r.code == 0 || !strings.Contains(r.stderr, "bad-request") {
		t.Errorf("confirming profile without -confirm: exit %d, stderr %q", r.code, r.stderr)
	}
}

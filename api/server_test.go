package api

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wssignd/wssignd/internal/testutil"
	"github.com/wssignd/wssignd/wss"
)

// memKeys is an in-memory KeyStore; the SoftHSM2-backed one is tested in
// cmd/wssignd.
type memKeys struct {
	creds   map[string]wss.Credential
	offline bool
}

func (m *memKeys) Credential(_ context.Context, name string) (wss.Credential, error) {
	if m.offline {
		return wss.Credential{}, ErrTokenUnavailable
	}
	c, ok := m.creds[name]
	if !ok {
		return c, errors.New("no such key")
	}
	return c, nil
}

func (m *memKeys) Ready(context.Context) (map[string]string, error) {
	if m.offline {
		return map[string]string{"mem": "offline"}, errors.New("offline")
	}
	return map[string]string{"mem": "online"}, nil
}

func loadCred(t *testing.T, name string) wss.Credential {
	k, c := testutil.TestKey(t, name)
	return wss.Credential{Signer: k, Chain: []*x509.Certificate{c}}
}

// serveUnix serves h on a fresh Unix socket with peer credentials and
// returns a client bound to it.
func serveUnix(t *testing.T, h http.Handler) *http.Client {
	t.Helper()
	sock := serveSocket(t, h)
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
}

// serveSocket serves h on a fresh Unix socket with peer credentials, as
// the daemon does, and returns the socket's path.
func serveSocket(t *testing.T, h http.Handler) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "wsapi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ConnContext: ConnContext}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func newTestServer(t *testing.T, keys *memKeys, access Access) *http.Client {
	return serveUnix(t, New(Config{
		Keys: keys,
		Profiles: map[string]*Profile{
			"default": {Key: "rsa", Access: access},
			"ec":      {Key: "ec", Access: access},
			"nobody":  {Key: "ec", Access: Access{UIDs: []uint32{4_000_000_000}}},
		},
		RawKeys:      map[string]Access{"rsa": access, "ec": access, "locked": {UIDs: []uint32{4_000_000_000}}},
		MaxBodyBytes: 4096,
		Admin:        access,
	}))
}

func do(t *testing.T, c *http.Client, method, path, ctype string, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://wssignd"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestSignOverSocket(t *testing.T) {
	keys := &memKeys{creds: map[string]wss.Credential{"rsa": loadCred(t, "rsa2048"), "ec": loadCred(t, "ecp256")}}
	c := newTestServer(t, keys, Access{UIDs: []uint32{uint32(os.Getuid())}})
	env := string(testutil.ReadTestdata(t, "envelope-soap12.xml"))
	for _, profile := range []string{"default", "ec"} {
		ct := "application/soap+xml; charset=utf-8"
		resp, body := do(t, c, "POST", "/v1/soap/sign?profile="+profile, ct, env, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", profile, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Content-Type"); got != ct {
			t.Errorf("Content-Type %q, want the request's %q", got, ct)
		}
		if resp.Header.Get("Wssignd-Key") == "" || resp.Header.Get("Wssignd-Cert-Serial") == "" || resp.Header.Get("Wssignd-Request-Id") == "" {
			t.Errorf("missing Wssignd-* headers: %v", resp.Header)
		}
		cert := keys.creds[map[string]string{"default": "rsa", "ec": "ec"}[profile]].Chain[0]
		if out, ok := testutil.XMLSec1Verify(t, body, cert); !ok {
			t.Errorf("%s: xmlsec1 rejects: %s", profile, out)
		}
	}
}

func TestKeysListsOnlyAllowed(t *testing.T) {
	keys := &memKeys{creds: map[string]wss.Credential{"rsa": loadCred(t, "rsa2048"), "ec": loadCred(t, "ecp256")}}
	c := newTestServer(t, keys, Access{UIDs: []uint32{uint32(os.Getuid())}})
	resp, body := do(t, c, "GET", "/v1/keys", "", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var got struct{ Keys []KeyInfo }
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Keys) != 2 || got.Keys[0].Name != "ec" || got.Keys[1].Name != "rsa" {
		t.Fatalf("keys %+v", got.Keys)
	}
	// "nobody" uses key ec too, but this caller may not use it: not listed.
	if strings.Join(got.Keys[0].Profiles, ",") != "ec" {
		t.Errorf("ec profiles %v", got.Keys[0].Profiles)
	}
	rsaKey := got.Keys[1]
	if rsaKey.Algorithm != "RSA-2048" || !strings.Contains(rsaKey.Subject, "wssignd test RSA") || rsaKey.Serial != "1001" {
		t.Errorf("rsa entry %+v", rsaKey)
	}
	b, _ := pem.Decode([]byte(rsaKey.CertificatePEM))
	if b == nil || string(b.Bytes) != string(keys.creds["rsa"].Chain[0].Raw) {
		t.Error("certificate_pem is not the key's certificate")
	}
}

func TestProblems(t *testing.T) {
	keys := &memKeys{creds: map[string]wss.Credential{"rsa": loadCred(t, "rsa2048"), "ec": loadCred(t, "ecp256")}}
	c := newTestServer(t, keys, Access{UIDs: []uint32{uint32(os.Getuid())}})
	okEnv := string(testutil.ReadTestdata(t, "envelope-soap11.xml"))
	const xml = "text/xml"
	cases := []struct {
		name, method, path, ctype, body string
		hdr                             map[string]string
		status                          int
		code                            string
	}{
		{"malformed xml", "POST", "/v1/soap/sign?profile=default", xml, "<a><b></a>", nil, 400, "malformed-xml"},
		{"not soap", "POST", "/v1/soap/sign?profile=default", xml, "<a/>", nil, 422, "not-soap"},
		{"doctype", "POST", "/v1/soap/sign?profile=default", xml, `<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>`, nil, 400, "dtd-forbidden"},
		{"empty body", "POST", "/v1/soap/sign?profile=default", xml, "", nil, 400, "bad-request"},
		{"unknown profile", "POST", "/v1/soap/sign?profile=nope", xml, okEnv, nil, 403, "forbidden"},
		{"missing profile", "POST", "/v1/soap/sign", xml, okEnv, nil, 400, "bad-request"},
		{"two profiles", "POST", "/v1/soap/sign?profile=default&profile=ec", xml, okEnv, nil, 400, "bad-request"},
		{"forbidden profile", "POST", "/v1/soap/sign?profile=nobody", xml, okEnv, nil, 403, "forbidden"},
		{"wrong content type", "POST", "/v1/soap/sign?profile=default", "application/json", okEnv, nil, 415, "unsupported-media-type"},
		{"latin-1", "POST", "/v1/soap/sign?profile=default", "text/xml; charset=iso-8859-1", okEnv, nil, 415, "unsupported-media-type"},
		{"wrong method", "GET", "/v1/soap/sign?profile=default", "", "", nil, 405, "method-not-allowed"},
		{"raw sign unknown key", "POST", "/v1/keys/nope/sign", "application/json", `{}`, nil, 403, "forbidden"},
		{"raw sign forbidden key", "POST", "/v1/keys/locked/sign", "application/json", `{}`, nil, 403, "forbidden"},
		{"raw sign not json", "POST", "/v1/keys/rsa/sign", "text/plain", `{}`, nil, 415, "unsupported-media-type"},
		{"raw sign bad json", "POST", "/v1/keys/rsa/sign", "application/json", `{"digest":`, nil, 400, "bad-request"},
		{"raw sign unknown field", "POST", "/v1/keys/rsa/sign", "application/json", `{"digest":"","hash":"SHA-256","scheme":"pkcs1v15","x":1}`, nil, 400, "bad-request"},
		{"raw sign short digest", "POST", "/v1/keys/rsa/sign", "application/json", `{"digest":"AAAA","hash":"SHA-256","scheme":"pkcs1v15"}`, nil, 400, "bad-request"},
		{"raw sign sha1", "POST", "/v1/keys/rsa/sign", "application/json", `{"digest":"AAAAAAAAAAAAAAAAAAAAAAAAAAA=","hash":"SHA-1","scheme":"pkcs1v15"}`, nil, 400, "bad-request"},
		{"raw sign ecdsa with rsa", "POST", "/v1/keys/rsa/sign", "application/json", `{"digest":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=","hash":"SHA-256","scheme":"ecdsa"}`, nil, 400, "bad-request"},
		{"raw sign pss with ec", "POST", "/v1/keys/ec/sign", "application/json", `{"digest":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=","hash":"SHA-256","scheme":"pss"}`, nil, 400, "bad-request"},
		{"raw sign wrong method", "GET", "/v1/keys/rsa/sign", "", "", nil, 405, "method-not-allowed"},
		{"unknown path", "GET", "/v2/x", "", "", nil, 404, "not-found"},
		{"origin", "POST", "/v1/soap/sign?profile=default", xml, okEnv, map[string]string{"Origin": "http://evil.example"}, 403, "browser-request"},
		{"referer", "GET", "/v1/keys", "", "", map[string]string{"Referer": "http://evil.example/"}, 403, "browser-request"},
		{"oversize", "POST", "/v1/soap/sign?profile=default", xml, okEnv + strings.Repeat(" ", 5000), nil, 413, "body-too-large"},
		{"missing part", "POST", "/v1/soap/sign?profile=default", xml, `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header/></s:Envelope>`, nil, 422, "invalid-soap"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, c, tc.method, tc.path, tc.ctype, tc.body, tc.hdr)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			var p Problem
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			if p.Code != tc.code || p.Type != ProblemTypeBase+tc.code || p.Status != tc.status || p.Title == "" {
				t.Errorf("problem %+v, want code %s", p, tc.code)
			}
			if strings.Contains(string(body), "wsse:Security") || strings.Contains(string(body), "SignatureValue") {
				t.Error("a refused request returned signed content")
			}
		})
	}
}

func TestTokenUnavailable(t *testing.T) {
	keys := &memKeys{offline: true}
	c := newTestServer(t, keys, Access{Anyone: true})
	resp, body := do(t, c, "POST", "/v1/soap/sign?profile=default", "text/xml", string(testutil.ReadTestdata(t, "envelope-soap11.xml")), nil)
	if resp.StatusCode != 503 || !strings.Contains(string(body), "token-unavailable") || resp.Header.Get("Retry-After") == "" {
		t.Errorf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, body = do(t, c, "GET", "/readyz", "", "", nil)
	if resp.StatusCode != 503 || !strings.Contains(string(body), "offline") {
		t.Errorf("readyz %d %s", resp.StatusCode, body)
	}
	resp, _ = do(t, c, "GET", "/healthz", "", "", nil)
	if resp.StatusCode != 200 {
		t.Errorf("healthz %d while the token is offline", resp.StatusCode)
	}
}

func TestPeerCredentials(t *testing.T) {
	var got Peer
	c := serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = PeerFrom(r.Context()) }))
	do(t, c, "GET", "/", "", "", nil)
	if !got.Known || got.UID != uint32(os.Getuid()) || got.GID != uint32(os.Getgid()) || got.PID != int32(os.Getpid()) {
		t.Errorf("peer %+v, want uid %d gid %d pid %d", got, os.Getuid(), os.Getgid(), os.Getpid())
	}
}

func TestAccess(t *testing.T) {
	p := Peer{Known: true, UID: 1000, GID: 100, Groups: []uint32{100, 27}}
	for _, tc := range []struct {
		a    Access
		want bool
	}{
		{Access{}, false},
		{Access{Anyone: true}, true},
		{Access{UIDs: []uint32{1000}}, true},
		{Access{UIDs: []uint32{1001}}, false},
		{Access{GIDs: []uint32{100}}, true},
		{Access{GIDs: []uint32{27}}, true},
		{Access{GIDs: []uint32{28}}, false},
	} {
		if got := tc.a.Allows(p); got != tc.want {
			t.Errorf("%+v allows %+v = %v", tc.a, p, got)
		}
	}
	if (Access{UIDs: []uint32{0}}).Allows(Peer{}) {
		t.Error("an unknown peer passed as uid 0")
	}
}

func TestRawSign(t *testing.T) {
	keys := &memKeys{creds: map[string]wss.Credential{"rsa": loadCred(t, "rsa2048"), "ec": loadCred(t, "ecp256")}}
	c := newTestServer(t, keys, Access{UIDs: []uint32{uint32(os.Getuid())}})
	sum := sha256.Sum256([]byte("hello"))
	digest := base64.StdEncoding.EncodeToString(sum[:])
	for _, tc := range []struct{ key, scheme, format string }{
		{"rsa", "pkcs1v15", ""}, {"rsa", "pss", ""}, {"ec", "ecdsa", ""}, {"ec", "ecdsa", "der"}, {"ec", "ecdsa", "raw"},
	} {
		body := fmt.Sprintf(`{"digest":%q,"hash":"SHA-256","scheme":%q,"format":%q}`, digest, tc.scheme, tc.format)
		resp, out := do(t, c, "POST", "/v1/keys/"+tc.key+"/sign", "application/json", body, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%+v: %d %s", tc, resp.StatusCode, out)
		}
		var rs RawSignResponse
		if err := json.Unmarshal(out, &rs); err != nil {
			t.Fatal(err)
		}
		sig, _ := base64.StdEncoding.DecodeString(rs.Signature)
		pub := keys.creds[tc.key].Chain[0].PublicKey
		var err error
		switch {
		case tc.scheme == "pkcs1v15":
			err = rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), crypto.SHA256, sum[:], sig)
		case tc.scheme == "pss":
			err = rsa.VerifyPSS(pub.(*rsa.PublicKey), crypto.SHA256, sum[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		case tc.format == "raw":
			if len(sig) != 64 || !ecdsa.Verify(pub.(*ecdsa.PublicKey), sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
				err = errors.New("raw ECDSA signature does not verify")
			}
		default:
			if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), sum[:], sig) {
				err = errors.New("DER ECDSA signature does not verify")
			}
		}
		if err != nil {
			t.Errorf("%+v: %v", tc, err)
		}
	}
}

func TestMetricsAndRoutes(t *testing.T) {
	keys := &memKeys{creds: map[string]wss.Credential{"rsa": loadCred(t, "rsa2048"), "ec": loadCred(t, "ecp256")}}
	m := NewMetrics()
	m.SetKeyStore(keys)
	srv := New(Config{Keys: keys, Metrics: m, Profiles: map[string]*Profile{"default": {Key: "rsa", Access: Access{Anyone: true}}}, Admin: Access{Anyone: true}})
	c := serveUnix(t, srv)
	do(t, c, "POST", "/v1/soap/sign?profile=default", "text/xml", string(testutil.ReadTestdata(t, "envelope-soap11.xml")), nil)
	do(t, c, "POST", "/v1/soap/sign?profile=default", "text/xml", "<x", nil)
	do(t, c, "GET", "/no/such/path/1", "", "", nil)
	resp, body := do(t, c, "GET", "/metrics", "", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("metrics %d", resp.StatusCode)
	}
	for _, want := range []string{
		`wssignd_requests_total{code="200",route="/v1/soap/sign"} 1`,
		`wssignd_requests_total{code="400",route="/v1/soap/sign"} 1`,
		`wssignd_requests_total{code="404",route="other"} 1`,
		`wssignd_key_operations_total{key="rsa",op="sign",outcome="ok"} 1`,
		`wssignd_token_state{state="online",token="mem"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	got := strings.Join(srv.Routes(), ",")
	want := "GET /healthz,GET /metrics,GET /readyz,GET /v1/keys,POST /v1/keys/{name}/sign,POST /v1/soap/decrypt,POST /v1/soap/encrypt,POST /v1/soap/sign,POST /v1/soap/verify"
	if got != want {
		t.Errorf("routes %s", got)
	}
}

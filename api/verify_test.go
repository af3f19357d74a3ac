package api

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wssignd/wssignd/internal/testutil"
	"github.com/wssignd/wssignd/wss"
)

type verifyResponse struct {
	Valid     bool   `json:"valid"`
	Code      string `json:"code"`
	Detail    string `json:"detail"`
	Reference string `json:"reference"`
	Signer    *struct {
		Subject, Issuer, Serial, SHA256 string
		NotAfter                        time.Time `json:"not_after"`
	} `json:"signer"`
	Signed    []string `json:"signed"`
	Timestamp *struct {
		Created, Expires time.Time
	} `json:"timestamp"`
	Algorithms *struct {
		Canonicalization, Signature string
		Digests                     []string
	} `json:"algorithms"`
	Explain []struct {
		URI             string `json:"uri"`
		CanonicalSHA256 string `json:"canonical_sha256"`
		CanonicalLength int    `json:"canonical_length"`
		Expected        string `json:"expected"`
		Computed        string `json:"computed"`
	} `json:"explain"`
}

// TestVerifyOverSocket: what /sign returns, /verify accepts with a 200
// verdict; invalid messages get a 200 verdict with a code; only unusable
// requests get problems.
func TestVerifyOverSocket(t *testing.T) {
	rsa, ec := loadCred(t, "rsa2048"), loadCred(t, "ecp256")
	keys := &memKeys{creds: map[string]wss.Credential{"rsa": rsa, "ec": ec}}
	me := Access{UIDs: []uint32{uint32(os.Getuid())}}
	trust, err := wss.NewTrustStore(wss.TrustConfig{Pinned: rsa.Chain})
	if err != nil {
		t.Fatal(err)
	}
	c := serveUnix(t, New(Config{
		Keys:     keys,
		Profiles: map[string]*Profile{"rsa": {Key: "rsa", Access: me}, "ec": {Key: "ec", Access: me}},
		VerifyProfiles: map[string]*VerifyProfile{
			"default": {Verify: wss.VerifyOptions{Trust: trust, Replay: wss.NewReplayCache(100)}, Access: me},
			"nobody":  {Verify: wss.VerifyOptions{Trust: trust}, Access: Access{UIDs: []uint32{4_000_000_000}}},
		},
		MaxBodyBytes: 1 << 16,
	}))
	env := string(testutil.ReadTestdata(t, "envelope-soap11.xml"))
	sign := func(profile string) string {
		resp, body := do(t, c, "POST", "/v1/soap/sign?profile="+profile, "text/xml", env, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("sign: %d %s", resp.StatusCode, body)
		}
		return string(body)
	}
	verify := func(query, msg string) verifyResponse {
		t.Helper()
		resp, body := do(t, c, "POST", "/v1/soap/verify?"+query, "text/xml; charset=utf-8", msg, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("verify: %d %s", resp.StatusCode, body)
		}
		var v verifyResponse
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	signed := sign("rsa")
	v := verify("profile=default&explain=1", signed)
	if !v.Valid || v.Code != "" || v.Signer == nil || v.Signer.Subject != rsa.Chain[0].Subject.String() || v.Signer.SHA256 == "" ||
		v.Signer.NotAfter.IsZero() || v.Timestamp == nil || v.Algorithms == nil || v.Algorithms.Signature != wss.AlgRSASHA256 {
		t.Fatalf("verdict %+v", v)
	}
	if len(v.Signed) != 2 || v.Signed[0] != "/Envelope/Body" || len(v.Explain) != 2 || v.Explain[0].Expected != v.Explain[0].Computed ||
		len(v.Explain[0].CanonicalSHA256) != 64 || v.Explain[0].CanonicalLength == 0 {
		t.Errorf("signed %v explain %+v", v.Signed, v.Explain)
	}
	if v := verify("profile=default", signed); v.Valid || v.Code != "replay" {
		t.Errorf("second submission: %+v", v)
	}
	if v := verify("profile=default", sign("ec")); v.Valid || v.Code != "untrusted-key" || v.Signer != nil {
		t.Errorf("ec-signed: %+v", v)
	}
	tampered := strings.Replace(sign("rsa"), ">1234.50<", ">9234.50<", 1)
	if v := verify("profile=default", tampered); v.Valid || v.Code != "digest-mismatch" || !strings.HasPrefix(v.Reference, "#id-") || len(v.Explain) != 0 {
		t.Errorf("tampered: %+v", v)
	}
	if v := verify("profile=default", env); v.Valid || v.Code != "unsigned" {
		t.Errorf("unsigned: %+v", v)
	}

	for _, p := range []struct {
		name, query, ctype, body string
		status                   int
		code                     string
	}{
		{"malformed", "profile=default", "text/xml", "<soap:Envelope", 400, "malformed-xml"},
		{"dtd", "profile=default", "text/xml", `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>`, 400, "dtd-forbidden"},
		{"unknown profile", "profile=nope", "text/xml", signed, 403, CodeForbidden},
		{"sign profile is no verify profile", "profile=rsa", "text/xml", signed, 403, CodeForbidden},
		{"forbidden", "profile=nobody", "text/xml", signed, 403, CodeForbidden},
		{"no profile", "", "text/xml", signed, 400, CodeBadRequest},
		{"bad explain", "profile=default&explain=yes", "text/xml", signed, 400, CodeBadRequest},
		{"media type", "profile=default", "application/json", signed, 415, CodeUnsupportedMedia},
		{"too large", "profile=default", "text/xml", strings.Repeat(" ", 1<<17), 413, CodeBodyTooLarge},
	} {
		t.Run(p.name, func(t *testing.T) {
			resp, body := do(t, c, "POST", "/v1/soap/verify?"+p.query, p.ctype, p.body, nil)
			var prob Problem
			_ = json.Unmarshal(body, &prob)
			if resp.StatusCode != p.status || prob.Code != p.code || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("got %d %s, want %d %s", resp.StatusCode, body, p.status, p.code)
			}
		})
	}
	if resp, _ := do(t, c, http.MethodGet, "/v1/soap/verify?profile=default", "", "", nil); resp.StatusCode != 405 {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}

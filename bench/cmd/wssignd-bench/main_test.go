package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wssignd/wssignd/bench"
	"github.com/wssignd/wssignd/internal/testutil"
)

// TestXMLSecTemplate checks that the template the harness hands xmlsec1 is one xmlsec1 signs
// and then verifies with the matching certificate, for both keys: the xmlsec1 rows measure a
// command that produces a valid signature.
func TestXMLSecTemplate(t *testing.T) {
	xmlsec1 := testutil.RequireTool(t, "xmlsec1", "xmlsec1")
	keys := filepath.Join(testutil.RepoRoot(t), "testdata", "keys")
	dir := t.TempDir()
	for _, k := range []struct{ pem, alg string }{
		{"rsa2048", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"},
		{"ecp256", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"},
	} {
		tmpl := filepath.Join(dir, k.pem+".xml")
		if err := os.WriteFile(tmpl, xmlsecTemplate(bench.Envelope(10<<10), k.alg), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := xmlsecCheck(xmlsec1, filepath.Join(keys, k.pem+".key"), filepath.Join(keys, k.pem+".crt"), tmpl, dir); err != nil {
			t.Errorf("%s: %v", k.pem, err)
		}
	}
	// The check can fail: the RSA template signed with the EC key must be refused.
	tmpl := filepath.Join(dir, "mismatch.xml")
	if err := os.WriteFile(tmpl, xmlsecTemplate(bench.Envelope(1<<10), "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := xmlsecCheck(xmlsec1, filepath.Join(keys, "ecp256.key"), filepath.Join(keys, "ecp256.crt"), tmpl, dir); err == nil {
		t.Error("xmlsec1 signed an RSA template with an EC key, or verified the result")
	}
}

func TestPercentile(t *testing.T) {
	lat := make([]time.Duration, 100)
	for i := range lat {
		lat[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		lat  []time.Duration
		p    float64
		want time.Duration
	}{
		{lat, 0.50, 50 * time.Millisecond},
		{lat, 0.99, 99 * time.Millisecond},
		{lat, 1.00, 100 * time.Millisecond},
		{lat[:1], 0.99, time.Millisecond},
		{nil, 0.5, 0},
	} {
		if got := percentile(tc.lat, tc.p); got != tc.want {
			t.Errorf("percentile(%d values, %v) = %v, want %v", len(tc.lat), tc.p, got, tc.want)
		}
	}
}

// TestTargets checks the verdicts of the targets table on made-up rows, on both sides of
// each threshold.
func TestTargets(t *testing.T) {
	rsa, ec := &keySpec{Alg: "RSA-2048"}, &keySpec{Alg: "EC P-256"}
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	rows := []row{
		{Path: pathRaw, Alg: rsa.Alg, Conc: 1, OpsPerSec: 1000},
		{Path: pathRaw, Alg: rsa.Alg, Conc: 2, OpsPerSec: 1000},
		{Path: pathRaw, Alg: ec.Alg, Conc: 1, OpsPerSec: 1000},
		{Path: pathE2E, Alg: rsa.Alg, Size: "1KB", Conc: 1, OpsPerSec: 900, Ops: 100, P50: ms(1), P99: ms(3)},   // 90 %: met
		{Path: pathE2E, Alg: rsa.Alg, Size: "1KB", Conc: 2, OpsPerSec: 899, Ops: 100, P50: ms(1), P99: ms(3.1)}, // 89.9 %: not met
		{Path: pathE2E, Alg: ec.Alg, Size: "1KB", Conc: 1, OpsPerSec: 600, Ops: 100, P50: ms(1), P99: ms(2)},    // 60 %: met
		{Path: pathSigner, Alg: rsa.Alg, Conc: 1, P50: ms(1)},
		{Path: pathSigner, Alg: ec.Alg, Conc: 1, P50: ms(0.1)},
		{Path: pathWSS, Alg: rsa.Alg, Size: "100KB", Conc: 1, P50: ms(2)},  // overhead 1.0 ms: met
		{Path: pathWSS, Alg: ec.Alg, Size: "100KB", Conc: 1, P50: ms(1.2)}, // overhead 1.1 ms: not met
		{Path: pathWSS, Alg: rsa.Alg, Size: "1MB", Conc: 1, P50: ms(11)},   // 10 ms/MB
		{Path: pathWSS, Alg: rsa.Alg, Size: "10MB", Conc: 1, P50: ms(126)}, // 12.5 ms/MB: met (× 1.25)
	}
	rp := &report{rows: rows, keys: []*keySpec{rsa, ec}, sessions: 7, rssPeak: 30 * 1024}
	got := map[string]string{}
	for _, tg := range rp.targets() {
		got[tg.name] = tg.verdict
	}
	for name, want := range map[string]string{
		"1KB RSA-2048 end-to-end ≥ 90 % of raw C_Sign at concurrency 1":                                  "met",
		"1KB RSA-2048 end-to-end ≥ 90 % of raw C_Sign at concurrency 2":                                  "**not met**",
		"1KB EC P-256 end-to-end ≥ 60 % of raw C_Sign at concurrency 1":                                  "met",
		"1KB EC P-256 end-to-end ≥ 60 % of raw C_Sign at concurrency 2":                                  "—",
		"XML overhead of a 100KB envelope ≤ 1.0 ms (≥ 100 MB/s), RSA-2048":                               "met",
		"XML overhead of a 100KB envelope ≤ 1.0 ms (≥ 100 MB/s), EC P-256":                               "**not met**",
		"10MB time linear in size: XML overhead per MB at 10MB ≤ 1.25 × at 1MB, RSA-2048":                "met",
		"daemon peak RSS (VmHWM) ≤ 3 × the 10MB envelope":                                                "met",
		"end-to-end p99 ≤ 3 × p50 at concurrency ≤ 7 (the daemon's pool sessions; cells with ≥ 100 ops)": "**not met**",
	} {
		if got[name] != want {
			t.Errorf("%s: verdict %q, want %q", name, got[name], want)
		}
	}
	if md := rp.markdown(); !strings.Contains(md, "| end-to-end (Unix socket) | RSA-2048 | 1KB | 1 | 100 | 900.0 | 1.000 | 3.000 | 3.0 |") {
		t.Errorf("markdown row missing or changed:\n%s", md)
	}
}

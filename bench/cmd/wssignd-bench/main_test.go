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
		{Path: pathRaw, Alg: rsa.Alg, Conc: 2, OpsPerSec: 1000, P50: ms(1), P99: ms(13)},
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
	got, measured := map[string]string{}, map[string]string{}
	for _, tg := range rp.targets() {
		got[tg.name], measured[tg.name] = tg.verdict, tg.measured
	}
	// The worst p99/p50 cell comes with the token's own spread at its key and concurrency.
	if m, want := measured["end-to-end p99 ≤ 3 × p50 at concurrency ≤ 7 (the daemon's pool sessions; cells with ≥ 100 ops)"], "worst 3.1 × (RSA-2048 1KB c=2) over 3 cells; raw C_Sign there: 13.0 ×"; m != want {
		t.Errorf("p99 target measured %q, want %q", m, want)
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

func TestParseProcStatus(t *testing.T) {
	const status = "Name:\twssignd\nVmPeak:\t 1300000 kB\nVmHWM:\t   71000 kB\nVmRSS:\t   30600 kB\nRssAnon:\t   18432 kB\nRssFile:\t   12168 kB\nRssShmem:\t       0 kB\nThreads:\t12\n"
	if got, want := parseProcStatus(status), (procMem{VmRSS: 30600, VmHWM: 71000, RssAnon: 18432, RssFile: 12168}); got != want {
		t.Errorf("parseProcStatus = %+v, want %+v", got, want)
	}
	// A kernel without RssAnon/RssFile (before 4.5), or a garbled value: -1, not 0.
	if got, want := parseProcStatus("VmHWM:\t 100 kB\nVmRSS:\t x kB\nRssAnonX:\t 5 kB\n"), (procMem{VmRSS: -1, VmHWM: 100, RssAnon: -1, RssFile: -1}); got != want {
		t.Errorf("parseProcStatus = %+v, want %+v", got, want)
	}
	// The sampler reads this process's status: a sample when started and one when finished.
	s := &memSampler{pid: os.Getpid(), anonPeak: -1, fileAtPeak: -1}
	s.start()
	s.finish()
	if s.samples < 2 || s.anonPeak <= 0 || s.fileAtPeak <= 0 {
		t.Errorf("sampler of this process: %d samples, RssAnon peak %d kB, RssFile %d kB", s.samples, s.anonPeak, s.fileAtPeak)
	}
}

// TestMemoryLine checks the memory line under the targets table and that the target line keeps
// comparing VmHWM itself.
func TestMemoryLine(t *testing.T) {
	rp := &report{rssBase: 30 * 1024, rssPeak: 70 * 1024, anonBase: 18 * 1024, fileBase: 12 * 1024, anonPeak: 48 * 1024, fileAtPeak: 12 * 1024, memSamples: 812}
	want := "memory of the 10MB cells: VmRSS before 30.0 MiB (anon 18.0, file 12.0), VmHWM 70.0 MiB = 7.00 × envelope; growth VmHWM − VmRSS before = 40.0 MiB = 4.00 × envelope; peak RssAnon 48.0 MiB − 18.0 MiB before = 30.0 MiB = 3.00 × envelope (RssFile 12.0 MiB in that sample; 812 samples at 1 ms)."
	if got := rp.memoryLine(); got != want {
		t.Errorf("memoryLine:\n got %s\nwant %s", got, want)
	}
	md := rp.markdown()
	target := strings.Index(md, "| daemon peak RSS (VmHWM) ≤ 3 × the 10MB envelope | 70.0 MiB = 7.00 × | **not met** |\n")
	if line := strings.Index(md, "\n\n"+want+"\n"); target < 0 || line < target {
		t.Errorf("target line, or the memory line under the targets table, missing:\n%s", md)
	}
	if strings.Count(md, "memory of the 10MB cells") != 1 {
		t.Errorf("memory line not exactly once:\n%s", md)
	}
	tsv := rp.tsv()
	for _, l := range []string{"#\tdaemon_vmhwm_kb\t71680\n", "#\tdaemon_rssanon_before_10mb_kb\t18432\n", "#\tdaemon_rssanon_peak_10mb_kb\t49152\n", "#\tdaemon_rssfile_at_rssanon_peak_kb\t12288\n"} {
		if !strings.Contains(tsv, l) {
			t.Errorf("tsv lacks %q:\n%s", l, tsv)
		}
	}
	// Without RssAnon (old kernel), the line says so; without the 10MB cells, there is none.
	rp.anonBase, rp.fileBase, rp.anonPeak, rp.fileAtPeak = -1, -1, -1, -1
	if got := rp.memoryLine(); !strings.HasSuffix(got, "(anon n/a, file n/a), VmHWM 70.0 MiB = 7.00 × envelope; growth VmHWM − VmRSS before = 40.0 MiB = 4.00 × envelope; peak RssAnon n/a.") {
		t.Errorf("memoryLine without RssAnon: %s", got)
	}
	if got := (&report{rssBase: -1, rssPeak: -1}).memoryLine(); got != "" {
		t.Errorf("memoryLine without the 10MB cells: %q", got)
	}
}

// TestFloor checks the HTTP floor row (no key, no envelope, no ratio to raw C_Sign), its TSV row
// with the same columns, and transport above the floor in the XML overhead section.
func TestFloor(t *testing.T) {
	rsa := &keySpec{Alg: "RSA-2048"}
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	rp := &report{
		keys: []*keySpec{rsa}, sizes: []bench.Size{{Name: "1KB", Bytes: 1 << 10}, {Name: "10KB", Bytes: 10 << 10}}, concs: []int{1}, sessions: 7,
		rows: []row{
			{Path: pathRaw, Alg: rsa.Alg, Conc: 1, OpsPerSec: 1000},
			{Path: pathSigner, Alg: rsa.Alg, Conc: 1, P50: ms(0.6)},
			{Path: pathWSS, Alg: rsa.Alg, Size: "1KB", SizeBytes: 1 << 10, Conc: 1, P50: ms(0.8)},
			{Path: pathWSS, Alg: rsa.Alg, Size: "10KB", SizeBytes: 10 << 10, Conc: 1, P50: ms(0.9)},
			{Path: pathE2E, Alg: rsa.Alg, Size: "1KB", SizeBytes: 1 << 10, Conc: 1, P50: ms(1.2)},
			{Path: pathE2E, Alg: rsa.Alg, Size: "10KB", SizeBytes: 10 << 10, Conc: 1, P50: ms(1.4)},
			{Path: pathFloor, Conc: 1, Ops: 5000, OpsPerSec: 10000, P50: ms(0.1), P99: ms(0.3), Allocs: 60, Note: "n", DaemonUser: ms(0.03), DaemonSys: ms(0.02), Client: ms(0.05)},
		},
	}
	md := rp.markdown()
	for _, l := range []string{
		"| HTTP floor: GET /healthz (Unix socket) | — | — | 1 | 5000 | 10000.0 | 0.100 | 0.300 | 3.0 | 60 | — | 0.030 | 0.020 | 0.050 | n |\n",
		"| GET /healthz | 1 | 0.030 | 0.020 | 0.050 | — | 0.050 | 0.050 |\n",
		"| RSA-2048 | 1KB | 0.800 | 0.600 | 0.200 | 4.9 | 204.80 | 1.200 | 0.400 | 0.100 | 0.300 | — |\n",
		"| RSA-2048 | 10KB | 0.900 | 0.600 | 0.300 | 32.6 | 30.72 | 1.400 | 0.500 | — | — | — |\n",
		"Transport at 1KB, concurrency 1, against the HTTP floor (GET /healthz p50 0.100 ms): RSA-2048: end-to-end − wss.Sign = 0.400 ms, of which the floor is 25 %; 0.300 ms above it.\n",
	} {
		if !strings.Contains(md, l) {
			t.Errorf("markdown lacks %q:\n%s", l, md)
		}
	}
	// The floor is no end-to-end cell: its p99/p50 of 3.0 (with ≥ 100 ops) does not enter that target.
	for _, tg := range rp.targets() {
		if strings.HasPrefix(tg.name, "end-to-end p99") && tg.verdict != "—" {
			t.Errorf("%s: %s %s", tg.name, tg.measured, tg.verdict)
		}
	}
	tsv := rp.tsv()
	line := "HTTP floor: GET /healthz (Unix socket)\t\t\t0\t1\t5000\t10000.00\t0.100\t0.300\t60.0\t\tn\t0.0300\t0.0200\t0.0500\n"
	if !strings.Contains(tsv, line) {
		t.Errorf("tsv lacks %q:\n%s", line, tsv)
	}
	header := strings.Count(strings.SplitN(tsv, "\n", 2)[0], "\t")
	if got := strings.Count(line, "\t"); got != header {
		t.Errorf("floor tsv row has %d tabs, header %d", got, header)
	}
}

func TestParseProcStat(t *testing.T) {
	// The command name may hold spaces and parentheses; utime and stime are fields 14 and 15.
	const stat = "4242 (wss (x) d) S 1 4242 4242 0 -1 4194560 1234 0 0 0 731 52 0 0 20 0 12 0 100 0 0\n"
	u, s, ok := parseProcStat(stat)
	if !ok || u != 731 || s != 52 {
		t.Errorf("parseProcStat = %d, %d, %v; want 731, 52, true", u, s, ok)
	}
	if _, _, ok := parseProcStat("4242 (x) S 1 2"); ok {
		t.Error("short stat line parsed")
	}
	// This process: its own counters read and never negative.
	c := readCPU(os.Getpid())
	if !c.daemonOK || c.daemonUser < 0 || c.daemonSys < 0 || c.self <= 0 {
		t.Errorf("readCPU(self) = %+v", c)
	}
}

// TestCPUTargets checks the daemon-CPU section and targets on made-up rows, on both sides of
// each threshold.
func TestCPUTargets(t *testing.T) {
	rsa, ec := &keySpec{Alg: "RSA-2048"}, &keySpec{Alg: "EC P-256"}
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	rows := []row{
		{Path: pathRaw, Alg: rsa.Alg, Conc: 1, OpsPerSec: 1000, Client: ms(0.6)},
		{Path: pathRaw, Alg: rsa.Alg, Conc: 2, OpsPerSec: 1000, Client: ms(0.6)},
		{Path: pathRaw, Alg: ec.Alg, Conc: 1, OpsPerSec: 1000, Client: ms(0.1)},
		{Path: pathE2E, Alg: rsa.Alg, Size: "1KB", Conc: 1, OpsPerSec: 800, DaemonUser: ms(0.65), DaemonSys: ms(0.1), Client: ms(0.05)},   // 0.150: met; 80 %: met
		{Path: pathE2E, Alg: rsa.Alg, Size: "1KB", Conc: 2, OpsPerSec: 749, DaemonUser: ms(0.65), DaemonSys: ms(0.101), Client: ms(0.05)}, // 0.151: not met; 74.9 %: not met
		{Path: pathE2E, Alg: ec.Alg, Size: "1KB", Conc: 1, OpsPerSec: 350, DaemonUser: ms(0.2), DaemonSys: ms(0.1), Client: ms(0.05)},     // 0.2: not met; 35 %: met
		{Path: pathFloor, Conc: 1, DaemonUser: ms(0.03), DaemonSys: ms(0.021), Client: ms(0.05)},                                          // 0.051: not met
	}
	rp := &report{rows: rows, keys: []*keySpec{rsa, ec}, concs: []int{1, 2}, rssBase: 30 * 1024, rssPeak: 42 * 1024}
	got, measured := map[string]string{}, map[string]string{}
	for _, tg := range rp.cpuTargets() {
		got[tg.name], measured[tg.name] = tg.verdict, tg.measured
	}
	for name, want := range map[string]string{
		"non-token daemon CPU per signed 1KB request ≤ 0.150 ms, RSA-2048 c=1":                "met",
		"non-token daemon CPU per signed 1KB request ≤ 0.150 ms, RSA-2048 c=2":                "**not met**",
		"non-token daemon CPU per signed 1KB request ≤ 0.150 ms, EC P-256 c=1":                "**not met**",
		"non-token daemon CPU per signed 1KB request ≤ 0.150 ms, EC P-256 c=2":                "—",
		"1KB RSA-2048 end-to-end ≥ 80 % of raw C_Sign at concurrency 1":                       "met",
		"1KB RSA-2048 end-to-end ≥ 75 % of raw C_Sign at concurrency 2":                       "**not met**",
		"1KB EC P-256 end-to-end ≥ 35 % of raw C_Sign at concurrency 1":                       "met",
		"GET /healthz daemon CPU ≤ 0.050 ms per request at concurrency 1":                     "**not met**",
		"peak RSS growth signing a 10MB envelope ≤ 1.2 × the envelope (VmHWM − VmRSS before)": "met",
	} {
		if got[name] != want {
			t.Errorf("%s: verdict %q (%s), want %q", name, got[name], measured[name], want)
		}
	}
	if m := measured["non-token daemon CPU per signed 1KB request ≤ 0.150 ms, RSA-2048 c=1"]; m != "0.150 ms (daemon 0.750 − token 0.600)" {
		t.Errorf("measured %q", m)
	}
	md := rp.markdown()
	for _, l := range []string{
		"| RSA-2048 | 2 | 0.650 | 0.101 | 0.751 | 0.600 | 0.151 | 0.050 |\n",
		"| EC P-256 | 1 | 0.200 | 0.100 | 0.300 | 0.100 | 0.200 | 0.050 |\n",
		"| GET /healthz daemon CPU ≤ 0.050 ms per request at concurrency 1 | 0.051 ms | **not met** |\n",
	} {
		if !strings.Contains(md, l) {
			t.Errorf("markdown lacks %q:\n%s", l, md)
		}
	}
}

// TestReceiveRows: the verify and decrypt section compares verify's p50
// with sign's XML overhead of the same key and size, and has no ÷ raw.
func TestReceiveRows(t *testing.T) {
	rsa := &keySpec{Alg: "RSA-2048"}
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	rp := &report{keys: []*keySpec{rsa}, sizes: []bench.Size{{Name: "100KB", Bytes: 100 << 10}}, rows: []row{
		{Path: pathRaw, Alg: rsa.Alg, Conc: 1, OpsPerSec: 1000},
		{Path: pathSigner, Alg: rsa.Alg, Conc: 1, P50: ms(1)},
		{Path: pathWSS, Alg: rsa.Alg, Size: "100KB", Conc: 1, P50: ms(3)},
		{Path: pathVerify, Alg: rsa.Alg, Size: "100KB", Conc: 1, OpsPerSec: 1000, P50: ms(1.5)},
		{Path: pathDecrypt, Alg: rsa.Alg, Size: "100KB", Conc: 1, OpsPerSec: 500, P50: ms(2)},
	}}
	if got, want := rp.receiveRows(), "| RSA-2048 | 100KB | 1.500 | 15.36 | 2.000 | 0.75 | 2.000 | 20.48 |\n"; got != want {
		t.Errorf("receive rows\n got %q\nwant %q", got, want)
	}
	if _, ok := rp.vsRaw(rp.find(pathVerify, rsa.Alg, "100KB", 1)); ok {
		t.Error("a verify row is compared with raw C_Sign")
	}
	if md := rp.markdown(); !strings.Contains(md, "## Verify and decrypt") {
		t.Errorf("markdown lacks the verify and decrypt section:\n%s", md)
	}
}

func TestSampleBucket(t *testing.T) {
	for _, tc := range []struct {
		stack []string // innermost first
		want  string
	}{
		{[]string{"runtime.cgocall", "github.com/miekg/pkcs11._Cfunc_Sign", "github.com/miekg/pkcs11.(*Ctx).Sign", "github.com/wssignd/wssignd/hsm.(*Key).sign"}, bucketToken},
		{[]string{"runtime.mallocgc", "github.com/wssignd/wssignd/hsm.(*Token).do", "github.com/wssignd/wssignd/wss.Sign"}, bucketTokenGo},
		{[]string{"p256MulInternal", "crypto/internal/fips140/nistec.(*P256Point).ScalarMult", "crypto/ecdsa.VerifyASN1", "github.com/wssignd/wssignd/wss.checkSignature"}, bucketSigCheck},
		{[]string{"crypto/internal/fips140/sha256.blockSHANI", "crypto/sha256.(*Digest).Write", "github.com/wssignd/wssignd/wss.(*c14nOut).flush"}, bucketXML},
		{[]string{"internal/runtime/syscall/linux.Syscall6", "internal/poll.(*FD).Write", "net.(*conn).Write", "net/http.(*response).finishRequest"}, bucketHTTP},
		{[]string{"internal/runtime/syscall/linux.Syscall6", "internal/poll.(*FD).Write", "os.(*File).Write", "github.com/wssignd/wssignd/internal/daemon.(*alwaysEnabled).Handle", "github.com/wssignd/wssignd/api.(*Server).audit"}, bucketAudit},
		{[]string{"runtime.mapaccess1_faststr", "github.com/prometheus/client_golang/prometheus.(*MetricVec).With", "github.com/wssignd/wssignd/api.(*Server).ServeHTTP"}, bucketMetrics},
		{[]string{"runtime.memmove", "github.com/wssignd/wssignd/api.readBody", "github.com/wssignd/wssignd/api.(*Server).handleSign", "net/http.(*conn).serve"}, bucketAPI},
		{[]string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker.func2", "runtime.gcBgMarkWorker"}, bucketGC},
		{[]string{"runtime.futex", "runtime.notesleep", "runtime.stopm", "runtime.findRunnable", "runtime.schedule"}, bucketScheduler},
		{[]string{"runtime.usleep", "runtime.sysmon", "runtime.mstart1"}, bucketScheduler},
		{[]string{"runtime.memmove"}, bucketOther},
	} {
		if got := sampleBucket(tc.stack); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.stack, got, tc.want)
		}
	}
}

func TestSplitMarkdown(t *testing.T) {
	md := splitMarkdown([]cpuSplit{{Name: "sign X", PerReq: 2 * time.Millisecond, Share: map[string]float64{bucketToken: 0.75, bucketHTTP: 0.25}, N: 400}})
	for _, want := range []string{"| " + bucketToken + " | 1.500 | 75.0 |", "| " + bucketHTTP + " | 0.500 | 25.0 |", "**2.000**", "| samples (stacks) | 400 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("missing %q in\n%s", want, md)
		}
	}
	if strings.Contains(md, bucketGC) {
		t.Errorf("a bucket without samples is listed:\n%s", md)
	}
}

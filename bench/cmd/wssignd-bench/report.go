package main

import (
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/wssignd/wssignd/bench"
)

// report renders the rows of one run.
type report struct {
	rows                  []row
	keys                  []*keySpec
	sizes                 []bench.Size
	concs                 []int
	rssBase, rssPeak      int64 // kB; VmRSS before the 10 MB end-to-end cells, VmHWM after them
	anonBase, fileBase    int64 // kB; RssAnon and RssFile before them
	anonPeak, fileAtPeak  int64 // kB; the highest RssAnon sampled during them, RssFile in that sample
	memSamples            int   // samples of /proc/PID/status taken during them (every 1 ms)
	sessions              int   // pool sessions of the daemon's token (max_sessions − 1)
	loadBefore, loadAfter string
	elapsed               time.Duration
	splits                []cpuSplit // where the daemon's CPU goes, per request kind
}

func (rp *report) find(path, alg, size string, conc int) *row {
	for i := range rp.rows {
		r := &rp.rows[i]
		if r.Path == path && r.Alg == alg && r.Size == size && r.Conc == conc {
			return r
		}
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/1e6) }

// cpuMS formats a CPU time per operation in ms, or "n/a" when not measured.
func cpuMS(d time.Duration) string {
	if d < 0 {
		return "n/a"
	}
	return ms(d)
}

// tokenCPU is the token's CPU per raw C_Sign (the harness's CPU in the raw cell) at alg and
// conc, or -1.
func (rp *report) tokenCPU(alg string, conc int) time.Duration {
	if raw := rp.find(pathRaw, alg, "", conc); raw != nil {
		return raw.Client
	}
	return -1
}

// daemonCPU is a row's daemon user+sys per operation, or -1.
func daemonCPU(r *row) time.Duration {
	if r == nil || r.DaemonUser < 0 || r.DaemonSys < 0 {
		return -1
	}
	return r.DaemonUser + r.DaemonSys
}

// cpuSection compares, per key and concurrency, the daemon's CPU per signed 1KB request with
// the token's CPU per raw C_Sign; the difference is what the daemon spends besides the
// signature.
func (rp *report) cpuSection() string {
	var b strings.Builder
	b.WriteString("## Daemon CPU per request (1KB)\n\n")
	b.WriteString("daemon CPU = user+sys of the daemon per request; token CPU = the harness's CPU per raw C_Sign at the same key and concurrency (the signature inside SoftHSM2); non-token = daemon − token (XML, the signature check, HTTP, scheduler, GC, audit, metrics, and PKCS#11 calls besides C_Sign). For a TPM token the signature runs in the TPM (swtpm, another process), so its token CPU is only the PKCS#11 library's share and its non-token CPU an upper bound. client CPU = the harness's HTTP client per request.\n\n")
	b.WriteString("| key | conc | daemon user | daemon sys | daemon CPU | token CPU per raw C_Sign | non-token daemon CPU | client CPU |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
	n := 0
	for _, k := range rp.keys {
		for _, c := range rp.concs {
			e := rp.find(pathE2E, k.Alg, "1KB", c)
			d := daemonCPU(e)
			if d < 0 {
				continue
			}
			n++
			tok, non := rp.tokenCPU(k.Alg, c), "n/a"
			if tok >= 0 {
				non = ms(d - tok)
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s |\n", k.Alg, c, ms(e.DaemonUser), ms(e.DaemonSys), ms(d), cpuMS(tok), non, cpuMS(e.Client))
		}
	}
	for _, c := range rp.concs {
		f := rp.find(pathFloor, "", "", c)
		if d := daemonCPU(f); d >= 0 {
			n++
			fmt.Fprintf(&b, "| GET /healthz | %d | %s | %s | %s | — | %s | %s |\n", c, ms(f.DaemonUser), ms(f.DaemonSys), ms(d), ms(d), cpuMS(f.Client))
		}
	}
	if n == 0 {
		return ""
	}
	return b.String()
}

// vsRaw is r's signatures/s ÷ raw C_Sign's at the same key and concurrency.
func (rp *report) vsRaw(r *row) (float64, bool) {
	raw := rp.find(pathRaw, r.Alg, "", r.Conc)
	if raw == nil || raw.OpsPerSec == 0 || r.Path == pathRaw || r.Path == pathFloor || r.Path == pathVerify || r.Path == pathDecrypt {
		return 0, false
	}
	return r.OpsPerSec / raw.OpsPerSec, true
}

// overhead is wss.Sign p50 − hsm.Key.Signer p50, both at concurrency 1.
func (rp *report) overhead(alg, size string) (time.Duration, bool) {
	w, s := rp.find(pathWSS, alg, size, 1), rp.find(pathSigner, alg, "", 1)
	if w == nil || s == nil {
		return 0, false
	}
	return w.P50 - s.P50, true
}

func mbps(bytes int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / (1 << 20) / d.Seconds()
}

func (rp *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# wssignd benchmark (make bench)\n\n")
	fmt.Fprintf(&b, "Run %s, %v, %s/%s, %d CPUs, %s. Load average (1/5/15 min) before: %s, after: %s.\n\n",
		time.Now().UTC().Format(time.RFC3339), rp.elapsed.Round(time.Second), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), rp.loadBefore, rp.loadAfter)
	b.WriteString("> **Warning:** absolute numbers depend on the machine and on what else runs on it; with a load average near or above the CPU count they are noise. Compare rows of the same run (the ratios), not runs.\n\n")
	b.WriteString("Envelope sizes are binary (1KB = 1024 bytes). Private-key rows sign a SHA-256 digest. p50/p99 in ms. allocs/sign: Go heap allocations per operation (the harness's for in-process rows, the daemon's go_memstats_mallocs_total for end-to-end rows; raw C_Sign counts the Go side of miekg/pkcs11). ÷ raw: signatures/s ÷ raw C_Sign signatures/s at the same key and concurrency. CPU per operation in ms: daemon user and sys from /proc/PID/stat of the daemon before and after the cell (all its threads; 10 ms ticks summed over the cell), client = this harness's user+sys (getrusage): for the in-process rows that is the work itself, for raw C_Sign the token's CPU per signature.\n\n")
	b.WriteString("| path | key | envelope | conc | ops | sig/s | p50 | p99 | p99/p50 | allocs/sign | ÷ raw | daemon user | daemon sys | client CPU | note |\n")
	b.WriteString("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for i := range rp.rows {
		r := &rp.rows[i]
		alg, size := r.Alg, r.Size
		if alg == "" {
			alg = "—"
		}
		if size == "" {
			size = "—"
		}
		allocs := "n/a"
		if r.Allocs >= 0 {
			allocs = fmt.Sprintf("%.0f", r.Allocs)
		}
		ratio := "—"
		if v, ok := rp.vsRaw(r); ok {
			ratio = fmt.Sprintf("%.0f %%", 100*v)
		}
		spread := "—"
		if r.P50 > 0 {
			spread = fmt.Sprintf("%.1f", float64(r.P99)/float64(r.P50))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %.1f | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.Path, alg, size, r.Conc, r.Ops, r.OpsPerSec, ms(r.P50), ms(r.P99), spread, allocs, ratio, cpuMS(r.DaemonUser), cpuMS(r.DaemonSys), cpuMS(r.Client), r.Note)
	}
	if cpu := rp.cpuSection(); cpu != "" {
		b.WriteString("\n" + cpu)
	}
	b.WriteString(splitMarkdown(rp.splits))

	b.WriteString("\n## XML overhead per envelope (concurrency 1)\n\n")
	b.WriteString("XML overhead = wss.Sign p50 with the token key − hsm.Key.Signer p50 (the private-key operation); it includes Sign's public-key check of the signature. Transport = end-to-end p50 − wss.Sign p50 (HTTP over the Unix socket, the daemon's request handling). HTTP floor = p50 of GET /healthz at concurrency 1 (same daemon, same client, no key, no body: two cross-process wake-ups and an HTTP parse), measured with the 1KB cells; transport above floor = transport − floor, shown for 1KB. ms/MB shows whether time is linear in size.\n\n")
	b.WriteString("| key | envelope | wss.Sign p50 | private key p50 | XML overhead ms | XML MB/s | ms/MB | end-to-end p50 | transport ms | HTTP floor p50 | transport above floor ms | xmlsec1 process p50 |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, k := range rp.keys {
		for _, s := range rp.sizes {
			w, sg := rp.find(pathWSS, k.Alg, s.Name, 1), rp.find(pathSigner, k.Alg, "", 1)
			if w == nil || sg == nil {
				continue
			}
			ov := w.P50 - sg.P50
			e2e, tr, fl, above, xs := "—", "—", "—", "—", "—"
			if e := rp.find(pathE2E, k.Alg, s.Name, 1); e != nil {
				e2e, tr = ms(e.P50), ms(e.P50-w.P50)
				if f := rp.find(pathFloor, "", "", 1); f != nil && s.Bytes <= 1<<10 {
					fl, above = ms(f.P50), ms(e.P50-w.P50-f.P50)
				}
			}
			if x := rp.find(pathXMLSec, k.Alg, s.Name, 1); x != nil {
				xs = ms(x.P50)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.1f | %.2f | %s | %s | %s | %s | %s |\n",
				k.Alg, s.Name, ms(w.P50), ms(sg.P50), ms(ov), mbps(s.Bytes, ov), ov.Seconds()*1000/(float64(s.Bytes)/(1<<20)), e2e, tr, fl, above, xs)
		}
	}
	if note := rp.floorNote(); note != "" {
		b.WriteString("\n" + note + "\n")
	}

	if rows := rp.receiveRows(); rows != "" {
		b.WriteString("\n## Verify and decrypt (concurrency 1)\n\n")
		b.WriteString("Verify is all XML work but a public-key check (tens of µs); sign XML overhead is wss.Sign p50 − hsm.Key.Signer p50 from the table above. Decrypt includes the key unwrap in the token. ms/MB shows whether time is linear in size.\n\n")
		b.WriteString("| key | envelope | wss.Verify p50 | verify ms/MB | sign XML overhead | verify ÷ sign XML | wss.Decrypt p50 | decrypt ms/MB |\n|---|---|--:|--:|--:|--:|--:|--:|\n")
		b.WriteString(rows)
	}

	b.WriteString("\n## Targets\n\n| target | measured | verdict |\n|---|---|---|\n")
	for _, t := range rp.targets() {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t.name, t.measured, t.verdict)
	}
	b.WriteString("\n## Targets (daemon CPU)\n\n| target | measured | verdict |\n|---|---|---|\n")
	for _, t := range rp.cpuTargets() {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t.name, t.measured, t.verdict)
	}
	if line := rp.memoryLine(); line != "" {
		b.WriteString("\n" + line + "\n\n")
		b.WriteString("VmHWM is the peak of VmRSS over the daemon's whole life: it counts the file-backed pages (RssFile: the binary and shared libraries, clean and shared with other processes) and what the daemon held before these cells (Go heap kept from earlier cells, SoftHSM2). Growth counts only what VmRSS rose during them; peak RssAnon − RssAnon before is the anonymous memory (heap, stacks) the 10MB requests added, sampled every 1 ms, so a shorter peak can be missed. The target line above compares VmHWM itself.\n")
	}
	return b.String()
}

// mib formats kB as MiB, or "n/a" for a value not read.
func mib(kB int64) string {
	if kB < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", float64(kB)/1024)
}

// tenMiB is the 10MB envelope in kB, the unit of the memory ratios.
const tenMiB = 10 << 10

// memoryLine describes the daemon's memory around the 10MB end-to-end cells, or "" if they did
// not run.
func (rp *report) memoryLine() string {
	if rp.rssPeak <= 0 {
		return ""
	}
	ratio := func(kB int64) string { return fmt.Sprintf("%.2f × envelope", float64(kB)/tenMiB) }
	line := fmt.Sprintf("memory of the 10MB cells: VmRSS before %s MiB (anon %s, file %s), VmHWM %s MiB = %s",
		mib(rp.rssBase), mib(rp.anonBase), mib(rp.fileBase), mib(rp.rssPeak), ratio(rp.rssPeak))
	if rp.rssBase >= 0 {
		line += fmt.Sprintf("; growth VmHWM − VmRSS before = %s MiB = %s", mib(rp.rssPeak-rp.rssBase), ratio(rp.rssPeak-rp.rssBase))
	} else {
		line += "; growth n/a"
	}
	if rp.anonPeak >= 0 && rp.anonBase >= 0 {
		line += fmt.Sprintf("; peak RssAnon %s MiB − %s MiB before = %s MiB = %s (RssFile %s MiB in that sample; %d samples at 1 ms)",
			mib(rp.anonPeak), mib(rp.anonBase), mib(rp.anonPeak-rp.anonBase), ratio(rp.anonPeak-rp.anonBase), mib(rp.fileAtPeak), rp.memSamples)
	} else {
		line += "; peak RssAnon n/a"
	}
	return line + "."
}

// floorNote says, for each key at 1KB and concurrency 1, how much of end-to-end − wss.Sign the
// HTTP floor accounts for, or "" without the rows.
func (rp *report) floorNote() string {
	f := rp.find(pathFloor, "", "", 1)
	if f == nil {
		return ""
	}
	var parts []string
	for _, k := range rp.keys {
		w, e := rp.find(pathWSS, k.Alg, "1KB", 1), rp.find(pathE2E, k.Alg, "1KB", 1)
		if w == nil || e == nil {
			continue
		}
		tr := e.P50 - w.P50
		share := "—"
		if tr > 0 {
			share = fmt.Sprintf("%.0f %%", 100*float64(f.P50)/float64(tr))
		}
		parts = append(parts, fmt.Sprintf("%s: end-to-end − wss.Sign = %s ms, of which the floor is %s; %s ms above it", k.Alg, ms(tr), share, ms(tr-f.P50)))
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("Transport at 1KB, concurrency 1, against the HTTP floor (GET /healthz p50 %s ms): %s.", ms(f.P50), strings.Join(parts, "; "))
}

type target struct{ name, measured, verdict string }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

func (rp *report) targets() []target {
	var ts []target
	notMeasured := func(name string) { ts = append(ts, target{name, "not measured in this run", "—"}) }
	for _, k := range rp.keys {
		want := 0.90
		if strings.HasPrefix(k.Alg, "EC") {
			want = 0.60
		}
		for _, c := range []int{1, 2} {
			name := fmt.Sprintf("1KB %s end-to-end ≥ %.0f %% of raw C_Sign at concurrency %d", k.Alg, 100*want, c)
			e := rp.find(pathE2E, k.Alg, "1KB", c)
			if e == nil {
				notMeasured(name)
				continue
			}
			v, ok := rp.vsRaw(e)
			if !ok {
				notMeasured(name)
				continue
			}
			ts = append(ts, target{name, fmt.Sprintf("%.0f %% (%.0f/s vs %.0f/s)", 100*v, e.OpsPerSec, rp.find(pathRaw, k.Alg, "", c).OpsPerSec), verdict(v >= want)})
		}
	}
	for _, k := range rp.keys {
		name := fmt.Sprintf("XML overhead of a 100KB envelope ≤ 1.0 ms (≥ 100 MB/s), %s", k.Alg)
		ov, ok := rp.overhead(k.Alg, "100KB")
		if !ok {
			notMeasured(name)
			continue
		}
		ts = append(ts, target{name, fmt.Sprintf("%s ms (%.1f MB/s)", ms(ov), mbps(100<<10, ov)), verdict(ov <= time.Millisecond)})
	}
	for _, k := range rp.keys {
		name := fmt.Sprintf("XML overhead of 100KB below xmlsec1's (estimated as xmlsec1 process p50 100KB − 1KB), %s", k.Alg)
		ov, ok := rp.overhead(k.Alg, "100KB")
		x100, x1 := rp.find(pathXMLSec, k.Alg, "100KB", 1), rp.find(pathXMLSec, k.Alg, "1KB", 1)
		if !ok || x100 == nil || x1 == nil {
			notMeasured(name)
			continue
		}
		xs := x100.P50 - x1.P50
		ts = append(ts, target{name, fmt.Sprintf("%s ms vs xmlsec1 ≈ %s ms", ms(ov), ms(xs)), verdict(ov < xs)})
	}
	for _, k := range rp.keys {
		name := fmt.Sprintf("10MB time linear in size: XML overhead per MB at 10MB ≤ 1.25 × at 1MB, %s", k.Alg)
		o1, ok1 := rp.overhead(k.Alg, "1MB")
		o10, ok10 := rp.overhead(k.Alg, "10MB")
		if !ok1 || !ok10 || o1 <= 0 {
			notMeasured(name)
			continue
		}
		f := (float64(o10) / 10) / float64(o1)
		ts = append(ts, target{name, fmt.Sprintf("%.2f ms/MB vs %.2f ms/MB (× %.2f)", o10.Seconds()*100, o1.Seconds()*1000, f), verdict(f <= 1.25)})
	}
	if rp.rssPeak > 0 {
		f := float64(rp.rssPeak) / 1024 / 10
		ts = append(ts, target{"daemon peak RSS (VmHWM) ≤ 3 × the 10MB envelope", fmt.Sprintf("%.1f MiB = %.2f ×", float64(rp.rssPeak)/1024, f), verdict(f <= 3)})
	} else {
		notMeasured("daemon peak RSS (VmHWM) ≤ 3 × the 10MB envelope")
	}
	worst, where, n := 0.0, "", 0
	var worstRow *row
	for i := range rp.rows {
		r := &rp.rows[i]
		if r.Path != pathE2E || r.Conc > rp.sessions || r.P50 <= 0 || r.Ops < 100 || strings.HasSuffix(r.Alg, " TPM") {
			continue
		}
		n++
		if s := float64(r.P99) / float64(r.P50); s > worst {
			worst, where, worstRow = s, fmt.Sprintf("%s %s c=%d", r.Alg, r.Size, r.Conc), r
		}
	}
	name := fmt.Sprintf("end-to-end p99 ≤ 3 × p50 at concurrency ≤ %d (the daemon's pool sessions; cells with ≥ 100 ops)", rp.sessions)
	if n == 0 {
		notMeasured(name)
	} else {
		measured := fmt.Sprintf("worst %.1f × (%s) over %d cells", worst, where, n)
		// The token's own spread at that key and concurrency, for context.
		if raw := rp.find(pathRaw, worstRow.Alg, "", worstRow.Conc); raw != nil && raw.P50 > 0 {
			measured += fmt.Sprintf("; raw C_Sign there: %.1f ×", float64(raw.P99)/float64(raw.P50))
		}
		ts = append(ts, target{name, measured, verdict(worst <= 3)})
	}
	return ts
}

// cpuTargets are the daemon-CPU targets: non-token CPU per signed 1KB request, throughput
// against raw C_Sign, the HTTP floor's CPU and the memory growth of a 10MB request.
func (rp *report) cpuTargets() []target {
	var ts []target
	notMeasured := func(name string) { ts = append(ts, target{name, "not measured in this run", "—"}) }
	for _, k := range rp.keys {
		for _, c := range []int{1, 2} {
			name := fmt.Sprintf("non-token daemon CPU per signed 1KB request ≤ 0.150 ms, %s c=%d", k.Alg, c)
			e := rp.find(pathE2E, k.Alg, "1KB", c)
			d, tok := daemonCPU(e), rp.tokenCPU(k.Alg, c)
			if d < 0 || tok < 0 {
				notMeasured(name)
				continue
			}
			ts = append(ts, target{name, fmt.Sprintf("%s ms (daemon %s − token %s)", ms(d-tok), ms(d), ms(tok)), verdict(d-tok <= 150*time.Microsecond)})
		}
	}
	ratios := []struct {
		alg  string
		conc int
		want float64
	}{{"RSA-2048", 1, 0.80}, {"RSA-2048", 2, 0.75}, {"EC P-256", 1, 0.35}}
	for _, w := range ratios {
		name := fmt.Sprintf("1KB %s end-to-end ≥ %.0f %% of raw C_Sign at concurrency %d", w.alg, 100*w.want, w.conc)
		e := rp.find(pathE2E, w.alg, "1KB", w.conc)
		v, ok := 0.0, false
		if e != nil {
			v, ok = rp.vsRaw(e)
		}
		if !ok {
			notMeasured(name)
			continue
		}
		ts = append(ts, target{name, fmt.Sprintf("%.0f %%", 100*v), verdict(v >= w.want)})
	}
	name := "GET /healthz daemon CPU ≤ 0.050 ms per request at concurrency 1"
	if d := daemonCPU(rp.find(pathFloor, "", "", 1)); d >= 0 {
		ts = append(ts, target{name, ms(d) + " ms", verdict(d <= 50*time.Microsecond)})
	} else {
		notMeasured(name)
	}
	name = "peak RSS growth signing a 10MB envelope ≤ 1.2 × the envelope (VmHWM − VmRSS before)"
	if rp.rssPeak > 0 && rp.rssBase >= 0 {
		f := float64(rp.rssPeak-rp.rssBase) / tenMiB
		ts = append(ts, target{name, fmt.Sprintf("%s MiB = %.2f ×", mib(rp.rssPeak-rp.rssBase), f), verdict(f <= 1.2)})
	} else {
		notMeasured(name)
	}
	return ts
}

func (rp *report) tsv() string {
	var b strings.Builder
	b.WriteString("path\tkey\tenvelope\tenvelope_bytes\tconcurrency\tops\tsig_per_s\tp50_ms\tp99_ms\tallocs_per_sign\tratio_vs_raw\tnote\tdaemon_user_ms_per_op\tdaemon_sys_ms_per_op\tclient_cpu_ms_per_op\n")
	for i := range rp.rows {
		r := &rp.rows[i]
		ratio := ""
		if v, ok := rp.vsRaw(r); ok {
			ratio = fmt.Sprintf("%.4f", v)
		}
		allocs := ""
		if r.Allocs >= 0 {
			allocs = fmt.Sprintf("%.1f", r.Allocs)
		}
		tsvMS := func(d time.Duration) string {
			if d < 0 {
				return ""
			}
			return fmt.Sprintf("%.4f", float64(d)/1e6)
		}
		fmt.Fprintf(&b, "%s\t%s\t%s\t%d\t%d\t%d\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Path, r.Alg, r.Size, r.SizeBytes, r.Conc, r.Ops, r.OpsPerSec, ms(r.P50), ms(r.P99), allocs, ratio, r.Note, tsvMS(r.DaemonUser), tsvMS(r.DaemonSys), tsvMS(r.Client))
	}
	fmt.Fprintf(&b, "#\tload_before\t%s\n#\tload_after\t%s\n#\tdaemon_vmrss_before_10mb_kb\t%d\n#\tdaemon_vmhwm_kb\t%d\n", rp.loadBefore, rp.loadAfter, rp.rssBase, rp.rssPeak)
	fmt.Fprintf(&b, "#\tdaemon_rssanon_before_10mb_kb\t%d\n#\tdaemon_rssfile_before_10mb_kb\t%d\n#\tdaemon_rssanon_peak_10mb_kb\t%d\n#\tdaemon_rssfile_at_rssanon_peak_kb\t%d\n#\tdaemon_memory_samples_10mb\t%d\n",
		rp.anonBase, rp.fileBase, rp.anonPeak, rp.fileAtPeak, rp.memSamples)
	return b.String()
}

// receiveRows renders the verify and decrypt comparison, one line per key
// and size that has a verify row, or "" when there is none.
func (rp *report) receiveRows() string {
	var b strings.Builder
	perMB := func(d time.Duration, bytes int) string {
		return fmt.Sprintf("%.2f", d.Seconds()*1000/(float64(bytes)/(1<<20)))
	}
	for _, k := range rp.keys {
		for _, s := range rp.sizes {
			v := rp.find(pathVerify, k.Alg, s.Name, 1)
			if v == nil {
				continue
			}
			ov, ratio := "—", "—"
			if d, ok := rp.overhead(k.Alg, s.Name); ok {
				ov = ms(d)
				if d > 0 {
					ratio = fmt.Sprintf("%.2f", float64(v.P50)/float64(d))
				}
			}
			dp, dmb := "—", "—"
			if d := rp.find(pathDecrypt, k.Alg, s.Name, 1); d != nil {
				dp, dmb = ms(d.P50), perMB(d.P50, s.Bytes)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", k.Alg, s.Name, ms(v.P50), perMB(v.P50, s.Bytes), ov, ratio, dp, dmb)
		}
	}
	return b.String()
}

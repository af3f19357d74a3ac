package main

// Where the daemon's CPU goes: a daemon started with -cpuprofile serves one kind of request at
// concurrency 1, and every sample of its profile is put in one bucket by its stack. Go's CPU
// profiler samples each thread's CPU time (user and system, so a syscall's kernel time lands on
// the Go frames that made it; C code called through cgo lands on runtime.cgocall and its Go
// callers).

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"

	"github.com/wssignd/wssignd/bench"
	"github.com/wssignd/wssignd/hsm"
)

// The buckets, in the order the report lists them.
const (
	bucketToken     = "token (PKCS#11 calls: the signature in SoftHSM2)"
	bucketTokenGo   = "token layer, Go side (hsm: sessions, deadline, hand-off)"
	bucketSigCheck  = "signature check (public key, fail-closed)"
	bucketXML       = "XML (wss: tokenizer, C14N, digests, header)"
	bucketHTTP      = "HTTP and socket I/O (net/http, net, poll)"
	bucketAPI       = "request handling (api: routing, limits, body, problem)"
	bucketAudit     = "logging and audit (slog)"
	bucketMetrics   = "metrics (Prometheus)"
	bucketGC        = "runtime: GC"
	bucketScheduler = "runtime: scheduler, sysmon, idle threads"
	bucketOther     = "other"
)

var bucketOrder = []string{bucketToken, bucketTokenGo, bucketSigCheck, bucketXML, bucketHTTP, bucketAPI, bucketAudit, bucketMetrics, bucketGC, bucketScheduler, bucketOther}

// frameBucket names the bucket of one function, or "" for a function that only does work for
// its caller (the runtime's allocator and syscalls, hashing, byte and string helpers): the
// bucket of a sample is that of its innermost function that has one. File descriptors
// (internal/poll, os) count for whoever writes: the socket for net, the log for slog; the
// netpoller for the scheduler that polls it.
func frameBucket(fn string) string {
	switch {
	case strings.HasPrefix(fn, "github.com/miekg/pkcs11"):
		return bucketToken
	case strings.HasPrefix(fn, "github.com/wssignd/wssignd/hsm"):
		return bucketTokenGo
	case strings.HasPrefix(fn, "crypto/ecdsa."), strings.HasPrefix(fn, "crypto/rsa."),
		strings.HasPrefix(fn, "crypto/internal/fips140/nistec"), strings.HasPrefix(fn, "crypto/internal/fips140/bigmod"),
		strings.HasPrefix(fn, "crypto/internal/fips140/ecdsa"), strings.HasPrefix(fn, "crypto/internal/fips140/rsa"),
		strings.HasPrefix(fn, "p256"):
		return bucketSigCheck
	case strings.HasPrefix(fn, "github.com/wssignd/wssignd/wss"):
		return bucketXML
	case strings.HasPrefix(fn, "log/slog"), strings.Contains(fn, ").audit"), strings.HasPrefix(fn, "github.com/wssignd/wssignd/internal/daemon.(*alwaysEnabled)"):
		return bucketAudit
	case strings.HasPrefix(fn, "github.com/prometheus"):
		return bucketMetrics
	case strings.HasPrefix(fn, "net/http"), strings.HasPrefix(fn, "net."), strings.HasPrefix(fn, "net/textproto"):
		return bucketHTTP
	case strings.HasPrefix(fn, "github.com/wssignd/wssignd/"):
		return bucketAPI
	case strings.HasPrefix(fn, "runtime.gcBgMarkWorker"), strings.HasPrefix(fn, "runtime.gcAssist"), strings.HasPrefix(fn, "runtime.bgsweep"),
		strings.HasPrefix(fn, "runtime.bgscavenge"), strings.HasPrefix(fn, "runtime.gcStart"), strings.HasPrefix(fn, "runtime.gcMarkDone"),
		strings.HasPrefix(fn, "runtime.gcMarkTermination"), fn == "runtime.GC":
		return bucketGC
	case fn == "runtime.schedule", fn == "runtime.findRunnable", fn == "runtime.sysmon", fn == "runtime.mstart",
		fn == "runtime.park_m", fn == "runtime.goexit0", fn == "runtime._System", fn == "runtime._ExternalCode",
		fn == "runtime._VDSO", fn == "runtime.mcall", fn == "runtime.exitsyscall", fn == "runtime.entersyscall":
		return bucketScheduler
	}
	return ""
}

// sampleBucket is the bucket of one stack, innermost function first.
func sampleBucket(funcs []string) string {
	for _, fn := range funcs {
		if b := frameBucket(fn); b != "" {
			return b
		}
	}
	return bucketOther
}

// cpuSplit is the share of each bucket in one profile.
type cpuSplit struct {
	Name   string             // the request measured
	PerReq time.Duration      // the daemon's CPU per request (from /proc), to turn shares into time
	Share  map[string]float64 // bucket → fraction of the profile's CPU samples
	N      int                // samples in the profile
}

// splitProfile reads a CPU profile and sums its samples by bucket.
func splitProfile(path string) (map[string]float64, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	vi := len(p.SampleType) - 1 // cpu nanoseconds
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			vi = i
		}
	}
	sums := map[string]float64{}
	var total float64
	var funcs []string
	for _, s := range p.Sample {
		funcs = funcs[:0]
		for _, loc := range s.Location {
			// Inlined functions come first in loc.Line, innermost first.
			for _, ln := range loc.Line {
				if ln.Function != nil {
					funcs = append(funcs, ln.Function.Name)
				}
			}
		}
		v := float64(s.Value[vi])
		sums[sampleBucket(funcs)] += v
		total += v
	}
	if total == 0 {
		return nil, 0, fmt.Errorf("%s: no samples", path)
	}
	for k := range sums {
		sums[k] /= total
	}
	return sums, len(p.Sample), nil
}

// splitMarkdown renders the splits as one table: a row per bucket, per request kind its CPU per
// request in ms and its share.
func splitMarkdown(splits []cpuSplit) string {
	if len(splits) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n## Where the daemon's CPU goes (1KB, concurrency 1)\n\n")
	b.WriteString("A daemon started with -cpuprofile serves one kind of request at concurrency 1; each sample of its Go CPU profile (thread CPU time, user and system) goes to the bucket of the innermost function that has one (the allocator, syscalls and hashing count for their caller; C code for the Go function that called it). ms = share × the daemon's CPU per request read from /proc in the same cell.\n\n")
	b.WriteString("| bucket |")
	for _, s := range splits {
		fmt.Fprintf(&b, " %s ms | %s %% |", s.Name, s.Name)
	}
	b.WriteString("\n|---|")
	for range splits {
		b.WriteString("--:|--:|")
	}
	b.WriteString("\n")
	for _, bk := range bucketOrder {
		if !slices.ContainsFunc(splits, func(s cpuSplit) bool { return s.Share[bk] > 0 }) {
			continue
		}
		fmt.Fprintf(&b, "| %s |", bk)
		for _, s := range splits {
			fmt.Fprintf(&b, " %.3f | %.1f |", s.Share[bk]*float64(s.PerReq)/1e6, 100*s.Share[bk])
		}
		b.WriteString("\n")
	}
	b.WriteString("| **daemon CPU per request** |")
	for _, s := range splits {
		fmt.Fprintf(&b, " **%.3f** | 100 |", float64(s.PerReq)/1e6)
	}
	b.WriteString("\n| samples (stacks) |")
	for _, s := range splits {
		fmt.Fprintf(&b, " %d | |", s.N)
	}
	b.WriteString("\n")
	return b.String()
}

// measureSplits runs, for each key's 1KB sign and for GET /healthz, a daemon of its own with
// -cpuprofile on the SoftHSM2 token, serving that request at concurrency 1 for -d (at least
// 5 s), and splits its profile. The daemon's start and stop fall outside the profile's share
// only in proportion: they are a few ms of a multi-second profile.
func measureSplits(dir, bin string, soft hsm.SoftHSMToken, keys []*keySpec, env []byte) ([]cpuSplit, error) {
	type kind struct {
		name string
		cell func(d *daemon) *cell
	}
	var kinds []kind
	for _, k := range keys {
		kinds = append(kinds, kind{"sign " + k.Alg, func(d *daemon) *cell { return e2eCell(d, k, bench.Size{Name: "1KB", Bytes: len(env)}, env, 1) }})
	}
	kinds = append(kinds, kind{"GET /healthz", func(d *daemon) *cell { return floorCell(d, 1) }})
	dur := max(*flagDur, 5*time.Second) // Go samples at 100 Hz: a few hundred samples per kind
	var out []cpuSplit
	for i, kd := range kinds {
		sub := filepath.Join(dir, fmt.Sprintf("split-%d", i))
		if err := os.MkdirAll(sub, 0o700); err != nil {
			return nil, err
		}
		prof := filepath.Join(sub, "cpu.prof")
		d, err := startDaemon(sub, bin, soft.Module, soft.Label, soft.PINFile, []string{"SOFTHSM2_CONF=" + soft.ConfigFile}, prof)
		if err != nil {
			return nil, err
		}
		c := kd.cell(d)
		c.heap = nil // no /metrics scrapes in a profiled cell
		err = c.step(dur, *flagMinOps)
		if serr := d.stop(); err == nil {
			err = serr
		}
		if err != nil {
			return nil, err
		}
		r := c.result()
		share, n, err := splitProfile(prof)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "cpu split %-16s %6d ops, daemon %.3f ms/request\n", kd.name, r.Ops, float64(r.DaemonUser+r.DaemonSys)/1e6)
		out = append(out, cpuSplit{Name: kd.name, PerReq: r.DaemonUser + r.DaemonSys, Share: share, N: n})
	}
	return out, nil
}

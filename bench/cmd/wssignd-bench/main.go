// Command wssignd-bench is the performance measurement harness, run by `make bench`.
//
// In one run it builds a fresh SoftHSM2 token in a temporary directory (RSA-2048 and EC P-256
// keys generated on the token, self-signed certificates stored beside them), then measures, for
// both keys:
//
//   - raw C_SignInit+C_Sign on pooled, logged-in sessions (rawsign.Bench): the limit;
//   - hsm.Key.Signer, the crypto.Signer the daemon uses;
//   - wss.Sign in this process with the token key;
//   - end to end: the real daemon binary (-daemon) on a Unix socket, N concurrent HTTP clients;
//   - the HTTP floor: GET /healthz of the same daemon with the same client (no key, no
//     envelope), the least any request over the socket costs;
//   - xmlsec1 --sign, one process per message, from a template, with the PEM key of
//     testdata/keys (xmlsec1 cannot use the token without its PKCS#11 engine);
//
// at concurrency 1, 2, 4, 8 for 1 KB envelopes and at concurrency 1 for 10 KB … 10 MB. With
// -tpm (the default) it also makes a TPM token (tpm2-pkcs11 on a software TPM that
// scripts/dev-tpm.sh starts in the temporary directory and stops at the end) and measures raw
// C_Sign, hsm.Key.Signer and end to end (a second daemon, 1 KB envelopes) for its RSA-2048 and
// EC P-256 keys at the same concurrencies: the rows "… TPM". It
// writes one table to stdout, <out>/results.md and <out>/results.tsv. During the 10 MB
// end-to-end cells it samples the daemon's RssAnon and RssFile every millisecond. Absolute
// numbers depend on the machine and its load (the load average is recorded with the results);
// the ratios between rows of the same run are what the harness is for. It makes no assertion: targets are reported
// as met or not met.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wssignd/wssignd/bench"
	"github.com/wssignd/wssignd/bench/rawsign"
	"github.com/wssignd/wssignd/hsm"
	"github.com/wssignd/wssignd/wss"
)

var (
	flagDaemon = flag.String("daemon", "bin/wssignd", "the wssignd binary to measure end to end (go build ./cmd/wssignd)")
	flagOut    = flag.String("out", "bench", "directory for results.md and results.tsv")
	flagRepo   = flag.String("repo", ".", "repository root (for testdata/keys)")
	flagDur    = flag.Duration("d", 1500*time.Millisecond, "measuring time per cell (larger envelopes run at least -min-ops operations)")
	flagMinOps = flag.Int("min-ops", 3, "operations per cell at least")
	flagRounds = flag.Int("rounds", 3, "rounds over which the private-key and 1KB cells are interleaved")
	flagSizes  = flag.String("sizes", "1KB,10KB,100KB,1MB,10MB", "envelope sizes to measure")
	flagConc   = flag.String("conc", "1,2,4,8", "concurrencies measured for 1KB envelopes and the private-key rows")
	flagTPM    = flag.Bool("tpm", true, "also measure a TPM token (tpm2-pkcs11; a software TPM started by scripts/dev-tpm.sh in the temporary directory): raw C_Sign, hsm.Key.Signer and end to end with 1KB envelopes")
	flagDProf  = flag.String("daemon-cpuprofile", "", "have the SoftHSM2 daemon write a CPU profile of the run to this file (its -cpuprofile flag)")
	flagSplit  = flag.Bool("split", true, "profile a daemon per request kind (sign 1KB per key, GET /healthz) at concurrency 1 and report where its CPU goes")
	flagDEnv   = flag.String("daemon-env", "", "comma-separated NAME=VALUE settings added to the daemons' environment only (e.g. GOMAXPROCS=1), to measure runtime settings")
)

const tokenLabel = "wssignd-bench"

// Paths, in table order.
const (
	pathRaw    = "raw C_Sign (miekg/pkcs11)"
	pathSigner = "hsm.Key.Signer"
	pathWSS    = "wss.Sign (token key)"
	pathE2E    = "end-to-end (Unix socket)"
	pathFloor  = "HTTP floor: GET /healthz (Unix socket)"
	pathXMLSec = "xmlsec1 --sign (PEM key)"
	// The receiving side, in this process: the envelope signed (encrypted)
	// once with the token key, then verified (decrypted) in every operation.
	pathVerify  = "wss.Verify (in process)"
	pathDecrypt = "wss.Decrypt (token key)"
)

// verifySizes are the envelope sizes of the verify and decrypt rows.
var verifySizes = []string{"1KB", "100KB", "10MB"}

// row is one measured cell.
type row struct {
	Path      string
	Alg       string // "RSA-2048" or "EC P-256"
	Size      string // "" for the private-key rows
	SizeBytes int
	Conc      int
	Ops       int
	OpsPerSec float64
	P50, P99  time.Duration
	Allocs    float64 // per operation; <0: not measured
	Note      string
	// CPU per operation: the daemon process's user and system time (from /proc/PID/stat, all
	// its threads) and the harness's user+system time (getrusage). For the in-process rows the
	// harness's CPU is the work itself (for raw C_Sign: the token's CPU per signature). <0: not
	// measured.
	DaemonUser, DaemonSys, Client time.Duration
}

type keySpec struct {
	Alg     string
	Ref     hsm.KeyRef
	Mech    string // for rawsign.Bench
	Profile string // daemon profile
	PEM     string // testdata/keys/<PEM>.key for xmlsec1
	SigAlg  string // XML-DSig SignatureMethod for the xmlsec1 template
	Key     *hsm.Key
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wssignd-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	started := time.Now()
	loadBefore := loadavg()
	sizes, err := parseSizes(*flagSizes)
	if err != nil {
		return err
	}
	concs, err := parseInts(*flagConc)
	if err != nil {
		return err
	}
	xmlsec1, err := exec.LookPath("xmlsec1")
	if err != nil {
		return fmt.Errorf("xmlsec1 not found: apt-get install -y xmlsec1")
	}
	daemon, err := filepath.Abs(*flagDaemon)
	if err != nil {
		return err
	}
	if _, err := os.Stat(daemon); err != nil {
		return fmt.Errorf("daemon binary: %w (build it with go build -o bin/wssignd ./cmd/wssignd)", err)
	}

	dir, err := os.MkdirTemp("", "wssignd-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The token: as hsm/hsmtest builds it, through the hsm package API only.
	soft, err := hsm.InitSoftHSMToken(filepath.Join(dir, "softhsm"), tokenLabel)
	if err != nil {
		return err
	}
	if err := os.Setenv("SOFTHSM2_CONF", soft.ConfigFile); err != nil {
		return err
	}
	tok, err := hsm.Open(hsm.Config{Module: soft.Module, TokenLabel: soft.Label, PINFile: soft.PINFile})
	if err != nil {
		return err
	}
	defer tok.Close()
	keys := []*keySpec{
		{Alg: "RSA-2048", Ref: hsm.KeyRef{Label: "rsa", ID: []byte{1}}, Mech: rawsign.RSAPKCS, Profile: "default", PEM: "rsa2048", SigAlg: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"},
		{Alg: "EC P-256", Ref: hsm.KeyRef{Label: "ec", ID: []byte{2}}, Mech: rawsign.ECDSA, Profile: "ecdsa", PEM: "ecp256", SigAlg: "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"},
	}
	if err := makeKeys(tok, keys); err != nil {
		return err
	}
	envs := map[string][]byte{}
	for _, s := range sizes {
		envs[s.Name] = bench.Envelope(s.Bytes)
	}

	// The daemon runs from the start (idle while in-process cells run), so that cells to be
	// compared can be interleaved.
	d, err := startDaemon(dir, daemon, soft.Module, soft.Label, soft.PINFile, []string{"SOFTHSM2_CONF=" + soft.ConfigFile}, *flagDProf)
	if err != nil {
		return err
	}
	defer d.stop()
	var tpm *tpmBench
	if *flagTPM {
		if tpm, err = startTPMBench(dir, daemon); err != nil {
			return fmt.Errorf("tpm token: %w (run with -tpm=false to leave it out)", err)
		}
		defer tpm.stop()
	}

	// Cells to compare (private-key rows and 1KB envelopes, every concurrency) run interleaved in
	// -rounds rounds of -d/rounds each, so that a change of machine load during the run hits
	// all of them alike; larger envelopes run once, at concurrency 1, in increasing size.
	digest := sha256.Sum256([]byte("wssignd bench"))
	var small, large []*cell
	for _, c := range concs {
		for _, k := range keys {
			small = append(small, rawCell(k, soft.Module, soft.Label, soft.PINFile, c), signerCell(k, c, digest[:]))
		}
		if tpm != nil {
			for _, k := range tpm.keys {
				small = append(small, rawCell(k, tpm.token.Module, tpm.token.Label, tpm.token.PINFile, c), signerCell(k, c, digest[:]),
					e2eCell(tpm.daemon, k, sizes[0], envs[sizes[0].Name], c))
			}
		}
	}
	for _, s := range sizes {
		env := envs[s.Name]
		for _, k := range keys {
			tmpl, err := xmlsecSetup(xmlsec1, k, s, env, dir)
			if err != nil {
				return err
			}
			for _, c := range concsFor(s, concs) {
				cs := []*cell{wssCell(k, s, env, c), e2eCell(d, k, s, env, c), xmlsecCell(xmlsec1, k, s, tmpl, dir, c)}
				if s.Bytes <= 1<<10 {
					small = append(small, cs...)
				} else {
					large = append(large, cs...)
				}
			}
		}
	}
	// Verify and decrypt, at concurrency 1, after the signing cells of each size.
	for _, s := range sizes {
		if !slices.Contains(verifySizes, s.Name) {
			continue
		}
		for _, k := range keys {
			cs, err := receiveCells(k, s, envs[s.Name])
			if err != nil {
				return err
			}
			large = append(large, cs...)
		}
	}
	// The transport floor, at every concurrency of the 1KB cells, interleaved with them.
	for _, c := range concs {
		small = append(small, floorCell(d, c))
	}
	// Order the small cells by concurrency, then key, so that comparable cells run back to back.
	slices.SortStableFunc(small, func(a, b *cell) int { return a.r.Conc - b.r.Conc })
	rounds := max(1, *flagRounds)
	for round := range rounds {
		for _, c := range small {
			if err := c.step(*flagDur/time.Duration(rounds), max(1, *flagMinOps/rounds)); err != nil {
				return err
			}
			if round == rounds-1 {
				c.log()
			}
		}
	}
	// The daemon's memory around the 10 MB end-to-end cells: VmRSS, RssAnon and RssFile before
	// the first, RssAnon sampled every millisecond while they run, VmHWM after them.
	memBase := procMem{-1, -1, -1, -1}
	mem := &memSampler{pid: d.cmd.Process.Pid, anonPeak: -1, fileAtPeak: -1}
	for _, c := range large {
		tenMB := c.r.SizeBytes >= 10<<20 && c.r.Path == pathE2E
		if tenMB {
			if mem.samples == 0 {
				memBase = readProcMem(d.cmd.Process.Pid)
			}
			mem.start()
		}
		err := c.step(*flagDur, *flagMinOps)
		if tenMB {
			mem.finish()
		}
		if err != nil {
			return err
		}
		c.log()
	}
	rssBase, rssPeak := int64(-1), int64(-1)
	if mem.samples > 0 {
		rssBase, rssPeak = memBase.VmRSS, readProcMem(d.cmd.Process.Pid).VmHWM
	}
	if err := d.stop(); err != nil {
		return err
	}
	// Where the daemon's CPU goes: a profiled daemon per request kind.
	var splits []cpuSplit
	if *flagSplit {
		if splits, err = measureSplits(dir, daemon, soft, keys, envs[sizes[0].Name]); err != nil {
			return fmt.Errorf("cpu split: %w (run with -split=false to leave it out)", err)
		}
	}
	order := keys
	if tpm != nil {
		if err := tpm.daemon.stop(); err != nil {
			return err
		}
		order = append(slices.Clone(keys), tpm.keys...)
	}
	var rows []row
	for _, c := range append(small, large...) {
		rows = append(rows, c.result())
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		if d := pathOrder(a.Path) - pathOrder(b.Path); d != 0 {
			return d
		}
		if a.Alg != b.Alg {
			return slices.IndexFunc(order, func(k *keySpec) bool { return k.Alg == a.Alg }) - slices.IndexFunc(order, func(k *keySpec) bool { return k.Alg == b.Alg })
		}
		if a.SizeBytes != b.SizeBytes {
			return a.SizeBytes - b.SizeBytes
		}
		return a.Conc - b.Conc
	})

	rep := report{
		rows: rows, keys: keys, sizes: sizes, concs: concs,
		rssBase: rssBase, rssPeak: rssPeak, anonBase: memBase.RssAnon, fileBase: memBase.RssFile,
		anonPeak: mem.anonPeak, fileAtPeak: mem.fileAtPeak, memSamples: mem.samples, sessions: hsm.DefaultMaxSessions - 1,
		loadBefore: loadBefore, loadAfter: loadavg(), elapsed: time.Since(started), splits: splits,
	}
	md, tsv := rep.markdown(), rep.tsv()
	fmt.Print(md)
	if err := os.MkdirAll(*flagOut, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*flagOut, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(*flagOut, "results.tsv"), []byte(tsv), 0o644)
}

// concsFor: every concurrency for the smallest size, 1 for the others (the expensive ones).
func concsFor(s bench.Size, concs []int) []int {
	if s.Bytes <= 1<<10 {
		return concs
	}
	return []int{1}
}

// cell is one row of the table, measured in one or more steps whose results add up.
type cell struct {
	r    row
	op   func(worker int) error                                        // run by r.Conc workers; nil for raw
	raw  func(d time.Duration) ([]time.Duration, time.Duration, error) // measures itself
	heap func() int64                                                  // a heap allocation counter; nil: not measured
	pid  int                                                           // the daemon process the cell measures; 0: none

	lat     []time.Duration
	elapsed time.Duration
	mallocs int64
	cpu     cpuUse // summed over the steps
}

// step measures c for about d and at least minOps operations more.
func (c *cell) step(d time.Duration, minOps int) error {
	m0 := int64(-1)
	if c.heap != nil {
		m0 = c.heap()
	}
	var lat []time.Duration
	var elapsed time.Duration
	var err error
	// CPU is read inside the heap counter's reads: the daemon's counter is a /metrics scrape,
	// which must not be charged to the cell.
	cpu0 := readCPU(c.pid)
	if c.raw != nil {
		lat, elapsed, err = c.raw(d)
	} else {
		lat, elapsed, err = runOps(c.r.Conc, d, minOps, c.op)
	}
	cpu1 := readCPU(c.pid)
	if err != nil {
		return fmt.Errorf("%s %s %s c=%d: %w", c.r.Path, c.r.Alg, c.r.Size, c.r.Conc, err)
	}
	c.cpu = c.cpu.add(cpu1.sub(cpu0))
	if c.heap != nil {
		if m1 := c.heap(); m0 >= 0 && m1 >= m0 {
			c.mallocs += m1 - m0
		} else {
			c.heap = nil
		}
	}
	c.lat = append(c.lat, lat...)
	c.elapsed += elapsed
	return nil
}

func (c *cell) result() row {
	r := c.r
	slices.Sort(c.lat)
	r.Ops = len(c.lat)
	if c.elapsed > 0 {
		r.OpsPerSec = float64(r.Ops) / c.elapsed.Seconds()
	}
	r.P50, r.P99 = percentile(c.lat, 0.50), percentile(c.lat, 0.99)
	r.Allocs = -1
	if c.heap != nil && r.Ops > 0 {
		r.Allocs = float64(c.mallocs) / float64(r.Ops)
	}
	r.DaemonUser, r.DaemonSys, r.Client = -1, -1, -1
	if r.Ops > 0 {
		if c.cpu.daemonOK {
			r.DaemonUser, r.DaemonSys = c.cpu.daemonUser/time.Duration(r.Ops), c.cpu.daemonSys/time.Duration(r.Ops)
		}
		r.Client = c.cpu.self / time.Duration(r.Ops)
	}
	return r
}

// cpuUse is CPU time spent: the daemon's user and system time, and this process's user+system.
type cpuUse struct {
	daemonUser, daemonSys, self time.Duration
	daemonOK                    bool
}

func (a cpuUse) sub(b cpuUse) cpuUse {
	return cpuUse{a.daemonUser - b.daemonUser, a.daemonSys - b.daemonSys, a.self - b.self, a.daemonOK && b.daemonOK}
}

func (a cpuUse) add(b cpuUse) cpuUse {
	if a == (cpuUse{}) {
		return b
	}
	return cpuUse{a.daemonUser + b.daemonUser, a.daemonSys + b.daemonSys, a.self + b.self, a.daemonOK && b.daemonOK}
}

// readCPU reads the daemon's utime and stime (/proc/PID/stat, in clock ticks of 10 ms: cells
// sum them over hundreds of operations) and this process's rusage.
func readCPU(pid int) cpuUse {
	var u cpuUse
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		u.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if pid <= 0 {
		return u
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u
	}
	if ut, st, ok := parseProcStat(string(b)); ok {
		u.daemonUser, u.daemonSys, u.daemonOK = ut*clockTick, st*clockTick, true
	}
	return u
}

// clockTick is the unit of /proc/PID/stat times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// parseProcStat returns utime and stime (fields 14 and 15, in ticks) of a /proc/PID/stat line.
// The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
func parseProcStat(text string) (utime, stime time.Duration, ok bool) {
	i := strings.LastIndexByte(text, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(text[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return time.Duration(u), time.Duration(s), true
}

func (c *cell) log() {
	r := c.result()
	fmt.Fprintf(os.Stderr, "%-26s %-8s %-5s c=%d %6d ops %9.1f/s  p50 %8.3f ms  p99 %8.3f ms\n", r.Path, r.Alg, r.Size, r.Conc, r.Ops, r.OpsPerSec, float64(r.P50)/1e6, float64(r.P99)/1e6)
}

// processMallocs is this process's count of heap allocations (the harness does nothing else
// while a cell runs).
func processMallocs() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.Mallocs)
}

func rawCell(k *keySpec, module, label, pinFile string, conc int) *cell {
	return &cell{
		r:    row{Path: pathRaw, Alg: k.Alg, Conc: conc, Note: "mechanism " + k.Mech},
		heap: processMallocs,
		raw: func(d time.Duration) ([]time.Duration, time.Duration, error) {
			perSec, lat, err := rawsign.Bench(module, label, pinFile, k.Ref.Label, k.Mech, conc, d)
			if err != nil || perSec <= 0 {
				return nil, 0, err
			}
			return lat, time.Duration(float64(len(lat)) / perSec * float64(time.Second)), nil
		},
	}
}

func signerCell(k *keySpec, conc int, digest []byte) *cell {
	signer := k.Key.Signer
	return &cell{
		r:    row{Path: pathSigner, Alg: k.Alg, Conc: conc},
		heap: processMallocs,
		op: func(int) error {
			_, err := signer.Sign(rand.Reader, digest, crypto.SHA256)
			return err
		},
	}
}

func wssCell(k *keySpec, s bench.Size, env []byte, conc int) *cell {
	cred := wss.Credential{Signer: k.Key.Signer, Chain: k.Key.Chain}
	return &cell{
		r:    row{Path: pathWSS, Alg: k.Alg, Size: s.Name, SizeBytes: s.Bytes, Conc: conc},
		heap: processMallocs,
		op: func(int) error {
			_, err := wss.Sign(context.Background(), env, cred, wss.SignOptions{})
			return err
		},
	}
}

// receiveCells returns the verify cell of k (and, for an RSA key, the decrypt
// cell) for envelope env of size s.
func receiveCells(k *keySpec, s bench.Size, env []byte) ([]*cell, error) {
	cred := wss.Credential{Signer: k.Key.Signer, Chain: k.Key.Chain}
	signed, err := wss.Sign(context.Background(), env, cred, wss.SignOptions{})
	if err != nil {
		return nil, err
	}
	trust, err := wss.NewTrustStore(wss.TrustConfig{Pinned: k.Key.Chain[:1]})
	if err != nil {
		return nil, err
	}
	// The bench envelopes carry WS-Addressing headers that a default Sign
	// does not cover.
	vopts := wss.VerifyOptions{Trust: trust, AllowUnsignedAddressing: true}
	cells := []*cell{{
		r:    row{Path: pathVerify, Alg: k.Alg, Size: s.Name, SizeBytes: s.Bytes, Conc: 1, Note: "ops/s: verifications/s; the public key of the certificate"},
		heap: processMallocs,
		op: func(int) error {
			res, err := wss.Verify(context.Background(), signed.Envelope, vopts)
			if err == nil && !res.Valid {
				err = fmt.Errorf("verify: %s: %s", res.Code, res.Detail)
			}
			return err
		},
	}}
	dec, ok := k.Key.Signer.(crypto.Decrypter)
	if !ok {
		return cells, nil
	}
	enc, err := wss.Encrypt(context.Background(), env, wss.EncryptOptions{Recipient: k.Key.Chain[0]})
	if err != nil {
		return nil, err
	}
	dopts := wss.DecryptOptions{Certificate: k.Key.Chain[0]}
	return append(cells, &cell{
		r:    row{Path: pathDecrypt, Alg: k.Alg, Size: s.Name, SizeBytes: s.Bytes, Conc: 1, Note: "ops/s: decryptions/s; RSA-OAEP-SHA256 unwrap in the token, AES-256-GCM"},
		heap: processMallocs,
		op: func(int) error {
			res, err := wss.Decrypt(context.Background(), enc.Envelope, dec, dopts)
			if err == nil && !res.BodyContent {
				err = fmt.Errorf("decrypt: the Body content was not decrypted")
			}
			return err
		},
	}), nil
}

func e2eCell(d *daemon, k *keySpec, s bench.Size, env []byte, conc int) *cell {
	return &cell{
		r:    row{Path: pathE2E, Alg: k.Alg, Size: s.Name, SizeBytes: s.Bytes, Conc: conc},
		heap: d.mallocs,
		pid:  d.cmd.Process.Pid,
		op:   func(int) error { return d.sign(k.Profile, env) },
	}
}

// floorCell measures GET /healthz with the client of the end-to-end cells: two cross-process
// wake-ups and an HTTP request parsed and answered, no key and no envelope.
func floorCell(d *daemon, conc int) *cell {
	return &cell{
		r:    row{Path: pathFloor, Conc: conc, Note: "no key, no body: the least a request over the socket costs"},
		heap: d.mallocs,
		pid:  d.cmd.Process.Pid,
		op:   func(int) error { return d.healthz() },
	}
}

func xmlsecCell(xmlsec1 string, k *keySpec, s bench.Size, tmpl, dir string, conc int) *cell {
	key := filepath.Join(*flagRepo, "testdata", "keys", k.PEM+".key")
	return &cell{
		r: row{Path: pathXMLSec, Alg: k.Alg, Size: s.Name, SizeBytes: s.Bytes, Conc: conc, Note: "process per message, testdata/keys/" + k.PEM + ".key"},
		op: func(w int) error {
			out := filepath.Join(dir, fmt.Sprintf("xmlsec-out-%d.xml", w))
			cmd := exec.Command(xmlsec1, "--sign", "--privkey-pem", key, "--id-attr:Id", "Body", "--id-attr:Id", "Timestamp", "--output", out, tmpl)
			if o, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%w: %s", err, bytes.TrimSpace(o))
			}
			return nil
		},
	}
}

// xmlsecSetup writes the xmlsec1 template for env and checks once that xmlsec1 signs it and
// verifies the result, so the measured command is known to produce a valid signature.
func xmlsecSetup(xmlsec1 string, k *keySpec, s bench.Size, env []byte, dir string) (string, error) {
	tmpl := filepath.Join(dir, fmt.Sprintf("tmpl-%s-%s.xml", k.PEM, s.Name))
	if err := os.WriteFile(tmpl, xmlsecTemplate(env, k.SigAlg), 0o600); err != nil {
		return "", err
	}
	keys := filepath.Join(*flagRepo, "testdata", "keys")
	if err := xmlsecCheck(xmlsec1, filepath.Join(keys, k.PEM+".key"), filepath.Join(keys, k.PEM+".crt"), tmpl, dir); err != nil {
		return "", fmt.Errorf("xmlsec1 %s %s: %w", k.Alg, s.Name, err)
	}
	return tmpl, nil
}

func pathOrder(p string) int {
	return slices.Index([]string{pathRaw, pathSigner, pathWSS, pathE2E, pathFloor, pathXMLSec, pathVerify, pathDecrypt}, p)
}

// runOps runs op on conc workers until d has passed and at least minOps operations are done,
// and returns every operation's latency and the wall time.
func runOps(conc int, d time.Duration, minOps int, op func(worker int) error) ([]time.Duration, time.Duration, error) {
	var total atomic.Int64
	lats := make([][]time.Duration, conc)
	errs := make([]error, conc)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range conc {
		wg.Go(func() {
			for {
				t0 := time.Now()
				if err := op(w); err != nil {
					errs[w] = err
					return
				}
				t1 := time.Now()
				lats[w] = append(lats[w], t1.Sub(t0))
				if n := total.Add(1); !t1.Before(deadline) && n >= int64(minOps) {
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return nil, 0, err
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return all, elapsed, nil
}

// percentile of sorted lat, nearest rank.
func percentile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	i := int(float64(len(lat))*p+0.999999) - 1
	return lat[min(max(i, 0), len(lat)-1)]
}

// daemon is the wssignd process under measurement.
type daemon struct {
	cmd     *exec.Cmd
	client  *http.Client
	stopped bool
	done    chan error
}

// startDaemon starts the daemon binary on a socket in dir, with a token of module (label,
// PIN file) and env added to its environment.
func startDaemon(dir, bin, module, label, pinFile string, env []string, cpuProfile string) (*daemon, error) {
	sock := filepath.Join(dir, "wssignd.sock")
	cfg := fmt.Sprintf(`socket = %q
modules = [%q]
log_level = "warn"
[limits]
max_body_bytes = %d
[tokens.t]
module = %q
label = %q
pin_file = %q
[keys.rsa]
token = "t"
label = "rsa"
[keys.ec]
token = "t"
label = "ec"
[profiles.default]
key = "rsa"
allow_users = ["%d"]
[profiles.ecdsa]
key = "ec"
allow_users = ["%d"]
`, sock, module, 32<<20, module, label, pinFile, os.Getuid(), os.Getuid())
	cfgPath := filepath.Join(dir, "wssignd.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "wssignd.log"))
	if err != nil {
		return nil, err
	}
	args := []string{"-config", cfgPath}
	if cpuProfile != "" {
		prof, err := filepath.Abs(cpuProfile)
		if err != nil {
			return nil, err
		}
		args = append(args, "-cpuprofile", prof)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	if *flagDEnv != "" {
		cmd.Env = append(cmd.Env, strings.Split(*flagDEnv, ",")...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	d := &daemon{cmd: cmd, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait(); logf.Close() }()
	d.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, "unix", sock)
		},
		MaxIdleConnsPerHost: 64,
		DisableCompression:  true,
	}}
	limit := time.Now().Add(30 * time.Second)
	for {
		resp, err := d.client.Get("http://wssignd/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d, nil
			}
		}
		select {
		case err := <-d.done:
			d.stopped = true
			log, _ := os.ReadFile(filepath.Join(dir, "wssignd.log"))
			return nil, fmt.Errorf("daemon exited: %v\n%s", err, log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(limit) {
			d.stop()
			log, _ := os.ReadFile(filepath.Join(dir, "wssignd.log"))
			return nil, fmt.Errorf("daemon not healthy within 30s\n%s", log)
		}
	}
}

func (d *daemon) sign(profile string, env []byte) error {
	body, err := okBody(d.client.Post("http://wssignd/v1/soap/sign?profile="+profile, "text/xml", bytes.NewReader(env)))
	if err != nil {
		return err
	}
	if !bytes.Contains(body, []byte("SignatureValue")) {
		return fmt.Errorf("daemon answered 200 without a signature: %.300s", body)
	}
	return nil
}

// okBody reads a response to the end and fails unless it is a 200.
func okBody(resp *http.Response, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("daemon answered %s: %.300s", resp.Status, body)
	}
	return body, nil
}

// healthz is GET /healthz with the client sign uses, the body read to the end.
func (d *daemon) healthz() error {
	_, err := okBody(d.client.Get("http://wssignd/healthz"))
	return err
}

// mallocs returns go_memstats_mallocs_total of the daemon's /metrics, or -1.
func (d *daemon) mallocs() int64 {
	resp, err := d.client.Get("http://wssignd/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_mallocs_total "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return -1
			}
			return int64(f)
		}
	}
	return -1
}

func (d *daemon) stop() error {
	if d.stopped {
		return nil
	}
	d.stopped = true
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return err
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		return errors.New("daemon did not stop within 30s of SIGTERM")
	}
}

// procMem holds fields of /proc/PID/status in kB; -1 where absent or unreadable.
type procMem struct{ VmRSS, VmHWM, RssAnon, RssFile int64 }

// readProcMem reads /proc/PID/status.
func readProcMem(pid int) procMem {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procMem{-1, -1, -1, -1}
	}
	return parseProcStatus(string(b))
}

// parseProcStatus picks the memory fields ("Name:  123 kB" lines) out of a /proc/PID/status text.
func parseProcStatus(text string) procMem {
	m := procMem{-1, -1, -1, -1}
	fields := map[string]*int64{"VmRSS": &m.VmRSS, "VmHWM": &m.VmHWM, "RssAnon": &m.RssAnon, "RssFile": &m.RssFile}
	for l := range strings.SplitSeq(text, "\n") {
		name, v, ok := strings.Cut(l, ":")
		p := fields[name]
		if !ok || p == nil {
			continue
		}
		v, ok = strings.CutSuffix(strings.TrimSpace(v), "kB")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			*p = n
		}
	}
	return m
}

// memSampler records the highest RssAnon of a process, and its RssFile in that sample, read
// every millisecond between start and finish; it may be started and finished repeatedly.
type memSampler struct {
	pid                  int
	anonPeak, fileAtPeak int64 // kB; start them at -1
	samples              int
	stop, done           chan struct{}
}

func (s *memSampler) start() {
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				s.sample()
				return
			case <-t.C:
			}
		}
	}()
}

func (s *memSampler) finish() {
	close(s.stop)
	<-s.done
}

func (s *memSampler) sample() {
	m := readProcMem(s.pid)
	s.samples++
	if m.RssAnon > s.anonPeak {
		s.anonPeak, s.fileAtPeak = m.RssAnon, m.RssFile
	}
}

// xmlsecTemplate turns a generated envelope into an xmlsec1 signing template: a wsse:Security
// header with a wsu:Timestamp and a ds:Signature over the Timestamp and the Body (exclusive
// C14N, SHA-256), the shape wss.Sign produces, minus the BinarySecurityToken.
func xmlsecTemplate(env []byte, sigAlg string) []byte {
	const (
		wsse = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
		wsu  = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
		exc  = "http://www.w3.org/2001/10/xml-exc-c14n#"
	)
	ref := func(id string) string {
		return `<ds:Reference URI="#` + id + `"><ds:Transforms><ds:Transform Algorithm="` + exc + `"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference>`
	}
	now := time.Now().UTC()
	sec := bench.HeaderOpen + `<wsse:Security xmlns:wsse="` + wsse + `" xmlns:wsu="` + wsu + `" soapenv:mustUnderstand="1">` +
		`<wsu:Timestamp wsu:Id="TS-1"><wsu:Created>` + now.Format(time.RFC3339) + `</wsu:Created><wsu:Expires>` + now.Add(5*time.Minute).Format(time.RFC3339) + `</wsu:Expires></wsu:Timestamp>` +
		`<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="` + exc + `"/><ds:SignatureMethod Algorithm="` + sigAlg + `"/>` +
		ref("TS-1") + ref("Body-1") + `</ds:SignedInfo><ds:SignatureValue/></ds:Signature></wsse:Security>`
	out := bytes.Replace(env, []byte(bench.HeaderOpen), []byte(sec), 1)
	return bytes.Replace(out, []byte(bench.BodyOpen), []byte(`<soapenv:Body xmlns:wsu="`+wsu+`" wsu:Id="Body-1">`), 1)
}

// xmlsecCheck signs tmpl once and has xmlsec1 verify the result with the certificate, so the
// measured command is known to produce a valid signature.
func xmlsecCheck(xmlsec1, key, cert, tmpl, dir string) error {
	out := filepath.Join(dir, "xmlsec-check.xml")
	if o, err := exec.Command(xmlsec1, "--sign", "--privkey-pem", key, "--id-attr:Id", "Body", "--id-attr:Id", "Timestamp", "--output", out, tmpl).CombinedOutput(); err != nil {
		return fmt.Errorf("sign: %w: %s", err, bytes.TrimSpace(o))
	}
	if o, err := exec.Command(xmlsec1, "--verify", "--pubkey-cert-pem", cert, "--id-attr:Id", "Body", "--id-attr:Id", "Timestamp", out).CombinedOutput(); err != nil {
		return fmt.Errorf("verify: %w: %s", err, bytes.TrimSpace(o))
	}
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func parseSizes(s string) ([]bench.Size, error) {
	var out []bench.Size
	for name := range strings.SplitSeq(s, ",") {
		i := slices.IndexFunc(bench.Sizes, func(z bench.Size) bool { return z.Name == strings.TrimSpace(name) })
		if i < 0 {
			return nil, fmt.Errorf("unknown size %q", name)
		}
		out = append(out, bench.Sizes[i])
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad concurrency %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// makeKeys generates each key of keys on tok (RSA-2048 for label "rsa", else EC P-256) with a
// self-signed certificate stored beside it, and finds it as the daemon does.
func makeKeys(tok *hsm.Token, keys []*keySpec) error {
	for _, k := range keys {
		var s crypto.Signer
		var err error
		if k.Ref.Label == "rsa" {
			s, err = tok.GenerateRSA(k.Ref, 2048)
		} else {
			s, err = tok.GenerateEC(k.Ref, elliptic.P256())
		}
		if err != nil {
			return err
		}
		cert, err := hsm.SelfSignedCertificate(s, "wssignd bench "+k.Ref.Label, 24*time.Hour)
		if err != nil {
			return err
		}
		if err := tok.ImportCertificate(k.Ref, cert); err != nil {
			return err
		}
		if k.Key, err = tok.FindKey(k.Ref); err != nil {
			return err
		}
	}
	return nil
}

// tpmBench is a TPM token with the two keys and a daemon serving them.
type tpmBench struct {
	dir    string
	script string
	token  hsm.TPMToken
	tok    *hsm.Token
	keys   []*keySpec
	daemon *daemon
}

// startTPMBench starts a software TPM under dir/tpm (scripts/dev-tpm.sh, on a free port), makes
// a tpm2-pkcs11 token with an RSA-2048 and an EC P-256 key, and starts a daemon on it.
func startTPMBench(dir, bin string) (*tpmBench, error) {
	repo, err := filepath.Abs(*flagRepo)
	if err != nil {
		return nil, err
	}
	tb := &tpmBench{dir: filepath.Join(dir, "tpm"), script: filepath.Join(repo, "scripts", "dev-tpm.sh")}
	port, err := freePortPair()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(tb.script, tb.dir)
	cmd.Env = append(os.Environ(), "WSSIGND_DEV_SWTPM=1", "WSSIGND_DEV_SWTPM_PORT="+strconv.Itoa(port))
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.stop()
		return nil, fmt.Errorf("%s: %v: %s", tb.script, err, out)
	}
	envText, err := os.ReadFile(filepath.Join(tb.dir, "env"))
	if err != nil {
		tb.stop()
		return nil, err
	}
	var env []string
	for _, line := range strings.Split(string(envText), "\n") {
		kv, ok := strings.CutPrefix(strings.TrimSpace(line), "export ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		v = strings.Trim(v, "'")
		env = append(env, k+"="+v)
		if err := os.Setenv(k, v); err != nil { // tpm2-pkcs11 in this process reads them
			tb.stop()
			return nil, err
		}
	}
	fail := func(err error) (*tpmBench, error) { tb.stop(); return nil, err }
	if tb.token, err = hsm.InitTPMToken(os.Getenv("TPM2_PKCS11_STORE"), os.Getenv("TPM2_PKCS11_TCTI"), tokenLabel); err != nil {
		return fail(err)
	}
	if tb.tok, err = hsm.Open(hsm.Config{Module: tb.token.Module, TokenLabel: tb.token.Label, PINFile: tb.token.PINFile}); err != nil {
		return fail(err)
	}
	tb.keys = []*keySpec{
		{Alg: "RSA-2048 TPM", Ref: hsm.KeyRef{Label: "rsa", ID: []byte{1}}, Mech: rawsign.RSAPKCS, Profile: "default"},
		{Alg: "EC P-256 TPM", Ref: hsm.KeyRef{Label: "ec", ID: []byte{2}}, Mech: rawsign.ECDSA, Profile: "ecdsa"},
	}
	if err := makeKeys(tb.tok, tb.keys); err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(filepath.Join(tb.dir, "daemon"), 0o700); err != nil {
		return fail(err)
	}
	if tb.daemon, err = startDaemon(filepath.Join(tb.dir, "daemon"), bin, tb.token.Module, tb.token.Label, tb.token.PINFile, env, ""); err != nil {
		return fail(err)
	}
	return tb, nil
}

// stop stops the daemon, closes the token and stops the software TPM.
func (tb *tpmBench) stop() {
	if tb.daemon != nil {
		_ = tb.daemon.stop()
	}
	if tb.tok != nil {
		_ = tb.tok.Close()
	}
	_ = exec.Command(tb.script, tb.dir, "stop").Run()
}

// freePortPair returns a TCP port p on 127.0.0.1 such that p and p+1 were free a moment ago
// (swtpm's server and control ports).
func freePortPair() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		l.Close()
		if err == nil {
			l2.Close()
			return p, nil
		}
	}
	return 0, errors.New("no two consecutive free tcp ports on 127.0.0.1")
}

package hsmtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
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
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm"
)

// TPMLabel is the label of the token NewTPM builds.
const TPMLabel = "wssignd-tpm"

// tpmTools are the programs a TPM test token needs, with the Debian package of each.
var tpmTools = []struct{ path, pkg string }{
	{"swtpm", "swtpm"},
	{"/usr/sbin/tpm2-abrmd", "tpm2-abrmd"},
	{"tpm2_dictionarylockout", "tpm2-tools"},
	{"tpm2_getcap", "tpm2-tools"},
	{"tpm2_ptool", "libtpm2-pkcs11-tools"},
	{"dbus-daemon", "dbus"},
}

// tabrmdTCTIs are where distributions install the TCTI of tpm2-abrmd.
var tabrmdTCTIs = []string{
	"/usr/lib/x86_64-linux-gnu/libtss2-tcti-tabrmd.so.0",
	"/usr/lib/aarch64-linux-gnu/libtss2-tcti-tabrmd.so.0",
	"/usr/lib/*-linux-gnu*/libtss2-tcti-tabrmd.so.0",
	"/usr/lib64/libtss2-tcti-tabrmd.so.0",
	"/usr/lib/libtss2-tcti-tabrmd.so.0",
}

// unavailable fails the test under CI=true and skips it otherwise.
func unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s", msg)
	}
	t.Skipf("%s", msg)
}

// skipShort skips token tests in go test -short mode.
func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("hsmtest: token tests are skipped in -short mode")
	}
}

// TPM is a software TPM 2.0 (swtpm) with its resource manager (tpm2-abrmd, under a D-Bus name
// of its own on the test process's private session bus), each in its own process group, with
// its state and the tpm2-pkcs11 store in a fresh temporary directory. Kill and Start take the
// TPM (swtpm and tpm2-abrmd) away and bring it back with the same state, as a host whose TPM
// resource manager restarts. Everything the TPM started is stopped in t.Cleanup.
//
// The session bus (dbus-daemon) is one per test process, started with the first TPM and ended
// with the process (it gets SIGKILL when the process exits): GLib, inside the tabrmd TCTI,
// connects to the session bus once per process and never again, so a bus that went away with
// one test would leave every later TPM of the process unreachable.
type TPM struct {
	Dir   string // temporary directory: state/, store/
	Store string // the tpm2-pkcs11 store (TPM2_PKCS11_STORE)
	TCTI  string // "tabrmd:bus_type=session,bus_name=...": this TPM's tpm2-abrmd on DBusAddress
	// DBusAddress is the private session bus (DBUS_SESSION_BUS_ADDRESS).
	DBusAddress string
	BusName     string // tpm2-abrmd's D-Bus name
	Module      string // libtpm2_pkcs11.so

	t          testing.TB
	mu         sync.Mutex
	swtpm      *proc
	abrmd      *proc
	port, ctrl int
}

// The process's session bus.
var (
	busOnce sync.Once
	busAddr string
	busErr  error
	busSeq  atomic.Int64
)

// sessionBus starts the process's private session bus once and returns its address. The
// dbus-daemon is started from a goroutine locked to its thread for good, so that its
// parent-death signal (sent when the thread that forked it exits) comes only with the process.
func sessionBus() (string, error) {
	busOnce.Do(func() {
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread() // never unlocked: this thread lives as long as the process
			busAddr, busErr = startBus()
			close(done)
			select {}
		}()
		<-done
	})
	return busAddr, busErr
}

func startBus() (string, error) {
	name := fmt.Sprintf("wssignd-hsmtest-%d-%d", os.Getpid(), time.Now().UnixNano())
	cmd := exec.Command("dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1",
		"--address=unix:abstract="+name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	p, err := startProc("dbus-daemon", cmd)
	if err != nil {
		return "", err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			addr <- strings.TrimSpace(sc.Text())
		}
		close(addr)
		for sc.Scan() {
		}
	}()
	select {
	case a, ok := <-addr:
		if !ok || a == "" {
			_ = p.kill()
			return "", fmt.Errorf("dbus-daemon printed no address: %s", p.stderr)
		}
		return a, nil
	case <-time.After(30 * time.Second):
		_ = p.kill()
		return "", errors.New("dbus-daemon printed no address within 30s")
	}
}

// proc is a process started in its own process group.
type proc struct {
	name   string
	cmd    *exec.Cmd
	waited chan struct{}
	stderr *tailBuffer
}

// tailBuffer keeps the last 4 KiB written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	if len(b.b) > 4096 {
		b.b = b.b[len(b.b)-4096:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b)
}

func startProc(name string, cmd *exec.Cmd) (*proc, error) {
	// Its own process group, so Kill ends it with whatever it forked; and SIGKILL if this test
	// process dies first, so no TPM outlives the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{name: name, cmd: cmd, waited: make(chan struct{}), stderr: &tailBuffer{}}
	if cmd.Stderr == nil {
		cmd.Stderr = p.stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.waited)
	}()
	return p, nil
}

// kill kills the process group and waits for the process.
func (p *proc) kill() error {
	if p == nil {
		return nil
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.waited:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit within 30s of SIGKILL", p.name, p.cmd.Process.Pid)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.waited:
		return true
	default:
		return false
	}
}

// StartTPM starts a fresh software TPM with its resource manager, sets lenient
// dictionary-attack parameters (a test PIN typed wrong a few times must not lock it), creates
// an empty tpm2-pkcs11 store and sets, with t.Setenv (tests using it cannot be parallel), the
// variables tpm2-pkcs11 and tpm2-tools read: TPM2_PKCS11_STORE, TPM2_PKCS11_TCTI,
// TPM2TOOLS_TCTI and DBUS_SESSION_BUS_ADDRESS. tpm2-pkcs11 reads them at C_Initialize: close
// every Token of an earlier TPM first (hsm finalises the module with its last Token).
//
// A missing tool fails the test when CI is "true" and skips it otherwise, naming the Debian
// package; in -short mode the test is skipped.
func StartTPM(t testing.TB) *TPM {
	t.Helper()
	skipShort(t)
	for _, tool := range tpmTools {
		if _, err := exec.LookPath(tool.path); err != nil {
			unavailable(t, fmt.Sprintf("hsmtest: %s not found (apt-get install %s)", filepath.Base(tool.path), tool.pkg))
		}
	}
	findFile(t, tabrmdTCTIs, "libtss2-tcti-tabrmd0")
	module, err := hsm.TPMModule()
	if err != nil {
		unavailable(t, "hsmtest: "+err.Error())
	}
	bus, err := sessionBus()
	if err != nil {
		t.Fatalf("hsmtest: session bus: %v", err)
	}
	dir, err := tpmDir(t)
	if err != nil {
		t.Fatal(err)
	}
	busName := fmt.Sprintf("com.intel.tss2.Tabrmd.t%d", busSeq.Add(1))
	tp := &TPM{Dir: dir, Store: filepath.Join(dir, "store"), TCTI: "tabrmd:bus_type=session,bus_name=" + busName,
		DBusAddress: bus, BusName: busName, Module: module, t: t}
	t.Cleanup(func() {
		if err := tp.stopAll(); err != nil {
			t.Error(err)
		}
		os.RemoveAll(dir)
	})
	for _, d := range []string{filepath.Join(dir, "state"), tp.Store} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, kv := range [][2]string{
		{"DBUS_SESSION_BUS_ADDRESS", tp.DBusAddress},
		{"TPM2_PKCS11_STORE", tp.Store},
		{"TPM2_PKCS11_TCTI", tp.TCTI},
		{"TPM2TOOLS_TCTI", tp.TCTI},
		{"TPM2_PKCS11_LOG_LEVEL", "0"}, // tests provoke errors by the thousand: keep their logs readable
		{"TSS2_LOG", "all+none"},
	} {
		t.Setenv(kv[0], kv[1])
	}
	tp.Start()
	tp.SetDictionaryAttack(1000, time.Second, time.Second)
	return tp
}

// freePortPair returns a TCP port p on 127.0.0.1 such that p and p+1 were free a moment ago:
// the swtpm TCTI reaches the control channel at the server port + 1.
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

// Start starts swtpm (with the state it had, the first time empty) and tpm2-abrmd, and returns
// once the TPM answers through the resource manager.
func (tp *TPM) Start() {
	tp.t.Helper()
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.swtpm != nil {
		tp.t.Fatal("hsmtest: the TPM is already running")
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ { // a port taken between freePorts and swtpm: again
		if err = tp.startSWTPM(); err == nil {
			break
		}
	}
	if err != nil {
		tp.t.Fatalf("hsmtest: %v", err)
	}
	if err := tp.startABRMD(); err != nil {
		tp.t.Fatalf("hsmtest: %v", err)
	}
}

func (tp *TPM) startSWTPM() error {
	if tp.port == 0 {
		p, err := freePortPair()
		if err != nil {
			return err
		}
		tp.port, tp.ctrl = p, p+1
	}
	// not-need-init,startup-clear: swtpm initialises itself and runs TPM2_Startup(CLEAR), as
	// firmware does at boot (after a kill there is no saved state to resume).
	cmd := exec.Command("swtpm", "socket", "--tpm2",
		"--tpmstate", "dir="+filepath.Join(tp.Dir, "state"),
		"--server", "type=tcp,bindaddr=127.0.0.1,port="+strconv.Itoa(tp.port),
		"--ctrl", "type=tcp,bindaddr=127.0.0.1,port="+strconv.Itoa(tp.ctrl),
		"--flags", "not-need-init,startup-clear")
	p, err := startProc("swtpm", cmd)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(tp.ctrl), time.Second)
		if err == nil {
			c.Close()
			tp.swtpm = p
			return nil
		}
		if p.exited() || time.Now().After(deadline) {
			_ = p.kill()
			tp.port = 0 // another pair next time
			return fmt.Errorf("swtpm did not listen: %s", p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (tp *TPM) startABRMD() error {
	cmd := exec.Command("/usr/sbin/tpm2-abrmd", "--session", "--allow-root", "--dbus-name="+tp.BusName,
		"--tcti=swtpm:host=127.0.0.1,port="+strconv.Itoa(tp.port))
	cmd.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+tp.DBusAddress)
	p, err := startProc("tpm2-abrmd", cmd)
	if err != nil {
		return err
	}
	tp.abrmd = p
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := tp.tool("tpm2_getcap", "properties-fixed"); err == nil {
			return nil
		} else if p.exited() || time.Now().After(deadline) {
			return fmt.Errorf("tpm2-abrmd did not answer: %v: %s", err, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tool runs a tpm2-tools command against this TPM.
func (tp *TPM) tool(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+tp.DBusAddress, "TPM2TOOLS_TCTI="+tp.TCTI)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// SetDictionaryAttack sets the TPM's dictionary-attack parameters (tpm2_dictionarylockout):
// after maxTries failed authorisations the TPM locks out; one failure is forgotten every
// recovery; lockoutRecovery is the wait after a failed lockout-hierarchy authorisation.
func (tp *TPM) SetDictionaryAttack(maxTries int, recovery, lockoutRecovery time.Duration) {
	tp.t.Helper()
	if _, err := tp.tool("tpm2_dictionarylockout", "--setup-parameters",
		"--max-tries="+strconv.Itoa(maxTries),
		"--recovery-time="+strconv.Itoa(int(recovery.Seconds())),
		"--lockout-recovery-time="+strconv.Itoa(int(lockoutRecovery.Seconds()))); err != nil {
		tp.t.Fatalf("hsmtest: %v", err)
	}
}

// ClearLockout resets the TPM's dictionary-attack counter, ending a lockout
// (tpm2_dictionarylockout --clear-lockout), as an operator does with the lockout authorisation.
func (tp *TPM) ClearLockout() {
	tp.t.Helper()
	if _, err := tp.tool("tpm2_dictionarylockout", "--clear-lockout"); err != nil {
		tp.t.Fatalf("hsmtest: %v", err)
	}
}

// InLockout reports whether the TPM is in dictionary-attack lockout.
func (tp *TPM) InLockout() bool {
	tp.t.Helper()
	out, err := tp.tool("tpm2_getcap", "properties-variable")
	if err != nil {
		tp.t.Fatalf("hsmtest: %v", err)
	}
	return strings.Contains(out, "inLockout:                 1") || strings.Contains(strings.Join(strings.Fields(out), " "), "inLockout: 1")
}

// Kill kills tpm2-abrmd and swtpm (SIGKILL to each process group) and waits for them: the TPM
// and its resource manager are gone. The session bus stays.
func (tp *TPM) Kill() {
	tp.t.Helper()
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for _, p := range []**proc{&tp.abrmd, &tp.swtpm} {
		if err := (*p).kill(); err != nil {
			tp.t.Fatalf("hsmtest: %v", err)
		}
		*p = nil
	}
}

func (tp *TPM) stopAll() error {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	var errs []error
	for _, p := range []**proc{&tp.abrmd, &tp.swtpm} {
		errs = append(errs, (*p).kill())
		*p = nil
	}
	return errors.Join(errs...)
}

// AddToken adds a tpm2-pkcs11 token with the given label to the store (hsm.InitTPMToken).
func (tp *TPM) AddToken(label string) hsm.TPMToken {
	tp.t.Helper()
	tt, err := hsm.InitTPMToken(tp.Store, tp.TCTI, label)
	if err != nil {
		tp.t.Fatalf("hsmtest: %v", err)
	}
	return tt
}

// NewTPM is New on a TPM: it starts a fresh TPM (StartTPM), adds a token labelled TPMLabel,
// opens it, generates an RSA-2048 key (label "rsa", ID 0x01) and an EC P-256 key (label "ec",
// ID 0x02) through PKCS#11, each with a self-signed certificate stored on the token, and
// returns the open Token (closed in t.Cleanup) with what a config file needs. Env.Soft is
// empty; Env.TPM and Env.TPMToken describe the TPM.
func NewTPM(t testing.TB) *Env {
	t.Helper()
	tp := StartTPM(t)
	tt := tp.AddToken(TPMLabel)
	cfg := hsm.Config{Module: tt.Module, TokenLabel: tt.Label, PINFile: tt.PINFile}
	env := &Env{Kind: TPM2, Config: cfg, TPM: tp, TPMToken: tt}
	env.populate(t)
	return env
}

// The process's shared TPM token (SharedTPM).
var shared struct {
	once sync.Once
	env  *Env
	vars [][2]string // the environment tpm2-pkcs11 needs for it
	err  error
}

// SharedTPM is NewTPM for tests that neither kill nor lock the TPM nor change what is on its
// token: one software TPM with one token and the two keys is made for the whole test process
// (its swtpm and tpm2-abrmd end with the process, like the session bus), and each call opens a
// Token of its own on it (closed in t.Cleanup) and finds the keys. Env.TPM is nil: a test that
// kills the TPM, provokes a lockout or adds objects uses NewTPM. It sets the variables StartTPM
// sets, with t.Setenv.
func SharedTPM(t testing.TB) *Env {
	t.Helper()
	skipShort(t)
	for _, tool := range tpmTools {
		if _, err := exec.LookPath(tool.path); err != nil {
			unavailable(t, fmt.Sprintf("hsmtest: %s not found (apt-get install %s)", filepath.Base(tool.path), tool.pkg))
		}
	}
	shared.once.Do(func() {
		done := make(chan struct{})
		go func() {
			// Locked for good, as for the session bus: the processes get their parent-death
			// signal when the thread that started them exits, and this one never does.
			runtime.LockOSThread()
			shared.env, shared.vars, shared.err = makeSharedTPM()
			close(done)
			select {}
		}()
		<-done
	})
	if shared.err != nil {
		t.Fatalf("hsmtest: shared TPM: %v", shared.err)
	}
	for _, kv := range shared.vars {
		t.Setenv(kv[0], kv[1])
	}
	s := shared.env
	env := &Env{Kind: TPM2, Config: s.Config, TPMToken: s.TPMToken}
	tok, err := hsm.Open(env.Config)
	if err != nil {
		t.Fatalf("hsmtest: %v", err)
	}
	t.Cleanup(func() {
		if err := tok.Close(); err != nil {
			t.Errorf("hsmtest: %v", err)
		}
	})
	env.Token = tok
	if env.RSA, err = tok.FindKey(RSARef); err != nil {
		t.Fatalf("hsmtest: %v", err)
	}
	if env.EC, err = tok.FindKey(ECRef); err != nil {
		t.Fatalf("hsmtest: %v", err)
	}
	return env
}

// makeSharedTPM builds the shared TPM through NewTPM with a setupTB, which turns Fatal into an
// error, keeps the processes (no cleanup) and records the environment instead of setting it
// for good. The Token NewTPM opened is closed again.
func makeSharedTPM() (env *Env, vars [][2]string, err error) {
	tb := &setupTB{}
	defer func() {
		for _, kv := range slices.Backward(tb.restore) {
			if kv[1] == "\x00unset" {
				os.Unsetenv(kv[0])
			} else {
				os.Setenv(kv[0], kv[1])
			}
		}
		if r := recover(); r != nil {
			if r != tb {
				panic(r)
			}
			env, err = nil, tb.err
		}
	}()
	env = NewTPM(tb)
	env.TPM = nil
	if err := env.Token.Close(); err != nil {
		return nil, nil, err
	}
	env.Token = nil
	return env, tb.vars, nil
}

// setupTB runs test helpers outside a test: Fatal and Skip end the helper with an error,
// Cleanup is never run (what is built lives as long as the process), Setenv sets the variable
// until the helper returns and records it.
type setupTB struct {
	testing.TB
	err     error
	vars    [][2]string
	restore [][2]string
}

func (s *setupTB) Helper()                           {}
func (s *setupTB) Cleanup(func())                    {}
func (s *setupTB) Logf(string, ...any)               {}
func (s *setupTB) Fatal(args ...any)                 { s.stop(fmt.Sprint(args...)) }
func (s *setupTB) Fatalf(format string, args ...any) { s.stop(fmt.Sprintf(format, args...)) }
func (s *setupTB) Skip(args ...any)                  { s.stop(fmt.Sprint(args...)) }
func (s *setupTB) Skipf(format string, args ...any)  { s.stop(fmt.Sprintf(format, args...)) }
func (s *setupTB) Errorf(format string, args ...any) { s.stop(fmt.Sprintf(format, args...)) }
func (s *setupTB) stop(msg string) {
	s.err = errors.New(msg)
	panic(s)
}

// sharedPrefix names the directory of a test process's shared TPM, followed by its pid.
const sharedPrefix = "hsmtest-shared-tpm-"

// tpmDir makes the directory of a TPM: a fresh temporary one, or for the shared TPM
// (setupTB) one named after the process, after removing those of processes that are gone
// (nothing removes a shared TPM's directory when its process ends).
func tpmDir(t testing.TB) (string, error) {
	if _, ok := t.(*setupTB); !ok {
		return os.MkdirTemp("", "tpm")
	}
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), sharedPrefix+"*"))
	for _, d := range old {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), sharedPrefix))
		if err == nil && syscall.Kill(pid, 0) == syscall.ESRCH {
			os.RemoveAll(d)
		}
	}
	dir := filepath.Join(os.TempDir(), sharedPrefix+strconv.Itoa(os.Getpid()))
	return dir, os.MkdirAll(dir, 0o700)
}

func (s *setupTB) TempDir() string {
	dir, err := os.MkdirTemp("", "hsmtest")
	if err != nil {
		s.stop(err.Error())
	}
	return dir
}

func (s *setupTB) Setenv(key, value string) {
	old, ok := os.LookupEnv(key)
	if !ok {
		old = "\x00unset"
	}
	s.restore = append(s.restore, [2]string{key, old})
	s.vars = append(s.vars, [2]string{key, value})
	os.Setenv(key, value)
}

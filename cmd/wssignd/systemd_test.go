package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wssignd/wssignd/hsm/hsmtest"
	"github.com/wssignd/wssignd/internal/testutil"
)

// notifySocket is a NOTIFY_SOCKET the test owns: a unixgram socket that
// receives what the daemon tells systemd.
type notifySocket struct {
	path string
	conn *net.UnixConn
}

func newNotifySocket(t *testing.T, dir string) *notifySocket {
	t.Helper()
	path := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &notifySocket{path: path, conn: conn}
}

// next returns the next datagram. The deadline only keeps a broken daemon
// from hanging the suite; nothing asserts on how long a message takes.
func (n *notifySocket) next(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 4096)
	n.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	k, err := n.conn.Read(buf)
	if err != nil {
		t.Fatalf("notify socket: %v", err)
	}
	return string(buf[:k])
}

// nextNotWatchdog returns the next datagram that is not a watchdog ping.
func (n *notifySocket) nextNotWatchdog(t *testing.T) string {
	t.Helper()
	for {
		if msg := n.next(t); msg != "WATCHDOG=1" {
			return msg
		}
	}
}

// pending returns a datagram already queued, or "" when there is none.
func (n *notifySocket) pending(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 4096)
	n.conn.SetReadDeadline(time.Now().Add(-time.Second))
	k, err := n.conn.Read(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return ""
	}
	if err != nil {
		t.Fatalf("notify socket: %v", err)
	}
	return string(buf[:k])
}

func monotonicUsec(t *testing.T) int64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

func TestStatusLine(t *testing.T) {
	for _, tc := range []struct {
		name   string
		states map[string]string
		want   string
	}{
		{"no tokens", nil, "STATUS=serving"},
		{"sorted", map[string]string{"b": "offline", "a": "online", "c": "pin-rejected"}, "STATUS=serving; tokens: a=online, b=offline, c=pin-rejected"},
		{"control characters cannot add a line", map[string]string{"x\nREADY=1": "on\rline"}, "STATUS=serving; tokens: x?READY=1=on?line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statusLine("serving", tc.states); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestNotifyMessages checks each sd_notify message the daemon sends, as
// received on a NOTIFY_SOCKET the test owns.
func TestNotifyMessages(t *testing.T) {
	ns := newNotifySocket(t, shortDir(t))
	t.Setenv("NOTIFY_SOCKET", ns.path)

	notifyReady(map[string]string{"hsm": "offline", "card": "online"})
	if got, want := ns.next(t), "READY=1\nSTATUS=serving; tokens: card=online, hsm=offline"; got != want {
		t.Errorf("ready: got %q, want %q", got, want)
	}

	before := monotonicUsec(t)
	notifyReloading()
	after := monotonicUsec(t)
	got := ns.next(t)
	m := regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=([0-9]+)\nSTATUS=reloading configuration$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("reloading: got %q", got)
	}
	// systemd (Type=notify-reload) matches MONOTONIC_USEC against the time
	// it sent SIGHUP: it must be CLOCK_MONOTONIC, in microseconds.
	if usec, _ := strconv.ParseInt(m[1], 10, 64); usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC=%d is not CLOCK_MONOTONIC µs between %d and %d", usec, before, after)
	}

	notifyStopping()
	if got, want := ns.next(t), "STOPPING=1\nSTATUS=stopping: draining requests in flight"; got != want {
		t.Errorf("stopping: got %q, want %q", got, want)
	}
	if extra := ns.pending(t); extra != "" {
		t.Errorf("unexpected message %q", extra)
	}

	// Without NOTIFY_SOCKET (started by hand) notifying is a no-op.
	t.Setenv("NOTIFY_SOCKET", "")
	notifyReady(nil)
	notifyStopping()
	if extra := ns.pending(t); extra != "" {
		t.Errorf("message %q sent without NOTIFY_SOCKET", extra)
	}
}

// TestWatchdog checks that the watchdog pings only when systemd asked this
// process for it, and stops with its context.
func TestWatchdog(t *testing.T) {
	ns := newNotifySocket(t, shortDir(t))
	t.Setenv("NOTIFY_SOCKET", ns.path)
	for _, tc := range []struct {
		name       string
		usec, pid  string
		wantPinged bool
	}{
		{"not enabled", "", "", false},
		{"enabled for another process", "20000", strconv.Itoa(os.Getpid() + 1), false},
		{"enabled for this process", "20000", strconv.Itoa(os.Getpid()), true},
		{"enabled without WATCHDOG_PID", "20000", "", true},
		{"invalid interval", "-5", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("WATCHDOG_USEC", tc.usec)
			t.Setenv("WATCHDOG_PID", tc.pid)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { watchdog(ctx); close(done) }()
			if !tc.wantPinged {
				<-done // returns by itself: nothing to ping
				cancel()
				if msg := ns.pending(t); msg != "" {
					t.Fatalf("pinged %q", msg)
				}
				return
			}
			for range 3 { // the first ping and two from the ticker
				if msg := ns.next(t); msg != "WATCHDOG=1" {
					t.Fatalf("got %q, want WATCHDOG=1", msg)
				}
			}
			cancel()
			<-done
			for ns.pending(t) != "" { // drain a ping sent before cancel
			}
		})
	}
}

// namedFile returns a dup of c's descriptor under name, as
// activation.Files names what LISTEN_FDNAMES lists.
func namedFile(t *testing.T, c interface{ File() (*os.File, error) }, name string) *os.File {
	t.Helper()
	f, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return dupNamed(t, f, name)
}

// dupNamed returns a new descriptor for f's file under name; closing it
// (activatedListener closes what it does not keep) leaves f alone.
func dupNamed(t *testing.T, f *os.File, name string) *os.File {
	t.Helper()
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	nf := os.NewFile(uintptr(fd), name)
	t.Cleanup(func() { nf.Close() })
	return nf
}

func TestActivatedListener(t *testing.T) {
	dir := shortDir(t)
	unixLn := func(name string) (*net.UnixListener, string) {
		p := filepath.Join(dir, name)
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l, p
	}
	api, apiPath := unixLn("api.sock")
	other, _ := unixLn("other.sock")
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()

	t.Run("by name among others", func(t *testing.T) {
		ln, err := activatedListener([]*os.File{namedFile(t, other, "metrics"), namedFile(t, api, listenFDName)})
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if ln.Addr().String() != apiPath {
			t.Fatalf("listener on %s, want %s", ln.Addr(), apiPath)
		}
		// The activated socket accepts: a client of apiPath reaches ln.
		go func() {
			if c, err := net.Dial("unix", apiPath); err == nil {
				c.Write([]byte("x"))
				c.Close()
			}
		}()
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(c)
		c.Close()
		if string(b) != "x" {
			t.Fatalf("read %q", b)
		}
	})
	for _, tc := range []struct {
		name  string
		files func(t *testing.T) []*os.File
		want  string
	}{
		{"no socket with our name", func(t *testing.T) []*os.File {
			return []*os.File{namedFile(t, api, "wssignd.socket"), namedFile(t, other, "LISTEN_FD_4")}
		}, `[wssignd.socket LISTEN_FD_4] but none named "wssignd-api"`},
		{"TCP socket under our name", func(t *testing.T) []*os.File {
			return []*os.File{namedFile(t, tcp, listenFDName)}
		}, "is a tcp socket"},
		{"not a socket", func(t *testing.T) []*os.File {
			return []*os.File{dupNamed(t, r, listenFDName)}
		}, "is not a listening socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := activatedListener(tc.files(t))
			if err == nil {
				ln.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// buildDaemon builds the wssignd binary (cgo, as packaged) into a temp dir.
func buildDaemon(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wssignd")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/wssignd")
	cmd.Dir = testutil.RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestSocketActivatedDaemon runs the real binary under systemd-socket-activate
// (the socket-passing protocol of wssignd.socket, without a running systemd):
// the first connection starts it, it serves a sign request on the socket it
// was passed (which xmlsec1 verifies), never creates its configured socket,
// and tells NOTIFY_SOCKET READY=1 with the token state, pings the watchdog,
// says RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a SIGHUP reload
// and serves on, and says STOPPING=1 on SIGTERM before exiting 0.
func TestSocketActivatedDaemon(t *testing.T) {
	activate := testutil.RequireTool(t, "systemd-socket-activate", "systemd")
	env := hsmtest.New(t)
	bin := buildDaemon(t)
	dir := shortDir(t)
	ns := newNotifySocket(t, dir)
	apiSock := filepath.Join(dir, "api.sock")
	selfSock := filepath.Join(dir, "self.sock") // config's socket: must stay unused
	cfg := filepath.Join(dir, "wssignd.toml")
	if err := os.WriteFile(cfg, []byte(testConfig(env, selfSock, "")), 0o600); err != nil {
		t.Fatal(err)
	}

	var stderr bytes.Buffer
	cmd := exec.Command(activate, "-l", apiSock, "--fdname="+listenFDName,
		"-E", "SOFTHSM2_CONF="+env.Soft.ConfigFile,
		"-E", "NOTIFY_SOCKET="+ns.path,
		"-E", "WATCHDOG_USEC=60000000",
		bin, "-config", cfg)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("systemd-socket-activate and wssignd output:\n%s", stderr.String())
		}
	}()
	// systemd-socket-activate binds the socket, then starts wssignd on the
	// first connection: wait for the socket file.
	for {
		if _, err := os.Stat(apiSock); err == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("systemd-socket-activate exited: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}

	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", apiSock)
		},
	}}
	sign := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // hang guard only
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://wssignd/v1/soap/sign?profile=default",
			bytes.NewReader(testutil.ReadTestdata(t, "envelope-soap11.xml")))
		req.Header.Set("Content-Type", "text/xml")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		signed, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", what, resp.StatusCode, signed)
		}
		if out, ok := testutil.XMLSec1Verify(t, signed, env.RSA.Chain[0]); !ok {
			t.Fatalf("%s: xmlsec1 rejects the signature made on the activated socket: %s", what, out)
		}
	}
	sign("first request (it activates the daemon)")
	if _, err := os.Lstat(selfSock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("daemon created its own socket %s although systemd passed one (%v)", selfSock, err)
	}
	if got, want := ns.next(t), "READY=1\nSTATUS=serving; tokens: t=online"; got != want {
		t.Errorf("first notification %q, want %q", got, want)
	}
	if got := ns.next(t); got != "WATCHDOG=1" {
		t.Errorf("after READY=1: %q, want WATCHDOG=1", got)
	}

	// SIGHUP (ExecReload=): RELOADING=1 with this boot's CLOCK_MONOTONIC
	// time, then READY=1 again, and the daemon still serves.
	before := monotonicUsec(t)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	got := ns.nextNotWatchdog(t)
	after := monotonicUsec(t)
	m := regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=([0-9]+)\nSTATUS=reloading configuration$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("on SIGHUP: %q, want RELOADING=1 with MONOTONIC_USEC", got)
	}
	if usec, _ := strconv.ParseInt(m[1], 10, 64); usec < before || usec > after {
		t.Errorf("MONOTONIC_USEC=%d not between %d (SIGHUP sent) and %d (received)", usec, before, after)
	}
	if got, want := ns.nextNotWatchdog(t), "READY=1\nSTATUS=serving; tokens: t=online"; got != want {
		t.Errorf("after reload: %q, want %q", got, want)
	}
	sign("request after the reload")

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got, want := ns.nextNotWatchdog(t), "STOPPING=1\nSTATUS=stopping: draining requests in flight"; got != want {
		t.Errorf("on SIGTERM: %q, want %q", got, want)
	}
	if err := <-exited; err != nil {
		t.Errorf("daemon exit: %v", err)
	}
	// The daemon leaves systemd's socket in place (RemoveOnStop= is the
	// socket unit's business), unlike a socket it created itself.
	if fi, err := os.Lstat(apiSock); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("activated socket after stop: %v %v", fi, err)
	}
}

// unitDir is the repository's systemd/ directory.
func unitDir(t *testing.T) string { return filepath.Join(testutil.RepoRoot(t), "systemd") }

// unitRoot lays out a root for systemd-analyze --root: the two units under
// /usr/lib/systemd/system beside the host's targets, and stand-ins for the
// executables the units name.
func unitRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	sys := filepath.Join(root, "usr/lib/systemd/system")
	for _, d := range []string{sys, filepath.Join(root, "usr/bin"), filepath.Join(root, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"wssignd.socket", "wssignd.service"} {
		b, err := os.ReadFile(filepath.Join(unitDir(t), u))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sys, u), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	targets, _ := filepath.Glob("/usr/lib/systemd/system/*.target")
	if len(targets) == 0 {
		targets, _ = filepath.Glob("/lib/systemd/system/*.target")
	}
	for _, tg := range targets {
		b, err := os.ReadFile(tg)
		if err != nil {
			continue // a dangling alias
		}
		if err := os.WriteFile(filepath.Join(sys, filepath.Base(tg)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, exe := range []string{"usr/bin/wssignd", "bin/kill"} {
		if err := os.WriteFile(filepath.Join(root, exe), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// allowedVerifyNote matches the one diagnostic systemd-analyze verify may
// print: systemd < 254 does not know ImportCredential= and ignores it (the
// unit then relies on LoadCredentialEncrypted=).
var allowedVerifyNote = regexp.MustCompile(`wssignd\.service:\d+: Unknown key (name )?'ImportCredential' in section '?\[?Service\]?'?, ignoring\.$`)

// verifyDiagnostics returns the lines of systemd-analyze verify output that
// are not allowedVerifyNote.
func verifyDiagnostics(out string) []string {
	var bad []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !allowedVerifyNote.MatchString(l) {
			bad = append(bad, l)
		}
	}
	return bad
}

// unitCases are the unit as shipped and with each example drop-in of
// packaging/examples installed in /etc/systemd/system/wssignd.service.d.
func unitCases(t *testing.T) []string {
	dropIns, err := filepath.Glob(filepath.Join(testutil.RepoRoot(t), "packaging", "examples", "*.conf"))
	if err != nil || len(dropIns) < 4 {
		t.Fatalf("example drop-ins: %v %v", dropIns, err)
	}
	return append([]string{""}, dropIns...)
}

func caseName(dropIn string) string {
	if dropIn == "" {
		return "as shipped"
	}
	return "with " + filepath.Base(dropIn)
}

// withDropIn installs dropIn (a path, or "" for none) in root.
func withDropIn(t *testing.T, root, dropIn string) {
	t.Helper()
	dir := filepath.Join(root, "etc/systemd/system/wssignd.service.d")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if dropIn == "" {
		return
	}
	b, err := os.ReadFile(dropIn)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(dropIn)), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestUnitsVerify runs systemd-analyze verify on both units, as shipped and
// with each example drop-in: it must pass with no diagnostic but the known
// one. Negative controls prove that an error in the unit or in a drop-in
// would be caught.
func TestUnitsVerify(t *testing.T) {
	analyze := testutil.RequireTool(t, "systemd-analyze", "systemd")
	root := unitRoot(t)
	verify := func() string {
		out, err := exec.Command(analyze, "verify", "--root="+root,
			"/usr/lib/systemd/system/wssignd.socket", "/usr/lib/systemd/system/wssignd.service").CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze verify: %v", err)
		}
		return string(out)
	}
	for _, dropIn := range unitCases(t) {
		t.Run(caseName(dropIn), func(t *testing.T) {
			withDropIn(t, root, dropIn)
			if bad := verifyDiagnostics(verify()); len(bad) > 0 {
				t.Errorf("systemd-analyze verify diagnostics:\n%s", strings.Join(bad, "\n"))
			}
		})
	}

	t.Run("negative control: misspelt setting in a drop-in", func(t *testing.T) {
		dir := filepath.Join(root, "etc/systemd/system/wssignd.service.d")
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, "typo.conf"), []byte("[Service]\nPrivateNetwrk=no\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if bad := verifyDiagnostics(verify()); len(bad) == 0 {
			t.Error("a misspelt setting in a drop-in went unnoticed")
		}
		withDropIn(t, root, "")
	})
	t.Run("negative control: misspelt setting in the unit", func(t *testing.T) {
		svc := filepath.Join(root, "usr/lib/systemd/system/wssignd.service")
		b, _ := os.ReadFile(svc)
		if err := os.WriteFile(svc, bytes.Replace(b, []byte("ProtectHome=yes"), []byte("ProtectHom=yes"), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		if bad := verifyDiagnostics(verify()); len(bad) == 0 {
			t.Error("a misspelt setting went unnoticed")
		}
	})
}

// TestUnitsSecurityExposure records systemd-analyze security's exposure
// score of wssignd.service (offline: no running systemd needed), as shipped
// and with each example drop-in, and holds it at or below 2.0.
func TestUnitsSecurityExposure(t *testing.T) {
	analyze := testutil.RequireTool(t, "systemd-analyze", "systemd")
	root := unitRoot(t)
	for _, dropIn := range unitCases(t) {
		t.Run(caseName(dropIn), func(t *testing.T) {
			withDropIn(t, root, dropIn)
			out, err := exec.Command(analyze, "security", "--offline=true", "--root="+root, "--no-pager", "wssignd.service").CombinedOutput()
			if err != nil {
				t.Fatalf("systemd-analyze security: %v\n%s", err, out)
			}
			m := regexp.MustCompile(`Overall exposure level for wssignd\.service: ([0-9.]+)`).FindSubmatch(out)
			if m == nil {
				t.Fatalf("no exposure level in:\n%s", out)
			}
			score, _ := strconv.ParseFloat(string(m[1]), 64)
			t.Logf("systemd-analyze security exposure of wssignd.service %s: %.1f", caseName(dropIn), score)
			if score > 2.0 {
				t.Errorf("exposure %.1f > 2.0:\n%s", score, out)
			}
		})
	}
}

// TestSocketUnitMatchesDaemon ties the socket unit to the daemon's code and
// defaults: the descriptor name apiListener looks for, and the path of the
// socket the daemon creates when it is started by hand.
func TestSocketUnitMatchesDaemon(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(unitDir(t), "wssignd.socket"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"FileDescriptorName=" + listenFDName,
		"ListenStream=/run/wssignd/wssignd.sock",
		"SocketUser=root", "SocketGroup=wssignd-clients", "SocketMode=0660",
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).MatchString(unit) {
			t.Errorf("wssignd.socket lacks %q", want)
		}
	}
}

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm/hsmtest"
	"github.com/wssignd/wssignd/internal/testutil"
)

// dribble opens a connection to sock that sends a sign request's headers
// and the first bytes of its body, then nothing more until closed.
func dribble(t *testing.T, sock, profile string, env []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "POST /v1/soap/sign?profile=" + profile + " HTTP/1.1\r\nHost: wssignd\r\nContent-Type: text/xml\r\nContent-Length: " +
		strconv.Itoa(len(env)) + "\r\n\r\n" + string(env[:64])
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return c
}

var inFlightRe = regexp.MustCompile(`(?m)^wssignd_requests_in_flight (\d+)`)

// inFlight reads wssignd_requests_in_flight from /metrics.
func (d *testDaemon) inFlight(t *testing.T) int {
	t.Helper()
	resp, body := d.do(t, "GET", "/metrics", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("metrics: %d %s", resp.StatusCode, body)
	}
	m := inFlightRe.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no wssignd_requests_in_flight in %s", body)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestSlowBodiesDoNotStarve: 64 clients that send their headers and then
// dribble the body, over the daemon's real socket, hold no slot of
// signing work (max_concurrent = 8): all 64 are in flight, reading, and a
// well-behaved client still gets every signature. A caller over its
// per-peer cap is refused at once (503 too-many-requests).
func TestSlowBodiesDoNotStarve(t *testing.T) {
	env := hsmtest.New(t)
	dir := shortDir(t)
	sock := filepath.Join(dir, "wssignd.sock")
	d := startDaemon(t, testConfig(env, sock, `
[limits]
max_concurrent = 8
max_concurrent_per_peer = 80
body_idle_timeout = "120s"
request_timeout = "120s"
`), sock)
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	for range 64 {
		dribble(t, sock, "default", in)
	}
	deadline := time.Now().Add(60 * time.Second)
	for n := d.inFlight(t); n < 64+1; n = d.inFlight(t) { // the dribblers and this scrape
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in flight, want the 64 slow ones: the others were refused", n-1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 8 {
		resp, body := d.do(t, "POST", "/v1/soap/sign?profile=default", "text/xml", in)
		if resp.StatusCode != 200 {
			t.Fatalf("well-behaved request %d while 64 bodies dribble: %d %s", i, resp.StatusCode, body)
		}
	}
	// The 80 requests of this uid in flight: 64 dribbling, 16 more; the
	// next is refused.
	for range 16 {
		dribble(t, sock, "default", in)
	}
	deadline = time.Now().Add(60 * time.Second)
	for n := d.inFlight(t); n < 80+1; n = d.inFlight(t) {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in flight, want 80", n-1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := dribble(t, sock, "default", in)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || !strings.Contains(string(body), `"code":"too-many-requests"`) || resp.Header.Get("Retry-After") == "" {
		t.Errorf("over the per-peer cap: %d %v %s", resp.StatusCode, resp.Header, body)
	}
}

// TestSlowBodiesOtherUser: one caller (another uid, run with setpriv)
// dribbling 64 bodies gets only its share (max_concurrent_per_peer), the
// rest refused (503 too-many-requests), and cannot starve another caller.
func TestSlowBodiesOtherUser(t *testing.T) {
	setpriv := requireRootSetpriv(t)
	uid := unusedIDs(t, 1)[0]
	env := hsmtest.New(t)
	dir := shortDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "wssignd.sock")
	cfg := strings.Replace(testConfig(env, sock, `
[limits]
max_concurrent = 8
max_concurrent_per_peer = 16
body_idle_timeout = "120s"
request_timeout = "120s"
[profiles.dribble]
key = "rsa"
allow_users = ["`+strconv.Itoa(uid)+`"]
`), "\nsocket = ", "\nsocket_mode = \"0666\"\nsocket = ", 1)
	d := startDaemon(t, cfg, sock)
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	bin := filepath.Join(dir, "dribbler")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(exe); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid="+strconv.Itoa(uid), "--regid="+strconv.Itoa(uid), "--clear-groups", bin, "-test.run=^TestDribblerProcess$")
	cmd.Env = append(os.Environ(), "WSSIGND_DRIBBLE_SOCKET="+sock, "WSSIGND_DRIBBLE_BODY="+string(in))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// The dribbler reports each refusal it reads; it holds the rest.
	counted := make(chan error, 1)
	go func() {
		lines := bufio.NewScanner(out)
		refused := 0
		for refused < 64-16 && lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, "refused 503 too-many-requests") {
				refused++
			} else if strings.HasPrefix(l, "refused") {
				counted <- fmt.Errorf("dribbler: %s", l)
				return
			}
		}
		if refused != 64-16 {
			counted <- fmt.Errorf("%d of the other user's 64 requests refused, want 48", refused)
		}
		counted <- nil
	}()
	select {
	case err := <-counted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the other user's requests were not refused within 60s")
	}
	deadline := time.Now().Add(60 * time.Second)
	for n := d.inFlight(t); n < 16+1; n = d.inFlight(t) {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in flight, want the other user's 16", n-1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 8 {
		resp, body := d.do(t, "POST", "/v1/soap/sign?profile=default", "text/xml", in)
		if resp.StatusCode != 200 {
			t.Fatalf("request %d of this user while the other dribbles: %d %s", i, resp.StatusCode, body)
		}
	}
}

// TestDribblerProcess is the other user's process of TestSlowBodiesOtherUser
// (it does nothing in a normal run): 64 dribbling requests; it prints one
// line per answer it gets, and holds the connections until killed.
func TestDribblerProcess(t *testing.T) {
	sock := os.Getenv("WSSIGND_DRIBBLE_SOCKET")
	if sock == "" {
		t.Skip("helper process of TestSlowBodiesOtherUser")
	}
	body := []byte(os.Getenv("WSSIGND_DRIBBLE_BODY"))
	for range 64 {
		c := dribble(t, sock, "dribble", body)
		go func() {
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return
			}
			b, _ := io.ReadAll(resp.Body)
			code := regexp.MustCompile(`"code":"([a-z-]+)"`).FindSubmatch(b)
			if code == nil {
				fmt.Printf("refused %d %s\n", resp.StatusCode, b)
				return
			}
			fmt.Printf("refused %d %s\n", resp.StatusCode, code[1])
		}()
	}
	select {}
}

// TestMemoryLimits: the unit caps the service's memory (MemoryMax=) and
// the daemon derives its Go memory limit from the cgroup's memory.max.
func TestMemoryLimits(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(unitDir(t), "wssignd.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^MemoryMax=\d+[KMG]$`).Match(unit) {
		t.Error("wssignd.service sets no MemoryMax=")
	}
	root := t.TempDir()
	cg := filepath.Join(root, "system.slice", "wssignd.service")
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	proc := filepath.Join(root, "cgroup")
	if err := os.WriteFile(proc, []byte("0::/system.slice/wssignd.service\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		max  string
		want int64
		ok   bool
	}{{"1073741824\n", 1 << 30, true}, {"max\n", 0, false}} {
		if err := os.WriteFile(filepath.Join(cg, "memory.max"), []byte(tc.max), 0o644); err != nil {
			t.Fatal(err)
		}
		if n, ok := cgroupMemoryMax(proc, root); n != tc.want || ok != tc.ok {
			t.Errorf("memory.max %q: %d %v", tc.max, n, ok)
		}
	}
	if _, ok := cgroupMemoryMax(filepath.Join(root, "none"), root); ok {
		t.Error("no /proc/self/cgroup: a limit")
	}
}

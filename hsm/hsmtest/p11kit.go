package hsmtest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm"
)

// p11KitClientModules are where distributions install p11-kit-client.so.
var p11KitClientModules = []string{
	"/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so",
	"/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so",
	"/usr/lib/*-linux-gnu*/pkcs11/p11-kit-client.so",
	"/usr/lib64/pkcs11/p11-kit-client.so",
	"/usr/lib/pkcs11/p11-kit-client.so",
}

// SpyModules are where distributions install OpenSC's pkcs11-spy.so.
var spyModules = []string{
	"/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so",
	"/usr/lib/aarch64-linux-gnu/pkcs11/pkcs11-spy.so",
	"/usr/lib/*-linux-gnu*/pkcs11/pkcs11-spy.so",
	"/usr/lib64/pkcs11/pkcs11-spy.so",
}

func findFile(t testing.TB, patterns []string, pkg string) string {
	t.Helper()
	for _, pat := range patterns {
		ms, _ := filepath.Glob(pat)
		for _, m := range ms {
			if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() {
				return m
			}
		}
	}
	msg := fmt.Sprintf("hsmtest: %s not found (apt-get install %s)", filepath.Base(patterns[0]), pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// SpyModule returns the path of OpenSC's pkcs11-spy.so (package opensc-pkcs11), failing the test
// in CI and skipping it elsewhere when it is missing. The spy forwards to the module named by
// $PKCS11SPY and logs every call to $PKCS11SPY_OUTPUT (PINs included: test PINs only).
func SpyModule(t testing.TB) string {
	return findFile(t, spyModules, "opensc-pkcs11")
}

// P11Kit is a SoftHSM2 token directory served by `p11-kit server` in its own process group and
// reached through p11-kit-client.so: killing or stopping the group simulates an HSM that
// restarts, loses its network, or hangs.
type P11Kit struct {
	// Module is the client module (p11-kit-client.so) to give hsm.Config.Module.
	Module string
	// Address is the value of P11_KIT_SERVER_ADDRESS, which the client reads at C_Initialize.
	Address string

	t      testing.TB
	socket string
	soft   hsm.SoftHSMToken
	cmd    *exec.Cmd
	waited chan struct{}
}

// StartP11Kit serves the SoftHSM2 tokens of soft through `p11-kit server` on a socket in a
// fresh temporary directory and sets P11_KIT_SERVER_ADDRESS for the client (t.Setenv: tests
// using it cannot be parallel). The server is killed in t.Cleanup.
func StartP11Kit(t testing.TB, soft hsm.SoftHSMToken) *P11Kit {
	t.Helper()
	if _, err := exec.LookPath("p11-kit"); err != nil {
		msg := "hsmtest: p11-kit not found (apt-get install p11-kit)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	client := findFile(t, p11KitClientModules, "p11-kit-modules")
	dir, err := os.MkdirTemp("", "p11k") // socket paths stay short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &P11Kit{Module: client, t: t, socket: filepath.Join(dir, "s"), soft: soft}
	s.Address = "unix:path=" + s.socket
	t.Setenv("P11_KIT_SERVER_ADDRESS", s.Address)
	s.Start()
	t.Cleanup(func() {
		if s.cmd != nil {
			s.signal(syscall.SIGCONT)
			s.Kill()
		}
	})
	return s
}

// Start starts the server (again). It returns once the server listens.
func (s *P11Kit) Start() {
	s.t.Helper()
	if s.cmd != nil {
		s.t.Fatal("hsmtest: p11-kit server already running")
	}
	_ = os.Remove(s.socket)
	module, err := hsm.SoftHSMModule()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command("p11-kit", "server", "-f", "-n", s.socket, "--provider", module, "pkcs11:")
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+s.soft.ConfigFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("hsmtest: p11-kit server: %v", err)
	}
	s.cmd = cmd
	s.waited = make(chan struct{})
	// The server prints its address once it listens.
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "P11_KIT_SERVER_ADDRESS=") {
				ready <- nil
				break
			}
		}
		ready <- errors.New("p11-kit server exited before listening")
		for sc.Scan() {
		}
		_ = cmd.Wait()
		close(s.waited)
	}()
	select {
	case err := <-ready:
		if err != nil {
			s.t.Fatalf("hsmtest: %v: %s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		s.t.Fatal("hsmtest: p11-kit server did not listen within 30s")
	}
}

func (s *P11Kit) signal(sig syscall.Signal) {
	if s.cmd != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, sig)
	}
}

// Kill kills the server's whole process group (the server and the per-connection processes it
// forks) and waits for the server to exit: an HSM restart or a cable pull.
func (s *P11Kit) Kill() {
	s.t.Helper()
	if s.cmd == nil {
		return
	}
	s.signal(syscall.SIGKILL)
	select {
	case <-s.waited:
	case <-time.After(30 * time.Second):
		s.t.Fatal("hsmtest: p11-kit server did not exit within 30s of SIGKILL")
	}
	s.cmd = nil
}

// Stop stops the server's process group (SIGSTOP): a hung HSM. Calls into the client block.
func (s *P11Kit) Stop() { s.signal(syscall.SIGSTOP) }

// Cont resumes a stopped server (SIGCONT).
func (s *P11Kit) Cont() { s.signal(syscall.SIGCONT) }

// Config returns an hsm.Config for the served token through the client module.
func (s *P11Kit) Config() hsm.Config {
	return hsm.Config{Module: s.Module, TokenLabel: s.soft.Label, PINFile: s.soft.PINFile}
}

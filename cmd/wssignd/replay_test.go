package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm/hsmtest"
	"github.com/wssignd/wssignd/internal/testutil"
)

// TestReplaySurvivesReloadAndRestart: a message verified before a reload
// is a replay after it (the generations share the replay cache), and one
// verified before a restart is refused after it (it was created before the
// new process's cache began); messages signed afterwards still verify.
func TestReplaySurvivesReloadAndRestart(t *testing.T) {
	env := hsmtest.New(t)
	dir := shortDir(t)
	sock := filepath.Join(dir, "wssignd.sock")
	if err := os.WriteFile(filepath.Join(dir, "rsa.pem"), testutil.CertPEM(env.RSA.Chain[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(env, sock, fmt.Sprintf(`
[profiles.ms]
key = "rsa"
timestamp_millis = true
allow_users = ["%[1]d"]
[verify.v]
trusted_certs = ["rsa.pem"]
allow_users = ["%[1]d"]
`, os.Getuid()))
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	sign := func(d *testDaemon) []byte {
		t.Helper()
		resp, body := d.do(t, "POST", "/v1/soap/sign?profile=ms", "text/xml", in)
		if resp.StatusCode != 200 {
			t.Fatalf("sign: %d %s", resp.StatusCode, body)
		}
		return body
	}
	verify := func(d *testDaemon, msg []byte) (bool, string) {
		t.Helper()
		resp, body := d.do(t, "POST", "/v1/soap/verify?profile=v", "text/xml", msg)
		if resp.StatusCode != 200 {
			t.Fatalf("verify: %d %s", resp.StatusCode, body)
		}
		var v struct {
			Valid bool
			Code  string
		}
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		return v.Valid, v.Code
	}

	d := startDaemon(t, cfg, sock)
	first := sign(d)
	if ok, code := verify(d, first); !ok {
		t.Fatalf("first verification: %s", code)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for d.logs.count("configuration reloaded") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no reload")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ok, code := verify(d, first); ok || code != "replay" {
		t.Errorf("verified before the reload, again after it: valid %v code %q, want a replay", ok, code)
	}
	second := sign(d)
	if ok, code := verify(d, second); !ok {
		t.Errorf("signed after the reload: %s", code)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}

	d = startDaemon(t, cfg, sock)
	if ok, code := verify(d, second); ok || code != "replay" {
		t.Errorf("verified before the restart, again after it: valid %v code %q, want a replay", ok, code)
	}
	third := sign(d)
	if ok, code := verify(d, third); !ok {
		t.Errorf("signed after the restart: %s", code)
	}
}

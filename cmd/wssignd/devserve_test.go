package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wssignd/wssignd/internal/daemon"
	"github.com/wssignd/wssignd/internal/testutil"
)

// TestDevConfigServes is what `make run` gives a newcomer: the config that
// dev-setup writes, served on a real socket; what profile default signs,
// verify profile default accepts; encrypt default and decrypt default
// round-trip with the key in the token; raw signing is open to the user;
// running dev-setup again reuses the token and the config.
func TestDevConfigServes(t *testing.T) {
	testutil.RequireTool(t, "softhsm2-util", "softhsm2")
	t.Setenv("SOFTHSM2_CONF", "") // DevSetup sets it; restored after the test
	dir := shortDir(t)
	sock := filepath.Join(dir, "s.sock")
	if err := daemon.DevSetup(dir, sock, "softhsm"); err != nil {
		t.Fatalf("dev-setup: %v", err)
	}
	cfgBefore, err := os.ReadFile(filepath.Join(dir, "wssignd.toml"))
	if err != nil {
		t.Fatal(err)
	}
	pinBefore, _ := os.ReadFile(filepath.Join(dir, "softhsm", "user-pin"))
	if err := daemon.DevSetup(dir, sock, "softhsm"); err != nil {
		t.Fatalf("dev-setup again: %v", err)
	}
	cfgAfter, _ := os.ReadFile(filepath.Join(dir, "wssignd.toml"))
	pinAfter, _ := os.ReadFile(filepath.Join(dir, "softhsm", "user-pin"))
	if string(cfgBefore) != string(cfgAfter) || len(pinBefore) == 0 || string(pinBefore) != string(pinAfter) {
		t.Fatal("a second dev-setup did not reuse the token and the config")
	}

	d := startDaemon(t, string(cfgAfter), sock)
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	resp, signed := d.do(t, "POST", "/v1/soap/sign?profile=default", "text/xml", in)
	if resp.StatusCode != 200 {
		t.Fatalf("sign: %d %s", resp.StatusCode, signed)
	}
	resp, body := d.do(t, "POST", "/v1/soap/verify?profile=default", "text/xml", signed)
	var verdict struct {
		Valid bool
		Code  string
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &verdict) != nil || !verdict.Valid {
		t.Fatalf("verify of what default signed: %d %s", resp.StatusCode, body)
	}
	resp, enc := d.do(t, "POST", "/v1/soap/encrypt?profile=default", "text/xml", in)
	if resp.StatusCode != 200 || strings.Contains(string(enc), "2026-0042") {
		t.Fatalf("encrypt: %d %s", resp.StatusCode, enc)
	}
	resp, dec := d.do(t, "POST", "/v1/soap/decrypt?profile=default", "text/xml", enc)
	if resp.StatusCode != 200 || !strings.Contains(string(dec), "<inv:Number>2026-0042</inv:Number>") {
		t.Fatalf("decrypt: %d %s", resp.StatusCode, dec)
	}
	// Sign-then-encrypt: decrypting gives back an envelope whose signature
	// verifies. Encrypt-then-sign: the signature verifies over the
	// encrypted Body, and the Body then decrypts.
	resp, ste := d.do(t, "POST", "/v1/soap/sign?profile=sign-then-encrypt", "text/xml", in)
	if resp.StatusCode != 200 || strings.Contains(string(ste), "2026-0042") {
		t.Fatalf("sign-then-encrypt: %d %s", resp.StatusCode, ste)
	}
	resp, dec = d.do(t, "POST", "/v1/soap/decrypt?profile=default", "text/xml", ste)
	if resp.StatusCode != 200 {
		t.Fatalf("decrypt of sign-then-encrypt: %d %s", resp.StatusCode, dec)
	}
	resp, body = d.do(t, "POST", "/v1/soap/verify?profile=default", "text/xml", dec)
	if resp.StatusCode != 200 || json.Unmarshal(body, &verdict) != nil || !verdict.Valid {
		t.Fatalf("verify after sign-then-encrypt and decrypt: %d %s", resp.StatusCode, body)
	}
	resp, ets := d.do(t, "POST", "/v1/soap/sign?profile=encrypt-then-sign", "text/xml", in)
	if resp.StatusCode != 200 || strings.Contains(string(ets), "2026-0042") {
		t.Fatalf("encrypt-then-sign: %d %s", resp.StatusCode, ets)
	}
	resp, body = d.do(t, "POST", "/v1/soap/verify?profile=default", "text/xml", ets)
	if resp.StatusCode != 200 || json.Unmarshal(body, &verdict) != nil || !verdict.Valid {
		t.Fatalf("verify of encrypt-then-sign: %d %s", resp.StatusCode, body)
	}
	resp, dec = d.do(t, "POST", "/v1/soap/decrypt?profile=default", "text/xml", ets)
	if resp.StatusCode != 200 || !strings.Contains(string(dec), "<inv:Number>2026-0042</inv:Number>") {
		t.Fatalf("decrypt of encrypt-then-sign: %d %s", resp.StatusCode, dec)
	}

	resp, body = d.do(t, "POST", "/v1/keys/dev-rsa/sign", "application/json",
		[]byte(`{"digest":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=","hash":"SHA-256","scheme":"pkcs1v15"}`))
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"signature"`) {
		t.Fatalf("raw sign: %d %s", resp.StatusCode, body)
	}
}

package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pin"), []byte("1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "wssignd.toml")
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

const good = `
socket = "run/w.sock"
modules = ["/usr/lib/softhsm/libsofthsm2.so"]
[tokens.t]
module = "/usr/lib/softhsm/libsofthsm2.so"
label = "dev"
pin_file = "pin"
[keys.k]
token = "t"
id = "0a:0B"
raw_sign_users = ["*"]
[profiles.p]
key = "k"
allow_users = ["root", "1000"]
`

func TestLoadGood(t *testing.T) {
	p := writeConfig(t, good, 0o600)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(p)
	if c.Socket != filepath.Join(dir, "run/w.sock") || c.Tokens["t"].PINFile != filepath.Join(dir, "pin") {
		t.Errorf("relative paths not anchored at the config dir: %q %q", c.Socket, c.Tokens["t"].PINFile)
	}
	if c.Tokens["t"].MaxSessions != 8 || c.Limits.MaxBodyBytes != 16<<20 || c.Limits.RequestTimeout.Duration != 30*time.Second {
		t.Errorf("defaults: %+v %+v", c.Tokens["t"], c.Limits)
	}
	if p := c.Profiles["p"]; strings.Join(p.Parts, ",") != "Body,Timestamp" || p.TimestampTTL.Duration != 300*time.Second {
		t.Errorf("profile defaults: %+v", p)
	}
	id, err := c.Keys["k"].IDBytes()
	if err != nil || string(id) != "\x0a\x0b" {
		t.Errorf("id %x %v", id, err)
	}
	if m, _ := c.SocketFileMode(); m != 0o660 {
		t.Errorf("socket mode %o", m)
	}
}

// TestLoadReportsEveryProblem: one load names every bad field at once.
func TestLoadReportsEveryProblem(t *testing.T) {
	bad := `
socket_mode = "999"
log_level = "loud"
modules = ["relative.so"]
typo_setting = 1
[limits]
max_body_bytes = 10
[tokens.t]
module = "/opt/evil.so"
label = "a"
serial = "b"
pin_file = "missing-pin"
max_sessions = 1
[keys.k]
token = "nope"
id = "xyz"
[keys.empty]
token = "t"
[profiles.p]
key = "missing"
parts = ["Body", "{urn:x}", "Nonsense"]
timestamp_ttl = "10ms"
`
	p := writeConfig(t, bad, 0o600)
	_, err := Load(p)
	ce, ok := err.(*Error)
	if !ok {
		t.Fatalf("error %T %v", err, err)
	}
	if ce.File != p {
		t.Errorf("error names %q, want %q", ce.File, p)
	}
	msg := err.Error()
	for _, want := range []string{
		"typo_setting: unknown setting",
		"socket_mode:", "log_level:", "modules[0]:", "limits.max_body_bytes:",
		"tokens.t.module:", "tokens.t: set exactly one of label and serial", "tokens.t.pin_file:", "tokens.t.max_sessions:",
		"keys.k.token:", "keys.k.id:", "keys.empty: set label, id or both",
		"profiles.p.key:", "profiles.p.parts[1]:", "profiles.p.parts[2]:", "profiles.p.timestamp_ttl:", "profiles.p: allows nobody",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestLoadRefusesWritableFile(t *testing.T) {
	for _, mode := range []os.FileMode{0o620, 0o602, 0o666} {
		p := writeConfig(t, good, mode)
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "group or others") {
			t.Errorf("mode %o: %v", mode, err)
		}
	}
}

func TestParseSyntaxErrorHasLine(t *testing.T) {
	_, err := Parse("x.toml", []byte("socket = \"a\"\n[tokens\n"))
	if err == nil || !strings.Contains(err.Error(), "x.toml") || !strings.Contains(err.Error(), "line ") {
		t.Errorf("%v", err)
	}
}

func TestParsePart(t *testing.T) {
	for _, tc := range []struct {
		in, space, local string
		opt, ok          bool
	}{
		{"Body", "", "Body", false, true},
		{"Timestamp?", "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd", "Timestamp", true, true},
		{"{http://www.w3.org/2005/08/addressing}To", "http://www.w3.org/2005/08/addressing", "To", false, true},
		{"{urn:x}", "", "", false, false},
		{"{}x", "", "", false, false},
		{"{urn:x}a:b", "", "", false, false},
		{"To", "", "", false, false},
	} {
		space, local, opt, err := ParsePart(tc.in)
		if (err == nil) != tc.ok || space != tc.space || local != tc.local || opt != tc.opt {
			t.Errorf("ParsePart(%q) = %q %q %v %v", tc.in, space, local, opt, err)
		}
	}
}

func TestKeyURIAndTokenTuning(t *testing.T) {
	base := `
modules = ["/m.so"]
[tokens.t]
module = "/m.so"
label = "prod"
pin_file = "pin"
keep_alive = "30s"
max_calls_in_flight = 4
[profiles.p]
key = "k"
allow_users = ["*"]
`
	for _, tc := range []struct {
		key, problem string
	}{
		{`uri = "pkcs11:token=prod;object=sig;id=%01"`, ""},
		{`uri = "pkcs11:object=sig"`, ""},
		{`uri = "pkcs11:token=other;object=sig"`, `names token "other"`},
		{`uri = "pkcs11:object=sig"` + "\nlabel = \"sig\"", "not both"},
		{`uri = "object=sig"`, "pkcs11: URI"},
	} {
		p := writeConfig(t, base+"[keys.k]\ntoken = \"t\"\n"+tc.key+"\n", 0o600)
		c, err := Load(p)
		switch {
		case tc.problem == "" && err != nil:
			t.Errorf("%s: %v", tc.key, err)
		case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
			t.Errorf("%s: %v, want %q", tc.key, err, tc.problem)
		case err == nil && (c.Tokens["t"].KeepAlive.Duration != 30*time.Second || c.Tokens["t"].MaxCallsInFlight != 4):
			t.Errorf("token tuning not read: %+v", c.Tokens["t"])
		}
	}
}

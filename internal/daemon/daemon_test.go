package daemon

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wssignd/wssignd/internal/config"
)

// moduleConfig is a daemon configuration whose token "t" is reached through module.
func moduleConfig(socket, stateDir, module, label, pinFile, extra string) string {
	return fmt.Sprintf(`
socket = %q
state_dir = %q
log_level = "debug"
modules = [%q]
[limits]
request_timeout = "2s"
[tokens.t]
module = %q
label = %q
pin_file = %q
[keys.rsa]
token = "t"
label = "rsa"
id = "01"
[profiles.default]
key = "rsa"
allow_users = ["%d"]
%s`, socket, stateDir, module, module, label, pinFile, os.Getuid(), extra)
}

func loadConfig(t testing.TB, dir, text string) *config.Config {
	t.Helper()
	cfgPath := filepath.Join(dir, "wssignd.toml")
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "wsd") // socket paths must stay under 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestAuditIgnoresLogLevel: with log_level = "error", a signature still
// writes its audit event.
func TestAuditIgnoresLogLevel(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError}))
	log.Info("dropped")
	AuditLogger(log).With("k", "v").Info("audit", "event", "private-key-use")
	if strings.Contains(buf.String(), "dropped") || !strings.Contains(buf.String(), "event=private-key-use") || !strings.Contains(buf.String(), "k=v") {
		t.Errorf("log: %q", buf.String())
	}
}

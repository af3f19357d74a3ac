package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/wssignd/wssignd/internal/config"
)

// ModuleConfig is a daemon configuration whose token "t" is reached
// through module, with key "rsa" (label rsa, id 01) and profile "default"
// for the caller's uid; extra is appended.
func ModuleConfig(socket, stateDir, module, label, pinFile, extra string) string {
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

// LoadConfig writes text as dir/wssignd.toml (mode 0600) and loads it.
func LoadConfig(t testing.TB, dir, text string) *config.Config {
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

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wssignd/wssignd/internal/config"
)

// TestDecryptPeerOptionsConfig: actor and key_names of a [decrypt.NAME]
// table are read and checked.
func TestDecryptPeerOptionsConfig(t *testing.T) {
	dir := t.TempDir()
	pin := filepath.Join(dir, "pin")
	if err := os.WriteFile(pin, []byte("1234"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf(`modules = ["/m.so"]
[tokens.t]
module = "/m.so"
label = "t"
pin_file = %q
[keys.k]
token = "t"
label = "k"
[profiles.p]
key = "k"
allow_users = ["*"]
`, pin)
	c, err := config.Parse(filepath.Join(dir, "w.toml"), []byte(base+`[decrypt.d]
key = "k"
actor = "urn:example:decryptor"
key_names = ["invoice-decrypt", "CN=invoice"]
allow_users = ["*"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Decrypt["d"]; d.Actor != "urn:example:decryptor" || strings.Join(d.KeyNames, "|") != "invoice-decrypt|CN=invoice" {
		t.Errorf("decrypt profile %+v", d)
	}
	_, err = config.Parse(filepath.Join(dir, "w.toml"), []byte(base+`[decrypt.d]
key = "k"
key_names = ["ok", " padded", ""]
allow_users = ["*"]
`))
	for _, want := range []string{"decrypt.d.key_names[1]", "decrypt.d.key_names[2]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("no problem reported for %s: %v", want, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), "key_names[0]") {
		t.Errorf("a good name refused: %v", err)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"github.com/wssignd/wssignd/internal/testutil"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm/hsmtest"
)

// TestNoPINInLogs runs the daemon at debug level with a series of broken
// configurations (wrong PIN, unknown token, missing key, key on the wrong
// token, a bad reload) and greps every log line and error for the PIN, in
// clear and in hex, on each kind of token.
func TestNoPINInLogs(t *testing.T) {
	for _, kind := range hsmtest.Kinds {
		t.Run(string(kind), func(t *testing.T) { testNoPINInLogs(t, kind) })
	}
}

func testNoPINInLogs(t *testing.T, kind hsmtest.Kind) {
	env := hsmtest.NewKind(t, kind)
	env.Token.Close() // each start below logs in by itself
	pin, err := os.ReadFile(env.Config.PINFile)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(string(pin))
	dir := shortDir(t)
	wrong := filepath.Join(dir, "wrong-pin")
	if err := os.WriteFile(wrong, []byte("87654321\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	good := testConfig(env, sock, "")
	cases := map[string]string{
		"unknown token":   strings.NewReplacer(`"`+env.Config.TokenLabel+`"`, `"no-such-token"`, "token="+env.Config.TokenLabel+";", "token=no-such-token;").Replace(good),
		"missing key":     strings.Replace(good, `label = "rsa"`, `label = "no-such-key"`, 1),
		"wrong pin":       strings.Replace(good, env.Config.PINFile, wrong, 1),
		"good then stops": good,
	}
	var logs bytes.Buffer
	for name, text := range cases {
		c := testutil.LoadConfig(t, dir, text)
		log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := serve(ctx, c, log, nil)
		cancel()
		if err != nil {
			logs.WriteString(err.Error() + "\n")
		}
		if name == "wrong pin" {
			// The marker from the wrong PIN would refuse the next starts.
			os.RemoveAll(filepath.Join(dir, "state"))
		}
	}
	if logs.Len() < 200 {
		t.Fatalf("the runs logged almost nothing (%d bytes): the check would prove nothing", logs.Len())
	}
	for _, s := range []string{secret, hex.EncodeToString([]byte(secret)), "87654321", hex.EncodeToString([]byte("87654321"))} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("a PIN (%q) appears in the logs", s)
		}
	}
}

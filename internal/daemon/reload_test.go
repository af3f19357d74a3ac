package daemon

import (
	"context"
	"errors"
	"github.com/wssignd/wssignd/internal/testutil"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/wssignd/wssignd/hsm/hsmtest"
)

// TestDaemonReload: New serves the configuration's tokens; a Reload with a
// configuration that cannot be served fails with ErrConfig and the old one
// keeps serving; a good one is swapped in.
func TestDaemonReload(t *testing.T) {
	env := hsmtest.New(t)
	dir := shortDir(t)
	text := testutil.ModuleConfig(filepath.Join(dir, "s.sock"), filepath.Join(dir, "state"), env.Soft.Module, env.Soft.Label, env.Soft.PINFile, "")
	c := testutil.LoadConfig(t, dir, text)
	d, err := New(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if states, err := d.Ready(context.Background()); err != nil || states["t"] != "online" {
		t.Fatalf("Ready = %v, %v", states, err)
	}
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 200 {
		t.Fatalf("/readyz: %d %s", rec.Code, rec.Body)
	}
	old := d.d.cur.Load()

	bad := testutil.LoadConfig(t, t.TempDir(), text+"[profiles.nokey]\nkey = \"rsa\"\nallow_users = [\"no-such-user-wssignd\"]\n")
	if err := d.Reload(bad); !errors.Is(err, ErrConfig) {
		t.Fatalf("Reload of a bad configuration: %v, want ErrConfig", err)
	}
	if d.Config() != c || d.d.cur.Load() != old {
		t.Fatal("a refused reload replaced the configuration")
	}

	good := testutil.LoadConfig(t, t.TempDir(), text)
	if err := d.Reload(good); err != nil {
		t.Fatal(err)
	}
	if d.Config() != good {
		t.Fatal("Reload did not swap the configuration in")
	}
	if states, err := d.Ready(context.Background()); err != nil || states["t"] != "online" {
		t.Errorf("Ready after Reload = %v, %v", states, err)
	}
	rec = httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 200 {
		t.Errorf("/readyz after Reload: %d %s", rec.Code, rec.Body)
	}
}

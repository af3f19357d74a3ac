package daemon

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"
)

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

package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/wssignd/wssignd/internal/testutil"
)

// TestTPMDropIn: systemd/tpm.conf (a host TPM through /dev/tpmrm0) passes systemd-analyze
// verify with the shipped units and keeps the service's exposure at or below 2.0.
func TestTPMDropIn(t *testing.T) {
	analyze := testutil.RequireTool(t, "systemd-analyze", "systemd")
	root := unitRoot(t)
	withDropIn(t, root, filepath.Join(testutil.RepoRoot(t), "systemd", "tpm.conf"))
	out, err := exec.Command(analyze, "verify", "--root="+root,
		"/usr/lib/systemd/system/wssignd.socket", "/usr/lib/systemd/system/wssignd.service").CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze verify: %v", err)
	}
	if bad := verifyDiagnostics(string(out)); len(bad) > 0 {
		t.Errorf("systemd-analyze verify diagnostics:\n%s", strings.Join(bad, "\n"))
	}
	out, err = exec.Command(analyze, "security", "--offline=true", "--root="+root, "--no-pager", "wssignd.service").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for wssignd\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("exposure with tpm.conf: %.1f", score)
	if score > 2.0 {
		t.Errorf("exposure %.1f > 2.0:\n%s", score, out)
	}
}

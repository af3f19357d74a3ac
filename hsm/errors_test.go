package hsm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"
)

// TestEveryCKRClassified: every CKR_* value that miekg/pkcs11 defines (PKCS#11 v2.40) has an
// explicit class in the table, so none falls to the default by accident.
func TestEveryCKRClassified(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/miekg/pkcs11").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "zconst.go"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^\s*(CKR_\w+)\s*=\s*0x([0-9A-Fa-f]+)`)
	n := 0
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		name := m[1]
		v, err := strconv.ParseUint(m[2], 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		if name == "CKR_VENDOR_DEFINED" {
			continue
		}
		n++
		if _, ok := ckrClass[uint(v)]; !ok {
			t.Errorf("%s (0x%x) has no class", name, v)
		}
	}
	if n < 90 {
		t.Fatalf("found only %d CKR_ constants in zconst.go; the parse is broken", n)
	}
}

func TestClassify(t *testing.T) {
	wrapped := fmt.Errorf("sign: %w", pkcs11.Error(pkcs11.CKR_DEVICE_ERROR))
	tests := []struct {
		err  error
		want Class
	}{
		{nil, ClassOK},
		{pkcs11.Error(pkcs11.CKR_SESSION_HANDLE_INVALID), ClassSession},
		{pkcs11.Error(pkcs11.CKR_SESSION_CLOSED), ClassSession},
		{pkcs11.Error(pkcs11.CKR_DEVICE_REMOVED), ClassToken},
		{pkcs11.Error(pkcs11.CKR_TOKEN_NOT_PRESENT), ClassToken},
		{pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN), ClassToken},
		{pkcs11.Error(pkcs11.CKR_KEY_HANDLE_INVALID), ClassToken},
		{wrapped, ClassModule},
		{pkcs11.Error(pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED), ClassModule},
		{pkcs11.Error(pkcs11.CKR_VENDOR_DEFINED + 7), ClassModule},
		{pkcs11.Error(pkcs11.CKR_PIN_INCORRECT), ClassPIN},
		{pkcs11.Error(pkcs11.CKR_PIN_LOCKED), ClassPIN},
		{pkcs11.Error(pkcs11.CKR_MECHANISM_INVALID), ClassRequest},
		{pkcs11.Error(pkcs11.CKR_DATA_LEN_RANGE), ClassRequest},
		{pkcs11.Error(pkcs11.CKR_SESSION_COUNT), ClassBusy},
		{pkcs11.Error(pkcs11.CKR_DEVICE_MEMORY), ClassBusy},
		{errors.New("sign: unsupported hash"), ClassRequest},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestGate: a writer waits for calls in flight, refuses new ones meanwhile (without making them
// wait), and gives up at its deadline.
func TestGate(t *testing.T) {
	var g gate
	if !g.enter() {
		t.Fatal("enter on an idle gate failed")
	}
	stop := make(chan struct{})
	close(stop)
	if g.lockChan(stop) {
		t.Fatal("lock succeeded with a call in flight")
	}
	if !g.enter() {
		t.Fatal("enter refused after a writer gave up")
	}
	g.leave()
	locked := make(chan bool)
	go func() { locked <- g.lockChan(nil) }()
	// The writer is waiting (or about to): once it waits, new calls are refused.
	for g.enter() {
		g.leave()
	}
	g.leave() // the first call returns
	if !<-locked {
		t.Fatal("lock failed after the last call left")
	}
	if g.enter() {
		t.Fatal("enter succeeded while a writer holds the gate")
	}
	g.unlock()
	if !g.enter() {
		t.Fatal("enter refused after unlock")
	}
	g.leave()
}

package hsm

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// pinMarkerIterations is the PBKDF2 work factor of the PIN marker hash: the marker must not be
// a cheap oracle for short numeric PINs.
const pinMarkerIterations = 200_000

// pinMarker is the persisted record that a token refused the PIN of a PIN source.
type pinMarker struct {
	path   string // "" when no state directory is configured
	token  string
	module string
	source string
}

// pinMarkerFile is the marker's JSON content.
type pinMarkerFile struct {
	Token   string    `json:"token"`
	Module  string    `json:"module"`
	Source  string    `json:"pin_source"`
	Time    time.Time `json:"rejected_at"`
	Salt    string    `json:"salt"`
	Hash    string    `json:"hash"` // PBKDF2-SHA256(PIN, salt‖source path), never the PIN
	KDF     string    `json:"kdf"`
	Iter    int       `json:"iterations"`
	Warning string    `json:"note"`
	Version int       `json:"version"`
}

func newPINMarker(stateDir, module string, sel tokenSelector, source string) pinMarker {
	if stateDir == "" {
		return pinMarker{}
	}
	id := sha256.Sum256([]byte(module + "\x00" + sel.String()))
	return pinMarker{
		path:   filepath.Join(stateDir, "pin-rejected-"+hex.EncodeToString(id[:8])+".json"),
		token:  sel.String(),
		module: module,
		source: source,
	}
}

func (m pinMarker) hash(pin string, salt []byte) []byte {
	h, err := pbkdf2.Key(sha256.New, pin, append(append([]byte(nil), salt...), m.source...), pinMarkerIterations, 32)
	if err != nil { // only for invalid parameters, which these are not
		panic(err)
	}
	return h
}

// check fails with ErrPINRejected when a marker says the token refused this PIN from this
// source; a marker for another PIN or source is removed.
func (m pinMarker) check(pin string, log *slog.Logger) error {
	if m.path == "" {
		return nil
	}
	b, err := os.ReadFile(m.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		// Fail closed: without the marker we cannot know that this PIN was not refused before.
		return fmt.Errorf("%w: cannot read the pin-rejected marker %s: %v", ErrPINRejected, m.path, err)
	}
	var f pinMarkerFile
	salt, herr := []byte(nil), error(nil)
	if err := json.Unmarshal(b, &f); err == nil {
		salt, herr = hex.DecodeString(f.Salt)
	} else {
		herr = err
	}
	want, _ := hex.DecodeString(f.Hash)
	if herr == nil && f.Source == m.source && len(want) == 32 &&
		subtle.ConstantTimeCompare(m.hash(pin, salt), want) == 1 {
		return fmt.Errorf("%w: the token refused this pin at %s (marker %s); no login attempted: correct the pin file, which clears the marker",
			ErrPINRejected, f.Time.Format(time.RFC3339), m.path)
	}
	if err := os.Remove(m.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: the pin source changed but the old marker %s cannot be removed: %v", ErrPINRejected, m.path, err)
	}
	log.Info("pin source changed since the token refused a pin; marker removed, trying the new pin once", "marker", m.path, "token_label", m.token)
	return nil
}

// write persists the marker for pin.
func (m pinMarker) write(pin string) error {
	if m.path == "" {
		return nil
	}
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	b, err := json.MarshalIndent(pinMarkerFile{
		Token: m.token, Module: m.module, Source: m.source, Time: time.Now().UTC(),
		Salt: hex.EncodeToString(salt), Hash: hex.EncodeToString(m.hash(pin, salt)),
		KDF: "pbkdf2-sha256", Iter: pinMarkerIterations, Version: 1,
		Warning: "wssignd will not log in to this token with this pin again; change the pin file to clear this marker",
	}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(m.path), 0o700); err != nil {
		return fmt.Errorf("pin marker: %w", err)
	}
	tmp := m.path + ".tmp"
	if err := writeSecretFile(tmp, string(b)+"\n"); err != nil {
		return fmt.Errorf("pin marker: %w", err)
	}
	if err := os.Rename(tmp, m.path); err != nil {
		return fmt.Errorf("pin marker: %w", err)
	}
	return nil
}

// HardenProcess makes the process non-dumpable (prctl PR_SET_DUMPABLE 0: no core dumps, no
// ptrace attach by other processes of the same user, /proc/PID/mem and environ unreadable to
// them) and sets the core file size limit to 0, so that the PIN and session state in memory do
// not leak through a crash or a debugger. Call it first thing in the daemon.
func HardenProcess() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("setrlimit(RLIMIT_CORE, 0): %w", err)
	}
	return nil
}

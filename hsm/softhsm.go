package hsm

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// SoftHSMToken describes a SoftHSM2 token made by InitSoftHSMToken.
type SoftHSMToken struct {
	Dir        string // directory holding the config, the token store and the PIN files
	ConfigFile string // <Dir>/softhsm2.conf; SOFTHSM2_CONF must name it when the module is initialised
	Module     string // path of libsofthsm2.so
	Label      string // token label
	PINFile    string // <Dir>/user-pin, mode 0600
	SOPINFile  string // <Dir>/so-pin, mode 0600
}

// softhsmModules are where distributions install libsofthsm2.so, in order of preference.
var softhsmModules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",              // Debian, Ubuntu (symlink to the multiarch path)
	"/usr/lib/*-linux-gnu*/softhsm/libsofthsm2.so", // Debian, Ubuntu multiarch
	"/usr/lib64/pkcs11/libsofthsm2.so",             // Fedora, RHEL
	"/usr/lib64/softhsm/libsofthsm2.so",            // openSUSE
	"/usr/lib/pkcs11/libsofthsm2.so",               // Arch
	"/usr/local/lib/softhsm/libsofthsm2.so",        // built from source
	"/opt/homebrew/lib/softhsm/libsofthsm2.so",
}

// SoftHSMModule returns the path of the installed libsofthsm2.so, or an error wrapping
// ErrSoftHSMNotInstalled.
func SoftHSMModule() (string, error) {
	for _, pattern := range softhsmModules {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() {
				return m, nil
			}
		}
	}
	return "", fmt.Errorf("%w: libsofthsm2.so not found", ErrSoftHSMNotInstalled)
}

// InitSoftHSMToken creates (if absent) a SoftHSM2 config file <dir>/softhsm2.conf whose token
// directory is <dir>/tokens, and initialises a token with the given label with random SO and
// user PINs written to <dir>/so-pin and <dir>/user-pin (mode 0600, 32 hex digits from
// crypto/rand, newline-terminated; if those files already exist, as for a second label in the
// same directory, their PINs are used), using `softhsm2-util --init-token --free`. If a token with
// that label already exists in that directory it is reused (PIN files kept). The caller must set
// SOFTHSM2_CONF=ConfigFile in the environment before Open (SoftHSM2 reads it at C_Initialize).
//
// It is for development and tests: softhsm2-util takes the PINs as command-line arguments, so
// other local users can see them in the process list while it runs. Missing softhsm2-util or
// libsofthsm2.so: an error wrapping ErrSoftHSMNotInstalled.
func InitSoftHSMToken(dir, label string) (SoftHSMToken, error) {
	if label == "" || len(label) > 32 || strings.ContainsAny(label, "\r\n") {
		return SoftHSMToken{}, fmt.Errorf("softhsm token label %q: must be 1 to 32 bytes on one line", label)
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		return SoftHSMToken{}, fmt.Errorf("%w: softhsm2-util not found", ErrSoftHSMNotInstalled)
	}
	module, err := SoftHSMModule()
	if err != nil {
		return SoftHSMToken{}, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return SoftHSMToken{}, fmt.Errorf("softhsm token dir: %w", err)
	}
	st := SoftHSMToken{
		Dir:        dir,
		ConfigFile: filepath.Join(dir, "softhsm2.conf"),
		Module:     module,
		Label:      label,
		PINFile:    filepath.Join(dir, "user-pin"),
		SOPINFile:  filepath.Join(dir, "so-pin"),
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return SoftHSMToken{}, fmt.Errorf("softhsm token dir: %w", err)
	}
	if err := writeSoftHSMConfig(st.ConfigFile, tokens); err != nil {
		return SoftHSMToken{}, err
	}
	env := append(os.Environ(), "SOFTHSM2_CONF="+st.ConfigFile) // the last one wins

	labels, err := softhsmLabels(util, env)
	if err != nil {
		return SoftHSMToken{}, err
	}
	switch labels[label] {
	case 0:
	case 1:
		for _, f := range []string{st.PINFile, st.SOPINFile} {
			if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
				return SoftHSMToken{}, fmt.Errorf("softhsm token %q exists in %s but its pin file %s is missing or empty", label, dir, f)
			}
		}
		return st, nil
	default:
		return SoftHSMToken{}, fmt.Errorf("softhsm: %w: %d tokens labelled %q in %s", ErrTokenAmbiguous, labels[label], label, dir)
	}

	// One directory, one pair of PINs: a second token in the same directory gets the PINs of
	// the first (new PIN files would lock the first token out).
	soPIN, soNew, err := readOrMakePIN(st.SOPINFile)
	if err != nil {
		return SoftHSMToken{}, err
	}
	userPIN, userNew, err := readOrMakePIN(st.PINFile)
	if err != nil {
		return SoftHSMToken{}, err
	}
	cmd := exec.Command(util, "--init-token", "--free", "--label", label, "--so-pin", soPIN, "--pin", userPIN)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		if userNew {
			_ = os.Remove(st.PINFile)
		}
		if soNew {
			_ = os.Remove(st.SOPINFile)
		}
		msg := strings.NewReplacer(soPIN, "<so-pin>", userPIN, "<pin>").Replace(strings.TrimSpace(string(out)))
		return SoftHSMToken{}, fmt.Errorf("softhsm2-util --init-token %q: %v: %s", label, err, msg)
	}
	return st, nil
}

func writeSoftHSMConfig(path, tokens string) error {
	conf := "# SoftHSM2 configuration written by wssignd (hsm.InitSoftHSMToken)\n" +
		"directories.tokendir = " + tokens + "\n" +
		"objectstore.backend = file\n" +
		"log.level = ERROR\n" +
		"slots.removable = false\n" +
		"slots.mechanisms = ALL\n" +
		"library.reset_on_fork = false\n"
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("softhsm config: %w", err)
	}
	if _, err := f.WriteString(conf); err != nil {
		f.Close()
		return fmt.Errorf("softhsm config: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("softhsm config: %w", err)
	}
	return nil
}

// softhsmLabels counts the initialised tokens per label, from `softhsm2-util --show-slots`.
func softhsmLabels(util string, env []string) (map[string]int, error) {
	cmd := exec.Command(util, "--show-slots")
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("softhsm2-util --show-slots: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	labels := map[string]int{}
	initialized := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "Slot "):
			initialized = false
		case strings.HasPrefix(line, "Initialized:"):
			initialized = strings.TrimSpace(strings.TrimPrefix(line, "Initialized:")) == "yes"
		case strings.HasPrefix(line, "Label:") && initialized:
			labels[strings.TrimSpace(strings.TrimPrefix(line, "Label:"))]++
		}
	}
	return labels, sc.Err()
}

// readOrMakePIN returns the PIN in path if the file exists and is not empty; otherwise it writes
// a new random PIN there and reports created=true.
func readOrMakePIN(path string) (pin string, created bool, err error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		pin, err := readPIN(path)
		if err != nil {
			return "", false, err
		}
		if err := os.Chmod(path, 0o600); err != nil {
			return "", false, fmt.Errorf("softhsm pin file: %w", err)
		}
		return pin, false, nil
	}
	pin = randomPIN()
	if err := writeSecretFile(path, pin+"\n"); err != nil {
		return "", false, err
	}
	return pin, true, nil
}

func randomPIN() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// writeSecretFile writes content to path with mode 0600, also when the file already existed
// with another mode.
func writeSecretFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

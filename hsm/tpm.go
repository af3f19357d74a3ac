package hsm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrTPMNotInstalled: tpm2_ptool or libtpm2_pkcs11.so is missing.
var ErrTPMNotInstalled = errors.New("tpm2-pkcs11 is not installed (apt-get install libtpm2-pkcs11-1 libtpm2-pkcs11-tools tpm2-tools)")

// tpmModules are where distributions install libtpm2_pkcs11.so, in order of preference.
var tpmModules = []string{
	"/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so", // Debian, Ubuntu
	"/usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
	"/usr/lib/*-linux-gnu*/pkcs11/libtpm2_pkcs11.so",
	"/usr/lib/*-linux-gnu*/libtpm2_pkcs11.so.1",
	"/usr/lib64/pkcs11/libtpm2_pkcs11.so", // Fedora, RHEL
	"/usr/lib/pkcs11/libtpm2_pkcs11.so",   // Arch
	"/usr/local/lib/libtpm2_pkcs11.so",    // built from source
}

// TPMModule returns the path of the installed libtpm2_pkcs11.so (tpm2-pkcs11), or an error
// wrapping ErrTPMNotInstalled.
func TPMModule() (string, error) {
	for _, pattern := range tpmModules {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && !fi.IsDir() {
				return m, nil
			}
		}
	}
	return "", fmt.Errorf("%w: libtpm2_pkcs11.so not found", ErrTPMNotInstalled)
}

// TPMToken describes a tpm2-pkcs11 token made by InitTPMToken.
type TPMToken struct {
	Store     string // the tpm2-pkcs11 store directory (TPM2_PKCS11_STORE names it for the module)
	TCTI      string // how the module and tools reach the TPM (TPM2_PKCS11_TCTI, TPM2TOOLS_TCTI)
	Module    string // path of libtpm2_pkcs11.so
	Label     string // token label
	PINFile   string // <Store>/user-pin-<label>, mode 0600
	SOPINFile string // <Store>/so-pin-<label>, mode 0600
}

// Env returns the environment variables that make tpm2-pkcs11 and tpm2-tools use this token's
// store and TCTI, as NAME=VALUE.
func (t TPMToken) Env() []string {
	return []string{"TPM2_PKCS11_STORE=" + t.Store, "TPM2_PKCS11_TCTI=" + t.TCTI, "TPM2TOOLS_TCTI=" + t.TCTI}
}

// InitTPMToken creates (if absent) a tpm2-pkcs11 store in the directory store, with a primary
// key in the TPM reached through tcti (a TSS2 TCTI string such as "device:/dev/tpmrm0" or
// "tabrmd:bus_type=session"), and adds a token with the given label and random SO and user PINs
// written to <store>/so-pin-<label> and <store>/user-pin-<label> (mode 0600, 32 hex digits).
// A token with that label already in the store is reused (its PIN files must exist). Open
// needs TPM2_PKCS11_STORE and TPM2_PKCS11_TCTI set as Env says when the module is initialised.
//
// It is for development and tests: tpm2_ptool takes the PINs as command-line arguments, so
// other local users can see them in the process list while it runs. Missing tpm2_ptool or
// libtpm2_pkcs11.so: an error wrapping ErrTPMNotInstalled.
func InitTPMToken(store, tcti, label string) (TPMToken, error) {
	if label == "" || len(label) > 32 || strings.ContainsAny(label, "\r\n/") {
		return TPMToken{}, fmt.Errorf("tpm token label %q: must be 1 to 32 bytes on one line, without /", label)
	}
	ptool, err := exec.LookPath("tpm2_ptool")
	if err != nil {
		return TPMToken{}, fmt.Errorf("%w: tpm2_ptool not found", ErrTPMNotInstalled)
	}
	module, err := TPMModule()
	if err != nil {
		return TPMToken{}, err
	}
	if store, err = filepath.Abs(store); err != nil {
		return TPMToken{}, fmt.Errorf("tpm store: %w", err)
	}
	if err := os.MkdirAll(store, 0o700); err != nil {
		return TPMToken{}, fmt.Errorf("tpm store: %w", err)
	}
	tt := TPMToken{
		Store: store, TCTI: tcti, Module: module, Label: label,
		PINFile:   filepath.Join(store, "user-pin-"+label),
		SOPINFile: filepath.Join(store, "so-pin-"+label),
	}
	env := append(os.Environ(), tt.Env()...) // the last one wins
	run := func(secrets []string, args ...string) (string, error) {
		cmd := exec.Command(ptool, args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			msg := strings.TrimSpace(stderr.String())
			for _, s := range secrets {
				msg = strings.ReplaceAll(msg, s, "<pin>")
			}
			return "", fmt.Errorf("tpm2_ptool %s: %v: %s", args[0], err, msg)
		}
		return string(out), nil
	}
	out, err := run(nil, "listprimaries", "--path", store)
	if err != nil {
		return TPMToken{}, err
	}
	pid := firstYAMLValue(out, "id")
	if pid == "" {
		if out, err = run(nil, "init", "--path", store); err != nil {
			return TPMToken{}, err
		}
		if pid = firstYAMLValue(out, "id"); pid == "" {
			return TPMToken{}, fmt.Errorf("tpm2_ptool init: no primary id in %q", out)
		}
	}
	out, err = run(nil, "listtokens", "--pid", pid, "--path", store)
	if err != nil {
		return TPMToken{}, err
	}
	for _, l := range yamlValues(out, "label") {
		if l == label {
			for _, f := range []string{tt.PINFile, tt.SOPINFile} {
				if fi, err := os.Stat(f); err != nil || fi.Size() == 0 {
					return TPMToken{}, fmt.Errorf("tpm token %q exists in %s but its pin file %s is missing or empty", label, store, f)
				}
			}
			return tt, nil
		}
	}
	soPIN, _, err := readOrMakePIN(tt.SOPINFile)
	if err != nil {
		return TPMToken{}, err
	}
	userPIN, _, err := readOrMakePIN(tt.PINFile)
	if err != nil {
		return TPMToken{}, err
	}
	if _, err := run([]string{soPIN, userPIN}, "addtoken", "--pid", pid, "--sopin", soPIN, "--userpin", userPIN, "--label", label, "--path", store); err != nil {
		return TPMToken{}, err
	}
	return tt, nil
}

// yamlValues returns the values of every "key: value" line (a list item's "- key: value" too)
// of tpm2_ptool's YAML output.
func yamlValues(out, key string) []string {
	var vs []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "- ")
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == key {
			vs = append(vs, strings.TrimSpace(v))
		}
	}
	return vs
}

func firstYAMLValue(out, key string) string {
	if vs := yamlValues(out, key); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

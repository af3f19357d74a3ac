// Package hsm is wssignd's token layer and the only package that talks PKCS#11.
//
// It loads a PKCS#11 module, selects a token by label or serial (never by slot number), logs in
// with a PIN read from a file, finds private keys and their certificates by label and/or CKA_ID,
// and hands them out as crypto.Signer values whose every private-key operation happens inside
// the token. It also provisions keys (generated on the token, never extractable) and builds
// SoftHSM2 tokens for development and tests.
//
// crypto11 provides the session pool and the signers; what crypto11 cannot do (looking at a
// token before logging in, listing every certificate that matches) goes through
// github.com/miekg/pkcs11 on the same module.
package hsm

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// DefaultMaxSessions is the number of sessions a Token opens at most when Config.MaxSessions is 0.
const DefaultMaxSessions = 8

// maxPINFileSize bounds what Open reads from Config.PINFile.
const maxPINFileSize = 4096

// Config selects a PKCS#11 module and token and says how to log in. Its doc comments are the
// reference for each field.
type Config struct {
	// Module is the absolute path of the PKCS#11 module (a shared library), e.g.
	// /usr/lib/softhsm/libsofthsm2.so. A module is native code loaded into the process: callers
	// check it against their allow-list before calling Open. Symbolic links are resolved before
	// loading, so two spellings of one library share one module instance (PKCS#11 allows one
	// C_Initialize per library and process).
	Module string

	// TokenLabel selects the token whose label (CK_TOKEN_INFO.label, trailing blanks ignored)
	// is exactly this. Exactly one of TokenLabel and TokenSerial must be set. If two present
	// tokens match, Open fails with ErrTokenAmbiguous; if none does, with ErrTokenNotFound.
	TokenLabel string

	// TokenSerial selects the token whose serial number (CK_TOKEN_INFO.serialNumber, trailing
	// blanks ignored) is exactly this. Exactly one of TokenLabel and TokenSerial must be set.
	// Tokens are never selected by slot number: slot IDs change when a token is re-initialised
	// or another token is plugged in.
	TokenSerial string

	// PINFile is the path of a file holding the user PIN. One trailing "\n" or "\r\n" is
	// removed; nothing else is (a PIN may contain blanks). A missing, unreadable or empty file
	// (or one larger than 4 KiB) is an error and no login is attempted. The PIN never appears in
	// logs or error text.
	PINFile string

	// MaxSessions is the most PKCS#11 sessions the Token opens: one is kept open to hold the
	// login, the others form the pool that key operations borrow from, so at most
	// MaxSessions-1 operations run at once. 0 means DefaultMaxSessions; otherwise it must be
	// at least 2. The token's own limit (CK_TOKEN_INFO.ulMaxRwSessionCount) caps it.
	MaxSessions int

	// Log receives lifecycle events only (token opened and closed, keys found, PIN counter
	// warnings), never per-operation events and never the PIN. nil discards them.
	Log *slog.Logger
}

// Token is an open, logged-in PKCS#11 token. All methods are safe for concurrent use.
type Token struct {
	ctx    *crypto11.Context
	raw    *pkcs11.Ctx // the same module through miekg/pkcs11, for what crypto11 cannot do
	slot   uint
	label  string
	serial string
	module string
	log    *slog.Logger

	loginKey string // key of logins

	// gate is held for reading by every operation and for writing by Close, so that no
	// operation is in flight when the module is finalised.
	gate   sync.RWMutex
	closed atomic.Bool
}

// moduleMu serialises Open and Close across all Tokens: Open briefly initialises the module on
// its own (to look at the token before login) and must not race with crypto11 initialising or
// finalising the same module for another Token. It also guards logins.
var moduleMu sync.Mutex

// logins records, per module and token, the PIN (as SHA-256) that the token accepted and how
// many open Tokens rely on that login. PKCS#11 login state belongs to the application, not the
// session: while one Token is logged in, C_Login returns CKR_USER_ALREADY_LOGGED_IN without
// looking at the PIN (SoftHSM2 does), and crypto11 treats that as success. So a second Open of
// the same token compares its PIN with the accepted one instead.
var logins = map[string]*login{}

type login struct {
	pin  [sha256.Size]byte
	refs int
}

// tokenSelector is the token a Config asks for.
type tokenSelector struct {
	label, serial string
}

func (s tokenSelector) String() string {
	if s.serial != "" {
		return fmt.Sprintf("serial %q", s.serial)
	}
	return fmt.Sprintf("label %q", s.label)
}

func (s tokenSelector) matches(ti pkcs11.TokenInfo) bool {
	if s.serial != "" {
		return ti.SerialNumber == s.serial
	}
	return ti.Label == s.label
}

// Open loads the module, finds the token, checks its PIN flags, logs in and returns the Token.
// Errors: ErrTokenNotFound, ErrTokenAmbiguous, ErrPINRejected, ErrPINMismatch (branch with
// errors.Is), or a configuration, PIN file or module error.
//
// The same token may be opened more than once (crypto11 shares the module); every Open after the
// first that is still open must present the same PIN (see ErrPINMismatch).
func Open(cfg Config) (*Token, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sel := tokenSelector{label: cfg.TokenLabel, serial: cfg.TokenSerial}
	switch {
	case cfg.TokenLabel == "" && cfg.TokenSerial == "":
		return nil, errors.New("hsm config: one of token label and token serial is required")
	case cfg.TokenLabel != "" && cfg.TokenSerial != "":
		return nil, errors.New("hsm config: token label and token serial are mutually exclusive")
	}
	maxSessions := cfg.MaxSessions
	switch {
	case maxSessions == 0:
		maxSessions = DefaultMaxSessions
	case maxSessions < 2:
		return nil, fmt.Errorf("hsm config: max sessions is %d, must be 0 (default) or at least 2", cfg.MaxSessions)
	}
	module, err := resolveModule(cfg.Module)
	if err != nil {
		return nil, err
	}
	pin, err := readPIN(cfg.PINFile)
	if err != nil {
		return nil, err
	}

	moduleMu.Lock()
	defer moduleMu.Unlock()

	raw := pkcs11.New(module)
	if raw == nil {
		return nil, fmt.Errorf("load pkcs#11 module %s: cannot load the library or it has no C_GetFunctionList", module)
	}
	// Look at the token before logging in. crypto11 must be the one that initialises the module
	// (it fails on CKR_CRYPTOKI_ALREADY_INITIALIZED), so if nobody had, finalise again after.
	ownInit := false
	if err := raw.Initialize(); err == nil {
		ownInit = true
	} else if rv, _ := ckr(err); rv != pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
		raw.Destroy()
		return nil, fmt.Errorf("initialise pkcs#11 module %s: %v", module, err)
	}
	_, info, err := findToken(raw, sel)
	if ownInit {
		_ = raw.Finalize()
	}
	if err != nil {
		raw.Destroy()
		return nil, fmt.Errorf("open token %s in %s: %w", sel, module, err)
	}
	attrs := []any{"token", info.Label, "serial", info.SerialNumber, "module", module}
	if info.Flags&pkcs11.CKF_USER_PIN_LOCKED != 0 {
		raw.Destroy()
		return nil, fmt.Errorf("open token %s: %w: the token reports the user pin locked; no login attempted", sel, ErrPINRejected)
	}
	if info.Flags&pkcs11.CKF_USER_PIN_INITIALIZED == 0 {
		raw.Destroy()
		return nil, fmt.Errorf("open token %s: the user pin is not initialised", sel)
	}
	if info.Flags&pkcs11.CKF_USER_PIN_FINAL_TRY != 0 {
		log.Warn("token reports one pin attempt left before lock-out", attrs...)
	} else if info.Flags&pkcs11.CKF_USER_PIN_COUNT_LOW != 0 {
		log.Warn("token reports a recent failed pin attempt", attrs...)
	}

	// Select by serial when the token has one, so crypto11 (which takes the first label match)
	// opens the very token found above.
	c11 := &crypto11.Config{Path: module, Pin: pin, MaxSessions: maxSessions}
	exact := tokenSelector{serial: info.SerialNumber}
	if info.SerialNumber == "" {
		exact = tokenSelector{label: info.Label}
	}
	c11.TokenSerial, c11.TokenLabel = exact.serial, exact.label
	loginKey := module + "\x00" + exact.String()
	pinHash := sha256.Sum256([]byte(pin))
	if l := logins[loginKey]; l != nil && subtle.ConstantTimeCompare(l.pin[:], pinHash[:]) != 1 {
		raw.Destroy()
		return nil, fmt.Errorf("open token %s: %w", sel, ErrPINMismatch)
	}
	ctx, err := crypto11.Configure(c11)
	if err != nil {
		raw.Destroy()
		return nil, fmt.Errorf("open token %s: %w", sel, classifyOpenError(err))
	}
	// The module may have been re-initialised since the probe, so look the slot up again.
	slot, _, err := findToken(raw, exact)
	if err != nil {
		_ = ctx.Close()
		raw.Destroy()
		return nil, fmt.Errorf("open token %s: %w", sel, err)
	}
	if l := logins[loginKey]; l != nil {
		l.refs++
	} else {
		logins[loginKey] = &login{pin: pinHash, refs: 1}
	}
	t := &Token{
		ctx:      ctx,
		raw:      raw,
		slot:     slot,
		label:    info.Label,
		serial:   info.SerialNumber,
		module:   module,
		loginKey: loginKey,
		log:      log,
	}
	log.Info("token opened", append(attrs, "manufacturer", info.ManufacturerID, "model", info.Model, "max_sessions", maxSessions)...)
	return t, nil
}

// classifyOpenError maps an error from crypto11.Configure to our sentinels. The error text of
// crypto11 and pkcs11 never contains the PIN.
func classifyOpenError(err error) error {
	if rv, ok := ckr(err); ok {
		switch {
		case isPINRejection(rv):
			return fmt.Errorf("%w: %v", ErrPINRejected, err)
		case isTokenAbsence(rv):
			return fmt.Errorf("%w: %v", ErrTokenNotFound, err)
		}
	}
	// crypto11's errTokenNotFound is unexported; only its text identifies it.
	if err.Error() == "could not find PKCS#11 token" {
		return fmt.Errorf("%w: %v", ErrTokenNotFound, err)
	}
	return err
}

// findToken returns the one present token that sel matches.
func findToken(raw *pkcs11.Ctx, sel tokenSelector) (uint, pkcs11.TokenInfo, error) {
	slots, err := raw.GetSlotList(true)
	if err != nil {
		return 0, pkcs11.TokenInfo{}, fmt.Errorf("list slots: %v", err)
	}
	var (
		found   []uint
		info    pkcs11.TokenInfo
		lastErr error
	)
	for _, s := range slots {
		ti, err := raw.GetTokenInfo(s)
		if err != nil {
			lastErr = err // a token that vanished or misbehaves; keep looking
			continue
		}
		if ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0 && sel.matches(ti) {
			found = append(found, s)
			info = ti
		}
	}
	switch {
	case len(found) == 1:
		return found[0], info, nil
	case len(found) > 1:
		return 0, pkcs11.TokenInfo{}, fmt.Errorf("%w: %d tokens have %s", ErrTokenAmbiguous, len(found), sel)
	case lastErr != nil:
		return 0, pkcs11.TokenInfo{}, fmt.Errorf("%w (a slot failed to answer: %v)", ErrTokenNotFound, lastErr)
	}
	return 0, pkcs11.TokenInfo{}, ErrTokenNotFound
}

// resolveModule checks the module path and resolves symbolic links: crypto11 keeps one module
// instance per path string, and two strings for one library would initialise it twice.
func resolveModule(path string) (string, error) {
	if path == "" {
		return "", errors.New("hsm config: module path is required")
	}
	if !filepath.IsAbs(path) {
		return "", fmt.Errorf("hsm config: module path %q is not absolute", path)
	}
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("pkcs#11 module: %w", err)
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return "", fmt.Errorf("pkcs#11 module: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("pkcs#11 module %s is not a regular file", resolved)
	}
	return resolved, nil
}

// readPIN reads the user PIN from path, removing one trailing "\n" or "\r\n". Errors name the
// file, never its content.
func readPIN(path string) (string, error) {
	if path == "" {
		return "", errors.New("hsm config: pin file is required")
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read pin file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPINFileSize+1))
	if err != nil {
		return "", fmt.Errorf("read pin file: %w", err)
	}
	if len(b) > maxPINFileSize {
		return "", fmt.Errorf("read pin file %s: larger than %d bytes", path, maxPINFileSize)
	}
	if bytes.HasSuffix(b, []byte("\r\n")) {
		b = b[:len(b)-2]
	} else if bytes.HasSuffix(b, []byte("\n")) {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return "", fmt.Errorf("read pin file %s: empty", path)
	}
	return string(b), nil
}

// Close logs out, closes every session and, if this was the module's last Token, finalises and
// unloads the module. It waits for operations in flight. Closing twice is harmless. Signers
// obtained from the Token fail with ErrClosed afterwards.
func (t *Token) Close() error {
	t.gate.Lock()
	defer t.gate.Unlock()
	if t.closed.Swap(true) {
		return nil
	}
	moduleMu.Lock()
	defer moduleMu.Unlock()
	err := t.ctx.Close()
	t.raw.Destroy()
	if l := logins[t.loginKey]; l != nil {
		if l.refs--; l.refs <= 0 {
			delete(logins, t.loginKey)
		}
	}
	t.log.Info("token closed", "token", t.label, "serial", t.serial)
	if err != nil {
		return fmt.Errorf("close token %q: %v", t.label, err)
	}
	return nil
}

// Label returns the token's label.
func (t *Token) Label() string { return t.label }

// Serial returns the token's serial number (may be empty for tokens without one).
func (t *Token) Serial() string { return t.serial }

// Module returns the resolved path of the token's PKCS#11 module.
func (t *Token) Module() string { return t.module }

// acquire takes the gate for an operation; the caller must call t.gate.RUnlock when done.
func (t *Token) acquire() error {
	t.gate.RLock()
	if t.closed.Load() {
		t.gate.RUnlock()
		return fmt.Errorf("token %q: %w", t.label, ErrClosed)
	}
	return nil
}

// withRawSession runs f in a fresh read-only session of the raw module handle. The user login
// held by crypto11's long-term session applies to it (login state is per application).
func (t *Token) withRawSession(f func(sh pkcs11.SessionHandle) error) error {
	sh, err := t.raw.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		return fmt.Errorf("open session: %w", err)
	}
	defer func() { _ = t.raw.CloseSession(sh) }()
	return f(sh)
}

// Package hsm is wssignd's token layer and the only package that talks PKCS#11.
//
// It loads a PKCS#11 module, selects a token by label or serial (never by slot number), logs in
// with a PIN read from a file, finds private keys and their certificates by label and/or CKA_ID,
// and hands them out as crypto.Signer values whose every private-key operation happens inside
// the token. It also provisions keys (generated on the token, never extractable) and builds
// SoftHSM2 and TPM 2.0 (tpm2-pkcs11) tokens for development and tests.
//
// Everything goes through github.com/miekg/pkcs11 directly: this package owns the session pool,
// so that it can tell a broken session from a broken token or module and recover from each.
//
// # Recovery
//
// Every PKCS#11 error is classified (see Class). A session error discards the session and an
// idempotent operation (sign, decrypt) is retried once on a fresh one. A token or module error
// takes the token (for module errors: every token of the module) to state "recovering": calls
// fail fast with ErrTokenUnavailable while a background loop waits for calls in flight to
// return, finalises and initialises the module again, finds the token again by label or serial,
// checks its PIN flags, logs in again with the PIN it accepted before, finds every key handed
// out again and self-tests it, with exponential backoff between attempts. Keys and signers
// handed out before keep working afterwards: they resolve the current object handle at each
// call.
//
// # Bounds
//
// Every call has a deadline (Config.OpTimeout, or the context of SignContext and
// DecryptContext). PKCS#11 calls cannot be cancelled: a call that outlives its deadline keeps
// its OS thread and its session until it returns, the caller gets ErrTokenUnavailable at the
// deadline, and the token reports StateHung (and fails new calls fast) until the call returns.
// The sessions of a token (Config.MaxSessions) and the calls in flight per module
// (Config.MaxCallsInFlight) are bounded, so a hung HSM holds a bounded number of threads.
// State and Status never call into the module: they answer at once whatever the token does.
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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"
)

// Defaults for Config fields left zero.
const (
	DefaultMaxSessions      = 8
	DefaultOpTimeout        = 10 * time.Second
	DefaultMaxCallsInFlight = 64
	DefaultRetryMin         = time.Second
	DefaultRetryMax         = 30 * time.Second
	DefaultPINLockedRetry   = 10 * time.Minute
)

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

	// PINFile is the path of a file holding the user PIN (for a systemd credential,
	// $CREDENTIALS_DIRECTORY/NAME). One trailing "\n" or "\r\n" is removed; nothing else is (a
	// PIN may contain blanks). A missing, unreadable or empty file (or one larger than 4 KiB) is
	// an error and no login is attempted. The PIN never appears in logs or error text.
	PINFile string

	// StateDir, when set, is where a rejected PIN leaves a marker file
	// (pin-rejected-<token hash>.json, mode 0600; the directory is created with mode 0700). The
	// marker holds a salted PBKDF2 hash of the PIN file's path and content, never the PIN. While
	// the marker matches the PIN file, Open fails with ErrPINRejected without contacting the
	// token, so restarts cannot lock the token; a changed PIN file (or path) removes the marker
	// and the new PIN is tried once. Empty: no marker (a rejected PIN is still never retried by
	// a running Token).
	StateDir string

	// MaxSessions is the most PKCS#11 sessions the Token opens: one is kept open to hold the
	// login, the others form the pool that key operations borrow from, so at most
	// MaxSessions-1 operations run at once. 0 means DefaultMaxSessions; otherwise it must be
	// at least 2. The token's own limit (CK_TOKEN_INFO.ulMaxRwSessionCount) caps it.
	MaxSessions int

	// OpTimeout bounds each key operation (waiting for a session included) when the caller
	// gives no deadline of its own (crypto.Signer.Sign has no context). 0 means
	// DefaultOpTimeout. Key generation and searches get at least two minutes.
	OpTimeout time.Duration

	// MaxCallsInFlight bounds the PKCS#11 calls in flight at once in the module (over all its
	// tokens; the first Token to load the module sets it). Each holds an OS thread while the
	// module works, and a hung module keeps them. 0 means DefaultMaxCallsInFlight, except for
	// p11-kit's client module (p11-kit-client.so), where it means 1: with concurrent calls, a
	// lost server connection can leave a calling thread blocked forever in select() on the
	// closed socket (p11-kit 0.24 rpc-transport.c, "received header in wrong thread"), which
	// makes the token hung until the process restarts. Serialised calls do not hit it.
	MaxCallsInFlight int

	// RetryMin and RetryMax bound the exponential backoff between recovery attempts after a
	// token or module error (the first Token to load the module sets them). 0 means
	// DefaultRetryMin and DefaultRetryMax.
	RetryMin, RetryMax time.Duration

	// PINLockedRetry is how long a Token whose token is locked (ErrPINLocked: PIN locked or on
	// its final try, a TPM in dictionary-attack lockout) waits before it looks at the token
	// again. The flags are read first, so a PIN on its final try is never tried. 0 means
	// DefaultPINLockedRetry.
	PINLockedRetry time.Duration

	// KeepAlive, when positive, makes the Token probe itself this often while it is online: a
	// signature over a random digest with the first key handed out, verified with its public key
	// (C_GetTokenInfo while it has no key). HSMs drop idle sessions and network links die
	// quietly; a failed probe takes the token through recovery like a failed call, before a
	// request finds out. Status reports the last probe. 0 disables it.
	KeepAlive time.Duration

	// Log receives lifecycle events only (token opened, lost, recovered and closed, keys found,
	// PIN counter warnings), never per-operation events and never the PIN. nil discards them.
	Log *slog.Logger
}

func (c *Config) opTimeout() time.Duration { return orDefault(c.OpTimeout, DefaultOpTimeout) }
func (c *Config) retryMin() time.Duration  { return orDefault(c.RetryMin, DefaultRetryMin) }
func (c *Config) retryMax() time.Duration {
	return max(orDefault(c.RetryMax, DefaultRetryMax), c.retryMin())
}
func (c *Config) maxCalls(module string) int {
	switch {
	case c.MaxCallsInFlight > 0:
		return c.MaxCallsInFlight
	case filepath.Base(module) == "p11-kit-client.so":
		return 1
	}
	return DefaultMaxCallsInFlight
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// State is a Token's state as reported on /readyz and in metrics.
type State string

// Token states.
const (
	StateOnline      State = "online"       // logged in, keys usable
	StateOffline     State = "offline"      // the token or module is gone; retried with backoff
	StateRecovering  State = "recovering"   // a token or module error was seen; recovery runs
	StateHung        State = "hung"         // online, but a call has outlived its deadline
	StatePINRejected State = "pin-rejected" // the PIN was refused; never retried
	StatePINLocked   State = "pin-locked"   // the PIN is locked or on its final try, or the TPM is in lockout; retried after Config.PINLockedRetry
	StateClosed      State = "closed"
)

// Status is a snapshot of a Token's health. It is read from memory and never waits for the token.
type Status struct {
	State State
	// Err says why the token is not online (empty when it is). It never contains the PIN.
	Err string
	// PINCountLow reports CKF_USER_PIN_COUNT_LOW at the last login: an earlier login failed.
	PINCountLow bool
	// Recoveries counts the recoveries that brought the token back online.
	Recoveries uint64
	// Overdue counts calls still in the module after their deadline.
	Overdue int64
	// LastProbe is when the last keep-alive probe finished (zero without Config.KeepAlive);
	// LastProbeErr is its error, empty when it passed.
	LastProbe    time.Time
	LastProbeErr string
	// SessionsInUse of SessionsMax pooled sessions are lent to operations
	// now; Waiting operations wait for one.
	SessionsInUse, SessionsMax int
	Waiting                    int64
}

// Token is an open, logged-in PKCS#11 token. All methods are safe for concurrent use.
type Token struct {
	m         *module
	sel       tokenSelector // as configured
	exact     tokenSelector // serial when the token has one, else label: what recovery looks for
	pin       string        // the PIN the token accepted, for logging in again after recovery
	pinHash   [32]byte
	loginKey  string
	opTimeout time.Duration
	lockRetry time.Duration
	log       *slog.Logger
	label     string
	serial    string

	permits chan struct{} // one per pooled session: at most MaxSessions-1 operations at once
	waiting atomic.Int64  // operations waiting for a permit
	ops     gate          // this token's calls in flight; Close waits for them

	mu       sync.Mutex // guards the fields below
	state    State
	stateErr error
	slot     uint
	gen      uint64 // module generation the slot, sessions and key handles belong to
	loginSH  pkcs11.SessionHandle
	hasLogin bool
	idle     []pkcs11.SessionHandle
	keys     []*keyEntry

	lockGen      uint64    // guarded by mu: counts markLocked calls
	lastProbe    time.Time // guarded by mu
	lastProbeErr error     // guarded by mu
	done         chan struct{}

	countLow   atomic.Bool
	overdue    atomic.Int64
	recoveries atomic.Uint64
	closed     atomic.Bool
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
// Errors: ErrTokenNotFound, ErrTokenAmbiguous, ErrPINRejected (also for a persisted marker),
// ErrPINLocked, ErrPINMismatch (branch with errors.Is), or a configuration, PIN file or module
// error. A PIN rejection is recorded in Config.StateDir.
//
// The same token may be opened more than once (the module is shared); every Open after the
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
	marker := newPINMarker(cfg.StateDir, module, sel, cfg.PINFile)
	if err := marker.check(pin, log); err != nil {
		return nil, fmt.Errorf("open token %s: %w", sel, err)
	}

	m, err := acquireModule(module, &cfg, log)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Token, error) {
		m.unlock()
		_ = m.release(cfg.opTimeout())
		return nil, fmt.Errorf("open token %s in %s: %w", sel, module, err)
	}
	m.lock()
	if err := m.ensureInit(); err != nil {
		return fail(err)
	}
	_, info, err := findToken(m.p, sel)
	if err != nil {
		return fail(err)
	}
	// Recovery finds the token again by its serial when that names it alone, else by label:
	// tpm2-pkcs11 gives every token the serial 0000000000000000.
	exact := tokenSelector{label: info.Label}
	if uniqueSerial(info.SerialNumber) {
		if _, _, err := findToken(m.p, tokenSelector{serial: info.SerialNumber}); err == nil {
			exact = tokenSelector{serial: info.SerialNumber}
		}
	}
	t := &Token{
		m:         m,
		sel:       sel,
		exact:     exact,
		pin:       pin,
		pinHash:   sha256.Sum256([]byte(pin)),
		loginKey:  exact.String(),
		opTimeout: cfg.opTimeout(),
		lockRetry: orDefault(cfg.PINLockedRetry, DefaultPINLockedRetry),
		log:       log,
		label:     info.Label,
		serial:    info.SerialNumber,
		permits:   make(chan struct{}, sessionLimit(maxSessions, info)-1),
		state:     StateOffline,
		done:      make(chan struct{}),
	}
	if l := m.logins[t.loginKey]; l != nil && subtle.ConstantTimeCompare(l.pin[:], t.pinHash[:]) != 1 {
		return fail(ErrPINMismatch)
	}
	if err := t.attach(); err != nil {
		if errors.Is(err, ErrPINRejected) {
			if merr := marker.write(pin); merr != nil {
				log.Error("cannot persist the pin-rejected marker; a restart would try this pin again", "err", merr)
			}
		}
		return fail(err)
	}
	if l := m.logins[t.loginKey]; l != nil {
		l.refs++
	} else {
		m.logins[t.loginKey] = &login{pin: t.pinHash, refs: 1}
	}
	modulesMu.Lock()
	m.tokens[t] = struct{}{}
	modulesMu.Unlock()
	m.unlock()
	if cfg.KeepAlive > 0 {
		go t.keepAlive(cfg.KeepAlive)
	}
	log.Info("token opened", "token_label", info.Label, "serial", info.SerialNumber, "module", module,
		"manufacturer", info.ManufacturerID, "model", info.Model, "max_sessions", cap(t.permits)+1)
	return t, nil
}

// sessionLimit caps want by the token's own limit on read/write sessions.
func sessionLimit(want int, info pkcs11.TokenInfo) int {
	n := info.MaxRwSessionCount
	if n != pkcs11.CK_EFFECTIVELY_INFINITE && n != pkcs11.CK_UNAVAILABLE_INFORMATION && n >= 2 && n < uint(want) {
		return int(n)
	}
	return want
}

// attach finds the token, checks its PIN flags, opens the login session, logs in and resolves
// every key handed out before, self-testing each. On success the token is online. The caller
// holds t.m.mu and the module is initialised.
func (t *Token) attach() error {
	p := t.m.p
	slot, info, err := findToken(p, t.exact)
	if err != nil {
		if Classify(err) == ClassModule {
			t.markDown(StateOffline, err)
			return err
		}
		t.markDown(StateOffline, err)
		return err
	}
	attrs := []any{"token_label", info.Label, "serial", info.SerialNumber, "module", t.m.path}
	switch {
	case info.Flags&pkcs11.CKF_USER_PIN_LOCKED != 0:
		err := fmt.Errorf("%w (CKF_USER_PIN_LOCKED); no login attempted", ErrPINLocked)
		t.markLocked(err)
		t.log.Error("token reports the user pin locked; not logging in", append(attrs, "retry_in", t.lockRetry)...)
		return err
	case info.Flags&pkcs11.CKF_USER_PIN_FINAL_TRY != 0:
		err := fmt.Errorf("%w (CKF_USER_PIN_FINAL_TRY: one more failure locks it); no login attempted", ErrPINLocked)
		t.markLocked(err)
		t.log.Error("token reports one pin attempt left before lock-out; not logging in", append(attrs, "retry_in", t.lockRetry)...)
		return err
	case info.Flags&pkcs11.CKF_USER_PIN_INITIALIZED == 0:
		// A token being initialised shows this between its label and its user PIN: not a
		// login problem, try again later.
		err := unavailable("the user pin is not initialised")
		t.markDown(StateOffline, err)
		return err
	}
	low := info.Flags&pkcs11.CKF_USER_PIN_COUNT_LOW != 0
	t.countLow.Store(low)
	if low {
		t.log.Warn("token reports a recent failed pin attempt (CKF_USER_PIN_COUNT_LOW)", attrs...)
	}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		err = fmt.Errorf("open login session: %w", err)
		t.markDown(StateOffline, err)
		return err
	}
	if err := p.Login(sh, pkcs11.CKU_USER, t.pin); err != nil {
		rv, _ := ckr(err)
		if rv != pkcs11.CKR_USER_ALREADY_LOGGED_IN {
			_ = p.CloseSession(sh)
			if rv == pkcs11.CKR_PIN_LOCKED {
				err = fmt.Errorf("%w: %v", ErrPINLocked, err)
				t.markLocked(err)
				t.log.Error("token is locked (pin locked or tpm dictionary-attack lockout); not a wrong pin, no marker written",
					append(attrs, "retry_in", t.lockRetry)...)
				return err
			}
			if isPINRejection(rv) {
				err = fmt.Errorf("%w: %v", ErrPINRejected, err)
				t.markDown(StatePINRejected, err)
				t.log.Error("token rejected the pin; it will not be tried again", attrs...)
				return err
			}
			err = fmt.Errorf("login: %w", err)
			t.markDown(StateOffline, err)
			return err
		}
	}
	gen := t.m.gen.Load()
	t.mu.Lock()
	if t.hasLogin && t.gen == gen {
		_ = p.CloseSession(t.loginSH)
	}
	t.slot, t.gen, t.loginSH, t.hasLogin, t.idle = slot, gen, sh, true, nil
	keys := append([]*keyEntry(nil), t.keys...)
	t.mu.Unlock()
	for _, k := range keys {
		if err := k.refind(p, sh, gen); err != nil {
			t.log.Error("key lost after recovery", "token_label", t.label, "key", k.attrs.ref().String(), "err", err)
		}
	}
	t.mu.Lock()
	t.state, t.stateErr = StateOnline, nil
	t.mu.Unlock()
	return nil
}

// markDown takes the token out of service (unless it is closed, or the new state would hide a
// PIN problem that needs a person).
func (t *Token) markDown(s State, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == StateClosed || (s != StatePINRejected && s != StatePINLocked && (t.state == StatePINRejected || t.state == StatePINLocked)) {
		return
	}
	t.state, t.stateErr = s, err
}

// markLocked puts the token in StatePINLocked and schedules one more look at it after
// Config.PINLockedRetry (see retryLocked).
func (t *Token) markLocked(err error) {
	t.mu.Lock()
	if t.state == StateClosed || t.state == StatePINRejected {
		t.mu.Unlock()
		return
	}
	t.state, t.stateErr = StatePINLocked, err
	t.lockGen++
	gen := t.lockGen
	t.mu.Unlock()
	time.AfterFunc(t.lockRetry, func() { t.retryLocked(gen) })
}

// retryLocked hands a token that is still in the lock that markLocked recorded as gen to the
// module's recovery loop, which reads its flags and logs in again. A Token that is not
// registered with its module (Open has not returned it) is not retried: Open's caller decides.
func (t *Token) retryLocked(gen uint64) {
	modulesMu.Lock()
	_, registered := t.m.tokens[t]
	modulesMu.Unlock()
	t.mu.Lock()
	if !registered || t.state != StatePINLocked || t.lockGen != gen {
		t.mu.Unlock()
		return
	}
	t.state = StateRecovering
	t.mu.Unlock()
	t.log.Info("looking at the locked token again", "token_label", t.label, "serial", t.serial)
	t.m.startRecovery(t, ClassToken, ErrPINLocked)
}

// needsRecovery reports whether the recovery loop should try to attach the token.
func (t *Token) needsRecovery() bool {
	s := t.rawState()
	return s == StateOffline || s == StateRecovering
}

func (t *Token) rawState() State {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state
}

// State returns the token's state at once, without calling into the module.
func (t *Token) State() State {
	s := t.rawState()
	if s == StateOnline && t.overdue.Load() > 0 {
		return StateHung
	}
	return s
}

// Status returns a snapshot of the token's health at once, without calling into the module.
func (t *Token) Status() Status {
	t.mu.Lock()
	st := Status{State: t.state, PINCountLow: t.countLow.Load(), Recoveries: t.recoveries.Load(), Overdue: t.overdue.Load(), LastProbe: t.lastProbe,
		SessionsInUse: len(t.permits), SessionsMax: cap(t.permits), Waiting: t.waiting.Load()}
	if t.lastProbeErr != nil {
		st.LastProbeErr = t.lastProbeErr.Error()
	}
	if t.stateErr != nil {
		st.Err = t.stateErr.Error()
	}
	t.mu.Unlock()
	if st.State == StateOnline && st.Overdue > 0 {
		st.State = StateHung
		st.Err = fmt.Sprintf("%d call(s) still in the module past their deadline", st.Overdue)
	}
	return st
}

// PINCountLow reports whether the token showed CKF_USER_PIN_COUNT_LOW (an earlier failed login)
// at the last login.
func (t *Token) PINCountLow() bool { return t.countLow.Load() }

// findToken returns the one present, initialised token that sel matches.
func findToken(p *pkcs11.Ctx, sel tokenSelector) (uint, pkcs11.TokenInfo, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, pkcs11.TokenInfo{}, fmt.Errorf("list slots: %w", err)
	}
	var (
		found   []uint
		info    pkcs11.TokenInfo
		lastErr error
	)
	for _, s := range slots {
		ti, err := tokenInfo(p, s)
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
		return 0, pkcs11.TokenInfo{}, fmt.Errorf("%w (a slot failed to answer: %w)", ErrTokenNotFound, lastErr)
	}
	return 0, pkcs11.TokenInfo{}, fmt.Errorf("%w: no present token has %s", ErrTokenNotFound, sel)
}

// tokenInfo is C_GetTokenInfo with the padding of its strings removed: PKCS#11 pads them with
// blanks, and some modules (tpm2-pkcs11's model) with NULs.
func tokenInfo(p *pkcs11.Ctx, slot uint) (pkcs11.TokenInfo, error) {
	ti, err := p.GetTokenInfo(slot)
	if err != nil {
		return ti, err
	}
	ti.Label, ti.ManufacturerID = trimPadding(ti.Label), trimPadding(ti.ManufacturerID)
	ti.Model, ti.SerialNumber = trimPadding(ti.Model), trimPadding(ti.SerialNumber)
	return ti, nil
}

// trimPadding removes the blanks and NULs that pad a fixed-size PKCS#11 string.
func trimPadding(s string) string { return strings.TrimRight(s, " \x00") }

// uniqueSerial reports whether a token serial can tell a token from others: not empty and not
// all zeros (the placeholder some modules give every token).
func uniqueSerial(serial string) bool { return strings.Trim(serial, "0") != "" }

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
// unloads the module. It waits for operations in flight, at most Config.OpTimeout: if calls are
// stuck in the module then, the module is left loaded and Close returns an error. Closing twice
// is harmless. Keys and signers obtained from the Token fail with ErrClosed afterwards.
func (t *Token) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.mu.Lock()
	t.state, t.stateErr = StateClosed, ErrClosed
	t.mu.Unlock()
	close(t.done)
	m := t.m
	modulesMu.Lock()
	delete(m.tokens, t)
	modulesMu.Unlock()

	timeout := time.After(t.opTimeout)
	var err error
	// Wait for this token's own calls only: the module's other tokens keep working.
	if !t.ops.lock(timeout) {
		err = fmt.Errorf("close token %q: calls still in progress after %v", t.label, t.opTimeout)
	} else if m.lockUntil(timeout) {
		t.mu.Lock()
		if t.gen == m.gen.Load() && m.initialized {
			for _, sh := range t.idle {
				_ = m.p.CloseSession(sh)
			}
			if t.hasLogin {
				_ = m.p.CloseSession(t.loginSH)
			}
		}
		t.idle, t.hasLogin = nil, false
		t.mu.Unlock()
		if l := m.logins[t.loginKey]; l != nil {
			if l.refs--; l.refs <= 0 {
				delete(m.logins, t.loginKey)
			}
		}
		m.unlock()
	} else {
		err = fmt.Errorf("close token %q: module busy after %v", t.label, t.opTimeout)
	}
	if rerr := m.release(t.opTimeout); rerr != nil && err == nil {
		err = rerr
	}
	t.log.Info("token closed", "token_label", t.label, "serial", t.serial)
	return err
}

// Label returns the token's label.
func (t *Token) Label() string { return t.label }

// Serial returns the token's serial number (may be empty for tokens without one).
func (t *Token) Serial() string { return t.serial }

// Module returns the resolved path of the token's PKCS#11 module.
func (t *Token) Module() string { return t.m.path }

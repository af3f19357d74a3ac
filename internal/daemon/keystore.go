package daemon

import (
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/hsm"
	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/wss"
)

// Token states reported on /readyz and in STATUS= besides hsm's own (online, offline,
// recovering, hung, pin-rejected, pin-locked).
const (
	stateOnline      = string(hsm.StateOnline)
	stateOffline     = string(hsm.StateOffline)
	statePINRejected = string(hsm.StatePINRejected)
	stateError       = "error" // the token is there but a key on it cannot be used: fix the config or token
)

// tokenSlot is one configured token: open (hsm recovers it by itself from then on), or waiting
// to be opened by the retry loop.
type tokenSlot struct {
	name string
	cfg  hsm.Config
	mu   sync.RWMutex
	tok  *hsm.Token
	// state and err while tok is nil.
	state string
	err   error
	keys  map[string]*hsm.Key // by key name, resolved when the token opens
}

// keyStore implements api.KeyStore over the configured hsm tokens.
type keyStore struct {
	log    *slog.Logger
	tokens map[string]*tokenSlot
	keys   map[string]*config.Key // key name → where it lives
	seams  *seams
	stop   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

// ErrPINRejected is returned by New and Reload when a token refused its PIN (now, or at an earlier
// start as the marker in the state directory records): the daemon exits 78 and never tries that
// PIN again by itself. A locked token (PIN locked or on its final try, TPM dictionary-attack
// lockout) is not a rejected PIN: the daemon serves without it and looks at it again later.
var ErrPINRejected = errors.New("a token rejected its PIN")

// hsmConfig builds the hsm configuration of one configured token.
func (s *seams) hsmConfig(c *config.Config, name string, t *config.Token, log *slog.Logger) hsm.Config {
	pinFile := t.PINFile
	if t.PINCredential != "" {
		pinFile = s.credentialPath(t.PINCredential)
	}
	return hsm.Config{
		Module: t.Module, TokenLabel: t.Label, TokenSerial: t.Serial, PINFile: pinFile,
		MaxSessions: t.MaxSessions, StateDir: c.StateDir,
		OpTimeout:        c.Limits.RequestTimeout.Duration,
		KeepAlive:        t.KeepAlive.Duration,
		MaxCallsInFlight: t.MaxCallsInFlight,
		RetryMax:         s.tokenRetryMax,
		PINLockedRetry:   s.pinLockedRetry,
		Log:              log.With("token", name),
	}
}

// openKeyStore opens every token of c and resolves its keys. Modules this process has loaded
// already (a reload) are re-initialised first (reinitModules).
func openKeyStore(s *seams, c *config.Config, log *slog.Logger) (*keyStore, error) {
	reinitModules(c, log)
	ks := &keyStore{log: log, tokens: map[string]*tokenSlot{}, keys: c.Keys, seams: s, stop: make(chan struct{})}
	names := slices.Sorted(maps.Keys(c.Tokens))
	for _, name := range names {
		slot := &tokenSlot{name: name, state: stateOffline, keys: map[string]*hsm.Key{}, cfg: s.hsmConfig(c, name, c.Tokens[name], log)}
		ks.tokens[name] = slot
		if err := ks.open(slot); err != nil {
			switch {
			case errors.Is(err, hsm.ErrPINLocked):
				// Not a wrong PIN: no marker, no exit 78. The token is not used until it is
				// looked at again after a long wait, or at a reload.
				log.Error("token locked at start (pin locked or on its final try, or tpm dictionary-attack lockout); serving without it",
					"token", name, "err", err, "retry_in", s.pinLockedRetry)
				ks.wg.Add(1)
				go ks.retry(slot)
			case errors.Is(err, hsm.ErrPINRejected):
				ks.Close()
				return nil, fmt.Errorf("%w: token %s: %v", ErrPINRejected, name, err)
			case retryable(err, false):
				log.Warn("token offline at start; retrying in the background", "token", name, "err", err)
				ks.wg.Add(1)
				go ks.retry(slot)
			default:
				// A key that is missing, ambiguous or does not match its certificate is a
				// configuration error, not a transient outage.
				// So is a PIN file that cannot be read: exit 78, so that
				// systemd does not restart into the same failure.
				ks.Close()
				return nil, fmt.Errorf("%w: token %s: %w", ErrConfig, name, err)
			}
		}
	}
	return ks, nil
}

// reinitModules re-initialises, once each, the PKCS#11 modules of c's tokens that this process
// has loaded already (at a reload: by the serving configuration), so that the new
// configuration sees the tokens as they are now: keys and certificates another process
// (wssignd token, tpm2_ptool, pkcs11-tool) added or replaced since the module was initialised.
// Some modules (tpm2-pkcs11) read their object store only at C_Initialize. Requests in flight
// finish first; requests arriving meanwhile wait for it. A failure is logged: the tokens
// concerned recover by themselves. At the first start no module is loaded: nothing happens.
func reinitModules(c *config.Config, log *slog.Logger) {
	seen := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(c.Tokens)) {
		m := c.Tokens[name].Module
		if seen[m] {
			continue
		}
		seen[m] = true
		wait := c.Limits.RequestTimeout.Duration
		if wait <= 0 {
			wait = hsm.DefaultOpTimeout
		}
		if err := hsm.Reinitialize(m, wait); err != nil {
			log.Warn("pkcs#11 module not re-initialised", "module", m, "err", err)
		}
	}
}

// retryable reports whether opening a token may succeed later by itself. Later (background)
// also retries keys not yet on the token: it may be being provisioned.
func retryable(err error, later bool) bool {
	switch {
	case errors.Is(err, hsm.ErrTokenNotFound), errors.Is(err, hsm.ErrTokenUnavailable), errors.Is(err, hsm.ErrBusy):
		return true
	case later && (errors.Is(err, hsm.ErrKeyNotFound) || errors.Is(err, hsm.ErrCertificateNotFound)):
		return true
	}
	c := hsm.Classify(err)
	return c == hsm.ClassModule || c == hsm.ClassToken || c == hsm.ClassBusy || c == hsm.ClassSession
}

func (s *seams) credentialPath(name string) string {
	dir := s.getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return "/nonexistent-credentials-directory/" + name
	}
	return dir + "/" + name
}

// open opens slot's token and resolves and checks every key on it.
func (ks *keyStore) open(slot *tokenSlot) error {
	tok, err := hsm.Open(slot.cfg)
	if err != nil {
		slot.mu.Lock()
		slot.err = err
		switch {
		case errors.Is(err, hsm.ErrPINLocked):
			slot.state = string(hsm.StatePINLocked)
		case errors.Is(err, hsm.ErrPINRejected):
			slot.state = statePINRejected
		}
		slot.mu.Unlock()
		return err
	}
	keys := map[string]*hsm.Key{}
	names := slices.Sorted(maps.Keys(ks.keys))
	for _, name := range names {
		k := ks.keys[name]
		if k.Token != slot.name {
			continue
		}
		ref, err := keyRef(k)
		var key *hsm.Key
		if err == nil {
			key, err = tok.FindKey(ref)
		}
		if err != nil {
			_ = tok.Close()
			err = fmt.Errorf("key %s: %w", name, err)
			slot.mu.Lock()
			slot.err = err
			if !retryable(err, true) {
				slot.state = stateError
			}
			slot.mu.Unlock()
			return err
		}
		keys[name] = key
	}
	slot.mu.Lock()
	slot.tok, slot.keys, slot.state, slot.err = tok, keys, stateOnline, nil
	slot.mu.Unlock()
	ks.log.Info("token online", "token", slot.name, "keys", len(keys))
	return nil
}

// retry opens a token that could not be opened at start, with backoff, until it opens or fails
// in a way that needs a person. From then on hsm recovers the token by itself.
func (ks *keyStore) retry(slot *tokenSlot) {
	defer ks.wg.Done()
	s := ks.seams
	delay := s.openRetryMin
	if _, err := slot.current(); errors.Is(err, hsm.ErrPINLocked) {
		delay = s.pinLockedRetry
	}
	for {
		select {
		case <-ks.stop:
			return
		case <-time.After(delay):
		}
		err := ks.open(slot)
		if err == nil {
			return
		}
		if errors.Is(err, hsm.ErrPINLocked) {
			ks.log.Warn("token still locked", "token", slot.name, "err", err, "retry_in", s.pinLockedRetry)
			delay = s.pinLockedRetry
			continue
		}
		if !retryable(err, true) {
			ks.log.Error("token cannot be used; not retrying", "token", slot.name, "err", err)
			return
		}
		ks.log.Debug("token still unavailable", "token", slot.name, "err", err)
		delay = min(2*delay, s.openRetryMax)
	}
}

// current returns the slot's current state and, when it is not online, why.
func (slot *tokenSlot) current() (string, error) {
	slot.mu.RLock()
	defer slot.mu.RUnlock()
	if slot.tok == nil {
		return slot.state, slot.err
	}
	st := slot.tok.Status()
	if st.State == hsm.StateOnline {
		return stateOnline, nil
	}
	return string(st.State), errors.New(st.Err)
}

// Credential implements api.KeyStore. The signer it returns is bound to ctx: its waiting for
// the token ends with ctx (and at the latest after the request timeout). Errors meaning "the
// token cannot serve now" wrap api.ErrTokenUnavailable (and the hsm error).
func (ks *keyStore) Credential(ctx context.Context, name string) (wss.Credential, error) {
	k, ok := ks.keys[name]
	if !ok {
		return wss.Credential{}, fmt.Errorf("no key named %q", name)
	}
	slot := ks.tokens[k.Token]
	state, serr := slot.current()
	slot.mu.RLock()
	key := slot.keys[name]
	slot.mu.RUnlock()
	if state != stateOnline || key == nil {
		return wss.Credential{}, fmt.Errorf("%w: token %s is %s: %v", api.ErrTokenUnavailable, slot.name, state, serr)
	}
	return wss.Credential{Signer: bindSigner(ctx, key), Chain: key.Chain}, nil
}

// bindSigner wraps key's signer so that it signs within ctx and its "try later" errors wrap
// api.ErrTokenUnavailable.
func bindSigner(ctx context.Context, key *hsm.Key) crypto.Signer {
	s := &ctxSigner{ctx: ctx, key: key}
	if _, ok := key.Signer.Public().(*rsa.PublicKey); ok {
		if _, ok := key.Signer.(hsm.ContextDecrypter); ok {
			return ctxRSASigner{s}
		}
	}
	return s
}

type ctxSigner struct {
	ctx context.Context
	key *hsm.Key
}

type ctxRSASigner struct{ *ctxSigner }

func (s *ctxSigner) Public() crypto.PublicKey { return s.key.Signer.Public() }

func (s *ctxSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := s.key.SignContext(s.ctx, rand, digest, opts)
	return sig, apiError(err)
}

func (s ctxRSASigner) Decrypt(rand io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	pt, err := s.key.Signer.(hsm.ContextDecrypter).DecryptContext(s.ctx, rand, msg, opts)
	return pt, apiError(err)
}

// apiError makes hsm's "try later" errors api.ErrTokenUnavailable (503 with Retry-After).
func apiError(err error) error {
	if err != nil && (errors.Is(err, hsm.ErrTokenUnavailable) || errors.Is(err, hsm.ErrBusy) || errors.Is(err, hsm.ErrClosed)) {
		return fmt.Errorf("%w: %w", api.ErrTokenUnavailable, err)
	}
	return err
}

// Ready implements api.KeyStore. It never calls into a PKCS#11 module, so it answers at once
// even while a token hangs.
func (ks *keyStore) Ready(ctx context.Context) (map[string]string, error) {
	states := map[string]string{}
	var notReady []string
	for name, slot := range ks.tokens {
		states[name], _ = slot.current()
		if states[name] != stateOnline {
			notReady = append(notReady, name)
		}
	}
	sort.Strings(notReady)
	if len(notReady) > 0 {
		return states, fmt.Errorf("tokens not online: %v", notReady)
	}
	return states, nil
}

// TokenStatus reports every token's hsm status (state, reason, PIN counter low, recoveries,
// overdue calls), for metrics. Tokens not yet opened report their open state and error.
func (ks *keyStore) TokenStatus() map[string]hsm.Status {
	out := map[string]hsm.Status{}
	for name, slot := range ks.tokens {
		slot.mu.RLock()
		if slot.tok != nil {
			out[name] = slot.tok.Status()
		} else {
			st := hsm.Status{State: hsm.State(slot.state)}
			if slot.err != nil {
				st.Err = slot.err.Error()
			}
			out[name] = st
		}
		slot.mu.RUnlock()
	}
	return out
}

// Close stops retries and closes every open token.
func (ks *keyStore) Close() {
	ks.once.Do(func() { close(ks.stop) })
	ks.wg.Wait()
	for _, slot := range ks.tokens {
		slot.mu.Lock()
		if slot.tok != nil {
			if err := slot.tok.Close(); err != nil {
				ks.log.Warn("closing token", "token", slot.name, "err", err)
			}
			slot.tok = nil
			slot.state = stateOffline
		}
		slot.mu.Unlock()
	}
}

// CheckSign asks the named key's token whether it can sign as opts ask (mechanism present with
// CKF_SIGN, key size in range; hsm.Key.CheckSign). Keys of tokens that are not online are not
// checked (nil): they are checked when they serve. Meant for profile building at start.
func (ks *keyStore) CheckSign(ctx context.Context, name string, opts crypto.SignerOpts) error {
	k, ok := ks.keys[name]
	if !ok {
		return fmt.Errorf("no key named %q", name)
	}
	slot := ks.tokens[k.Token]
	slot.mu.RLock()
	key := slot.keys[name]
	slot.mu.RUnlock()
	if key == nil {
		return nil
	}
	err := key.CheckSign(ctx, opts)
	if errors.Is(err, hsm.ErrTokenUnavailable) || errors.Is(err, hsm.ErrBusy) {
		return nil
	}
	return err
}

// keyRef is where a configured key is: its RFC 7512 URI's object part, or
// its label and ID. A URI naming a token must name the key's token.
func keyRef(k *config.Key) (hsm.KeyRef, error) {
	if k.URI == "" {
		id, err := k.IDBytes()
		return hsm.KeyRef{Label: k.Label, ID: id}, err
	}
	u, err := hsm.ParseURI(k.URI)
	if err != nil {
		return hsm.KeyRef{}, err
	}
	if u.Type != "" && u.Type != "private" {
		return hsm.KeyRef{}, fmt.Errorf("%w: uri type=%s: a key reference names the private key", hsm.ErrURI, u.Type)
	}
	return u.KeyRef(), nil
}

// TokenConfig is the hsm configuration with which the daemon opens the token named name of c,
// without a logger: the token subcommands open the same token the same way.
func TokenConfig(c *config.Config, name string, opts ...Option) (hsm.Config, error) {
	t, ok := c.Tokens[name]
	if !ok {
		return hsm.Config{}, fmt.Errorf("%s: no token %q", c.File, name)
	}
	s := defaultSeams()
	for _, o := range opts {
		o(s)
	}
	cfg := s.hsmConfig(c, name, t, slog.New(slog.DiscardHandler))
	cfg.Log = nil
	return cfg, nil
}

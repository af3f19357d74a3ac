package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/hsm"
	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/wss"
)

// Token states reported on /readyz and in STATUS=.
const (
	stateOnline      = "online"
	stateOffline     = "offline"
	statePINRejected = "pin-rejected"
)

// tokenSlot is one configured token: open, or waiting to be retried.
type tokenSlot struct {
	name  string
	cfg   hsm.Config
	mu    sync.RWMutex
	tok   *hsm.Token
	state string
	err   error
	keys  map[string]*hsm.Key // by key name, resolved when the token opens
}

// keyStore implements api.KeyStore over the configured hsm tokens.
type keyStore struct {
	log    *slog.Logger
	tokens map[string]*tokenSlot
	keys   map[string]*config.Key // key name → where it lives
	stop   chan struct{}
	wg     sync.WaitGroup
}

// errPINRejected is returned by openKeyStore when a token refused its PIN:
// the daemon exits 78 and never tries that PIN again by itself.
var errPINRejected = errors.New("a token rejected its PIN")

func openKeyStore(c *config.Config, log *slog.Logger) (*keyStore, error) {
	ks := &keyStore{log: log, tokens: map[string]*tokenSlot{}, keys: c.Keys, stop: make(chan struct{})}
	for name, t := range c.Tokens {
		pinFile := t.PINFile
		if t.PINCredential != "" {
			pinFile = credentialPath(t.PINCredential)
		}
		slot := &tokenSlot{name: name, state: stateOffline, keys: map[string]*hsm.Key{}, cfg: hsm.Config{
			Module: t.Module, TokenLabel: t.Label, TokenSerial: t.Serial, PINFile: pinFile,
			MaxSessions: t.MaxSessions, Log: log.With("token", name),
		}}
		ks.tokens[name] = slot
		if err := ks.open(slot); err != nil {
			if errors.Is(err, hsm.ErrPINRejected) {
				ks.Close()
				return nil, fmt.Errorf("%w: token %s: %v", errPINRejected, name, err)
			}
			if !errors.Is(err, hsm.ErrTokenNotFound) {
				// A key that is missing or does not match its certificate
				// is a configuration error, not a transient outage.
				ks.Close()
				return nil, fmt.Errorf("token %s: %w", name, err)
			}
			log.Warn("token offline at start; retrying in the background", "token", name, "err", err)
			ks.wg.Add(1)
			go ks.retry(slot)
		}
	}
	return ks, nil
}

func credentialPath(name string) string {
	dir := osGetenv("CREDENTIALS_DIRECTORY")
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
		if errors.Is(err, hsm.ErrPINRejected) {
			slot.state = statePINRejected
		}
		slot.mu.Unlock()
		return err
	}
	keys := map[string]*hsm.Key{}
	for name, k := range ks.keys {
		if k.Token != slot.name {
			continue
		}
		id, _ := k.IDBytes()
		key, err := tok.FindKey(hsm.KeyRef{Label: k.Label, ID: id})
		if err != nil {
			tok.Close()
			return fmt.Errorf("key %s: %w", name, err)
		}
		keys[name] = key
	}
	slot.mu.Lock()
	slot.tok, slot.keys, slot.state, slot.err = tok, keys, stateOnline, nil
	slot.mu.Unlock()
	ks.log.Info("token online", "token", slot.name, "keys", len(keys))
	return nil
}

// retry reopens an absent token with backoff until it appears.
func (ks *keyStore) retry(slot *tokenSlot) {
	defer ks.wg.Done()
	delay := time.Second
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
		if !errors.Is(err, hsm.ErrTokenNotFound) {
			ks.log.Error("token cannot be used; not retrying", "token", slot.name, "err", err)
			return
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// Credential implements api.KeyStore.
func (ks *keyStore) Credential(ctx context.Context, name string) (wss.Credential, error) {
	k, ok := ks.keys[name]
	if !ok {
		return wss.Credential{}, fmt.Errorf("no key named %q", name)
	}
	slot := ks.tokens[k.Token]
	slot.mu.RLock()
	defer slot.mu.RUnlock()
	key := slot.keys[name]
	if slot.state != stateOnline || key == nil {
		return wss.Credential{}, fmt.Errorf("%w: token %s is %s", api.ErrTokenUnavailable, slot.name, slot.state)
	}
	return wss.Credential{Signer: key.Signer, Chain: key.Chain}, nil
}

// Ready implements api.KeyStore.
func (ks *keyStore) Ready(ctx context.Context) (map[string]string, error) {
	states := map[string]string{}
	var notReady []string
	for name, slot := range ks.tokens {
		slot.mu.RLock()
		states[name] = slot.state
		slot.mu.RUnlock()
		if states[name] != stateOnline {
			notReady = append(notReady, name)
		}
	}
	if len(notReady) > 0 {
		return states, fmt.Errorf("tokens not online: %v", notReady)
	}
	return states, nil
}

// Close stops retries and closes every open token.
func (ks *keyStore) Close() {
	close(ks.stop)
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

package hsm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/miekg/pkcs11"
)

// minAdminTimeout is the least time key generation, searches and imports get.
const minAdminTimeout = 2 * time.Minute

// opFunc is one operation on a pooled session. gen is the module generation the session belongs
// to (key handles are resolved for it).
type opFunc func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) ([]byte, error)

type opResult struct {
	out []byte
	err error
}

// overdueMark is shared between a caller and the worker doing its call.
type overdueMark struct {
	mu       sync.Mutex
	finished bool
	overdue  bool
}

// do runs f on a pooled session within ctx's deadline (or the token's OpTimeout, whichever comes
// first) and classifies what goes wrong:
//
//   - token not online, hung, or a writer (finalise) waiting: ErrTokenUnavailable at once;
//   - no session or call slot free before the deadline: ErrBusy (ErrTokenUnavailable if the
//     token is hung meanwhile);
//   - the call does not return before the deadline: ErrTokenUnavailable; the worker keeps its
//     thread, session and slot until the module answers, and the token reports StateHung;
//   - a session error: the session is closed, and if retry is set f runs once more on a fresh
//     session;
//   - a token or module error: the session is dropped, recovery starts, ErrTokenUnavailable;
//   - a request error: returned as is; the session goes back to the pool.
func (t *Token) do(ctx context.Context, timeout time.Duration, retry bool, f opFunc) ([]byte, error) {
	if err := t.usable(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	busy := func() error {
		if err := t.usable(); err != nil {
			return err
		}
		return fmt.Errorf("token %q: %w (%v)", t.label, ErrBusy, context.Cause(ctx))
	}
	t.waiting.Add(1)
	select {
	case t.permits <- struct{}{}:
		t.waiting.Add(-1)
	case <-ctx.Done():
		t.waiting.Add(-1)
		return nil, busy()
	}
	select {
	case t.m.calls <- struct{}{}:
	case <-ctx.Done():
		<-t.permits
		return nil, busy()
	}
	release := func() {
		<-t.m.calls
		<-t.permits
	}
	if !t.ops.enter() {
		release()
		return nil, fmt.Errorf("token %q: %w", t.label, ErrClosed)
	}
	// A writer holds the gate while the module is re-initialised: by recovery (the token is not
	// online then, and the call fails in work), or by Reinitialize (a pause: the call waits).
	if !t.m.gate.enter() && !t.m.gate.enterWait(ctx.Done()) {
		t.ops.leave()
		release()
		return nil, unavailable("token %q: module is being re-initialised (%v)", t.label, context.Cause(ctx))
	}
	mark := &overdueMark{}
	res := make(chan opResult, 1)
	go func() {
		defer t.ops.leave()
		defer t.m.gate.leave()
		defer release()
		out, err := t.work(retry, f)
		mark.mu.Lock()
		mark.finished = true
		if mark.overdue {
			t.overdue.Add(-1)
		}
		mark.mu.Unlock()
		res <- opResult{out, err}
	}()
	select {
	case r := <-res:
		return r.out, r.err
	case <-ctx.Done():
		mark.mu.Lock()
		if !mark.finished {
			mark.overdue = true
			t.overdue.Add(1)
		}
		mark.mu.Unlock()
		if !mark.overdue { // finished just now
			r := <-res
			return r.out, r.err
		}
		return nil, unavailable("token %q: no answer from the module within the deadline (%v)", t.label, context.Cause(ctx))
	}
}

// usable fails fast unless the token is online and not hung.
func (t *Token) usable() error {
	t.mu.Lock()
	s, serr := t.state, t.stateErr
	t.mu.Unlock()
	switch {
	case s == StateClosed:
		return fmt.Errorf("token %q: %w", t.label, ErrClosed)
	case s != StateOnline:
		return unavailable("token %q is %s: %v", t.label, s, serr)
	case t.overdue.Load() > 0:
		return unavailable("token %q is hung: %d call(s) still in the module past their deadline", t.label, t.overdue.Load())
	}
	return nil
}

// work runs in the worker goroutine, holding the gate, a permit and a call slot.
func (t *Token) work(retry bool, f opFunc) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		sh, gen, err := t.getSession(attempt > 0) // a retry gets a fresh session, not another idle one
		if err != nil {
			return nil, t.fail(err, 0, false)
		}
		out, err := f(t.m.p, sh, gen)
		class := Classify(err)
		switch class {
		case ClassOK, ClassRequest, ClassBusy:
			t.putSession(sh, gen)
			if class == ClassBusy {
				return nil, fmt.Errorf("token %q: %w: %w", t.label, ErrBusy, err)
			}
			return out, err
		case ClassSession:
			t.dropSession(sh, gen)
			if retry && attempt == 0 {
				continue
			}
			return nil, fmt.Errorf("token %q: %w", t.label, err)
		default:
			t.dropSession(sh, gen)
			if class == ClassModule && t.ambiguousFailure(err) {
				// The module still answers: the error was about this request (SoftHSM2 answers
				// CKR_GENERAL_ERROR to an OAEP ciphertext that does not decode). Re-initialising
				// for it would let any client take the token down.
				return nil, fmt.Errorf("token %q: %w", t.label, err)
			}
			return nil, t.fail(err, class, true)
		}
	}
}

// fail turns a token or module error into ErrTokenUnavailable and starts recovery.
func (t *Token) fail(err error, class Class, known bool) error {
	if errors.Is(err, ErrTokenUnavailable) || errors.Is(err, ErrClosed) {
		return err
	}
	if !known {
		class = Classify(err)
		if class == ClassRequest || class == ClassOK {
			return err
		}
	}
	if rv, _ := ckr(err); rv == pkcs11.CKR_PIN_LOCKED {
		t.markLocked(err)
		return fmt.Errorf("token %q: %w: %w", t.label, ErrPINLocked, err)
	}
	if class == ClassPIN {
		t.markDown(StatePINRejected, err)
		return fmt.Errorf("token %q: %w: %w", t.label, ErrPINRejected, err)
	}
	t.m.startRecovery(t, class, err)
	return unavailable("token %q: %w", t.label, err)
}

// getSession takes an idle session of the current generation or opens one (always, if fresh).
func (t *Token) getSession(fresh bool) (pkcs11.SessionHandle, uint64, error) {
	t.mu.Lock()
	if t.state != StateOnline {
		s, serr := t.state, t.stateErr
		t.mu.Unlock()
		if s == StateClosed {
			return 0, 0, ErrClosed
		}
		return 0, 0, unavailable("token %q is %s: %v", t.label, s, serr)
	}
	gen, slot := t.gen, t.slot
	if n := len(t.idle); n > 0 && !fresh {
		sh := t.idle[n-1]
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		return sh, gen, nil
	}
	t.mu.Unlock()
	sh, err := t.m.p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return 0, 0, fmt.Errorf("open session: %w", err)
	}
	return sh, gen, nil
}

// putSession returns a session to the pool, or closes it if the token moved on.
func (t *Token) putSession(sh pkcs11.SessionHandle, gen uint64) {
	t.mu.Lock()
	if t.gen == gen && t.state == StateOnline {
		t.idle = append(t.idle, sh)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	if gen == t.m.gen.Load() {
		_ = t.m.p.CloseSession(sh)
	}
}

// dropSession closes a session that failed (best effort).
func (t *Token) dropSession(sh pkcs11.SessionHandle, gen uint64) {
	if gen == t.m.gen.Load() {
		_ = t.m.p.CloseSession(sh)
	}
}

// admin runs f with the longer deadline of key generation and searches, no retry.
func (t *Token) admin(f opFunc) ([]byte, error) {
	return t.do(context.Background(), max(t.opTimeout, minAdminTimeout), false, f)
}

// ambiguousFailure reports, for CKR_GENERAL_ERROR and CKR_FUNCTION_FAILED (which some modules
// return for bad input as well as for real failures), whether the token still does its job:
// then the failure was the request's. A cheap probe proves nothing (tpm2-pkcs11 answers
// C_GetTokenInfo from memory while its TPM is gone), so the question is decided with an
// operation whose answer is known: a signature over a random digest with the first key handed
// out, on a fresh session, verified with the key's public key. A token without such a key has no
// known answer to give, and the error is the token's.
func (t *Token) ambiguousFailure(err error) bool {
	rv, _ := ckr(err)
	if rv != pkcs11.CKR_GENERAL_ERROR && rv != pkcs11.CKR_FUNCTION_FAILED {
		return false
	}
	t.mu.Lock()
	slot, gen := t.slot, t.gen
	var k *keyEntry
	if len(t.keys) > 0 {
		k = t.keys[0]
	}
	t.mu.Unlock()
	if k == nil {
		return false
	}
	h, herr := k.handleFor(gen)
	if herr != nil {
		return false
	}
	sh, oerr := t.m.p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if oerr != nil {
		return false
	}
	defer func() { _ = t.m.p.CloseSession(sh) }()
	if k.attrs.AlwaysAuthenticate {
		k.useMu.Lock()
		defer k.useMu.Unlock()
	}
	return selfTest(t.m.p, sh, h, k.pub, k.auth()) == nil
}

// keepAlive probes the token every interval while it is online, until Close.
func (t *Token) keepAlive(interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
		}
		if t.State() != StateOnline {
			continue // recovery, not the probe, deals with it
		}
		err := t.probe(context.Background())
		t.mu.Lock()
		t.lastProbe, t.lastProbeErr = time.Now(), err
		t.mu.Unlock()
		if err != nil {
			t.log.Warn("keep-alive probe failed", "token_label", t.label, "err", err)
			if !errors.Is(err, ErrTokenUnavailable) && !errors.Is(err, ErrBusy) && !errors.Is(err, ErrClosed) {
				// The token answered, but not with a signature that verifies (or with an
				// error the call did not classify as the token's): a token that signs wrong
				// is not online. Recovery re-finds and self-tests every key.
				t.m.startRecovery(t, ClassToken, err)
			}
		}
	}
}

// probe signs a random digest with the first key handed out and verifies the signature, or
// reads the token information when no key was handed out yet.
func (t *Token) probe(ctx context.Context) error {
	t.mu.Lock()
	var k *keyEntry
	if len(t.keys) > 0 {
		k = t.keys[0]
	}
	t.mu.Unlock()
	_, err := t.do(ctx, t.opTimeout, false, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) ([]byte, error) {
		if k == nil {
			_, err := p.GetSessionInfo(sh)
			return nil, err
		}
		h, err := k.handleFor(gen)
		if err != nil {
			return nil, err
		}
		if k.attrs.AlwaysAuthenticate {
			k.useMu.Lock()
			defer k.useMu.Unlock()
		}
		return nil, selfTest(p, sh, h, k.pub, k.auth())
	})
	return err
}

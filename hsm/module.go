package hsm

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/pkcs11"
)

// module is one loaded PKCS#11 library, shared by every Token of the process that uses it:
// PKCS#11 allows one C_Initialize per library and process, and C_Finalize ends every session of
// every token of the library at once.
//
// Locks, always taken in this order: modulesMu (the registry), then m.mu (initialise,
// finalise, attaching tokens, m.logins), then the gate (every other call into the module holds
// it for reading; finalise holds it for writing, so a finalise never runs under a call).
type module struct {
	path string
	p    *pkcs11.Ctx
	log  *slog.Logger

	mu          chan struct{} // a mutex that can be waited for with a deadline
	initialized bool          // guarded by mu
	gen         atomic.Uint64 // incremented at every C_Initialize: handles of an older gen are void
	logins      map[string]*login

	gate  gate
	calls chan struct{} // bounds the PKCS#11 calls in flight over all tokens of the module

	// guarded by modulesMu
	refs   int
	tokens map[*Token]struct{}

	done       chan struct{} // closed when the last Token of the module closes
	recovering atomic.Bool
	retryMin   time.Duration
	retryMax   time.Duration
}

// login records, per token, the PIN (as SHA-256) that the token accepted and how many open
// Tokens rely on that login. PKCS#11 login state belongs to the application, not the session:
// while one Token is logged in, C_Login answers CKR_USER_ALREADY_LOGGED_IN without looking at
// the PIN (SoftHSM2 does). So a second Open of the same token compares its PIN with the
// accepted one instead.
type login struct {
	pin  [32]byte
	refs int
}

var (
	modulesMu sync.Mutex
	modules   = map[string]*module{}
)

// acquireModule returns the module for path, loading it if no Token uses it yet.
func acquireModule(path string, cfg *Config, log *slog.Logger) (*module, error) {
	modulesMu.Lock()
	defer modulesMu.Unlock()
	if m := modules[path]; m != nil {
		m.refs++
		return m, nil
	}
	p := pkcs11.New(path)
	if p == nil {
		return nil, fmt.Errorf("load pkcs#11 module %s: cannot load the library or it has no C_GetFunctionList", path)
	}
	m := &module{
		path:     path,
		p:        p,
		log:      log,
		mu:       make(chan struct{}, 1),
		logins:   map[string]*login{},
		calls:    make(chan struct{}, cfg.maxCalls(path)),
		refs:     1,
		tokens:   map[*Token]struct{}{},
		done:     make(chan struct{}),
		retryMin: cfg.retryMin(),
		retryMax: cfg.retryMax(),
	}
	modules[path] = m
	return m, nil
}

// release drops a reference; the last one finalises and unloads the module, waiting at most
// wait for calls in flight. If calls are still stuck in the module then, the module is left
// loaded and initialised (finalising under a call is undefined behaviour) and an error says so.
func (m *module) release(wait time.Duration) error {
	modulesMu.Lock()
	defer modulesMu.Unlock()
	if m.refs--; m.refs > 0 {
		return nil
	}
	delete(modules, m.path)
	close(m.done)
	timeout := time.After(wait)
	if !m.lockUntil(timeout) {
		return fmt.Errorf("pkcs#11 module %s: a call is still in progress after %v; module left loaded", m.path, wait)
	}
	defer m.unlock()
	if !m.gate.lock(timeout) {
		return fmt.Errorf("pkcs#11 module %s: a call is still in progress after %v; module left loaded", m.path, wait)
	}
	defer m.gate.unlock()
	if m.initialized {
		_ = m.p.Finalize()
		m.initialized = false
	}
	m.p.Destroy()
	return nil
}

func (m *module) lock() { m.mu <- struct{}{} }

// lockUntil takes m.mu unless stop fires first.
func (m *module) lockUntil(stop <-chan time.Time) bool {
	select {
	case m.mu <- struct{}{}:
		return true
	case <-stop:
		return false
	}
}

func (m *module) unlock() { <-m.mu }

// ensureInit initialises the module if it is not. The caller holds m.mu.
func (m *module) ensureInit() error {
	if m.initialized {
		return nil
	}
	if err := m.p.Initialize(); err != nil {
		if rv, _ := ckr(err); rv != pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
			return fmt.Errorf("initialise pkcs#11 module %s: %w", m.path, err)
		}
		// Someone else in the process initialised it (a module left loaded after a stuck
		// call, or a library outside this package). Its state is shared; go on.
	}
	m.initialized = true
	m.gen.Add(1)
	return nil
}

// reinit finalises and initialises the module again. The caller holds m.mu and the gate for
// writing.
func (m *module) reinit() error {
	if m.initialized {
		_ = m.p.Finalize() // a dead module may fail this; initialising again is what counts
		m.initialized = false
		m.gen.Add(1)
	}
	return m.ensureInit()
}

// Reinitialize finalises and initialises again the module at path, if a Token of this process
// has it loaded, and re-attaches every Token of it (login with the PIN it accepted, keys found
// again and self-tested), so that objects and tokens another process added since are seen:
// tpm2-pkcs11, for one, reads its store only at C_Initialize. It waits, at most wait, for the
// module's calls in flight to return; calls made meanwhile wait for the re-initialisation
// (within their own deadline) instead of failing. A Token that cannot be re-attached goes
// through recovery. A module no Token has loaded needs nothing: the next Open initialises it.
func Reinitialize(path string, wait time.Duration) error {
	resolved, err := resolveModule(path)
	if err != nil {
		return err
	}
	modulesMu.Lock()
	m := modules[resolved]
	if m != nil {
		m.refs++
	}
	modulesMu.Unlock()
	if m == nil {
		return nil
	}
	defer func() { _ = m.release(wait) }()
	timeout := time.After(wait)
	if !m.lockUntil(timeout) {
		return fmt.Errorf("re-initialise pkcs#11 module %s: module busy after %v", m.path, wait)
	}
	defer m.unlock()
	if !m.initialized {
		return nil
	}
	if !m.gate.lock(timeout) {
		return fmt.Errorf("re-initialise pkcs#11 module %s: a call is still in progress after %v", m.path, wait)
	}
	type failed struct {
		t   *Token
		err error
	}
	var down []failed
	err = m.reinit()
	toks := m.snapshot()
	if err == nil {
		for _, t := range toks {
			switch t.rawState() {
			case StateClosed, StatePINRejected, StatePINLocked:
				continue
			}
			if aerr := t.attach(); aerr != nil {
				down = append(down, failed{t, aerr})
			}
		}
	}
	m.gate.unlock()
	if err != nil {
		for _, t := range toks {
			down = append(down, failed{t, err})
		}
	}
	for _, f := range down {
		if needs := f.t.needsRecovery(); needs {
			m.startRecovery(f.t, ClassToken, f.err)
		}
	}
	m.log.Info("pkcs#11 module re-initialised", "module", m.path, "tokens", len(toks), "not_reattached", len(down))
	if err != nil {
		return fmt.Errorf("re-initialise pkcs#11 module %s: %w", m.path, err)
	}
	return nil
}

// snapshot returns the module's open Tokens.
func (m *module) snapshot() []*Token {
	modulesMu.Lock()
	defer modulesMu.Unlock()
	ts := make([]*Token, 0, len(m.tokens))
	for t := range m.tokens {
		ts = append(ts, t)
	}
	return ts
}

// startRecovery marks the affected tokens as recovering and starts the module's recovery loop if
// it is not running. For ClassModule errors every token of the module is affected; otherwise only
// t.
func (m *module) startRecovery(t *Token, class Class, cause error) {
	affected := []*Token{t}
	if class == ClassModule {
		affected = m.snapshot()
	}
	for _, x := range affected {
		x.markDown(StateRecovering, cause)
	}
	if !m.recovering.CompareAndSwap(false, true) {
		return
	}
	m.log.Warn("pkcs#11 error; recovering", "module", m.path, "class", class.String(), "err", cause)
	go m.recoverLoop()
}

// recoverLoop re-attaches every token that is not online, re-initialising the module first when
// no token of it is online, with exponential backoff between attempts, until every token is
// online (or needs a person: pin problems) or the module is released.
func (m *module) recoverLoop() {
	backoff := m.retryMin
	for {
		done := m.recoverOnce()
		if done {
			m.recovering.Store(false)
			// A token may have gone down between the last check and the Store.
			for _, t := range m.snapshot() {
				if t.needsRecovery() && m.recovering.CompareAndSwap(false, true) {
					done = false
					break
				}
			}
			if done {
				return
			}
		}
		select {
		case <-m.done:
			m.recovering.Store(false)
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, m.retryMax)
	}
}

// recoverOnce makes one recovery attempt and reports whether nothing is left to do.
func (m *module) recoverOnce() bool {
	select {
	case <-m.done:
		return true
	default:
	}
	if !m.lockUntil(nil) {
		return false
	}
	defer m.unlock()
	toks := m.snapshot()
	var down []*Token
	anyOnline := false
	for _, t := range toks {
		switch {
		case t.needsRecovery():
			down = append(down, t)
		case t.State() == StateOnline:
			anyOnline = true
		}
	}
	if len(down) == 0 {
		return true
	}
	if !anyOnline {
		// Wait for calls in flight (they return errors by now, or they hang: then so do we, and
		// the tokens report "hung"); new calls fail fast because no token is online.
		if !m.gate.lockChan(m.done) {
			return true
		}
		err := m.reinit()
		m.gate.unlock()
		if err != nil {
			m.log.Warn("pkcs#11 module re-initialisation failed", "module", m.path, "err", err)
			for _, t := range down {
				t.markDown(StateOffline, err)
			}
			return false
		}
	}
	ok := true
	for _, t := range down {
		if err := t.attach(); err != nil {
			ok = false
			t.log.Warn("token still unavailable", "token_label", t.sel.String(), "err", err)
		} else {
			t.recoveries.Add(1)
			t.log.Info("token recovered", "token_label", t.label, "serial", t.serial)
		}
	}
	return ok
}

// gate counts the calls in flight in a module and lets a writer (finalise) wait until there are
// none, refusing new calls meanwhile. Unlike sync.RWMutex, a refused caller does not queue: it
// fails at once, so a hung call cannot make every later caller hang behind a waiting writer.
type gate struct {
	mu       sync.Mutex
	inflight int
	writers  int
	drained  chan struct{} // closed when inflight reaches 0 while writers wait
	free     chan struct{} // closed when writers reaches 0 while a caller waits (enterWait)
}

// enter admits a call unless a writer holds or waits for the gate.
func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.writers > 0 {
		return false
	}
	g.inflight++
	return true
}

// enterWait admits a call, waiting while a writer holds or waits for the gate, until stop is
// closed (then false).
func (g *gate) enterWait(stop <-chan struct{}) bool {
	for {
		g.mu.Lock()
		if g.writers == 0 {
			g.inflight++
			g.mu.Unlock()
			return true
		}
		if g.free == nil {
			g.free = make(chan struct{})
		}
		free := g.free
		g.mu.Unlock()
		select {
		case <-free:
		case <-stop:
			return false
		}
	}
}

func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inflight--
	if g.inflight == 0 && g.drained != nil {
		close(g.drained)
		g.drained = nil
	}
}

// lock waits until no call is in flight, refusing new ones, unless timeout fires first; then it
// gives up (refusing nothing any more) and returns false.
func (g *gate) lock(timeout <-chan time.Time) bool {
	return g.wait(func(drained <-chan struct{}) bool {
		select {
		case <-drained:
			return true
		case <-timeout:
			return false
		}
	})
}

// lockChan is lock with a channel that is closed to give up.
func (g *gate) lockChan(stop <-chan struct{}) bool {
	return g.wait(func(drained <-chan struct{}) bool {
		select {
		case <-drained:
			return true
		case <-stop:
			return false
		}
	})
}

func (g *gate) wait(sel func(<-chan struct{}) bool) bool {
	g.mu.Lock()
	g.writers++
	if g.inflight == 0 {
		g.mu.Unlock()
		return true
	}
	if g.drained == nil {
		g.drained = make(chan struct{})
	}
	drained := g.drained
	g.mu.Unlock()
	if sel(drained) {
		return true
	}
	g.unlock()
	return false
}

func (g *gate) unlock() {
	g.mu.Lock()
	g.writers--
	if g.writers == 0 && g.free != nil {
		close(g.free)
		g.free = nil
	}
	g.mu.Unlock()
}

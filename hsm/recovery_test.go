package hsm_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm"
	"github.com/wssignd/wssignd/hsm/hsmtest"
)

// p11KitToken builds a SoftHSM2 token with hsmtest's keys, closes it in this process and serves
// it through p11-kit server; it returns the server and the token opened through the client.
func p11KitToken(t *testing.T, tune func(*hsm.Config)) (*hsmtest.P11Kit, *hsm.Token, *hsmtest.Env) {
	t.Helper()
	env := hsmtest.New(t)
	if err := env.Token.Close(); err != nil {
		t.Fatal(err)
	}
	srv := hsmtest.StartP11Kit(t, env.Soft)
	cfg := srv.Config()
	cfg.OpTimeout = 2 * time.Second
	cfg.RetryMin = 10 * time.Millisecond
	cfg.RetryMax = 100 * time.Millisecond
	if tune != nil {
		tune(&cfg)
	}
	tok, err := hsm.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tok.Close() })
	return srv, tok, env
}

func verify(pub crypto.PublicKey, digest, sig []byte) bool {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(p, crypto.SHA256, digest, sig) == nil
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(p, digest, sig)
	}
	return false
}

// load signs with every signer in a loop from workers goroutines until stop is closed, checking
// every signature and every error.
type load struct {
	ok, unavailable atomic.Int64
	mu              sync.Mutex
	bad             []string // wrong signatures, unexpected errors, calls past their bound
	wg              sync.WaitGroup
	stop            chan struct{}
	progress        chan struct{} // one token per outcome, never blocks
}

func startLoad(t *testing.T, keys []*hsm.Key, workers int, deadline time.Duration) *load {
	l := &load{stop: make(chan struct{}), progress: make(chan struct{}, 1)}
	for w := range workers {
		k := keys[w%len(keys)]
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				d := sha256.Sum256([]byte(strconv.Itoa(w) + "/" + strconv.Itoa(i)))
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				done := make(chan struct{})
				var sig []byte
				var err error
				go func() {
					defer close(done)
					sig, err = k.SignContext(ctx, rand.Reader, d[:], crypto.SHA256)
				}()
				select {
				case <-done:
				case <-time.After(deadline + 10*time.Second):
					l.fail("a sign call did not return within 10s after its deadline")
					<-done
				}
				cancel()
				switch {
				case err == nil && verify(k.Signer.Public(), d[:], sig):
					l.ok.Add(1)
				case err == nil:
					l.fail("a signature does not verify with the key's certificate")
				case errors.Is(err, hsm.ErrTokenUnavailable) || errors.Is(err, hsm.ErrBusy):
					l.unavailable.Add(1)
				default:
					l.fail("unexpected error: " + err.Error())
				}
				select {
				case l.progress <- struct{}{}:
				default:
				}
			}
		}()
	}
	t.Cleanup(l.halt)
	return l
}

func (l *load) fail(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bad) < 20 {
		l.bad = append(l.bad, msg)
	}
}

func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// waitFor waits, at most limit, until cond holds, checking after every load outcome (and every
// 20 ms when the load is quiet).
func waitFor(t *testing.T, l *load, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(limit)
	for !cond() {
		select {
		case <-l.progress:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s: not within %v (ok=%d unavailable=%d)", what, limit, l.ok.Load(), l.unavailable.Load())
		}
	}
}

// TestRecoveryAfterServerKill: under a steady signing load, the p11-kit server (the "HSM") is
// killed and restarted. During the outage calls fail with ErrTokenUnavailable, none hangs past
// its bound, no signature is wrong; after the restart the same signers sign again without the
// caller reopening anything.
func TestRecoveryAfterServerKill(t *testing.T) {
	srv, tok, _ := p11KitToken(t, nil)
	rsaKey, err := tok.FindKey(hsmtest.RSARef)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := tok.FindKey(hsmtest.ECRef)
	if err != nil {
		t.Fatal(err)
	}
	l := startLoad(t, []*hsm.Key{rsaKey, ecKey}, 4, time.Second)
	waitFor(t, l, 30*time.Second, "signing before the outage", func() bool { return l.ok.Load() >= 20 })

	srv.Kill()
	waitFor(t, l, 30*time.Second, "ErrTokenUnavailable during the outage", func() bool { return l.unavailable.Load() >= 20 })
	if s := tok.State(); s != hsm.StateRecovering && s != hsm.StateOffline {
		t.Errorf("state during the outage = %s, want recovering or offline", s)
	}
	okBefore := l.ok.Load()

	srv.Start()
	waitFor(t, l, 30*time.Second, "signing after the restart", func() bool { return l.ok.Load() >= okBefore+20 })
	l.halt()
	for _, b := range l.bad {
		t.Error(b)
	}
	st := tok.Status()
	if st.State != hsm.StateOnline || st.Recoveries < 1 {
		t.Errorf("status after the restart = %+v, want online with a recovery", st)
	}
	t.Logf("signatures %d, unavailable %d, recoveries %d", l.ok.Load(), l.unavailable.Load(), st.Recoveries)
}

// threads returns the process's OS thread count.
func threads(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Fatal("no Threads: line in /proc/self/status")
	return 0
}

// TestHungHSM: the server is stopped (SIGSTOP). 200 concurrent calls all return within their
// bound with ErrTokenUnavailable or ErrBusy, the state answers at once and says hung, and the
// calls stuck in the module are bounded (by the session pool), so threads do not pile up.
// After SIGCONT the token is online again.
func TestHungHSM(t *testing.T) {
	const maxSessions = 4
	srv, tok, _ := p11KitToken(t, func(c *hsm.Config) { c.MaxSessions = maxSessions })
	key, err := tok.FindKey(hsmtest.ECRef)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("warm up"))
	if _, err := key.Signer.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	before := threads(t)

	srv.Stop()
	const n = 200
	deadline := 300 * time.Millisecond
	var wg sync.WaitGroup
	var unavailable, busy, other atomic.Int64
	var stuck atomic.Int64
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				d := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
				_, err := key.SignContext(ctx, rand.Reader, d[:], crypto.SHA256)
				done <- err
			}()
			select {
			case err := <-done:
				switch {
				case errors.Is(err, hsm.ErrBusy):
					busy.Add(1)
				case errors.Is(err, hsm.ErrTokenUnavailable):
					unavailable.Add(1)
				default:
					other.Add(1)
					t.Errorf("call %d while hung: %v", i, err)
				}
			case <-time.After(deadline + 10*time.Second):
				stuck.Add(1)
			}
		}()
	}
	wg.Wait()
	if stuck.Load() > 0 {
		t.Errorf("%d of %d calls did not return within 10s after their deadline", stuck.Load(), n)
	}
	stateDone := make(chan hsm.Status, 1)
	go func() { stateDone <- tok.Status() }()
	select {
	case st := <-stateDone:
		if st.State != hsm.StateHung || st.Overdue < 1 || st.Overdue > maxSessions-1 {
			t.Errorf("status while hung = %+v, want hung with 1..%d overdue calls", st, maxSessions-1)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Status did not answer while the token hangs")
	}
	if grown := threads(t) - before; grown > 2*maxSessions+8 {
		t.Errorf("threads grew by %d while hung (pool of %d sessions)", grown, maxSessions-1)
	}
	t.Logf("hung: %d unavailable, %d busy; threads %d -> %d", unavailable.Load(), busy.Load(), before, threads(t))

	srv.Cont()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for tok.State() != hsm.StateOnline {
		select {
		case <-ctx.Done():
			t.Fatalf("state after SIGCONT = %s, want online", tok.State())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if _, err := key.SignContext(ctx, rand.Reader, d[:], crypto.SHA256); err != nil {
		t.Errorf("sign after SIGCONT: %v", err)
	}
}

// TestKeepAliveDetectsOutage: with Config.KeepAlive and no caller at all, the token notices that
// the HSM went away (state leaves online) and comes back by itself once it returns.
func TestKeepAliveDetectsOutage(t *testing.T) {
	srv, tok, _ := p11KitToken(t, func(c *hsm.Config) { c.KeepAlive = 20 * time.Millisecond })
	if _, err := tok.FindKey(hsmtest.ECRef); err != nil {
		t.Fatal(err)
	}
	waitState := func(what string, cond func(hsm.Status) bool) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for !cond(tok.Status()) {
			select {
			case <-deadline:
				t.Fatalf("%s: not within 30s: %+v", what, tok.Status())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	waitState("a passing probe", func(s hsm.Status) bool { return !s.LastProbe.IsZero() && s.LastProbeErr == "" })
	srv.Kill()
	waitState("outage noticed without callers", func(s hsm.Status) bool { return s.State != hsm.StateOnline })
	srv.Start()
	waitState("back online", func(s hsm.Status) bool { return s.State == hsm.StateOnline && s.Recoveries >= 1 })
}

// Package daemon is the wssignd daemon as a library: it opens the tokens of a
// configuration and supervises them (retry with backoff until they open, hsm
// recovers them from then on), translates the configuration into the api and
// wss objects that serve requests, and swaps in a new configuration beside
// the old one on Reload. The command wssignd only parses flags, listens,
// talks to systemd and handles signals.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/user"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/hsm"
	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/wss"
)

// The interfaces the daemon's types promise.
var (
	_ api.KeyStore = (*keyStore)(nil)
	_ http.Handler = (*dispatcher)(nil)
)

// ErrConfig is returned by New and Reload when the configuration cannot be
// served as written (a profile, key or access list that does not resolve).
var ErrConfig = errors.New("configuration error")

// seams are what a Daemon takes from its environment; Options replace them.
type seams struct {
	getenv      func(string) string
	lookupUser  func(string) (*user.User, error)
	lookupGroup func(string) (*user.Group, error)
	// Backoff of the retries of a token that could not be opened at start; a locked token
	// (hsm.ErrPINLocked) is looked at again only every pinLockedRetry (or at a Reload, which
	// opens the tokens of the new configuration).
	openRetryMin, openRetryMax time.Duration
	pinLockedRetry             time.Duration
	// tokenRetryMax, when positive, caps the backoff between recovery attempts of every
	// token (hsm.Config.RetryMax).
	tokenRetryMax time.Duration
}

func defaultSeams() *seams {
	return &seams{
		getenv:         os.Getenv,
		lookupUser:     user.Lookup,
		lookupGroup:    user.LookupGroup,
		openRetryMin:   time.Second,
		openRetryMax:   30 * time.Second,
		pinLockedRetry: hsm.DefaultPINLockedRetry,
	}
}

// An Option changes what a Daemon takes from its environment.
type Option func(*seams)

// WithGetenv reads environment variables (CREDENTIALS_DIRECTORY) with getenv
// instead of os.Getenv.
func WithGetenv(getenv func(string) string) Option { return func(s *seams) { s.getenv = getenv } }

// WithUserLookup resolves the user and group names of allow_*, raw_sign_* and
// admin_* lists with these instead of os/user.
func WithUserLookup(lookupUser func(string) (*user.User, error), lookupGroup func(string) (*user.Group, error)) Option {
	return func(s *seams) { s.lookupUser, s.lookupGroup = lookupUser, lookupGroup }
}

// WithOpenRetry sets the backoff (from first, doubling up to ceiling) of the
// retries of a token that could not be opened at start.
func WithOpenRetry(first, ceiling time.Duration) Option {
	return func(s *seams) { s.openRetryMin, s.openRetryMax = first, ceiling }
}

// WithTokenRetryMax caps the backoff between recovery attempts of every token
// (hsm.Config.RetryMax).
func WithTokenRetryMax(d time.Duration) Option { return func(s *seams) { s.tokenRetryMax = d } }

// Daemon serves one configuration at a time and swaps in a new one on Reload.
type Daemon struct {
	log   *slog.Logger
	seams *seams
	l     *lasting
	d     dispatcher
	mu    sync.Mutex // serialises Reload and Close
}

// New opens the tokens of cfg (a token that is not there yet is retried in
// the background) and builds its handler. A token that rejects its PIN
// fails with ErrPINRejected, a configuration that cannot be served with
// ErrConfig.
func New(cfg *config.Config, log *slog.Logger, opts ...Option) (*Daemon, error) {
	s := defaultSeams()
	for _, o := range opts {
		o(s)
	}
	dm := &Daemon{log: log, seams: s, l: newLasting()}
	g, err := build(s, cfg, log, dm.l)
	if err != nil {
		return nil, err
	}
	dm.l.metrics.SetKeyStore(g.ks)
	dm.d.cur.Store(g)
	dm.l.metrics.Registry().MustRegister(tokenStats{current: func() *keyStore { return dm.d.cur.Load().ks }})
	return dm, nil
}

// Handler serves the API with the current configuration.
func (dm *Daemon) Handler() http.Handler { return &dm.d }

// Config is the configuration being served.
func (dm *Daemon) Config() *config.Config { return dm.d.cur.Load().cfg }

// Ready reports every token's state (online, offline, recovering, hung,
// pin-rejected, pin-locked, error) and an error naming the tokens that are
// not online. It never calls into a PKCS#11 module.
func (dm *Daemon) Ready(ctx context.Context) (map[string]string, error) {
	return dm.d.cur.Load().ks.Ready(ctx)
}

// Reload opens the tokens of cfg and builds its handler beside the current
// one, then swaps it in; the old configuration's tokens close once its
// requests in flight have finished. On error the current configuration
// keeps serving. The metrics, the replay caches and the in-flight limits
// outlive the swap.
func (dm *Daemon) Reload(cfg *config.Config) error {
	dm.mu.Lock()
	defer dm.mu.Unlock()
	g, err := build(dm.seams, cfg, dm.log, dm.l)
	if err != nil {
		return err
	}
	old := dm.d.cur.Swap(g)
	dm.l.metrics.SetKeyStore(g.ks)
	go old.retire()
	return nil
}

// Close waits for the requests in flight and closes the tokens.
func (dm *Daemon) Close() {
	dm.mu.Lock()
	defer dm.mu.Unlock()
	dm.d.cur.Load().retire()
}

// generation is one loaded configuration with its open tokens and API
// handler. Requests hold its gate for reading; retiring it takes the gate
// for writing, so tokens close only when no request of it is in flight.
type generation struct {
	cfg     *config.Config
	ks      *keyStore
	handler *api.Server
	gate    sync.RWMutex
	retired bool
}

// lasting is what outlives configuration generations: the metrics, and
// the verify profiles' replay caches (a reload must not forget which
// messages were seen).
type lasting struct {
	metrics *api.Metrics
	replays *replayCaches
	limiter *api.Limiter // requests and body bytes in flight, per peer and in total
}

func newLasting() *lasting {
	return &lasting{metrics: api.NewMetrics(), replays: newReplayCaches(), limiter: api.NewLimiter()}
}

// build opens the tokens of c and makes its API handler.
func build(s *seams, c *config.Config, log *slog.Logger, l *lasting) (*generation, error) {
	ks, err := openKeyStore(s, c, log)
	if err != nil {
		return nil, err
	}
	g, err := buildHandler(s, c, ks, log, l)
	if err != nil {
		ks.Close()
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return g, nil
}

func buildHandler(s *seams, c *config.Config, ks *keyStore, log *slog.Logger, l *lasting) (*generation, error) {
	profiles, err := buildProfiles(s, c, ks)
	if err != nil {
		return nil, err
	}
	vprofiles, err := buildVerifyProfiles(s, c, l.replays)
	if err != nil {
		return nil, err
	}
	eprofiles, dprofiles, err := buildCryptProfiles(s, c, ks)
	if err != nil {
		return nil, err
	}
	rawKeys, err := buildRawKeys(s, c)
	if err != nil {
		return nil, err
	}
	admin, err := adminAccess(s, c)
	if err != nil {
		return nil, err
	}
	h := api.New(api.Config{
		Keys:                 ks,
		Profiles:             profiles,
		VerifyProfiles:       vprofiles,
		EncryptProfiles:      eprofiles,
		DecryptProfiles:      dprofiles,
		RawKeys:              rawKeys,
		MaxBodyBytes:         c.Limits.MaxBodyBytes,
		Limits:               wssLimits(c.Limits),
		RequestTimeout:       c.Limits.RequestTimeout.Duration,
		MaxConcurrent:        c.Limits.MaxConcurrent,
		MaxConcurrentPerPeer: c.Limits.MaxConcurrentPerPeer,
		MaxInFlightBodyBytes: c.Limits.MaxInFlightBodyBytes,
		BodyIdleTimeout:      c.Limits.BodyIdleTimeout.Duration,
		Limiter:              l.limiter,
		Admin:                admin,
		Log:                  log,
		Audit:                AuditLogger(log),
		Metrics:              l.metrics,
	})
	return &generation{cfg: c, ks: ks, handler: h}, nil
}

// adminAccess resolves admin_users and admin_groups; without either, the
// administrators are root and the daemon's own user and group.
func adminAccess(s *seams, c *config.Config) (api.Access, error) {
	if len(c.AdminUsers) == 0 && len(c.AdminGroups) == 0 {
		return api.Access{}, nil // api.Config's default
	}
	a, err := s.resolveAccess(c.AdminUsers, c.AdminGroups)
	if err != nil {
		return a, fmt.Errorf("admin: %v", err)
	}
	return a, nil
}

// AuditLogger writes through log's handler but ignores its level: audit
// events of private-key use are never dropped by a quieter log level.
func AuditLogger(log *slog.Logger) *slog.Logger {
	return slog.New(alwaysEnabled{log.Handler()})
}

type alwaysEnabled struct{ slog.Handler }

func (alwaysEnabled) Enabled(context.Context, slog.Level) bool { return true }

func (h alwaysEnabled) WithAttrs(as []slog.Attr) slog.Handler {
	return alwaysEnabled{h.Handler.WithAttrs(as)}
}

func (h alwaysEnabled) WithGroup(name string) slog.Handler {
	return alwaysEnabled{h.Handler.WithGroup(name)}
}

// retire waits for the generation's requests in flight, then closes its tokens.
func (g *generation) retire() {
	g.gate.Lock()
	g.retired = true
	g.gate.Unlock()
	g.ks.Close()
}

// dispatcher sends each request to the current generation.
type dispatcher struct{ cur atomic.Pointer[generation] }

func (d *dispatcher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for {
		g := d.cur.Load()
		g.gate.RLock()
		if g.retired { // swapped out while we waited: take the new one
			g.gate.RUnlock()
			continue
		}
		g.handler.ServeHTTP(w, r)
		g.gate.RUnlock()
		return
	}
}

// wssLimits translates the [limits] table into the XML engine's limits (a
// 0 takes the engine's default).
func wssLimits(l config.Limits) wss.Limits {
	return wss.Limits{
		MaxBytes: l.MaxBodyBytes, MaxDepth: l.MaxDepth, MaxElements: l.MaxElements,
		MaxAttributes: l.MaxAttributes, MaxNamespacesInScope: l.MaxNamespacesInScope, MaxNamespaceDecls: l.MaxNamespaceDecls,
		MaxNameBytes: l.MaxNameBytes, MaxTextBytes: l.MaxTextBytes, MaxAttrValueBytes: l.MaxAttrValueBytes,
	}
}

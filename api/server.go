// Package api serves the wssignd HTTP API (v1) on a Unix socket.
//
// Handlers return errors; one function turns every error into an RFC 9457
// problem+json response. Callers are identified by the kernel (SO_PEERCRED),
// never by anything they send, and authorised per profile. Every
// private-key use writes one audit event.
package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wssignd/wssignd/internal/defs"
	"github.com/wssignd/wssignd/wss"
)

// ErrTokenUnavailable is wrapped by KeyStore errors when a key's token is
// offline, hung or locked; requests get 503 token-unavailable.
var ErrTokenUnavailable = errors.New("token unavailable")

// KeyStore gives the API the keys it serves. The daemon implements it over
// the hsm package; tests may implement it over in-memory keys.
type KeyStore interface {
	// Credential returns the named key's signer and certificate chain.
	Credential(ctx context.Context, key string) (wss.Credential, error)
	// Ready reports each token's state ("online", "offline", ...) and an
	// error when any configured token is not online.
	Ready(ctx context.Context) (map[string]string, error)
}

// Access says who may use a profile.
type Access struct {
	Anyone bool     // every client that can reach the socket
	UIDs   []uint32 // allowed users
	GIDs   []uint32 // allowed groups (primary or supplementary)
}

// Allows reports whether p may use what a is attached to.
func (a Access) Allows(p Peer) bool {
	if a.Anyone {
		return true
	}
	if !p.Known {
		return false
	}
	if slices.Contains(a.UIDs, p.UID) || slices.Contains(a.GIDs, p.GID) {
		return true
	}
	for _, g := range p.Groups {
		if slices.Contains(a.GIDs, g) {
			return true
		}
	}
	return false
}

// Profile is a named signing policy bound to a key.
type Profile struct {
	Key    string          // key name in the KeyStore
	Sign   wss.SignOptions // Limits, Now and Rand are set by the server
	Access Access
	// Encrypt names an encrypt profile applied after signing
	// (sign-then-encrypt) or, with EncryptBeforeSign, before it.
	Encrypt           string
	EncryptBeforeSign bool
}

// Config configures the handler. Its fields are the reference.
type Config struct {
	Keys     KeyStore
	Profiles map[string]*Profile
	// VerifyProfiles, EncryptProfiles and DecryptProfiles serve
	// /v1/soap/verify, /encrypt and /decrypt.
	VerifyProfiles  map[string]*VerifyProfile
	EncryptProfiles map[string]*EncryptProfile
	DecryptProfiles map[string]*DecryptProfile
	// MaxBodyBytes bounds request bodies (413 beyond).
	MaxBodyBytes int64
	// Limits bound envelopes before any cryptography.
	Limits wss.Limits
	// RequestTimeout bounds each request (504 beyond).
	RequestTimeout time.Duration
	// MaxConcurrent bounds requests doing work (signing, verifying, ...) at
	// once (503 overloaded beyond). A request takes its slot once its body
	// is read.
	MaxConcurrent int
	// MaxConcurrentPerPeer bounds the requests of one caller (uid) in
	// flight, body reading included (503 too-many-requests beyond), so that
	// one caller cannot take every slot. Default MaxConcurrent/4, at least 1.
	MaxConcurrentPerPeer int
	// MaxInFlightBodyBytes bounds the request-body bytes held at once (503
	// overloaded beyond): the announced length of each body in flight, or
	// MaxBodyBytes for one without. One caller may hold a quarter of it (at
	// least MaxBodyBytes; 503 too-many-requests beyond). Default 8 × MaxBodyBytes.
	MaxInFlightBodyBytes int64
	// BodyIdleTimeout is how long a request body may make no progress (408
	// body-timeout beyond). Default 5s.
	BodyIdleTimeout time.Duration
	// Limiter counts what MaxConcurrentPerPeer and MaxInFlightBodyBytes
	// bound; Servers that share one (the generations of a daemon) share
	// the counts. nil makes a private one.
	Limiter *Limiter
	// Log receives operational logs; nil discards them.
	Log *slog.Logger
	// Audit receives one event per private-key use and per refusal; nil
	// sends them to Log.
	Audit *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// RawKeys lists the keys open to POST /v1/keys/{name}/sign and who may
	// use each; a key not listed cannot be used for raw signing.
	RawKeys map[string]Access
	// Metrics records request and key metrics; nil makes a private set.
	Metrics *Metrics
	// Admin may read the daemon's details: every series of /metrics and
	// the token states of /readyz. Other callers get from /metrics only
	// the series labelled with a key they may use (by a sign, decrypt
	// profile or raw signing, as GET /v1/keys), and from /readyz only the
	// verdict. The zero value means root and this process's own user and
	// group.
	Admin Access
}

// Server is the API handler.
type Server struct {
	cfg          Config
	slots        chan struct{}
	mux          map[string]route
	prefixRoutes []prefixRoute
	// routeSeries are the metrics series of each route label, looked up
	// once.
	routeSeries map[string]*routeMetrics
}

// prefixRoute is a route with a path parameter.
type prefixRoute struct {
	method, pattern string
	match           func(path string) bool
	h               func(w http.ResponseWriter, r *http.Request) error
	rm              *routeMetrics
}

type route struct {
	method string
	h      func(w http.ResponseWriter, r *http.Request) error
	// body routes read a request body, then take a slot (takeSlot);
	// the others take it before the handler runs.
	body bool
	rm   *routeMetrics // the route's metrics series
}

// New returns the API handler for cfg.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Audit == nil {
		cfg.Audit = cfg.Log
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = defs.MaxConcurrent
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = defs.MaxBodyBytes
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = defs.RequestTimeout
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.MaxConcurrentPerPeer <= 0 {
		cfg.MaxConcurrentPerPeer = max(1, cfg.MaxConcurrent/4)
	}
	if cfg.MaxInFlightBodyBytes <= 0 {
		cfg.MaxInFlightBodyBytes = 8 * cfg.MaxBodyBytes
	}
	cfg.MaxInFlightBodyBytes = max(cfg.MaxInFlightBodyBytes, cfg.MaxBodyBytes)
	if cfg.BodyIdleTimeout <= 0 {
		cfg.BodyIdleTimeout = 5 * time.Second
	}
	if cfg.Limiter == nil {
		cfg.Limiter = NewLimiter()
	}
	if !cfg.Admin.Anyone && len(cfg.Admin.UIDs) == 0 && len(cfg.Admin.GIDs) == 0 {
		cfg.Admin = Access{UIDs: []uint32{0, uint32(os.Geteuid())}, GIDs: []uint32{uint32(os.Getegid())}}
	}
	s := &Server{cfg: cfg, slots: make(chan struct{}, cfg.MaxConcurrent)}
	s.mux = map[string]route{
		"/v1/soap/sign":    {method: http.MethodPost, h: s.handleSign, body: true},
		"/v1/soap/verify":  {method: http.MethodPost, h: s.handleVerify, body: true},
		"/v1/soap/encrypt": {method: http.MethodPost, h: s.handleEncrypt, body: true},
		"/v1/soap/decrypt": {method: http.MethodPost, h: s.handleDecrypt, body: true},
		"/v1/keys":         {method: http.MethodGet, h: s.handleKeys},
		"/healthz":         {method: http.MethodGet, h: s.handleHealth},
		"/readyz":          {method: http.MethodGet, h: s.handleReady},
		"/metrics":         {method: http.MethodGet, h: s.handleMetrics},
	}
	s.prefixRoutes = []prefixRoute{{
		method: http.MethodPost, pattern: rawSignPrefix + "{name}" + rawSignSuffix, h: s.handleRawSign,
		match: func(p string) bool { _, ok := rawSignKey(p); return ok },
	}}
	s.routeSeries = map[string]*routeMetrics{"other": cfg.Metrics.route("other")}
	for path, rt := range s.mux {
		rt.rm = cfg.Metrics.route(path)
		s.mux[path] = rt
		s.routeSeries[path] = rt.rm
	}
	for i, pr := range s.prefixRoutes {
		s.prefixRoutes[i].rm = cfg.Metrics.route(pr.pattern)
		s.routeSeries[pr.pattern] = s.prefixRoutes[i].rm
	}
	return s
}

var _ http.Handler = (*Server)(nil)

type requestIDKey struct{}

// ServeHTTP routes, applies the browser and concurrency guards, and writes
// every error through the one problem funnel. The routes under the request
// deadline are answered by it, by the handler or, when the handler's
// goroutine is held past it, by the watchdog (respWriter).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &respWriter{w: w, id: newRequestID(), start: time.Now()}
	id := rw.id
	rw.idHeader[0] = id
	w.Header()["Wssignd-Request-Id"] = rw.idHeader[:] // net/http only reads it
	s.cfg.Metrics.inFlight.Inc()
	defer func() {
		watchdogAnswered := rw.finish() // also after a panic: the watchdog must not write once ServeHTTP has returned
		s.cfg.Metrics.inFlight.Dec()
		if !watchdogAnswered {
			rm := rw.rm
			if rm == nil {
				rm = s.routeMetrics(r.URL.Path)
			}
			rm.observe(rw.status, time.Since(rw.start))
		}
	}()
	err := s.serve(rw, r)
	if rw.finish() {
		// The client has its 504; what the handler made of the request
		// after the deadline is dropped, and said so.
		code := "none"
		if err != nil {
			code = toProblem(err).Code
		}
		s.cfg.Log.Warn("late answer dropped", "request_id", id, "path", logSafe(r.URL.Path), "code", code, "err", logSafeErr(err))
		return
	}
	if err == nil {
		return
	}
	p := toProblem(err)
	s.logProblem(id, r.URL.Path, p, err)
	if r.ContentLength != 0 {
		// The body may be unread: close the connection after the answer
		// rather than let net/http read what is left of it first (a slow
		// client would hold the answer back).
		rw.Header().Set("Connection", "close")
	}
	writeProblem(rw, p, id)
}

// logProblem logs a request answered with problem p for err.
func (s *Server) logProblem(id, path string, p *Problem, err error) {
	if p.Status >= 500 {
		s.cfg.Log.Error("request failed", "request_id", id, "path", logSafe(path), "code", p.Code, "err", logSafeErr(err))
	} else {
		s.cfg.Log.Info("request refused", "request_id", id, "path", logSafe(path), "code", p.Code, "status", p.Status)
	}
}

// serve routes r and runs its handler. The request's state (w) goes into
// the handler's context with the request deadline, in one context value
// and one copy of the request.
func (s *Server) serve(w *respWriter, r *http.Request) error {
	// A browser page must never reach the socket (DNS rebinding, CSRF via
	// a local proxy): refuse anything carrying browser headers.
	if hasHeader(r.Header, "Origin") || hasHeader(r.Header, "Referer") {
		return &Error{Status: http.StatusForbidden, Code: CodeBrowserForbidden, Detail: "requests with Origin or Referer headers are refused"}
	}
	rt, ok := s.mux[r.URL.Path]
	if !ok {
		for _, pr := range s.prefixRoutes {
			if pr.match(r.URL.Path) {
				rt, ok = route{pr.method, pr.h, true, pr.rm}, true
				break
			}
		}
	}
	if !ok {
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Detail: "no such endpoint"}
	}
	w.rm = rt.rm
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		return &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed, Detail: "use " + rt.method}
	}
	if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics" {
		// Never queued behind signing work, and without a deadline. Their
		// handlers read nothing of the request's state (no request id, no
		// releases), so r goes to them as net/http made it.
		return rt.h(w, r)
	}
	peer := peerID(PeerFrom(r.Context()))
	if !s.cfg.Limiter.enter(peer, s.cfg.MaxConcurrentPerPeer) {
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeTooManyRequests, Detail: "this caller has too many requests in flight", RetryAfter: time.Second}
	}
	w.rel = releases{l: s.cfg.Limiter, peer: peer, entered: true}
	defer w.rel.run()
	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), requestIDKey{}, w), s.cfg.RequestTimeout)
	defer cancel()
	// The watchdog answers if the handler does not (its goroutine held in
	// a token call).
	w.guard(ctx, s, r.URL.Path, s.cfg.RequestTimeout)
	defer w.disarm()
	r = r.WithContext(ctx)
	if !rt.body {
		if err := s.takeSlot(r); err != nil {
			return err
		}
	}
	return rt.h(w, r)
}

// hasHeader reports whether h carries the header name at all, with any
// value, empty ones included, under any spelling of the name.
func hasHeader(h http.Header, name string) bool {
	for k := range h {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// routeMetrics returns the metrics series of path's route, looked up in
// New (the routes are fixed).
func (s *Server) routeMetrics(path string) *routeMetrics {
	if rm, ok := s.routeSeries[s.routeLabel(path)]; ok {
		return rm
	}
	return s.cfg.Metrics.route(s.routeLabel(path))
}

// routeLabel bounds the metrics' route label to the known routes.
func (s *Server) routeLabel(path string) string {
	if _, ok := s.mux[path]; ok {
		return path
	}
	for _, pr := range s.prefixRoutes {
		if pr.match(path) {
			return pr.pattern
		}
	}
	return "other"
}

func requestID(r *http.Request) string {
	if rw, _ := r.Context().Value(requestIDKey{}).(*respWriter); rw != nil {
		return rw.id
	}
	return ""
}

// newRequestID is 96 random bits in hex, made with one allocation.
func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	var h [24]byte
	hex.Encode(h[:], b[:])
	return string(h[:])
}

var soapMediaTypes = []string{"text/xml", "application/soap+xml"}

// soapMediaType is the media type of each SOAP version.
var soapMediaType = map[string]string{"1.1": "text/xml", "1.2": "application/soap+xml"}

// soapVersionOf returns the SOAP version a checked SOAP media type names.
func soapVersionOf(ct string) string {
	mt, _, _ := parseMediaType(ct)
	if mt == "application/soap+xml" {
		return "1.2"
	}
	return "1.1"
}

// parseMediaType is mime.ParseMediaType, without its work (a map, a
// lower-cased copy) for the two SOAP media types sent exactly as named,
// without parameters: what clients send on every request.
func parseMediaType(ct string) (string, map[string]string, error) {
	if ct == "text/xml" || ct == "application/soap+xml" {
		return ct, nil, nil
	}
	return mime.ParseMediaType(ct)
}

// readEnvelope checks the media type, reads the bounded body
// (readBodyLimited) and then takes a slot of signing work.
func (s *Server) readEnvelope(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, params, err := parseMediaType(ct)
	if err != nil || !slices.Contains(soapMediaTypes, mt) {
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMedia, Detail: "send text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2)"}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMedia, Detail: "only UTF-8 envelopes are accepted"}
	}
	body, err := s.readBodyLimited(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Detail: "the request body is empty"}
	}
	if err := s.takeSlot(r); err != nil {
		return nil, err
	}
	return body, nil
}

// errNoProfile answers both an unknown profile and one the caller may not
// use: the two look alike, so a caller learns nothing of what exists.
var errNoProfile = &Error{Status: http.StatusForbidden, Code: CodeForbidden, Detail: "no profile of that name is available to this caller"}

// pickProfile resolves ?profile= among profiles and checks that the caller
// may use it; access returns a profile's access list. The refusal is audited
// and looks the same for an unknown profile as for a forbidden one.
func pickProfile[P any](s *Server, r *http.Request, profiles map[string]*P, access func(*P) Access) (string, *P, error) {
	name, n := profileParam(r.URL.RawQuery)
	if name == "" || n != 1 {
		return "", nil, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Detail: "give exactly one profile query parameter"}
	}
	p, ok := profiles[name]
	peer := PeerFrom(r.Context())
	if !ok || p == nil || !access(p).Allows(peer) {
		s.cfg.Audit.Warn("audit", "event", "refused", "request_id", requestID(r), "profile", logSafe(name), "endpoint", logSafe(r.URL.Path),
			"peer_uid", peer.UID, "peer_gid", peer.GID, "peer_pid", peer.PID, "peer_groups", peer.Groups)
		return "", nil, errNoProfile
	}
	return name, p, nil
}

// profileParam returns the first profile parameter of a raw query and how
// many there are, as url.ParseQuery reads them; a query that is only
// profile=NAME, with nothing to unescape or split, without the map and
// copies of parsing it (what clients send on every request).
func profileParam(rawQuery string) (string, int) {
	if name, ok := strings.CutPrefix(rawQuery, "profile="); ok && !strings.ContainsAny(name, "&;%+") {
		return name, 1
	}
	vs, _ := url.ParseQuery(rawQuery) // r.URL.Query() also drops the error
	if len(vs["profile"]) == 0 {
		return "", 0
	}
	return vs["profile"][0], len(vs["profile"])
}

// profileFor resolves the sign profile of a request.
func (s *Server) profileFor(r *http.Request) (string, *Profile, error) {
	return pickProfile(s, r, s.cfg.Profiles, func(p *Profile) Access { return p.Access })
}

func (s *Server) credential(ctx context.Context, key string) (wss.Credential, error) {
	cred, err := s.cfg.Keys.Credential(ctx, key)
	if err != nil {
		if errors.Is(err, ErrTokenUnavailable) {
			return cred, &Error{Status: http.StatusServiceUnavailable, Code: CodeTokenUnavailable, Detail: "the key's token is not available", RetryAfter: 5 * time.Second, Err: err}
		}
		return cred, &Error{Status: http.StatusInternalServerError, Code: CodeInternalError, Err: err}
	}
	return cred, nil
}

func (s *Server) handleSign(w http.ResponseWriter, r *http.Request) error {
	name, p, err := s.profileFor(r)
	if err != nil {
		return err
	}
	body, err := s.readEnvelope(w, r)
	if err != nil {
		return err
	}
	// A profile without a signature (UsernameToken only) uses no key.
	var cred wss.Credential
	if !p.Sign.NoSignature {
		if cred, err = s.credential(r.Context(), p.Key); err != nil {
			return err
		}
	}
	if p.Encrypt != "" && p.EncryptBeforeSign {
		if body, err = s.encryptWithProfile(r, p.Encrypt, body); err != nil {
			return err
		}
	}
	opts := p.Sign
	if opts.ConfirmValues, err = confirmValues(r, p.Sign.SignatureConfirmation); err != nil {
		return err
	}
	opts.Limits = s.cfg.Limits
	opts.Now = s.cfg.Now
	// The media type names the SOAP version (text/xml 1.1,
	// application/soap+xml 1.2): an envelope of the other version is
	// refused, and so is a media type the profile's version excludes.
	ver := soapVersionOf(r.Header.Get("Content-Type"))
	if opts.SOAPVersion != "" && opts.SOAPVersion != ver {
		return &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMedia, Detail: "this profile signs SOAP " + opts.SOAPVersion + " envelopes (" + soapMediaType[opts.SOAPVersion] + ")"}
	}
	opts.SOAPVersion = ver
	encryptAfter := p.Encrypt != "" && !p.EncryptBeforeSign
	// The response is written from the request body and the inserted bytes
	// without a joined copy (a 10 MB envelope costs 10 MB, not 20).
	opts.NoCopy = !encryptAfter
	start := time.Now()
	res, err := wss.Sign(r.Context(), body, cred, opts)
	dur := time.Since(start)
	if !p.Sign.NoSignature && (err == nil || wss.CodeOf(err) == wss.CodeSigningFailed) {
		// The key was used (or its use was attempted); an envelope refused
		// before signing is not a key operation.
		s.cfg.Metrics.observeKeyOp(p.Key, "sign", err, dur)
		s.audit(r, name, p.Key, cred, res, err, dur)
	}
	if err != nil {
		if wss.CodeOf(err) == wss.CodeSigningFailed && errors.Is(err, ErrTokenUnavailable) {
			return &Error{Status: http.StatusServiceUnavailable, Code: CodeTokenUnavailable, Detail: "the key's token is not available", RetryAfter: 5 * time.Second, Err: err}
		}
		return err
	}
	var out []byte
	if encryptAfter {
		if out, err = s.encryptWithProfile(r, p.Encrypt, res.Envelope); err != nil {
			return err
		}
	}
	h := w.Header()
	h.Set("Content-Type", r.Header.Get("Content-Type"))
	if !p.Sign.NoSignature {
		h.Set("Wssignd-Key", p.Key)
		h.Set("Wssignd-Cert-Serial", certSerial(cred.Chain[0]))
	}
	if out != nil {
		_, _ = w.Write(out)
		return nil
	}
	n := res.Len()
	h.Set("Content-Length", strconv.Itoa(n))
	writeGathered(w, res, n)
	return nil
}

// gatherMax bounds the responses gathered into one buffer before they are
// written; larger ones are written part by part (no copy of a 10 MB
// envelope).
const gatherMax = 64 << 10

var gatherPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// writeGathered writes res (n bytes) to w in one Write when n ≤ gatherMax:
// net/http then puts the headers and the body in its connection buffer in
// one go, instead of each inserted part passing through the response
// writer on its own.
func writeGathered(w io.Writer, res *wss.SignResult, n int) {
	if n > gatherMax {
		_, _ = res.WriteTo(w)
		return
	}
	b := gatherPool.Get().(*bytes.Buffer)
	b.Reset()
	b.Grow(n)
	_, _ = res.WriteTo(b)
	_, _ = w.Write(b.Bytes())
	gatherPool.Put(b)
}

// audit writes the one event of a private-key use. The attributes are
// typed (LogAttrs), so that building the event boxes nothing; the output is
// the same as with key-value pairs.
func (s *Server) audit(r *http.Request, profile, key string, cred wss.Credential, res *wss.SignResult, err error, dur time.Duration) {
	peer := PeerFrom(r.Context())
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs,
		slog.String("event", "private-key-use"), slog.String("request_id", requestID(r)),
		slog.Uint64("peer_uid", uint64(peer.UID)), slog.Uint64("peer_gid", uint64(peer.GID)), slog.Int64("peer_pid", int64(peer.PID)),
		slog.Any("peer_groups", peer.Groups),
		slog.String("profile", logSafe(profile)), slog.String("key", logSafe(key)), slog.String("cert_serial", certSerial(cred.Chain[0])),
		slog.Float64("duration_ms", float64(dur.Microseconds())/1000),
	)
	if err != nil {
		attrs = append(attrs, slog.String("outcome", outcomeOf(err)), slog.String("error_code", string(wss.CodeOf(err))))
		s.cfg.Audit.LogAttrs(context.Background(), slog.LevelWarn, "audit", attrs...)
		return
	}
	attrs = append(attrs, slog.String("outcome", "signed"), slog.String("signature_method", res.SignatureMethod),
		slog.String("signed_sha256", hex.EncodeToString(res.SignedInfoSHA256)), slog.Any("references", res.References))
	s.cfg.Audit.LogAttrs(context.Background(), slog.LevelInfo, "audit", attrs...)
}

// certSerials caches certSerial per certificate: the key store's
// credentials keep their chains, so a signing request finds its serial
// here. Reloads bring new certificates: past 256 the cache starts afresh.
var (
	certSerials  sync.Map // *x509.Certificate → string
	certSerialsN atomic.Int64
)

func certSerial(c *x509.Certificate) string {
	if v, ok := certSerials.Load(c); ok {
		return v.(string)
	}
	sn := fmt.Sprintf("%x", c.SerialNumber)
	if certSerialsN.Add(1) > 256 {
		certSerials.Clear()
		certSerialsN.Store(1)
	}
	certSerials.Store(c, sn)
	return sn
}

// KeyInfo is one entry of GET /v1/keys.
type KeyInfo struct {
	Name           string    `json:"name"`
	Algorithm      string    `json:"algorithm"`
	Profiles       []string  `json:"profiles"`
	Subject        string    `json:"subject"`
	Issuer         string    `json:"issuer"`
	Serial         string    `json:"serial"`
	NotAfter       time.Time `json:"not_after"`
	CertificatePEM string    `json:"certificate_pem"`
	SHA256         string    `json:"sha256"`
}

func (s *Server) handleKeys(w http.ResponseWriter, r *http.Request) error {
	peer := PeerFrom(r.Context())
	byKey := map[string][]string{}
	for name, p := range s.cfg.Profiles {
		if p.Access.Allows(peer) && p.Key != "" {
			byKey[p.Key] = append(byKey[p.Key], name)
		}
	}
	out := struct {
		Keys []KeyInfo `json:"keys"`
	}{Keys: []KeyInfo{}}
	for key, profiles := range byKey {
		cred, err := s.credential(r.Context(), key)
		if err != nil {
			return err
		}
		leaf := cred.Chain[0]
		sort.Strings(profiles)
		sum := sha256.Sum256(leaf.Raw)
		out.Keys = append(out.Keys, KeyInfo{
			Name:           key,
			Algorithm:      keyAlgorithm(leaf),
			Profiles:       profiles,
			Subject:        leaf.Subject.String(),
			Issuer:         leaf.Issuer.String(),
			Serial:         certSerial(leaf),
			NotAfter:       leaf.NotAfter.UTC(),
			CertificatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})),
			SHA256:         hex.EncodeToString(sum[:]),
		})
	}
	sort.Slice(out.Keys, func(i, j int) bool { return out.Keys[i].Name < out.Keys[j].Name })
	return writeJSON(w, http.StatusOK, out)
}

func keyAlgorithm(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.Size()*8)
	case *ecdsa.PublicKey:
		return "EC-" + k.Curve.Params().Name
	}
	return c.PublicKeyAlgorithm.String()
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) error {
	peer := PeerFrom(r.Context())
	if s.cfg.Admin.Allows(peer) {
		s.cfg.Metrics.Handler().ServeHTTP(w, r)
		return nil
	}
	s.cfg.Metrics.keySeriesHandler(s.visibleKeys(peer)).ServeHTTP(w, r)
	return nil
}

// visibleKeys are the keys peer may use: through a sign or decrypt profile,
// or for raw signing.
func (s *Server) visibleKeys(peer Peer) map[string]bool {
	keys := map[string]bool{}
	for _, p := range s.cfg.Profiles {
		if p.Access.Allows(peer) {
			keys[p.Key] = true
		}
	}
	for _, p := range s.cfg.DecryptProfiles {
		if p.Access.Allows(peer) {
			keys[p.Key] = true
		}
	}
	for name, a := range s.cfg.RawKeys {
		if a.Allows(peer) {
			keys[name] = true
		}
	}
	return keys
}

// The bodies of /healthz and of /readyz without token states: the same
// bytes writeJSON would write (indented JSON, final newline), built once.
var (
	healthBody   = mustIndentJSON(map[string]string{"status": "alive"})
	readyBody    = mustIndentJSON(map[string]string{"status": "ready"})
	notReadyBody = mustIndentJSON(map[string]string{"status": "not-ready"})
)

func mustIndentJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// jsonContentType and the Content-Length values of the fixed bodies are
// shared header values (net/http only reads them).
var (
	jsonContentType = []string{"application/json"}
	healthLength    = []string{strconv.Itoa(len(healthBody))}
	readyLength     = []string{strconv.Itoa(len(readyBody))}
	notReadyLength  = []string{strconv.Itoa(len(notReadyBody))}
)

// writeFixed writes a precomputed JSON body with its length, in one Write.
func writeFixed(w http.ResponseWriter, status int, body []byte, length []string) error {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = length
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	return writeFixed(w, http.StatusOK, healthBody, healthLength)
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	states, err := s.cfg.Keys.Ready(ctx)
	if !s.cfg.Admin.Allows(PeerFrom(r.Context())) {
		if err != nil {
			return writeFixed(w, http.StatusServiceUnavailable, notReadyBody, notReadyLength)
		}
		return writeFixed(w, http.StatusOK, readyBody, readyLength)
	}
	// token names and states: for the daemon's administrators
	body := map[string]any{"status": "ready", "tokens": states}
	if err != nil {
		body["status"] = "not-ready"
		return writeJSON(w, http.StatusServiceUnavailable, body)
	}
	return writeJSON(w, http.StatusOK, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Package api serves the wssignd HTTP API (v1) on a Unix socket.
//
// Handlers return errors; one function turns every error into an RFC 9457
// problem+json response. Callers are identified by the kernel (SO_PEERCRED),
// never by anything they send, and authorised per profile. Every
// private-key use writes one audit event.
package api

import (
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
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

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
	// MaxConcurrent bounds requests in flight (503 beyond).
	MaxConcurrent int
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
}

// Server is the API handler.
type Server struct {
	cfg          Config
	slots        chan struct{}
	mux          map[string]route
	prefixRoutes []prefixRoute
}

// prefixRoute is a route with a path parameter.
type prefixRoute struct {
	method, pattern string
	match           func(path string) bool
	h               func(w http.ResponseWriter, r *http.Request) error
}

type route struct {
	method string
	h      func(w http.ResponseWriter, r *http.Request) error
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
		cfg.MaxConcurrent = 64
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 16 << 20
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	s := &Server{cfg: cfg, slots: make(chan struct{}, cfg.MaxConcurrent)}
	s.mux = map[string]route{
		"/v1/soap/sign":    {http.MethodPost, s.handleSign},
		"/v1/soap/verify":  {http.MethodPost, s.handleVerify},
		"/v1/soap/encrypt": {http.MethodPost, s.handleEncrypt},
		"/v1/soap/decrypt": {http.MethodPost, s.handleDecrypt},
		"/v1/keys":         {http.MethodGet, s.handleKeys},
		"/healthz":         {http.MethodGet, s.handleHealth},
		"/readyz":          {http.MethodGet, s.handleReady},
		"/metrics":         {http.MethodGet, s.handleMetrics},
	}
	s.prefixRoutes = []prefixRoute{{
		method: http.MethodPost, pattern: rawSignPrefix + "{name}" + rawSignSuffix, h: s.handleRawSign,
		match: func(p string) bool { _, ok := rawSignKey(p); return ok },
	}}
	return s
}

type requestIDKey struct{}

// ServeHTTP routes, applies the browser and concurrency guards, and writes
// every error through the one problem funnel.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := newRequestID()
	w.Header().Set("Wssignd-Request-Id", id)
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
	rec := &statusRecorder{ResponseWriter: w}
	start := time.Now()
	s.cfg.Metrics.inFlight.Inc()
	defer func() {
		s.cfg.Metrics.inFlight.Dec()
		s.cfg.Metrics.observeRequest(s.routeLabel(r.URL.Path), rec.status, time.Since(start))
	}()
	err := s.serve(rec, r)
	if err == nil {
		return
	}
	w = rec
	p := toProblem(err)
	if p.Status >= 500 {
		s.cfg.Log.Error("request failed", "request_id", id, "path", r.URL.Path, "code", p.Code, "err", err)
	} else {
		s.cfg.Log.Info("request refused", "request_id", id, "path", r.URL.Path, "code", p.Code, "status", p.Status)
	}
	writeProblem(w, p, id)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) error {
	// A browser page must never reach the socket (DNS rebinding, CSRF via
	// a local proxy): refuse anything carrying browser headers.
	if r.Header.Get("Origin") != "" || r.Header.Get("Referer") != "" {
		return &Error{Status: http.StatusForbidden, Code: CodeBrowserForbidden, Detail: "requests with Origin or Referer headers are refused"}
	}
	rt, ok := s.mux[r.URL.Path]
	if !ok {
		for _, pr := range s.prefixRoutes {
			if pr.match(r.URL.Path) {
				rt, ok = route{pr.method, pr.h}, true
				break
			}
		}
	}
	if !ok {
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Detail: "no such endpoint"}
	}
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		return &Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed, Detail: "use " + rt.method}
	}
	if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics" {
		return rt.h(w, r) // never queued behind signing work
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeOverloaded, Detail: "too many requests in flight", RetryAfter: time.Second}
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	return rt.h(w, r.WithContext(ctx))
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
	id, _ := r.Context().Value(requestIDKey{}).(string)
	return id
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var soapMediaTypes = []string{"text/xml", "application/soap+xml"}

// readEnvelope checks the media type and reads the bounded body.
func (s *Server) readEnvelope(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !slices.Contains(soapMediaTypes, mt) {
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMedia, Detail: "send text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2)"}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMedia, Detail: "only UTF-8 envelopes are accepted"}
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge, Detail: fmt.Sprintf("the body exceeds %d bytes", s.cfg.MaxBodyBytes)}
	}
	body, err := readBody(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes), r.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge, Detail: fmt.Sprintf("the body exceeds %d bytes", s.cfg.MaxBodyBytes)}
		}
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Detail: "could not read the request body", Err: err}
	}
	if len(body) == 0 {
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Detail: "the request body is empty"}
	}
	return body, nil
}

// readBody reads a request body. With a Content-Length (already checked
// against the limit; net/http never returns more than it announces) it
// reads into one buffer of that size instead of growing one by doubling,
// which for a 10 MB envelope saves a peak of about twice the body.
func readBody(rd io.Reader, contentLength int64) ([]byte, error) {
	if contentLength <= 0 {
		return io.ReadAll(rd)
	}
	buf := make([]byte, contentLength)
	if _, err := io.ReadFull(rd, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// errNoProfile answers both an unknown profile and one the caller may not
// use: the two look alike, so a caller learns nothing of what exists.
var errNoProfile = &Error{Status: http.StatusForbidden, Code: CodeForbidden, Detail: "no profile of that name is available to this caller"}

// pickProfile resolves ?profile= among profiles and checks that the caller
// may use it; access returns a profile's access list. The refusal is audited
// and looks the same for an unknown profile as for a forbidden one.
func pickProfile[P any](s *Server, r *http.Request, profiles map[string]*P, access func(*P) Access) (string, *P, error) {
	q := r.URL.Query()
	name := q.Get("profile")
	if name == "" || len(q["profile"]) != 1 {
		return "", nil, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Detail: "give exactly one profile query parameter"}
	}
	p, ok := profiles[name]
	peer := PeerFrom(r.Context())
	if !ok || p == nil || !access(p).Allows(peer) {
		s.cfg.Audit.Warn("audit", "event", "refused", "request_id", requestID(r), "profile", name, "endpoint", r.URL.Path,
			"peer_uid", peer.UID, "peer_gid", peer.GID, "peer_pid", peer.PID, "peer_groups", peer.Groups)
		return "", nil, errNoProfile
	}
	return name, p, nil
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
	cred, err := s.credential(r.Context(), p.Key)
	if err != nil {
		return err
	}
	if p.Encrypt != "" && p.EncryptBeforeSign {
		if body, err = s.encryptWithProfile(r, p.Encrypt, body); err != nil {
			return err
		}
	}
	opts := p.Sign
	opts.Limits = s.cfg.Limits
	opts.Now = s.cfg.Now
	encryptAfter := p.Encrypt != "" && !p.EncryptBeforeSign
	// The response is written from the request body and the inserted bytes
	// without a joined copy (a 10 MB envelope costs 10 MB, not 20).
	opts.NoCopy = !encryptAfter
	start := time.Now()
	res, err := wss.Sign(r.Context(), body, cred, opts)
	dur := time.Since(start)
	s.cfg.Metrics.observeKeyOp(p.Key, "sign", err, dur)
	if err == nil || wss.CodeOf(err) == wss.CodeSigningFailed {
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
	h.Set("Wssignd-Key", p.Key)
	h.Set("Wssignd-Cert-Serial", certSerial(cred.Chain[0]))
	if out != nil {
		_, _ = w.Write(out)
		return nil
	}
	h.Set("Content-Length", strconv.Itoa(res.Len()))
	_, _ = res.WriteTo(w)
	return nil
}

// audit writes the one event of a private-key use.
func (s *Server) audit(r *http.Request, profile, key string, cred wss.Credential, res *wss.SignResult, err error, dur time.Duration) {
	peer := PeerFrom(r.Context())
	attrs := []any{
		"event", "private-key-use", "request_id", requestID(r),
		"peer_uid", peer.UID, "peer_gid", peer.GID, "peer_pid", peer.PID, "peer_groups", peer.Groups,
		"profile", profile, "key", key, "cert_serial", certSerial(cred.Chain[0]),
		"duration_ms", float64(dur.Microseconds()) / 1000,
	}
	if err != nil {
		attrs = append(attrs, "outcome", "error", "error_code", string(wss.CodeOf(err)))
		s.cfg.Audit.Warn("audit", attrs...)
		return
	}
	attrs = append(attrs, "outcome", "signed", "signature_method", res.SignatureMethod,
		"signed_sha256", hex.EncodeToString(res.SignedInfoSHA256), "references", res.References)
	s.cfg.Audit.Info("audit", attrs...)
}

func certSerial(c *x509.Certificate) string {
	return fmt.Sprintf("%x", c.SerialNumber)
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
		if p.Access.Allows(peer) {
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
	s.cfg.Metrics.Handler().ServeHTTP(w, r)
	return nil
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	states, err := s.cfg.Keys.Ready(ctx)
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

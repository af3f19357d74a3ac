package api

import (
	"net/http"
	"time"

	"github.com/wssignd/wssignd/wss"
)

// VerifyProfile is a named verification policy: whom to trust and which
// rules a signed message must meet, and who may ask.
type VerifyProfile struct {
	// Verify holds the trust store, required parts, Timestamp rules,
	// algorithm allow-lists, replay cache and Fault policy. Limits, Now and
	// Explain are set by the server per request.
	Verify wss.VerifyOptions
	Access Access
	// ReplaySince is when Verify.Replay began remembering messages (zero:
	// no such bound). A message its cache cannot know, because it may have
	// been verified before then (by an earlier process, or before a cache
	// of a new size), is refused as a possible replay: one whose Timestamp
	// Created is before ReplaySince, and one without a Timestamp until
	// MaxAge + FutureSkew after it.
	ReplaySince time.Time
}

// mayBeReplay reports whether a message verified with ts (nil: none) may
// have been verified before p's replay cache began.
func (p *VerifyProfile) mayBeReplay(ts *wss.TimestampInfo, now time.Time) bool {
	if p.ReplaySince.IsZero() || p.Verify.Replay == nil {
		return false
	}
	if ts == nil {
		maxAge, skew := p.Verify.MaxAge, p.Verify.FutureSkew
		if maxAge <= 0 {
			maxAge = 300 * time.Second // wss's defaults
		}
		if skew <= 0 {
			skew = 60 * time.Second
		}
		return now.Before(p.ReplaySince.Add(maxAge + skew))
	}
	// A Created without a fraction of a second stands for its whole
	// second: it is compared with the second the cache began in, or every
	// message of that second, sent after the start, would be refused.
	since := p.ReplaySince
	if ts.Created.Equal(ts.Created.Truncate(time.Second)) {
		since = since.Truncate(time.Second)
	}
	return ts.Created.Before(since)
}

// replayVerdict turns a valid verdict into a replay when the message may
// have been verified before p's replay cache began.
func (p *VerifyProfile) replayVerdict(res *wss.VerifyResult, now time.Time) {
	if res.Valid && p.mayBeReplay(res.Timestamp, now) {
		res.Valid = false
		res.Code = wss.CodeReplay
		res.Detail = "this message was created before the replay cache began (a restart); it may have been seen before"
	}
}

// verifyProfileFor resolves the verify profile of a request.
func (s *Server) verifyProfileFor(r *http.Request) (string, *VerifyProfile, error) {
	return pickProfile(s, r, s.cfg.VerifyProfiles, func(p *VerifyProfile) Access { return p.Access })
}

// explainParam reads ?explain= (absent, 0, 1, false, true).
func explainParam(r *http.Request) (bool, error) {
	q := r.URL.Query()
	vs, ok := q["explain"]
	if !ok {
		return false, nil
	}
	if len(vs) == 1 {
		switch vs[0] {
		case "1", "true":
			return true, nil
		case "0", "false":
			return false, nil
		}
	}
	return false, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Detail: "explain must be 0 or 1"}
}

// handleVerify serves POST /v1/soap/verify?profile=NAME[&explain=1]: 200
// with the verdict (wss.VerifyResult as JSON) whether the message is valid
// or not; a problem only for an unusable request.
func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) error {
	name, p, err := s.verifyProfileFor(r)
	if err != nil {
		return err
	}
	explain, err := explainParam(r)
	if err != nil {
		return err
	}
	body, err := s.readEnvelope(w, r)
	if err != nil {
		return err
	}
	opts := p.Verify
	opts.Limits = s.cfg.Limits
	opts.Now = s.cfg.Now
	opts.Explain = explain
	opts.SOAPVersion = soapVersionOf(r.Header.Get("Content-Type"))
	start := time.Now()
	res, err := wss.Verify(r.Context(), body, opts)
	if err != nil {
		return err
	}
	p.replayVerdict(res, s.cfg.Now())
	peer := PeerFrom(r.Context())
	attrs := []any{"event", "verify", "request_id", requestID(r), "verify_profile", logSafe(name),
		"peer_uid", peer.UID, "peer_gid", peer.GID, "peer_pid", peer.PID,
		"valid", res.Valid, "code", string(res.Code), "duration_ms", float64(time.Since(start).Microseconds()) / 1000}
	if res.Signer != nil {
		attrs = append(attrs, "signer_sha256", res.Signer.SHA256, "signer_serial", res.Signer.Serial)
	}
	s.cfg.Audit.Info("audit", attrs...)
	return writeJSON(w, http.StatusOK, res)
}

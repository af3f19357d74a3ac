package api

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/wssignd/wssignd/wss"
)

// RawSignRequest is the body of POST /v1/keys/{name}/sign.
type RawSignRequest struct {
	Digest string `json:"digest"` // standard base64 of the hash value
	Hash   string `json:"hash"`   // SHA-256, SHA-384 or SHA-512
	Scheme string `json:"scheme"` // pkcs1v15, pss (salt = hash length) or ecdsa
	// Format is for ECDSA only: "der" (ASN.1, the default) or "raw" (r‖s,
	// each left-padded to the curve size, as XML-DSig and JWS want).
	Format string `json:"format,omitempty"`
}

// RawSignResponse answers it.
type RawSignResponse struct {
	Signature string `json:"signature"` // base64
}

var rawHashes = map[string]crypto.Hash{
	"SHA-256": crypto.SHA256,
	"SHA-384": crypto.SHA384,
	"SHA-512": crypto.SHA512,
}

const rawSignPrefix, rawSignSuffix = "/v1/keys/", "/sign"

// rawSignMaxBody bounds a raw-sign request body.
const rawSignMaxBody = 4096

// rawSignKey returns the key name of a /v1/keys/{name}/sign path.
func rawSignKey(path string) (string, bool) {
	if !strings.HasPrefix(path, rawSignPrefix) || !strings.HasSuffix(path, rawSignSuffix) {
		return "", false
	}
	name := path[len(rawSignPrefix) : len(path)-len(rawSignSuffix)]
	if name == "" || strings.Contains(name, "/") {
		return "", false
	}
	return name, true
}

func badRequest(format string, args ...any) error {
	return &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Detail: fmt.Sprintf(format, args...)}
}

// checkJSONMediaType accepts application/json exactly (any case), with at
// most a charset parameter of utf-8.
func checkJSONMediaType(ct string) error {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMedia, Detail: "send application/json"}
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMedia, Detail: "send application/json (UTF-8, no other parameter)"}
		}
	}
	return nil
}

// rawSignFields are the members of a raw-sign request, spelled exactly.
var rawSignFields = []string{"digest", "hash", "scheme", "format"}

// decodeRawSignRequest decodes one JSON object whose members are all
// strings named exactly as in RawSignRequest (case-sensitive), each at
// most once. encoding/json alone would match names in any case and let the
// last of two duplicates win, so that two readers of one request could
// disagree on what it asks.
func decodeRawSignRequest(data []byte) (RawSignRequest, error) {
	var req RawSignRequest
	bad := func(detail string) (RawSignRequest, error) {
		return RawSignRequest{}, badRequest("the body is not a valid raw-sign request: %s", detail)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return bad("one JSON object expected")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad("malformed JSON")
		}
		name, _ := tok.(string)
		if !slices.Contains(rawSignFields, name) {
			return bad("unknown member")
		}
		if seen[name] {
			return bad("duplicate member " + name)
		}
		seen[name] = true
		tok, err = dec.Token()
		if err != nil {
			return bad("malformed JSON")
		}
		v, ok := tok.(string)
		if !ok {
			return bad("member " + name + " must be a string")
		}
		switch name {
		case "digest":
			req.Digest = v
		case "hash":
			req.Hash = v
		case "scheme":
			req.Scheme = v
		case "format":
			req.Format = v
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return bad("malformed JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("one JSON object expected")
	}
	return req, nil
}

func (s *Server) handleRawSign(w http.ResponseWriter, r *http.Request) error {
	name, _ := rawSignKey(r.URL.Path)
	peer := PeerFrom(r.Context())
	acc, ok := s.cfg.RawKeys[name]
	if !ok || !acc.Allows(peer) {
		s.cfg.Audit.Warn("audit", "event", "refused", "request_id", requestID(r), "raw_sign_key", logSafe(name),
			"peer_uid", peer.UID, "peer_gid", peer.GID, "peer_pid", peer.PID, "peer_groups", peer.Groups)
		return &Error{Status: http.StatusForbidden, Code: CodeForbidden, Detail: "no key of that name is available to this caller for raw signing"}
	}
	if err := checkJSONMediaType(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	data, err := s.readBodyLimited(w, r, rawSignMaxBody)
	if err != nil {
		return err
	}
	if err := s.takeSlot(r); err != nil {
		return err
	}
	req, err := decodeRawSignRequest(data)
	if err != nil {
		return err
	}
	h, ok := rawHashes[req.Hash]
	if !ok {
		return badRequest("hash must be SHA-256, SHA-384 or SHA-512")
	}
	digest, err := base64.StdEncoding.DecodeString(req.Digest)
	if err != nil || len(digest) != h.Size() {
		return badRequest("digest must be the base64 of a %d-byte %s value", h.Size(), req.Hash)
	}
	cred, err := s.credential(r.Context(), name)
	if err != nil {
		return err
	}
	var opts crypto.SignerOpts = h
	switch pub := cred.Signer.Public().(type) {
	case *rsa.PublicKey:
		switch req.Scheme {
		case "pkcs1v15":
		case "pss":
			opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}
		default:
			return badRequest("an RSA key signs with scheme pkcs1v15 or pss")
		}
		if req.Format != "" {
			return badRequest("format applies to ECDSA only")
		}
	case *ecdsa.PublicKey:
		if req.Scheme != "ecdsa" {
			return badRequest("an EC key signs with scheme ecdsa")
		}
		if req.Format != "" && req.Format != "der" && req.Format != "raw" {
			return badRequest("format must be der or raw")
		}
		_ = pub
	default:
		return &Error{Status: http.StatusInternalServerError, Code: CodeInternalError, Err: fmt.Errorf("key %s has type %T", name, pub)}
	}
	start := time.Now()
	sig, err := cred.Signer.Sign(rand.Reader, digest, opts)
	dur := time.Since(start)
	s.cfg.Metrics.observeKeyOp(name, "raw-sign", err, dur)
	peerAttrs := []any{"event", "private-key-use", "request_id", requestID(r),
		"peer_uid", peer.UID, "peer_gid", peer.GID, "peer_pid", peer.PID, "peer_groups", peer.Groups,
		"operation", "raw-sign", "key", logSafe(name), "cert_serial", certSerial(cred.Chain[0]),
		"hash", req.Hash, "scheme", req.Scheme, "signed_digest", hex.EncodeToString(digest),
		"duration_ms", float64(dur.Microseconds()) / 1000}
	if err != nil {
		s.cfg.Audit.Warn("audit", append(peerAttrs, "outcome", outcomeOf(err))...)
		if errors.Is(err, ErrTokenUnavailable) {
			return &Error{Status: http.StatusServiceUnavailable, Code: CodeTokenUnavailable, Detail: "the key's token is not available", RetryAfter: 5 * time.Second, Err: err}
		}
		return &Error{Status: http.StatusServiceUnavailable, Code: "signing-failed", Detail: "the private-key operation failed", Err: err}
	}
	s.cfg.Audit.Info("audit", append(peerAttrs, "outcome", "signed")...)
	if req.Scheme == "ecdsa" && req.Format == "raw" {
		size := (cred.Signer.Public().(*ecdsa.PublicKey).Curve.Params().BitSize + 7) / 8
		if sig, err = wss.ECDSARaw(sig, size); err != nil {
			return &Error{Status: http.StatusServiceUnavailable, Code: "signing-failed", Detail: "the token returned a malformed signature", Err: err}
		}
	}
	w.Header().Set("Wssignd-Key", name)
	w.Header().Set("Wssignd-Cert-Serial", certSerial(cred.Chain[0]))
	return writeJSON(w, http.StatusOK, RawSignResponse{Signature: base64.StdEncoding.EncodeToString(sig)})
}

package api

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/wssignd/wssignd/wss"
)

// RecipientCertHeader carries a recipient certificate (base64 DER) for
// encrypt profiles that allow it.
const RecipientCertHeader = "Wssignd-Recipient-Cert"

// Problem codes of /v1/soap/encrypt and /decrypt that are not wss codes.
const (
	CodeRecipientRejected = "recipient-rejected" // the request's recipient certificate fails the profile's checks
)

// EncryptProfile is a named encryption policy.
type EncryptProfile struct {
	// Encrypt holds the algorithms, parts, key reference and the configured
	// recipient (Recipient may be nil when AllowRecipientHeader is set).
	// Limits and Rand are set by the server.
	Encrypt wss.EncryptOptions
	// AllowRecipientHeader lets a request name the recipient with the
	// Wssignd-Recipient-Cert header.
	AllowRecipientHeader bool
	// TrustAnchors, when not nil, are the roots a certificate from the
	// header must chain to. With nil any well-formed, currently valid RSA
	// certificate is accepted.
	TrustAnchors *x509.CertPool
	Access       Access
}

// DecryptProfile is a named decryption policy bound to a key.
type DecryptProfile struct {
	Key string
	// VerifyProfile, when not "", names the verify profile whose options
	// must accept a signature over the Body (wss.DecryptOptions.RequireSignedBody).
	VerifyProfile string
	// Decrypt holds the algorithm allow-lists. Certificate (the key's) and
	// Limits are set by the server.
	Decrypt wss.DecryptOptions
	Access  Access
}

func (s *Server) handleEncrypt(w http.ResponseWriter, r *http.Request) error {
	_, p, err := pickProfile(s, r, s.cfg.EncryptProfiles, func(p *EncryptProfile) Access { return p.Access })
	if err != nil {
		return err
	}
	body, err := s.readEnvelope(w, r)
	if err != nil {
		return err
	}
	res, err := s.encrypt(r, p, body)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", r.Header.Get("Content-Type"))
	h.Set("Wssignd-Recipient-Serial", certSerial(res.recipient))
	_, _ = w.Write(res.Envelope)
	return nil
}

type encrypted struct {
	*wss.EncryptResult
	recipient *x509.Certificate
}

// encrypt encrypts envelope under encrypt profile p, taking the recipient
// from the request header where p allows it.
func (s *Server) encrypt(r *http.Request, p *EncryptProfile, envelope []byte) (*encrypted, error) {
	opts := p.Encrypt
	opts.Limits = s.cfg.Limits
	if v := r.Header.Get(RecipientCertHeader); v != "" {
		if !p.AllowRecipientHeader {
			return nil, &Error{Status: http.StatusForbidden, Code: CodeForbidden, Detail: "this profile does not take a recipient certificate from the request"}
		}
		c, err := s.recipientFromHeader(v, p)
		if err != nil {
			return nil, err
		}
		opts.Recipient = c
	}
	if opts.Recipient == nil {
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Detail: "this profile needs the recipient certificate in the " + RecipientCertHeader + " header"}
	}
	opts.SOAPVersion = soapVersionOf(r.Header.Get("Content-Type"))
	res, err := wss.Encrypt(r.Context(), envelope, opts)
	if err != nil {
		return nil, err
	}
	return &encrypted{res, opts.Recipient}, nil
}

// recipientFromHeader parses and checks a Wssignd-Recipient-Cert value.
func (s *Server) recipientFromHeader(v string, p *EncryptProfile) (*x509.Certificate, error) {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Detail: RecipientCertHeader + " is not base64"}
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeBadRequest, Detail: RecipientCertHeader + " is not a DER X.509 certificate"}
	}
	reject := func(detail string, err error) error {
		return &Error{Status: http.StatusUnprocessableEntity, Code: CodeRecipientRejected, Detail: detail, Err: err}
	}
	now := s.cfg.Now()
	if now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return nil, reject("the recipient certificate is not valid now", nil)
	}
	if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
		return nil, reject("the recipient certificate has no RSA key", nil)
	}
	if err := wss.CheckRecipient(c, p.Encrypt.RecipientRef); err != nil {
		return nil, reject(wssMsg(err), err)
	}
	if p.TrustAnchors != nil {
		if _, err := c.Verify(x509.VerifyOptions{Roots: p.TrustAnchors, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return nil, reject("the recipient certificate does not chain to the profile's trust anchors", err)
		}
	}
	return c, nil
}

func wssMsg(err error) string {
	var we *wss.Error
	if errors.As(err, &we) {
		return we.Msg
	}
	return "rejected"
}

// encryptWithProfile encrypts a signed (sign-then-encrypt) or about to be
// signed (encrypt-then-sign) envelope for the sign handler, with the named
// encrypt profile. The sign profile's access was checked; the encrypt
// profile is bound to it by configuration, so its own access list is not
// consulted, but its recipient rules are.
func (s *Server) encryptWithProfile(r *http.Request, profile string, envelope []byte) ([]byte, error) {
	p, ok := s.cfg.EncryptProfiles[profile]
	if !ok {
		return nil, &Error{Status: http.StatusInternalServerError, Code: CodeInternalError, Err: errors.New("sign profile names unknown encrypt profile " + profile)}
	}
	res, err := s.encrypt(r, p, envelope)
	if err != nil {
		return nil, err
	}
	return res.Envelope, nil
}

func (s *Server) handleDecrypt(w http.ResponseWriter, r *http.Request) error {
	name, p, err := pickProfile(s, r, s.cfg.DecryptProfiles, func(p *DecryptProfile) Access { return p.Access })
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
	dec, ok := cred.Signer.(crypto.Decrypter)
	if !ok {
		return &Error{Status: http.StatusInternalServerError, Code: CodeInternalError, Err: errors.New("decrypt profile key " + p.Key + " cannot decrypt")}
	}
	opts := p.Decrypt
	opts.Certificate = cred.Chain[0]
	opts.Limits = s.cfg.Limits
	if p.VerifyProfile != "" {
		vp, ok := s.cfg.VerifyProfiles[p.VerifyProfile]
		if !ok {
			return &Error{Status: http.StatusInternalServerError, Code: CodeInternalError, Err: errors.New("decrypt profile names unknown verify profile " + p.VerifyProfile)}
		}
		vo := vp.Verify
		vo.Now = s.cfg.Now
		opts.RequireSignedBody = &vo
	}
	opts.SOAPVersion = soapVersionOf(r.Header.Get("Content-Type"))
	start := time.Now()
	res, err := wss.Decrypt(r.Context(), body, dec, opts)
	dur := time.Since(start)
	if err == nil && res.Verify != nil {
		if vp := s.cfg.VerifyProfiles[p.VerifyProfile]; vp.mayBeReplay(res.Verify.Timestamp, s.cfg.Now()) {
			// Like every other decryption failure.
			err = &wss.Error{Code: wss.CodeDecryptionFailed, Msg: "the envelope could not be decrypted",
				Err: errors.New("signature over the Body: the message may be a replay (created before the replay cache began)")}
			res = nil
		}
	}
	if err == nil || wss.CodeOf(err) == wss.CodeDecryptionFailed {
		// An EncryptedKey for this key was found: the key was (or was
		// about to be) used.
		s.auditDecrypt(r, name, p.Key, cred, res, err, dur)
	}
	if err != nil {
		if errors.Is(err, ErrTokenUnavailable) {
			return &Error{Status: http.StatusServiceUnavailable, Code: CodeTokenUnavailable, Detail: "the key's token is not available", RetryAfter: 5 * time.Second, Err: err}
		}
		return err
	}
	h := w.Header()
	h.Set("Content-Type", r.Header.Get("Content-Type"))
	h.Set("Wssignd-Key", p.Key)
	h.Set("Wssignd-Cert-Serial", certSerial(cred.Chain[0]))
	_, _ = w.Write(res.Envelope)
	return nil
}

// decryptCause is what the audit event says of why a decryption failed:
// the first step of the cause only ("key unwrap", "decrypted envelope",
// "verification after decryption", ...). What follows it may quote the
// plaintext (element names, Ids of the decrypted envelope), which the audit
// log must not hold.
func decryptCause(err error) string {
	u := errors.Unwrap(err)
	if u == nil {
		return ""
	}
	step, _, _ := strings.Cut(u.Error(), ":")
	return logSafe(step)
}

// auditDecrypt writes the one event of a decryption with a private key. The
// cause of a failure is logged here (the audit log is the operator's), never
// sent to the caller.
func (s *Server) auditDecrypt(r *http.Request, profile, key string, cred wss.Credential, res *wss.DecryptResult, err error, dur time.Duration) {
	peer := PeerFrom(r.Context())
	attrs := []any{
		"event", "private-key-use", "operation", "decrypt", "request_id", requestID(r),
		"peer_uid", peer.UID, "peer_gid", peer.GID, "peer_pid", peer.PID, "peer_groups", peer.Groups,
		"profile", logSafe(profile), "key", logSafe(key), "cert_serial", certSerial(cred.Chain[0]),
		"duration_ms", float64(dur.Microseconds()) / 1000,
	}
	if err != nil {
		cause := decryptCause(err)
		attrs = append(attrs, "outcome", "error", "error_code", string(wss.CodeOf(err)), "cause", cause)
		s.cfg.Audit.Warn("audit", attrs...)
		return
	}
	if res.SignedBody != "" {
		attrs = append(attrs, "signed_body", res.SignedBody)
	}
	attrs = append(attrs, "outcome", "decrypted", "key_transport", res.KeyTransport, "data_algorithm", res.DataAlgorithm,
		"wrapped_key_sha256", hex.EncodeToString(res.WrappedKeySHA256), "references", res.References)
	s.cfg.Audit.Info("audit", attrs...)
}

// Package client calls the wssignd API v1 over the daemon's Unix socket.
//
// It depends on the standard library only: programs that use it (the wssign
// CLI, applications in Go) link neither the server nor the WS-Security code.
// Every non-2xx response is a *ProblemError carrying the daemon's RFC 9457
// problem, whose Code is stable; a socket that cannot be reached is
// ErrUnreachable.
package client

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ErrUnreachable is wrapped by client errors when the daemon's socket
// cannot be connected to (missing, refused, or not permitted).
var ErrUnreachable = errors.New("cannot reach wssignd")

// ProblemError is the error a Client returns for every non-2xx response:
// the decoded RFC 9457 problem, so callers branch on Code.
type ProblemError struct {
	Problem
	// RetryAfter is the response's Retry-After header (0 when absent).
	RetryAfter time.Duration
}

func (e *ProblemError) Error() string {
	s := e.Title
	if s == "" {
		s = http.StatusText(e.Status)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	code := e.Code
	if code == "" {
		code = strconv.Itoa(e.Status)
	}
	if e.RequestID != "" {
		return s + " (" + code + ", request " + e.RequestID + ")"
	}
	return s + " (" + code + ")"
}

// Problem is an RFC 9457 problem details object as the daemon sends it.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Code      string `json:"code"`
	RequestID string `json:"request_id,omitempty"`
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

// RecipientCertHeader carries, on an encrypt request, the recipient's
// certificate (standard base64 of its DER) when the profile allows it.
const RecipientCertHeader = "Wssignd-Recipient-Cert"

// Client calls the wssignd API v1 over its Unix socket. It is safe for
// concurrent use.
type Client struct {
	hc *http.Client
}

// Maximum response sizes the client reads: envelopes may grow by a
// Security header over the server's request limit; problem and JSON bodies
// are small.
const (
	maxEnvelopeResponse = 256 << 20
	maxJSONResponse     = 16 << 20
)

// New returns a client for the daemon listening on socketPath.
func New(socketPath string) *Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &Client{hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := d.DialContext(ctx, "unix", socketPath)
			if err != nil {
				return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, socketPath, err)
			}
			return c, nil
		},
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}}}
}

// The host part of every request URL; the socket decides where it goes.
const clientBase = "http://wssignd"

// Meta is the response metadata of a signing, from the Wssignd-* headers.
type Meta struct {
	Key        string // Wssignd-Key: the key used
	CertSerial string // Wssignd-Cert-Serial: its certificate serial (hex)
	RequestID  string // Wssignd-Request-Id: finds the daemon's log and audit lines
}

// Sign signs envelope with the named profile. contentType is text/xml for
// SOAP 1.1 or application/soap+xml for SOAP 1.2; the signed envelope comes
// back in the same type.
func (c *Client) Sign(ctx context.Context, profile string, envelope []byte, contentType string) ([]byte, error) {
	b, _, err := c.envelope(ctx, "/v1/soap/sign", profile, envelope, contentType, nil)
	return b, err
}

// SignMeta is Sign that also returns which key and certificate signed.
func (c *Client) SignMeta(ctx context.Context, profile string, envelope []byte, contentType string) ([]byte, Meta, error) {
	return c.envelope(ctx, "/v1/soap/sign", profile, envelope, contentType, nil)
}

// Encrypt encrypts envelope for the recipient configured in the profile, or
// for recipient when not nil and the profile allows a certificate to come
// with the request (header Wssignd-Recipient-Cert).
func (c *Client) Encrypt(ctx context.Context, profile string, envelope []byte, contentType string, recipient *x509.Certificate) ([]byte, error) {
	var hdr http.Header
	if recipient != nil {
		hdr = http.Header{RecipientCertHeader: {base64.StdEncoding.EncodeToString(recipient.Raw)}}
	}
	b, _, err := c.envelope(ctx, "/v1/soap/encrypt", profile, envelope, contentType, hdr)
	return b, err
}

// Decrypt decrypts envelope with the profile's key.
func (c *Client) Decrypt(ctx context.Context, profile string, envelope []byte, contentType string) ([]byte, error) {
	b, _, err := c.envelope(ctx, "/v1/soap/decrypt", profile, envelope, contentType, nil)
	return b, err
}

// VerifyResult is the verdict of POST /v1/soap/verify. Raw holds the
// whole response body as the daemon sent it.
type VerifyResult struct {
	Valid bool `json:"valid"`
	// Code, Detail and Reference say why the message is not valid (or, for
	// an accepted unsigned SOAP Fault, flag it).
	Code          string `json:"code,omitempty"`
	Detail        string `json:"detail,omitempty"`
	Reference     string `json:"reference,omitempty"`
	UnsignedFault bool   `json:"unsigned_fault,omitempty"`
	// Signer is the certificate that made the signature.
	Signer *VerifySigner `json:"signer,omitempty"`
	// Signed lists the paths of the signed elements, e.g. /Envelope/Body.
	Signed     []string          `json:"signed"`
	Timestamp  *VerifyTimestamp  `json:"timestamp,omitempty"`
	Algorithms *VerifyAlgorithms `json:"algorithms,omitempty"`
	// Explain has one entry per Reference when explain was asked for.
	Explain []VerifyExplain `json:"explain,omitempty"`

	Raw json.RawMessage `json:"-"`
}

// VerifySigner describes the certificate that made a signature.
type VerifySigner struct {
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	Serial   string    `json:"serial"` // hex
	NotAfter time.Time `json:"not_after"`
	SHA256   string    `json:"sha256"` // of the DER certificate, hex
	// TokenReference is how the message named the certificate:
	// bst-x509v3, bst-pkipath, issuer-serial, ski, thumbprint-sha1,
	// keyid-x509v3.
	TokenReference string `json:"token_reference"`
}

// VerifyTimestamp is the message's wsu:Timestamp.
type VerifyTimestamp struct {
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires,omitempty"`
}

// VerifyAlgorithms lists the algorithms the signature used.
type VerifyAlgorithms struct {
	Canonicalization string   `json:"canonicalization"`
	Signature        string   `json:"signature"`
	Digests          []string `json:"digests"`
}

// VerifyExplain is the per-Reference record of explain mode.
type VerifyExplain struct {
	URI             string `json:"uri"`
	Path            string `json:"path,omitempty"`
	CanonicalSHA256 string `json:"canonical_sha256,omitempty"`
	CanonicalLength int    `json:"canonical_length"`
	DigestMethod    string `json:"digest_method"`
	Expected        string `json:"expected"`
	Computed        string `json:"computed,omitempty"`
	Match           bool   `json:"match"`
}

// Verify checks a signed envelope against the named verify profile. A
// verdict, valid or not, is a result with a nil error; an error means the
// request itself was refused (a *ProblemError) or the daemon was not
// reached. explain asks for per-reference digests (explain=1).
func (c *Client) Verify(ctx context.Context, profile string, envelope []byte, contentType string, explain bool) (*VerifyResult, error) {
	q := url.Values{"profile": {profile}}
	if explain {
		q.Set("explain", "1")
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/v1/soap/verify?"+q.Encode(), contentType, envelope)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if isProblem(resp) || !isJSON(resp) {
		if resp.StatusCode/100 == 2 {
			return nil, fmt.Errorf("verify: unexpected Content-Type %q", resp.Header.Get("Content-Type"))
		}
		return nil, problemOf(resp)
	}
	body, err := readLimited(resp.Body, maxJSONResponse)
	if err != nil {
		return nil, err
	}
	var res VerifyResult
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, fmt.Errorf("verify: decoding the verdict: %w", err)
	}
	if resp.StatusCode/100 != 2 && res.Valid {
		return nil, fmt.Errorf("verify: status %d with a valid verdict", resp.StatusCode)
	}
	res.Raw = body
	return &res, nil
}

// Keys lists the keys this caller may use.
func (c *Client) Keys(ctx context.Context) ([]KeyInfo, error) {
	var out struct {
		Keys []KeyInfo `json:"keys"`
	}
	if err := c.getJSON(ctx, "/v1/keys", &out); err != nil {
		return nil, err
	}
	return out.Keys, nil
}

// RawSign signs a precomputed digest (r.Digest, standard base64) with the
// named key and returns the decoded signature bytes.
func (c *Client) RawSign(ctx context.Context, key string, r RawSignRequest) ([]byte, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/v1/keys/"+url.PathEscape(key)+"/sign", "application/json", body)
	if err != nil {
		return nil, err
	}
	var out RawSignResponse
	if err := c.doJSON(req, &out); err != nil {
		return nil, err
	}
	sig, err := base64.StdEncoding.DecodeString(out.Signature)
	if err != nil || len(sig) == 0 {
		return nil, errors.New("raw sign: the response holds no valid base64 signature")
	}
	return sig, nil
}

// Health is the liveness answer of GET /healthz.
type Health struct {
	Status string `json:"status"`
}

// Health checks that the daemon serves.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	if err := c.getJSON(ctx, "/healthz", &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// Readiness is the answer of GET /readyz: "ready" or "not-ready", and each
// token's state.
type Readiness struct {
	Status string            `json:"status"`
	Tokens map[string]string `json:"tokens"`
}

// Ready reports whether every configured token answers. When one does not,
// it returns the per-token states together with ErrNotReady, so callers can
// show which token is down.
func (c *Client) Ready(ctx context.Context) (*Readiness, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/readyz", "", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable && isJSON(resp) {
		var r Readiness
		body, err := readLimited(resp.Body, maxJSONResponse)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, fmt.Errorf("readyz: %w", err)
		}
		return &r, ErrNotReady
	}
	var r Readiness
	if err := decodeJSONResponse(resp, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ErrNotReady is returned by Client.Ready, with the token states, when a
// configured token is not online.
var ErrNotReady = errors.New("wssignd is not ready")

func (c *Client) envelope(ctx context.Context, path, profile string, envelope []byte, contentType string, hdr http.Header) ([]byte, Meta, error) {
	req, err := c.newRequest(ctx, http.MethodPost, path+"?"+url.Values{"profile": {profile}}.Encode(), contentType, envelope)
	if err != nil {
		return nil, Meta{}, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, Meta{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, Meta{}, problemOf(resp)
	}
	meta := Meta{
		Key:        resp.Header.Get("Wssignd-Key"),
		CertSerial: resp.Header.Get("Wssignd-Cert-Serial"),
		RequestID:  resp.Header.Get("Wssignd-Request-Id"),
	}
	b, err := readLimited(resp.Body, maxEnvelopeResponse)
	if err != nil {
		return nil, meta, err
	}
	return b, meta, nil
}

func (c *Client) newRequest(ctx context.Context, method, pathQuery, contentType string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, clientBase+pathQuery, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "*/*")
	return req, nil
}

func (c *Client) getJSON(ctx context.Context, path string, v any) error {
	req, err := c.newRequest(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	return c.doJSON(req, v)
}

func (c *Client) doJSON(req *http.Request, v any) error {
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeJSONResponse(resp, v)
}

func decodeJSONResponse(resp *http.Response, v any) error {
	if resp.StatusCode/100 != 2 {
		return problemOf(resp)
	}
	if !isJSON(resp) {
		return fmt.Errorf("%s: unexpected Content-Type %q", resp.Request.URL.Path, resp.Header.Get("Content-Type"))
	}
	body, err := readLimited(resp.Body, maxJSONResponse)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: decoding the response: %w", resp.Request.URL.Path, err)
	}
	return nil
}

func mediaType(resp *http.Response) string {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return mt
}

func isProblem(resp *http.Response) bool { return mediaType(resp) == "application/problem+json" }
func isJSON(resp *http.Response) bool    { return mediaType(resp) == "application/json" }

// problemOf turns a non-success response into a *ProblemError. A body that
// is not problem+json (a proxy, a bug) still yields one, with the status
// and an empty Code.
func problemOf(resp *http.Response) error {
	pe := &ProblemError{}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if n, err := strconv.Atoi(ra); err == nil && n >= 0 {
			pe.RetryAfter = time.Duration(n) * time.Second
		}
	}
	body, err := readLimited(resp.Body, 64<<10)
	if err == nil && isProblem(resp) {
		err = json.Unmarshal(body, &pe.Problem)
	}
	if err != nil || !isProblem(resp) {
		pe.Problem = Problem{Detail: "the response is not a problem document"}
	}
	if pe.Status == 0 {
		pe.Status = resp.StatusCode
	}
	if pe.RequestID == "" {
		pe.RequestID = resp.Header.Get("Wssignd-Request-Id")
	}
	return pe
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("the response exceeds %d bytes", limit)
	}
	return b, nil
}

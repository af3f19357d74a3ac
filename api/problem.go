package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/wssignd/wssignd/wss"
)

// ProblemTypeBase prefixes every problem type URI; the fragment is the
// stable problem code, documented in docs/errors.md.
const ProblemTypeBase = "https://github.com/wssignd/wssignd/blob/main/docs/errors.md#"

// Problem codes that are not wss codes.
const (
	CodeNotFound         = "not-found"
	CodeMethodNotAllowed = "method-not-allowed"
	CodeUnsupportedMedia = "unsupported-media-type"
	CodeBodyTooLarge     = "body-too-large"
	CodeBadRequest       = "bad-request"
	CodeForbidden        = "forbidden"
	CodeTokenUnavailable = "token-unavailable"
	CodeOverloaded       = "overloaded"
	CodeTimeout          = "timeout"
	CodeBrowserForbidden = "browser-request"
	CodeInternalError    = "internal"
)

// Problem is an RFC 9457 problem details object. Detail never holds secret
// material, stack traces or internal paths.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Code      string `json:"code"`
	RequestID string `json:"request_id,omitempty"`

	retryAfter time.Duration
}

// Error is an error that a handler returns to have it sent as a problem.
type Error struct {
	Status int
	Code   string
	Detail string
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter time.Duration
	Err        error // logged, never sent
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Detail + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

var titles = map[string]string{
	CodeNotFound:                     "No such resource",
	CodeMethodNotAllowed:             "Method not allowed",
	CodeUnsupportedMedia:             "Unsupported media type",
	CodeBodyTooLarge:                 "Request body too large",
	CodeBadRequest:                   "Bad request",
	CodeForbidden:                    "Forbidden",
	CodeTokenUnavailable:             "Token unavailable",
	CodeOverloaded:                   "Too many requests in flight",
	CodeTimeout:                      "Request deadline exceeded",
	CodeBrowserForbidden:             "Browser requests are refused",
	CodeInternalError:                "Internal error",
	CodeHeaderTooLarge:               "Request header fields too large",
	CodeTooManyRequests:              "Too many requests from this caller",
	CodeBodyTimeout:                  "Request body too slow",
	string(wss.CodeMalformedXML):     "Malformed XML",
	string(wss.CodeDTDForbidden):     "DTDs and entity declarations are refused",
	string(wss.CodeTooLarge):         "Envelope too large",
	string(wss.CodeTooComplex):       "Envelope too complex",
	string(wss.CodeNotSOAP):          "Not a SOAP envelope",
	string(wss.CodeInvalidSOAP):      "Invalid SOAP envelope structure",
	string(wss.CodeDuplicateID):      "Duplicate Id",
	string(wss.CodeMissingPart):      "Required part missing",
	string(wss.CodeUnsupported):      "Unsupported algorithm or option",
	string(wss.CodeSigningFailed):    "Signing failed",
	string(wss.CodeDecryptionFailed): "Decryption failed",
	string(wss.CodeNoEncryptedKey):   "No EncryptedKey for this recipient",
	string(wss.CodeBadRecipient):     "Unusable recipient certificate",
	CodeRecipientRejected:            "Recipient certificate rejected",
	string(wss.CodeUnsignedBody):     "Body not signed",
}

// wssStatus maps wss error codes to HTTP statuses.
var wssStatus = map[wss.Code]int{
	wss.CodeMalformedXML:  http.StatusBadRequest,
	wss.CodeDTDForbidden:  http.StatusBadRequest,
	wss.CodeTooLarge:      http.StatusRequestEntityTooLarge,
	wss.CodeTooComplex:    http.StatusRequestEntityTooLarge,
	wss.CodeNotSOAP:       http.StatusUnprocessableEntity,
	wss.CodeInvalidSOAP:   http.StatusUnprocessableEntity,
	wss.CodeDuplicateID:   http.StatusUnprocessableEntity,
	wss.CodeMissingPart:   http.StatusUnprocessableEntity,
	wss.CodeUnsupported:   http.StatusUnprocessableEntity,
	wss.CodeSigningFailed: http.StatusServiceUnavailable,
	wss.CodeTimeout:       http.StatusGatewayTimeout,
	wss.CodeInternal:      http.StatusInternalServerError,
	// Every decryption failure has the same status, code and detail.
	wss.CodeDecryptionFailed: http.StatusUnprocessableEntity,
	wss.CodeNoEncryptedKey:   http.StatusUnprocessableEntity,
	wss.CodeBadRecipient:     http.StatusUnprocessableEntity,
	wss.CodeUnsignedBody:     http.StatusUnprocessableEntity,
}

// isTimeout reports whether err is the request's deadline passing: it is
// answered 504 timeout, never blamed on the token or the input.
func isTimeout(err error) bool { return errors.Is(err, context.DeadlineExceeded) }

// toProblem is the one place where an error becomes a response: a passed
// deadline anywhere in the chain is 504 timeout, whatever wraps it; then
// API errors, then wss errors by code.
func toProblem(err error) *Problem {
	if isTimeout(err) {
		return &Problem{Code: CodeTimeout, Status: http.StatusGatewayTimeout, Detail: "the request deadline passed"}
	}
	var ae *Error
	if errors.As(err, &ae) {
		return &Problem{Code: ae.Code, Status: ae.Status, Detail: ae.Detail, retryAfter: ae.RetryAfter}
	}
	var we *wss.Error
	if errors.As(err, &we) {
		st, ok := wssStatus[we.Code]
		if !ok {
			st = http.StatusInternalServerError
		}
		detail := we.Msg
		if st >= 500 {
			detail = "" // the cause is logged, not sent
		}
		return &Problem{Code: string(we.Code), Status: st, Detail: detail}
	}
	return &Problem{Code: CodeInternalError, Status: http.StatusInternalServerError}
}

func writeProblem(w http.ResponseWriter, p *Problem, requestID string) {
	p.Type = ProblemTypeBase + p.Code
	p.Title = titles[p.Code]
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	p.RequestID = requestID
	// The JSON text and final newline json.Encoder would write, with its
	// length: the answer goes out in one Write, complete even when the
	// handler has not returned (the watchdog's).
	body, err := json.Marshal(p)
	if err != nil {
		body = []byte(`{}`) // a Problem holds strings and an int only
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("X-Content-Type-Options", "nosniff")
	if p.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((p.retryAfter+time.Second-1)/time.Second)))
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

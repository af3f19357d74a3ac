package wss

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable class of failure. Callers (the HTTP API
// among them) map codes to statuses and problem types; the strings never
// change once published.
type Code string

const (
	CodeMalformedXML  Code = "malformed-xml"  // not well-formed XML, or not UTF-8
	CodeDTDForbidden  Code = "dtd-forbidden"  // DOCTYPE or entity declaration present
	CodeTooLarge      Code = "too-large"      // byte size over the limit
	CodeTooComplex    Code = "too-complex"    // depth or element count over the limit
	CodeNotSOAP       Code = "not-soap"       // root is not a SOAP 1.1/1.2 Envelope
	CodeInvalidSOAP   Code = "invalid-soap"   // Envelope structure wrong: no Body, two Bodies, misplaced Header/Body
	CodeDuplicateID   Code = "duplicate-id"   // an Id value occurs more than once
	CodeMissingPart   Code = "missing-part"   // a required part to sign is absent
	CodeUnsupported   Code = "unsupported"    // algorithm or option not supported for this key
	CodeSigningFailed Code = "signing-failed" // the signer returned an error
	CodeInternal      Code = "internal"       // a bug: an invariant of wss itself failed
)

// Error is the one error type returned by this package's entry points.
// Msg is safe to show to the caller that sent the envelope: it never holds
// key material.
type Error struct {
	Code Code
	Msg  string
	Err  error // underlying cause, if any (e.g. the signer's error)
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Msg, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the Code of err if it is (or wraps) an *Error, else "".
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

package wss

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"slices"
	"strings"
	"time"
)

// Timestamp zone spellings for SignOptions.TimestampZone.
const (
	TimestampZoneZ      = "Z"
	TimestampZoneOffset = "+00:00"
)

// checkHeaderOptions checks the options that shape the Security header
// whether or not it carries a Signature.
func checkHeaderOptions(opts *SignOptions) error {
	switch opts.SOAPVersion {
	case "", "1.1", "1.2":
	default:
		return errorf(CodeUnsupported, "unknown SOAP version %q", opts.SOAPVersion)
	}
	if opts.TTL < 0 {
		return errorf(CodeUnsupported, "negative Timestamp TTL")
	}
	switch opts.TimestampZone {
	case "", TimestampZoneZ, TimestampZoneOffset:
	default:
		return errorf(CodeUnsupported, "unknown Timestamp zone %q (want %q or %q)", opts.TimestampZone, TimestampZoneZ, TimestampZoneOffset)
	}
	if opts.Layout != "" && !slices.Contains(Layouts(), opts.Layout) {
		return errorf(CodeUnsupported, "unknown layout %q", opts.Layout)
	}
	if strings.ContainsFunc(opts.Actor, func(r rune) bool { return r < 0x20 && r != '\t' && r != '\n' && r != '\r' }) {
		return errorf(CodeUnsupported, "actor holds characters XML cannot carry")
	}
	if opts.UsernameToken != nil {
		if err := opts.UsernameToken.check(); err != nil {
			return err
		}
	}
	if err := checkConfirmations(opts); err != nil {
		return err
	}
	if opts.NoTransforms && opts.InclusivePrefixes {
		return errorf(CodeUnsupported, "an InclusiveNamespaces PrefixList needs Transforms to go in")
	}
	if opts.NoSignature {
		if len(opts.Parts) > 0 {
			return errorf(CodeUnsupported, "parts to sign without a Signature")
		}
		if opts.UsernameToken == nil && opts.NoTimestamp {
			return errorf(CodeUnsupported, "neither a Signature, a UsernameToken nor a Timestamp: the Security header would be empty")
		}
	}
	return nil
}

// checkVersion refuses an envelope of the other SOAP version than the
// profile's.
func checkVersion(opts *SignOptions, env *envelope) error {
	return checkSOAPVersion(opts.SOAPVersion, env.version)
}

// checkSOAPVersion refuses an envelope of version got when want ("1.1" or
// "1.2"; "" accepts both) names the other one.
func checkSOAPVersion(want string, got soapVersion) error {
	switch {
	case want == "1.1" && got != soap11:
		return errorf(CodeInvalidSOAP, "SOAP 1.1 only is accepted here; this is a SOAP 1.2 envelope")
	case want == "1.2" && got != soap12:
		return errorf(CodeInvalidSOAP, "SOAP 1.2 only is accepted here; this is a SOAP 1.1 envelope")
	}
	return nil
}

// timestampTimes returns Created and Expires ("" with NoExpires) for a
// Timestamp made at now: UTC, whole seconds or milliseconds (WS-I BSP 1.1
// R3220/R3229 allow at most three fractional digits), zone as
// TimestampZone says.
func timestampTimes(opts *SignOptions, now time.Time, ttl time.Duration) (created, expires string) {
	layout, precision := "2006-01-02T15:04:05", time.Second
	if opts.TimestampMillis {
		layout, precision = "2006-01-02T15:04:05.000", time.Millisecond
	}
	zone := TimestampZoneZ
	if opts.TimestampZone != "" {
		zone = opts.TimestampZone
	}
	c := now.UTC().Truncate(precision)
	created = c.Format(layout) + zone
	if !opts.NoExpires {
		expires = c.Add(ttl).Format(layout) + zone
	}
	return created, expires
}

// addHeader is Sign with NoSignature: it adds the UsernameToken and the
// Timestamp (unless NoTimestamp) to the Security header, and no Signature.
func addHeader(ctx context.Context, raw []byte, opts SignOptions) (*SignResult, error) {
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = defaultTTL
	}
	env, err := scanEnvelopeBody(ctx, raw, opts.Limits, nil)
	if err != nil {
		return nil, err
	}
	if err := checkVersion(&opts, env); err != nil {
		return nil, err
	}
	s := &signer{env: env, rnd: rnd, opts: &opts}
	if err := s.plan(nil); err != nil {
		return nil, err
	}
	if opts.UsernameToken != nil {
		if s.utID, err = s.newID("UsernameToken-"); err != nil {
			return nil, err
		}
		if opts.UsernameToken.Digest {
			s.nonce = make([]byte, 16)
			if _, err := io.ReadFull(rnd, s.nonce); err != nil {
				return nil, &Error{Code: CodeInternal, Msg: "random source", Err: err}
			}
		}
	}
	if !opts.NoTimestamp {
		if s.tsID, err = s.newID("TS-"); err != nil {
			return nil, err
		}
	}
	s.created, s.expires = timestampTimes(&opts, now(), ttl)
	s.render()
	res := &SignResult{parts: s.splice("")}
	if !opts.NoCopy {
		res.Envelope = bytes.Join(res.parts, nil)
		res.parts = nil
	}
	return res, nil
}

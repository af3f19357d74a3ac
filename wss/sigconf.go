package wss

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
)

// Limits on what a responder is asked to confirm: a request carries few
// signatures, and no signature value is longer than an RSA-16384 one.
const (
	MaxConfirmations      = 16
	maxSignatureValueSize = 2048
)

// checkConfirmations checks the SignatureConfirmation options.
func checkConfirmations(opts *SignOptions) error {
	if !opts.SignatureConfirmation {
		if opts.ConfirmValues != nil {
			return errorf(CodeUnsupported, "signature values to confirm, but the profile sends no SignatureConfirmation")
		}
		return nil
	}
	if opts.NoSignature {
		return errorf(CodeUnsupported, "SignatureConfirmation needs a Signature that covers it")
	}
	if len(opts.ConfirmValues) > MaxConfirmations {
		return errorf(CodeUnsupported, "%d signature values to confirm; at most %d", len(opts.ConfirmValues), MaxConfirmations)
	}
	for _, v := range opts.ConfirmValues {
		if len(v) == 0 || len(v) > maxSignatureValueSize {
			return errorf(CodeUnsupported, "a signature value to confirm of %d bytes", len(v))
		}
	}
	return nil
}

// renderConfirmations renders the wsse11:SignatureConfirmation elements
// (WS-Security 1.1 §8.5): one per value, or one without Value when the
// request carried no signature. Each declares the WSS 1.1 namespace; wsu
// is the wsu prefix in scope and decl what it must declare.
func renderConfirmations(values [][]byte, ids []string, wsu, decl string) [][]byte {
	p := "wsse11"
	if wsu == p {
		p = "wsse11a"
	}
	out := make([][]byte, len(ids))
	for i, id := range ids {
		value := ""
		if i < len(values) {
			value = ` Value="` + base64.StdEncoding.EncodeToString(values[i]) + `"`
		}
		out[i] = cat("<", p, ":SignatureConfirmation xmlns:", p, `="`, NSWSSE11, `"`, decl, " ", wsu, `:Id="`, id, `"`, value, "/>")
	}
	return out
}

// RequestSignatureValues returns the ds:SignatureValue octets of every
// ds:Signature directly in the wsse:Security header of the request
// envelope raw addressed to actor ("" the ultimate receiver): what a
// responder confirms with SignatureConfirmation. An unsigned request
// gives none.
func RequestSignatureValues(raw []byte, actor string, lim Limits) ([][]byte, error) {
	env, err := scanEnvelopeBody(context.Background(), raw, lim, nil)
	if err != nil {
		return nil, err
	}
	s := &signer{env: env}
	want := s.actorOf(actor)
	var out [][]byte
	for _, sec := range env.security {
		if v, _ := sec.attr(env.version.ns, actorAttr(env.version)); s.actorOf(v) != want {
			continue
		}
		for _, sig := range sec.children {
			if sig.space != NSDSig || sig.local != "Signature" {
				continue
			}
			v, err := signatureValue(raw, sig)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// signatureValue reads the SignatureValue child of the Signature el.
func signatureValue(raw []byte, el *element) ([]byte, error) {
	end := el.startEnd
	if !el.selfClosing {
		end = el.endStart + bytes.IndexByte(raw[el.endStart:], '>') + 1
	}
	t := getTokenizer(raw[el.start:end])
	defer putTokenizer(t)
	t.fragment = true
	for p, u := range el.scope.all() {
		if p != "xml" {
			t.ns.push([]byte(p), []byte(u))
		}
	}
	var text strings.Builder
	in, found := false, false
	for {
		k, err := t.next()
		if err != nil {
			return nil, &Error{Code: CodeMalformedXML, Msg: "reading the request's Signature", Err: err}
		}
		switch {
		case k == tokEOF:
			if !found {
				return nil, errorf(CodeInvalidSOAP, "a request Signature without SignatureValue")
			}
			v, err := decodeBase64Text(text.String())
			if err != nil {
				return nil, &Error{Code: CodeInvalidSOAP, Msg: "the request's SignatureValue", Err: err}
			}
			return v, nil
		case k == tokStart && t.depth == 2 && string(t.local) == "SignatureValue" && string(t.uri) == NSDSig && !found:
			in, found = true, true
		case k == tokEnd && in && t.depth == 2:
			in = false
		case in && (k == tokText || k == tokCDATA):
			text.Write(t.data)
		}
	}
}

// decodeBase64Text decodes base64 character data that may hold XML
// whitespace, literal or as character references.
func decodeBase64Text(s string) ([]byte, error) {
	s = strings.NewReplacer("&#xD;", "", "&#xd;", "", "&#13;", "", "&#xA;", "", "&#xa;", "", "&#10;", "", "&#x9;", "", "&#9;", "", "&#x20;", "", "&#32;", "").Replace(s)
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.DecodeString(s)
}

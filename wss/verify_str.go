package wss

// The STR Dereference Transform (WS-Security 1.1 SOAP Message Security
// §8.3): a Reference whose URI names a wsse:SecurityTokenReference and
// whose only transform is the STR-Transform covers the security token the
// SecurityTokenReference references, not the SecurityTokenReference
// itself. .NET and Metro stacks use it to sign the token of a signature's
// KeyInfo.
//
// The octets digested are the token element canonicalised with the
// algorithm of wsse:TransformationParameters/ds:CanonicalizationMethod
// (Basic Security Profile 1.1: exclusive C14N), the default namespace
// treated as inclusive ("#default") and declared on the apex even when it
// is empty (xmlns=""), as §8.3 requires of the apex and as Apache WSS4J
// (STRTransform with Santuario's propagateDefaultNamespace) computes it.
// xmlsec1 does not implement the transform.
//
// What it may cover is narrow, so that it cannot become a way around the
// signature-wrapping defences: the SecurityTokenReference must be inside
// our Security header and hold one wsse:Reference to a
// wsse:BinarySecurityToken that is a child of our Security header (the
// element recorded as signed); references that name a token outside the
// message (KeyIdentifier, X509IssuerSerial) are refused.

import (
	"bytes"
	"io"
	"strings"
)

// AlgSTRTransform is the STR Dereference Transform.
const AlgSTRTransform = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#STR-Transform"

// readSTRTransformParams checks the STR-Transform's parameters: one
// wsse:TransformationParameters holding one ds:CanonicalizationMethod of
// exclusive C14N without parameters.
func readSTRTransformParams(tr elemRef) error {
	kids := tr.children()
	if len(kids) != 1 || !kids[0].is(NSWSSE, "TransformationParameters") {
		return fail(CodeTransformNotAllowed, "", "the STR-Transform needs one wsse:TransformationParameters")
	}
	cm := kids[0].children()
	if len(cm) != 1 || !cm[0].is(NSDSig, "CanonicalizationMethod") {
		return fail(CodeTransformNotAllowed, "", "the STR-Transform's TransformationParameters must hold one ds:CanonicalizationMethod")
	}
	if alg := cm[0].attrValue("Algorithm"); alg != AlgExcC14N {
		return fail(CodeTransformNotAllowed, "", "the STR-Transform's canonicalization %q is not exclusive C14N", alg)
	}
	if cm[0].hasChildren() {
		return fail(CodeTransformNotAllowed, "", "parameters of the STR-Transform's CanonicalizationMethod are not accepted")
	}
	return nil
}

// dereferenceSTR returns the BinarySecurityToken of our Security header that
// the SecurityTokenReference str (named by the Reference uri) references.
func (v *verifier) dereferenceSTR(uri string, str elemRef) (elemRef, error) {
	if !str.is(NSWSSE, "SecurityTokenReference") {
		return elemRef{}, fail(CodeTransformNotAllowed, uri, "the STR-Transform applies to a SecurityTokenReference, not to %s", str.path())
	}
	inSec := false
	for p := str.parent(); p.ok(); p = p.parent() {
		if p == v.sec {
			inSec = true
			break
		}
	}
	if !v.sec.ok() || !inSec {
		return elemRef{}, fail(CodeTransformNotAllowed, uri, "the SecurityTokenReference at %s is not in our Security header", str.path())
	}
	kids := str.children()
	if len(kids) != 1 || !kids[0].is(NSWSSE, "Reference") {
		return elemRef{}, fail(CodeTransformNotAllowed, uri, "the STR-Transform is accepted for a SecurityTokenReference holding one wsse:Reference to a BinarySecurityToken")
	}
	ref := kids[0]
	tid, ok := strings.CutPrefix(ref.attrValue("URI"), "#")
	if !ok || tid == "" {
		return elemRef{}, fail(CodeTransformNotAllowed, uri, "the SecurityTokenReference's reference is not a same-document \"#id\"")
	}
	tok := v.tree.byID(tid)
	if !tok.ok() {
		return elemRef{}, fail(CodeReferenceNotFound, uri, "no token has the Id %q", tid)
	}
	if tok.parent() != v.sec || !tok.is(NSWSSE, "BinarySecurityToken") {
		return elemRef{}, fail(CodeTransformNotAllowed, uri, "the SecurityTokenReference does not name a BinarySecurityToken of our Security header")
	}
	if vt := ref.attrValue("ValueType"); vt != "" && vt != tok.attrValue("ValueType") {
		return elemRef{}, fail(CodeTransformNotAllowed, uri, "the reference's ValueType does not match the token's")
	}
	return tok, nil
}

// canonicalizeSTRToken writes the STR-Transform's output for the token tok:
// its exclusive canonical form with "#default" inclusive and the default
// namespace declared on the apex (xmlns="" when none is in scope). The
// canonical bytes stream to w (so that the References' budget stops a large
// token early); only the apex's first bytes wait for the decision.
func canonicalizeSTRToken(tok elemRef, w io.Writer) error {
	aw := &strApexWriter{w: w, head: len(tok.qname()) + 1}
	if err := tok.canonicalize(aw, []string{"#default"}, false); err != nil {
		return err
	}
	return aw.flush()
}

// strApexWriter passes canonical bytes through to w, adding xmlns="" after
// the apex's "<QName" unless a default namespace declaration follows it
// (canonical order puts it first).
type strApexWriter struct {
	w    io.Writer
	head int // len("<" + QName)
	buf  []byte
	done bool
}

var xmlnsDefault = []byte(` xmlns="`)

func (s *strApexWriter) Write(p []byte) (int, error) {
	if s.done {
		return s.w.Write(p)
	}
	s.buf = append(s.buf, p...)
	if len(s.buf) >= s.head+len(xmlnsDefault) {
		if err := s.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// flush decides on the apex's default namespace and writes what was held.
func (s *strApexWriter) flush() error {
	if s.done {
		return nil
	}
	s.done = true
	b := s.buf
	s.buf = nil
	if len(b) >= s.head && !bytes.HasPrefix(b[s.head:], xmlnsDefault) {
		if _, err := s.w.Write(b[:s.head]); err != nil {
			return err
		}
		if _, err := io.WriteString(s.w, ` xmlns=""`); err != nil {
			return err
		}
		b = b[s.head:]
	}
	_, err := s.w.Write(b)
	return err
}

package wss

import (
	"context"
	"fmt"
)

// Limits bound what an untrusted envelope may cost before any cryptography.
// The tokenizer enforces every one of them on every route (Sign, Verify,
// Encrypt, Decrypt) before any other parser sees the input, so that work and
// memory grow with the input's size, never with its shape. A zero field
// takes its default (the Default… constants); a violation is an *Error
// with CodeTooLarge (MaxBytes) or CodeTooComplex (the others).
type Limits struct {
	MaxBytes    int64 // the whole envelope; default DefaultMaxBytes
	MaxDepth    int   // element nesting; default DefaultMaxDepth
	MaxElements int   // elements in the document; default DefaultMaxElements
	// MaxAttributes bounds the attributes of one element, namespace
	// declarations included; default DefaultMaxAttributes.
	MaxAttributes int
	// MaxNamespacesInScope bounds the namespace declarations in force at
	// any element: its own and its ancestors' (shadowed ones included);
	// default DefaultMaxNamespacesInScope.
	MaxNamespacesInScope int
	// MaxNamespaceDecls bounds the namespace declarations of the whole
	// document; default DefaultMaxNamespaceDecls.
	MaxNamespaceDecls int
	// MaxNameBytes bounds the length of one element or attribute name
	// (prefix included) or PI target; default DefaultMaxNameBytes.
	MaxNameBytes int
	// MaxTextBytes bounds one text node, CDATA section, comment or PI, as
	// written; default DefaultMaxTextBytes.
	MaxTextBytes int
	// MaxAttrValueBytes bounds one attribute value, as written; default
	// DefaultMaxAttrValueBytes.
	MaxAttrValueBytes int
}

// The default limits: generous for every real SOAP message (inline binary
// content in a text node included), tight enough that no shape of input
// costs more than a small multiple of its size.
const (
	DefaultMaxBytes             = 16 << 20
	DefaultMaxDepth             = 256
	DefaultMaxElements          = 1_000_000
	DefaultMaxAttributes        = 256
	DefaultMaxNamespacesInScope = 512
	DefaultMaxNamespaceDecls    = 100_000
	DefaultMaxNameBytes         = 1024
	DefaultMaxTextBytes         = 16 << 20
	DefaultMaxAttrValueBytes    = 1 << 20
)

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	def(&l.MaxDepth, DefaultMaxDepth)
	def(&l.MaxElements, DefaultMaxElements)
	def(&l.MaxAttributes, DefaultMaxAttributes)
	def(&l.MaxNamespacesInScope, DefaultMaxNamespacesInScope)
	def(&l.MaxNamespaceDecls, DefaultMaxNamespaceDecls)
	def(&l.MaxNameBytes, DefaultMaxNameBytes)
	def(&l.MaxTextBytes, DefaultMaxTextBytes)
	def(&l.MaxAttrValueBytes, DefaultMaxAttrValueBytes)
	return l
}

// CodeTimeout: the caller's context ended (its deadline passed, or it was
// cancelled) while the envelope was being processed. The error wraps the
// context's error, so errors.Is(err, context.DeadlineExceeded) holds for a
// deadline. It says nothing about the input, the key or its token.
const CodeTimeout Code = "timeout"

// ctxError returns the error for a context that has ended, or nil.
func ctxError(ctx context.Context) error {
	if ctx == nil {
		return nil
	}
	err := ctx.Err()
	if err == nil {
		return nil
	}
	msg := "the deadline passed while the envelope was processed"
	if err == context.Canceled {
		msg = "the request was cancelled while the envelope was processed"
	}
	return &Error{Code: CodeTimeout, Msg: msg, Err: err}
}

// tooComplex is the error of a limit other than the size.
func tooComplex(format string, args ...any) *Error {
	return &Error{Code: CodeTooComplex, Msg: fmt.Sprintf(format, args...)}
}

// How often the tokenizer looks at its context: every ctxEveryTokens
// tokens or ctxEveryBytes of input, whichever comes first.
const (
	ctxEveryTokens = 2048
	ctxEveryBytes  = 64 << 10
)

// bound applies lim (with defaults) and ctx to t.
func (t *xmlTokenizer) bound(ctx context.Context, lim Limits) {
	lim = lim.withDefaults()
	t.ctx = ctx
	t.maxDepth, t.maxElements = lim.MaxDepth, lim.MaxElements
	t.maxAttrs, t.maxNSInScope, t.maxNSDecls = lim.MaxAttributes, lim.MaxNamespacesInScope, lim.MaxNamespaceDecls
	t.maxName, t.maxText, t.maxAttrValue = lim.MaxNameBytes, lim.MaxTextBytes, lim.MaxAttrValueBytes
}

// checkCtx is called once per token: it asks the context every
// ctxEveryTokens tokens or ctxEveryBytes bytes.
func (t *xmlTokenizer) checkCtx() error {
	t.tokens++
	if t.ctx == nil || (t.tokens < ctxEveryTokens && t.pos-t.ctxPos < ctxEveryBytes) {
		return nil
	}
	t.tokens, t.ctxPos = 0, t.pos
	return ctxError(t.ctx)
}

// internalError is an invariant failure of wss, unless err is the end of the
// caller's context, which is returned as it is.
func internalError(msg string, err error) error {
	if CodeOf(err) == CodeTimeout {
		return err
	}
	return &Error{Code: CodeInternal, Msg: msg, Err: err}
}

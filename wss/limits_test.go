package wss

import (
	"bytes"
	"context"
	"crypto"
	"encoding/xml"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLimitsEnforced: each limit accepts an envelope exactly at it and
// refuses one just over it with CodeTooComplex, on the scan every route
// starts with.
func TestLimitsEnforced(t *testing.T) {
	env := func(envAttrs, body string) []byte {
		return []byte(`<soap:Envelope xmlns:soap="` + NSSOAP11 + `"` + envAttrs + `><soap:Body>` + body + `</soap:Body></soap:Envelope>`)
	}
	attrs := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(` a` + strings.Repeat("x", i%3) + string(rune('A'+i/3)) + `="1"`)
		}
		return b.String()
	}
	decls := func(n int, p string) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(` xmlns:` + p + string(rune('a'+i)) + `="urn:x"`)
		}
		return b.String()
	}
	nested := func(levels int, perLevel int) string {
		var b strings.Builder
		for l := range levels {
			b.WriteString(`<e` + decls(perLevel, "l"+string(rune('a'+l))) + `>`)
		}
		for range levels {
			b.WriteString(`</e>`)
		}
		return b.String()
	}
	siblings := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(`<e xmlns:s` + string(rune('a'+i)) + `="urn:x"/>`)
		}
		return b.String()
	}
	for _, tc := range []struct {
		name       string
		lim        Limits
		at, over   []byte
		wantInDiag string
	}{
		{"attributes", Limits{MaxAttributes: 20}, env("", `<x`+attrs(20)+`/>`), env("", `<x`+attrs(21)+`/>`), "attributes"},
		{"namespaces in scope", Limits{MaxNamespacesInScope: 10}, env("", nested(2, 4)+`<e`+decls(9, "z")+`/>`), env("", nested(3, 4)), "in scope"},
		{"namespace declarations", Limits{MaxNamespaceDecls: 10}, env("", siblings(9)), env("", siblings(10)), "namespace declarations in the document"},
		{"name length", Limits{MaxNameBytes: 16}, env("", `<p:abcdefghijklmn xmlns:p="urn:x"/>`), env("", `<p:abcdefghijklmno xmlns:p="urn:x"/>`), "name"},
		{"text", Limits{MaxTextBytes: 1024}, env("", `<x>`+strings.Repeat("t", 1024)+`</x>`), env("", `<x>`+strings.Repeat("t", 1025)+`</x>`), "text node"},
		{"CDATA", Limits{MaxTextBytes: 1024}, env("", `<x><![CDATA[`+strings.Repeat("t", 1024)+`]]></x>`), env("", `<x><![CDATA[`+strings.Repeat("t", 1025)+`]]></x>`), "CDATA"},
		{"comment", Limits{MaxTextBytes: 1024}, env("", `<!--`+strings.Repeat("t", 1024)+`-->`), env("", `<!--`+strings.Repeat("t", 1025)+`-->`), "comment"},
		{"PI", Limits{MaxTextBytes: 1024}, env("", `<?pi `+strings.Repeat("t", 1024)+`?>`), env("", `<?pi `+strings.Repeat("t", 1025)+`?>`), "processing instruction"},
		{"attribute value", Limits{MaxAttrValueBytes: 1024}, env("", `<x a="`+strings.Repeat("&amp;", 1024/5)+`"/>`), env("", `<x a="`+strings.Repeat("v", 1025)+`"/>`), "attribute value"},
		{"depth", Limits{MaxDepth: 4}, env("", `<a><b/></a>`), env("", `<a><b><c/></b></a>`), "deeper"},
		{"elements", Limits{MaxElements: 4}, env("", `<a/><b/>`), env("", `<a/><b/><c/>`), "elements"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := scanEnvelope(context.Background(), tc.at, tc.lim); err != nil {
				t.Fatalf("at the limit: %v\n%s", err, tc.at)
			}
			_, err := scanEnvelope(context.Background(), tc.over, tc.lim)
			if CodeOf(err) != CodeTooComplex || !strings.Contains(err.Error(), tc.wantInDiag) {
				t.Fatalf("over the limit: %v, want %s naming %q", err, CodeTooComplex, tc.wantInDiag)
			}
		})
	}
}

// TestLimitsDefaults: a zero Limits is the defaults, all on.
func TestLimitsDefaults(t *testing.T) {
	got := Limits{}.withDefaults()
	want := Limits{MaxBytes: DefaultMaxBytes, MaxDepth: DefaultMaxDepth, MaxElements: DefaultMaxElements,
		MaxAttributes: DefaultMaxAttributes, MaxNamespacesInScope: DefaultMaxNamespacesInScope, MaxNamespaceDecls: DefaultMaxNamespaceDecls,
		MaxNameBytes: DefaultMaxNameBytes, MaxTextBytes: DefaultMaxTextBytes, MaxAttrValueBytes: DefaultMaxAttrValueBytes}
	if got != want {
		t.Fatalf("defaults %+v, want %+v", got, want)
	}
	// A limit set stays.
	if l := (Limits{MaxAttributes: 7}).withDefaults(); l.MaxAttributes != 7 {
		t.Fatalf("MaxAttributes %d", l.MaxAttributes)
	}
}

// countdownCtx is a context whose deadline "passes" at its n-th Err call:
// it finds every point where the work asks its context, deterministically.
type countdownCtx struct {
	context.Context
	n, calls atomic.Int64
}

func newCountdown(n int64) *countdownCtx {
	c := &countdownCtx{Context: context.Background()}
	c.n.Store(n)
	return c
}

func (c *countdownCtx) Err() error {
	if c.calls.Add(1) >= c.n.Load() {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *countdownCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

// countingSigner and countingDecrypter record how many times the context
// had been asked when the key was used.
type countingSigner struct {
	crypto.Signer
	ctx    *countdownCtx
	usedAt []int64
}

func (s *countingSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	s.usedAt = append(s.usedAt, s.ctx.calls.Load())
	return s.Signer.Sign(r, d, o)
}

type countingDecrypter struct {
	crypto.Decrypter
	ctx    *countdownCtx
	usedAt []int64
}

func (d *countingDecrypter) Decrypt(r io.Reader, m []byte, o crypto.DecrypterOpts) ([]byte, error) {
	d.usedAt = append(d.usedAt, d.ctx.calls.Load())
	return d.Decrypter.Decrypt(r, m, o)
}

// TestDeadlineEverywhere runs each route once to count the points where it
// asks its context, then once with the deadline passing at each of them:
// every run must end with an error that errors.Is context.DeadlineExceeded,
// of CodeTimeout (never a verdict or an internal error, which would blame
// the input or wss) or, once Decrypt used the key, of CodeDecryptionFailed;
// and the key must not be used once the deadline was seen.
func TestDeadlineEverywhere(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	trust := testTrust(t)
	raw := benchEnvelope(200 << 10)
	signed := signFixed(t, raw, cred, SignOptions{})
	encRes, err := Encrypt(context.Background(), signed, EncryptOptions{Recipient: cred.Chain[0]})
	if err != nil {
		t.Fatal(err)
	}
	encrypted := encRes.Envelope
	routes := []struct {
		name string
		run  func(ctx *countdownCtx) (keyUsedAt []int64, err error)
	}{
		{"sign", func(ctx *countdownCtx) ([]int64, error) {
			s := &countingSigner{Signer: cred.Signer, ctx: ctx}
			_, err := Sign(ctx, raw, Credential{Signer: s, Chain: cred.Chain}, SignOptions{Now: fixedNow, Parts: []Part{PartBody(), PartTimestamp(), PartBST(),
				{Space: "http://www.w3.org/2005/08/addressing", Local: "Action"}}})
			return s.usedAt, err
		}},
		{"sign-inclusive-prefixes", func(ctx *countdownCtx) ([]int64, error) {
			s := &countingSigner{Signer: cred.Signer, ctx: ctx}
			_, err := Sign(ctx, raw, Credential{Signer: s, Chain: cred.Chain}, SignOptions{Now: fixedNow, InclusivePrefixes: true})
			return s.usedAt, err
		}},
		{"verify", func(ctx *countdownCtx) ([]int64, error) {
			res, err := Verify(ctx, signed, VerifyOptions{Trust: trust, Now: fixedNow, AllowUnsignedAddressing: true})
			if err == nil && !res.Valid {
				return nil, errors.New("verdict " + string(res.Code) + ": " + res.Detail)
			}
			return nil, err
		}},
		{"encrypt", func(ctx *countdownCtx) ([]int64, error) {
			_, err := Encrypt(ctx, raw, EncryptOptions{Recipient: cred.Chain[0]})
			return nil, err
		}},
		{"decrypt-sign-then-encrypt", func(ctx *countdownCtx) ([]int64, error) {
			d := &countingDecrypter{Decrypter: cred.Signer.(crypto.Decrypter), ctx: ctx}
			res, err := Decrypt(ctx, encrypted, d, DecryptOptions{Certificate: cred.Chain[0], RequireSignedBody: &VerifyOptions{Trust: trust, Now: fixedNow, AllowUnsignedAddressing: true}})
			if err == nil && !bytes.Equal(res.Envelope, signed) {
				return nil, errors.New("wrong plaintext")
			}
			return d.usedAt, err
		}},
	}
	for _, r := range routes {
		t.Run(r.name, func(t *testing.T) {
			probe := newCountdown(1 << 62)
			if _, err := r.run(probe); err != nil {
				t.Fatalf("without a deadline: %v", err)
			}
			checks := probe.calls.Load()
			if checks < 3 {
				t.Fatalf("the route asked its context %d times: not inside its passes", checks)
			}
			for n := int64(1); n <= checks; n++ {
				usedAt, err := r.run(newCountdown(n))
				// Once the key was used, Decrypt's failure is a decryption
				// failure (the api audits the key's use), still wrapping
				// the deadline.
				want := CodeTimeout
				if len(usedAt) > 0 {
					want = CodeDecryptionFailed
				}
				if CodeOf(err) != want || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("deadline at check %d of %d: %v, want a %s error wrapping context.DeadlineExceeded", n, checks, err, want)
				}
				for _, at := range usedAt {
					if at >= n {
						t.Fatalf("deadline at check %d of %d: the key was used after it (at check %d)", n, checks, at)
					}
				}
			}
			t.Logf("%d checks of the context, each one honoured", checks)
		})
	}
}

// TestStdNameChecker: the one decoder that answers every encoding/xml name
// question of a tokenizer, and the per-character answers kept for the
// process, answer as a fresh decoder per name does, also after a refusal;
// and a document of many distinct non-ASCII names costs a small multiple of
// its size (it cost 48× with a decoder per name).
func TestStdNameChecker(t *testing.T) {
	fresh := func(name string) bool {
		d := xml.NewDecoder(strings.NewReader("<" + name + "/>"))
		d.Strict = true
		_, err := d.RawToken()
		return err == nil
	}
	runes := []rune{'é', 'ß', 'Ω', 'ǅ', '\u0300', '\u00B7', '\u0E2F', '\u2070', '\u3005', '中', '\U00010000', '\u0CF1', 'a', '1'}
	r := rand.New(rand.NewPCG(3, 4))
	var c stdNameChecker
	refused := 0
	for range 3000 {
		var b strings.Builder
		for range 1 + r.IntN(4) {
			b.WriteRune(runes[r.IntN(len(runes))])
		}
		name := b.String()
		want := fresh(name)
		if got := c.accepts([]byte(name)); got != want {
			t.Fatalf("accepts(%q) = %v, a fresh decoder says %v", name, got, want)
		}
		// The per-character answers (kept for the process) agree too, for
		// names whose ASCII characters the tokenizer's own rules admit.
		if !strings.ContainsRune(name, '1') {
			tk := getTokenizer(nil)
			if got := tk.stdName([]byte(name)); got != want {
				t.Fatalf("stdName(%q) = %v, a fresh decoder says %v", name, got, want)
			}
			putTokenizer(tk)
		}
		if !want {
			refused++
		}
	}
	if refused == 0 || refused == 3000 {
		t.Fatalf("%d of 3000 names refused: the test must see both answers", refused)
	}

	raw := hostileEnvelope(nil, nil, func(b *bytes.Buffer) {
		for i := range 100_000 {
			b.WriteString("<é" + strconv.Itoa(i%4000) + "/>")
		}
	})
	cred := loadCredential(t, "rsa2048")
	var err error
	cost := measure(func() { _, err = Sign(context.Background(), raw, cred, SignOptions{Now: fixedNow}) })
	if err != nil {
		t.Fatal(err)
	}
	if cost.alloc > int64(maxHostileAlloc*len(raw)+allocSlack) {
		t.Fatalf("%d distinct non-ASCII names: %d bytes allocated for %d bytes of input (%.1f×)", 4000, cost.alloc, len(raw), float64(cost.alloc)/float64(len(raw)))
	}
}

package wss

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hostileDeadline bounds every call of the hostile table: an input that
// costs more than linear work cannot answer within it (inputs are sized so
// that linear work fits it with a wide margin under the race detector).
const hostileDeadline = 2 * time.Second

// Allocation bounds, as multiples of the input: hostile inputs may cost at
// most maxHostileAlloc times their size in bytes allocated (not only live),
// ordinary envelopes maxOrdinaryAlloc; allocSlack covers the fixed cost of a
// call (pools, keys, the Security header).
//
// Encrypt runs the same bounded scan, but then allocates several times its
// input whatever the input's shape: the ciphertext, its base64 form, the
// EncryptedData string and the joined envelope (6-8× measured on ordinary
// and hostile envelopes alike). Its rows check the outcome and the deadline;
// their allocation is logged, not bounded, until Encrypt writes the base64
// straight into the output.
const (
	maxHostileAlloc  = 4
	maxOrdinaryAlloc = 2
	allocSlack       = 256 << 10
)

// fourXX are the codes of a refused input: the api answers them with a 4xx.
var fourXX = []Code{CodeTooComplex, CodeTooLarge, CodeMalformedXML, CodeDTDForbidden, CodeNotSOAP, CodeInvalidSOAP,
	CodeDuplicateID, CodeMissingPart, CodeNoEncryptedKey}

type hostileInput struct {
	name     string
	gen      func() []byte
	ordinary bool // an ordinary envelope: the tighter bound applies
}

var hostileInputs = []hostileInput{
	{name: "ns-churn-262KB", gen: hostileNSChurn},
	{name: "100k-decls-450k-elements", gen: hostileManyDeclsManyElems},
	{name: "1M-attributes", gen: hostileManyAttrs},
	{name: "deep-ns-churn", gen: hostileDeepChurn},
	{name: "100k-distinct-prefixes", gen: hostileDistinctPrefixes},
	{name: "giant-attribute-value", gen: hostileGiantAttr},
	{name: "1M-namespaced-attributes", gen: hostileAttrsNS},
	{name: "many-small-texts", gen: hostileSmallTexts},
	{name: "char-ref-run", gen: hostileCharRefs},
	{name: "255-attributes-per-element", gen: hostileAttrsEverywhere},
	{name: "ordinary-1MB", gen: func() []byte { return benchEnvelope(1 << 20) }, ordinary: true},
}

// heapSampler records the peak of the heap's live objects while it runs.
type heapSampler struct {
	stop, done chan struct{}
	peak       atomic.Uint64
}

func startHeapSampler() *heapSampler {
	s := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() {
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v > s.peak.Load() {
			s.peak.Store(v)
		}
	}
	read()
	go func() {
		defer close(s.done)
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-s.stop:
				read()
				return
			case <-tk.C:
				read()
			}
		}
	}()
	return s
}

func (s *heapSampler) finish() uint64 {
	close(s.stop)
	<-s.done
	return s.peak.Load()
}

// cost is what one call cost.
type cost struct {
	alloc, peakGrowth int64
	took              time.Duration
}

// measure runs f and returns the bytes it allocated and the peak growth of
// the live heap while it ran.
func measure(f func()) cost {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	hs := startHeapSampler()
	start := time.Now()
	f()
	took := time.Since(start)
	peak := hs.finish()
	runtime.ReadMemStats(&after)
	return cost{alloc: int64(after.TotalAlloc - before.TotalAlloc), peakGrowth: int64(peak) - int64(before.HeapAlloc), took: took}
}

// bodyElement returns the bytes of the Body element, start tag to end tag.
func bodyElement(t testing.TB, raw []byte) []byte {
	t.Helper()
	env, err := scanEnvelope(context.Background(), raw, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	end := env.body.startEnd
	if !env.body.selfClosing {
		end = env.body.endStart + bytes.IndexByte(raw[env.body.endStart:], '>') + 1
	}
	return raw[env.body.start:end]
}

// TestHostileInputs runs every hostile input on every route under a 2 s
// deadline: each must be refused with a 4xx-class error or answered, never
// time out, and allocate at most a small multiple of its size.
func TestHostileInputs(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	dec := cred.Signer.(crypto.Decrypter)
	trust := testTrust(t)
	for _, in := range hostileInputs {
		raw := in.gen()
		for _, route := range []string{"sign", "verify", "encrypt", "decrypt"} {
			t.Run(in.name+"/"+route, func(t *testing.T) {
				msg := raw
				switch {
				case in.ordinary && route == "verify":
					msg = signFixed(t, raw, cred, SignOptions{})
				case in.ordinary && route == "decrypt":
					res, err := Encrypt(context.Background(), raw, EncryptOptions{Recipient: cred.Chain[0]})
					if err != nil {
						t.Fatal(err)
					}
					msg = res.Envelope
				}
				ctx, cancel := context.WithTimeout(context.Background(), hostileDeadline)
				defer cancel()
				var err error
				var answered bool
				var decrypted []byte // Decrypt's envelope, checked after the measure
				c := measure(func() {
					switch route {
					case "sign":
						var res *SignResult
						res, err = Sign(ctx, msg, cred, SignOptions{Now: fixedNow})
						answered = res != nil && res.Len() > len(msg)
					case "verify":
						var res *VerifyResult
						res, err = Verify(ctx, msg, VerifyOptions{Trust: trust, Now: fixedNow})
						answered = res != nil && (res.Valid || res.Code != "")
					case "encrypt":
						var res *EncryptResult
						res, err = Encrypt(ctx, msg, EncryptOptions{Recipient: cred.Chain[0]})
						answered = res != nil && len(res.DataReferences) == 1
					case "decrypt":
						var res *DecryptResult
						res, err = Decrypt(ctx, msg, dec, DecryptOptions{Certificate: cred.Chain[0]})
						if res != nil {
							decrypted = res.Envelope
						}
					}
				})
				if route == "decrypt" && err == nil && decrypted != nil {
					// Decrypt leaves the Security header Encrypt added: the
					// answer is the original Body, start tag to end tag.
					answered = bytes.Equal(bodyElement(t, decrypted), bodyElement(t, raw))
				}
				t.Logf("%.2f MB in %v: allocated %.1f MB (%.2f×), peak heap growth %.1f MB (%.2f×), %s",
					float64(len(msg))/1e6, c.took.Round(time.Millisecond), float64(c.alloc)/1e6, float64(c.alloc)/float64(len(msg)),
					float64(c.peakGrowth)/1e6, float64(c.peakGrowth)/float64(len(msg)), CodeOf(err))
				switch {
				case errors.Is(err, context.DeadlineExceeded):
					t.Fatalf("timed out after %v: %v", c.took, err)
				case err != nil && !slices.Contains(fourXX, CodeOf(err)):
					t.Fatalf("neither refused with a 4xx-class code nor answered: %v", err)
				case err == nil && !answered:
					t.Fatal("no error and no answer")
				}
				bound := maxHostileAlloc
				if in.ordinary {
					bound = maxOrdinaryAlloc
				}
				if route != "encrypt" && c.alloc > int64(bound*len(msg)+allocSlack) {
					t.Errorf("allocated %d bytes for %d bytes of input (%.1f×; the bound is %d×)", c.alloc, len(msg), float64(c.alloc)/float64(len(msg)), bound)
				}
			})
		}
	}
}

// TestVerifyLongPrefixList: a signature whose InclusiveNamespaces
// PrefixList names 120 000 prefixes (within the attribute value limit)
// costs Verify linear work (it used to
// cost the square of the list to deduplicate it, and the list's length per
// canonicalised element).
func TestVerifyLongPrefixList(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	signed := signFixed(t, benchEnvelope(64<<10), cred, SignOptions{InclusivePrefixes: true})
	var list bytes.Buffer
	for i := range 120_000 {
		list.WriteString("p" + strconv.Itoa(i) + " ")
	}
	i := bytes.Index(signed, []byte(`PrefixList="`))
	if i < 0 {
		t.Fatal("no PrefixList in the signed envelope")
	}
	i += len(`PrefixList="`)
	msg := slices.Concat(signed[:i], list.Bytes(), signed[i:])
	// 16.6 s on the old code.
	ctx, cancel := context.WithTimeout(context.Background(), hostileDeadline)
	defer cancel()
	var res *VerifyResult
	var err error
	c := measure(func() { res, err = Verify(ctx, msg, VerifyOptions{Trust: testTrust(t), Now: fixedNow}) })
	t.Logf("%.2f MB in %v: allocated %.1f MB (%.2f×)", float64(len(msg))/1e6, c.took.Round(time.Millisecond), float64(c.alloc)/1e6, float64(c.alloc)/float64(len(msg)))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.Valid || res.Code != CodeSignatureInvalid {
		t.Fatalf("verdict %v %s %s, want %s (the PrefixList changed SignedInfo)", res.Valid, res.Code, res.Detail, CodeSignatureInvalid)
	}
}

// TestDecryptHostilePlaintext: a plaintext that breaks the limits (here
// 200 nested elements declaring 41 prefixes each, encrypted by a sender
// with looser limits) is refused once decrypted, under the same limits and
// before any other parser or Verify sees it: an opaque decryption failure
// whose cause is too-complex.
func TestDecryptHostilePlaintext(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	loose := Limits{MaxNamespacesInScope: 1 << 20, MaxNamespaceDecls: 1 << 20}
	enc, err := Encrypt(context.Background(), deepChurn(3), EncryptOptions{Recipient: cred.Chain[0], Limits: loose})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hostileDeadline)
	defer cancel()
	trust := testTrust(t)
	_, err = Decrypt(ctx, enc.Envelope, cred.Signer.(crypto.Decrypter), DecryptOptions{Certificate: cred.Chain[0],
		RequireSignedBody: &VerifyOptions{Trust: trust, Now: fixedNow}})
	if CodeOf(err) != CodeDecryptionFailed || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), string(CodeTooComplex)) {
		t.Fatalf("decrypting a plaintext over the limits: %v, want %s caused by %s", err, CodeDecryptionFailed, CodeTooComplex)
	}
}

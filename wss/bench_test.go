package wss

// Benchmarks of the signing path. They make no timed assertions;
// `make bench` runs them with profiles, and the harness in bench/ measures
// the whole path against the token in the same run.

import (
	"context"
	"crypto"
	"crypto/x509"
	"io"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wssignd/wssignd/bench"
	"github.com/wssignd/wssignd/internal/testutil"
)

// benchCredential loads testdata/keys/<name>.{key,crt} as an in-memory credential.
func benchCredential(b *testing.B, name string) Credential {
	k, c := testutil.TestKey(b, name)
	return Credential{Signer: k, Chain: []*x509.Certificate{c}}
}

var benchEnvelopes = struct {
	sync.Mutex
	m map[int][]byte
}{m: map[int][]byte{}}

// benchEnvelope returns bench.Envelope(size), generated once per process.
func benchEnvelope(size int) []byte {
	benchEnvelopes.Lock()
	defer benchEnvelopes.Unlock()
	if e, ok := benchEnvelopes.m[size]; ok {
		return e
	}
	e := bench.Envelope(size)
	benchEnvelopes.m[size] = e
	return e
}

// BenchmarkSign signs each benchmark envelope size (1 KB to 10 MB) with an in-memory
// RSA-2048 and EC P-256 key: the XML work plus a software private-key
// operation (throughput in input bytes).
func BenchmarkSign(b *testing.B) {
	for _, k := range []struct{ name, file string }{{"RSA", "rsa2048"}, {"EC", "ecp256"}} {
		cred := benchCredential(b, k.file)
		for _, s := range bench.Sizes {
			b.Run(k.name+"/"+s.Name, func(b *testing.B) {
				env := benchEnvelope(s.Bytes)
				b.SetBytes(int64(len(env)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := Sign(context.Background(), env, cred, SignOptions{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// receiveSizes are the envelope sizes of the verify and decrypt benchmarks.
var receiveSizes = []string{"1KB", "100KB", "10MB"}

// BenchmarkVerify verifies each envelope size signed once with an
// in-memory RSA-2048 key: all XML work but a public-key check.
func BenchmarkVerify(b *testing.B) {
	cred := benchCredential(b, "rsa2048")
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	trust, err := NewTrustStore(TrustConfig{Pinned: cred.Chain})
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range bench.Sizes {
		if !slices.Contains(receiveSizes, s.Name) {
			continue
		}
		b.Run(s.Name, func(b *testing.B) {
			res, err := Sign(context.Background(), benchEnvelope(s.Bytes), cred, SignOptions{Now: func() time.Time { return now }})
			if err != nil {
				b.Fatal(err)
			}
			opts := VerifyOptions{Trust: trust, Now: func() time.Time { return now }, AllowUnsignedAddressing: true}
			b.SetBytes(int64(len(res.Envelope)))
			b.ReportAllocs()
			for b.Loop() {
				v, err := Verify(context.Background(), res.Envelope, opts)
				if err != nil || !v.Valid {
					b.Fatalf("%v %+v", err, v)
				}
			}
		})
	}
}

// BenchmarkDecrypt decrypts each envelope size encrypted once for an
// in-memory RSA-2048 key (RSA-OAEP unwrap, AES-256-GCM).
func BenchmarkDecrypt(b *testing.B) {
	cred := benchCredential(b, "rsa2048")
	dec := cred.Signer.(crypto.Decrypter)
	for _, s := range bench.Sizes {
		if !slices.Contains(receiveSizes, s.Name) {
			continue
		}
		b.Run(s.Name, func(b *testing.B) {
			enc, err := Encrypt(context.Background(), benchEnvelope(s.Bytes), EncryptOptions{Recipient: cred.Chain[0]})
			if err != nil {
				b.Fatal(err)
			}
			opts := DecryptOptions{Certificate: cred.Chain[0]}
			b.SetBytes(int64(len(enc.Envelope)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decrypt(context.Background(), enc.Envelope, dec, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScanEnvelope measures the single tokenising pass over the input
// that Sign starts with.
func BenchmarkScanEnvelope(b *testing.B) {
	for _, s := range bench.Sizes {
		b.Run(s.Name, func(b *testing.B) {
			env := benchEnvelope(s.Bytes)
			b.SetBytes(int64(len(env)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := scanEnvelope(context.Background(), env, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// replaySigner returns, for a digest it has seen, the signature it made
// then: with a fixed clock and a fixed random source every Sign call
// produces the same SignedInfo, so after the first call the private-key
// operation costs a map lookup while Sign's check of the signature against
// the certificate still passes.
type replaySigner struct {
	crypto.Signer
	sigs   map[string][]byte
	misses int
}

func (r *replaySigner) Sign(rnd io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if sig, ok := r.sigs[string(digest)]; ok {
		return sig, nil
	}
	r.misses++
	sig, err := r.Signer.Sign(rnd, digest, opts)
	if err == nil {
		r.sigs[string(digest)] = sig
	}
	return sig, err
}

// constReader is an endless deterministic random source.
type constReader struct{ n byte }

func (r *constReader) Read(p []byte) (int, error) {
	for i := range p {
		r.n += 0x5b
		p[i] = r.n
	}
	return len(p), nil
}

// BenchmarkSignXMLOverhead is Sign without the private-key operation (see
// replaySigner): scan, digests, canonicalisation, splicing, and the RSA
// public-key check of the signature (tens of microseconds). Its time per
// operation is the XML overhead the performance target bounds (≤ 1.0 ms for 100 KB).
func BenchmarkSignXMLOverhead(b *testing.B) {
	cred := benchCredential(b, "rsa2048")
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, s := range bench.Sizes {
		b.Run(s.Name, func(b *testing.B) {
			env := benchEnvelope(s.Bytes)
			rs := &replaySigner{Signer: cred.Signer, sigs: map[string][]byte{}}
			c := Credential{Signer: rs, Chain: cred.Chain}
			opts := SignOptions{Now: func() time.Time { return now }}
			sign := func() {
				// Every call draws the same "random" Ids.
				opts.Rand = &constReader{}
				if _, err := Sign(context.Background(), env, c, opts); err != nil {
					b.Fatal(err)
				}
			}
			sign() // the one real private-key operation
			b.SetBytes(int64(len(env)))
			b.ReportAllocs()
			for b.Loop() {
				sign()
			}
			if rs.misses != 1 {
				b.Fatalf("the signer was asked for %d distinct digests, want 1: SignedInfo is not fixed, so private-key time is included", rs.misses)
			}
		})
	}
}

// BenchmarkSignPeakMemory signs the 10 MB envelope (XML overhead only, as
// BenchmarkSignXMLOverhead) and reports the memory a sign costs relative to
// the envelope: alloc-x is the bytes allocated per sign ÷ the envelope size
// (an upper bound of the peak live heap one sign adds), heapsys-growth-x
// the Go heap obtained from the OS during the run ÷ the envelope size.
func BenchmarkSignPeakMemory(b *testing.B) {
	cred := benchCredential(b, "rsa2048")
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	env := benchEnvelope(10 << 20)
	rs := &replaySigner{Signer: cred.Signer, sigs: map[string][]byte{}}
	c := Credential{Signer: rs, Chain: cred.Chain}
	opts := SignOptions{Now: func() time.Time { return now }}
	sign := func() {
		opts.Rand = &constReader{}
		if _, err := Sign(context.Background(), env, c, opts); err != nil {
			b.Fatal(err)
		}
	}
	sign()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.SetBytes(int64(len(env)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		sign()
		n++
	}
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(n)/float64(len(env)), "alloc-x")
	b.ReportMetric(float64(after.HeapSys-before.HeapSys)/float64(len(env)), "heapsys-growth-x")
}

package hsm

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"crypto/sha256"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
)

// cpuTime is this process's user+system time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds the process's CPU per operation since start as the metric cpu-ns/op.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkDo measures what running an operation through the session pool costs besides the
// operation: "do" is the path every signature takes (deadline, permits, gate, the call on a
// worker goroutine), "work" the same operation on the caller's goroutine without the deadline,
// "noop" do with an operation that makes no PKCS#11 call. The sign variants sign with an EC
// P-256 and an RSA-2048 key.
func BenchmarkDo(b *testing.B) {
	tok, _ := newTestToken(b)
	ec, err := tok.GenerateEC(KeyRef{Label: "e", ID: []byte{1}}, elliptic.P256())
	if err != nil {
		b.Fatal(err)
	}
	rsaKey, err := tok.GenerateRSA(KeyRef{Label: "r", ID: []byte{2}}, 2048)
	if err != nil {
		b.Fatal(err)
	}
	d := sha256.Sum256([]byte("bench"))
	signOp := func(s crypto.Signer) opFunc {
		k := s.(interface{ entry() *keyEntry }).entry()
		return func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) ([]byte, error) {
			h, err := k.handleFor(gen)
			if err != nil {
				return nil, err
			}
			return rawSign(p, sh, h, k.pub, d[:], crypto.SHA256, nil)
		}
	}
	noop := func(*pkcs11.Ctx, pkcs11.SessionHandle, uint64) ([]byte, error) { return nil, nil }
	for _, c := range []struct {
		name string
		op   opFunc
	}{{"noop", noop}, {"EC", signOp(ec)}, {"RSA", signOp(rsaKey)}} {
		b.Run(c.name+"/do", func(b *testing.B) {
			start := cpuTime()
			for b.Loop() {
				if _, err := tok.do(context.Background(), tok.opTimeout, true, c.op); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
		b.Run(c.name+"/work", func(b *testing.B) {
			start := cpuTime()
			for b.Loop() {
				if _, err := tok.work(true, c.op); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}

// BenchmarkRSAMechanism compares the two ways an RSA-2048 key signs a SignedInfo-sized message
// with PKCS #1 v1.5 and SHA-256: "digest" hashes here and has the token sign the DigestInfo
// (CKM_RSA_PKCS), "message" has the token hash and sign (CKM_SHA256_RSA_PKCS).
func BenchmarkRSAMechanism(b *testing.B) {
	tok, _ := newTestToken(b)
	s, err := tok.GenerateRSA(KeyRef{Label: "r", ID: []byte{2}}, 2048)
	if err != nil {
		b.Fatal(err)
	}
	k := s.(interface{ entry() *keyEntry }).entry()
	msg := make([]byte, 1100)
	ms := s.(crypto.MessageSigner)
	for _, c := range []struct {
		name  string
		mechs map[crypto.Hash]uint
	}{{"digest", nil}, {"message", map[crypto.Hash]uint{crypto.SHA256: pkcs11.CKM_SHA256_RSA_PKCS}}} {
		k.mu.Lock()
		k.msgMechs = c.mechs
		k.mu.Unlock()
		b.Run(c.name, func(b *testing.B) {
			start := cpuTime()
			for b.Loop() {
				if _, err := ms.SignMessage(nil, msg, crypto.SHA256); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}

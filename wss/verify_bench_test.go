package wss

import (
	"testing"

	"github.com/wssignd/wssignd/bench"
)

// BenchmarkVerify verifies envelopes of the bench sizes up to 1 MB, signed
// once with the in-memory RSA-2048 key (throughput in input bytes).
func BenchmarkVerify(b *testing.B) {
	cred := benchCredential(b, "rsa2048")
	trust := trustOf(b, cred.Chain[0])
	for _, s := range bench.Sizes {
		if s.Bytes > 1<<20 {
			continue
		}
		b.Run(s.Name, func(b *testing.B) {
			msg := signFixed(b, benchEnvelope(s.Bytes), cred, SignOptions{})
			opts := VerifyOptions{Trust: trust, Now: fixedNow, AllowUnsignedAddressing: true}
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				res, err := Verify(msg, opts)
				if err != nil || !res.Valid {
					b.Fatalf("Verify: %v %+v", err, res)
				}
			}
		})
	}
}

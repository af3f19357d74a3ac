package main

//lint:file-ignore SA1019 RSA PKCS #1 v1.5 key transport (XML Encryption rsa-1_5) is a deliberate, opt-in legacy algorithm here, exercised on purpose.

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"flag"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm/hsmtest"
)

var timingN = flag.Int("timing-n", 1000, "BenchmarkDecryptTiming: decryptions per kind")

// BenchmarkDecryptTiming measures how long the token key's Decrypt takes
// for a good key transport and for each kind of failure an attacker can
// make, with the options wss.Decrypt passes: the medians and spreads of a
// failure kind must not differ from the success of the same transport (a
// difference is a padding oracle). The kinds are interleaved in random
// order so that drift of the machine's load hits them alike. It is a
// measurement, not a test: run it with
//
//	go test ./cmd/wssignd -run '^$' -bench DecryptTiming -benchtime 1x [-timing-n 2000]
//
// and read the table it logs (-v) and the per-kind metrics.
func BenchmarkDecryptTiming(b *testing.B) {
	env := hsmtest.New(b)
	dec := env.RSA.Signer.(crypto.Decrypter)
	pub := env.RSA.Chain[0].PublicKey.(*rsa.PublicKey)
	key32 := make([]byte, 32)
	_, _ = rand.Read(key32)
	mustCT := func(ct []byte, err error) []byte {
		if err != nil {
			b.Fatal(err)
		}
		return ct
	}
	// random returns a ciphertext that is a random number below the
	// modulus: its padding is wrong for every scheme (almost surely).
	random := func() []byte {
		n, err := rand.Int(rand.Reader, pub.N)
		if err != nil {
			b.Fatal(err)
		}
		return n.FillBytes(make([]byte, pub.Size()))
	}
	// rawEncrypt encrypts em as it is (textbook RSA), to build
	// well-formed paddings with chosen defects.
	rawEncrypt := func(em []byte) []byte {
		c := new(big.Int).Exp(new(big.Int).SetBytes(em), big.NewInt(int64(pub.E)), pub.N)
		return c.FillBytes(make([]byte, pub.Size()))
	}
	pkcs1 := func(msg []byte, bt byte, zeroSep bool) []byte {
		em := make([]byte, pub.Size())
		em[1] = bt
		ps := em[2 : len(em)-len(msg)-1]
		for i := range ps {
			for ps[i] == 0 {
				ps[i] = byte(mrand.IntN(256))
			}
		}
		if zeroSep {
			em[len(em)-len(msg)-1] = 0
		} else {
			em[len(em)-len(msg)-1] = 7
		}
		copy(em[len(em)-len(msg):], msg)
		return em
	}
	pkcs15 := &rsa.PKCS1v15DecryptOptions{}
	sha1OAEP := &rsa.OAEPOptions{Hash: crypto.SHA1, MGFHash: crypto.SHA1}
	sha256OAEP := &rsa.OAEPOptions{Hash: crypto.SHA256, MGFHash: crypto.SHA256}
	type kind struct {
		name string
		opts crypto.DecrypterOpts
		ct   func() []byte
	}
	kinds := []kind{
		{"rsa-1_5 ok (32-byte key)", pkcs15, func() []byte { return mustCT(rsa.EncryptPKCS1v15(rand.Reader, pub, key32)) }},
		{"rsa-1_5 bad padding (random)", pkcs15, random},
		{"rsa-1_5 bad block type", pkcs15, func() []byte { return rawEncrypt(pkcs1(key32, 1, true)) }},
		{"rsa-1_5 no zero separator", pkcs15, func() []byte { return rawEncrypt(pkcs1(key32, 2, false)) }},
		{"rsa-1_5 wrong key length (16)", pkcs15, func() []byte { return mustCT(rsa.EncryptPKCS1v15(rand.Reader, pub, key32[:16])) }},
		{"rsa-oaep-mgf1p ok", sha1OAEP, func() []byte { return mustCT(rsa.EncryptOAEPWithOptions(rand.Reader, pub, key32, sha1OAEP)) }},
		{"rsa-oaep-mgf1p bad padding", sha1OAEP, random},
		{"rsa-oaep sha-256 ok", sha256OAEP, func() []byte { return mustCT(rsa.EncryptOAEPWithOptions(rand.Reader, pub, key32, sha256OAEP)) }},
		{"rsa-oaep sha-256 bad padding", sha256OAEP, random},
	}
	n := *timingN
	type job struct {
		k  int
		ct []byte
	}
	var jobs []job
	for k := range kinds {
		for range n {
			jobs = append(jobs, job{k, kinds[k].ct()})
		}
	}
	mrand.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	// Warm up the session pool and the key.
	for _, j := range jobs[:50] {
		_, _ = dec.Decrypt(rand.Reader, j.ct, kinds[j.k].opts)
	}
	lat := make([][]time.Duration, len(kinds))
	errs := make([]int, len(kinds))
	b.ResetTimer()
	for _, j := range jobs {
		t0 := time.Now()
		pt, err := dec.Decrypt(rand.Reader, j.ct, kinds[j.k].opts)
		lat[j.k] = append(lat[j.k], time.Since(t0))
		if err != nil || len(pt) != 32 {
			errs[j.k]++
		}
	}
	b.StopTimer()
	var tab strings.Builder
	fmt.Fprintf(&tab, "\n| kind | n | p10 µs | median µs | p90 µs | not a 32-byte key |\n|---|---|---|---|---|---|\n")
	for k, l := range lat {
		slices.Sort(l)
		q := func(p float64) float64 { return float64(l[int(p*float64(len(l)-1))].Nanoseconds()) / 1000 }
		fmt.Fprintf(&tab, "| %s | %d | %.0f | %.0f | %.0f | %d |\n", kinds[k].name, len(l), q(0.10), q(0.5), q(0.90), errs[k])
		b.ReportMetric(q(0.5), "µs-median/"+strings.NewReplacer(" ", "_", "(", "", ")", "").Replace(kinds[k].name))
	}
	st := env.Token.Status()
	fmt.Fprintf(&tab, "\ntoken after the run: state %s, recoveries %d\n", st.State, st.Recoveries)
	b.Log(tab.String())
}

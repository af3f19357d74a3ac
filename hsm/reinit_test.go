package hsm_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wssignd/wssignd/hsm"
	"github.com/wssignd/wssignd/hsm/hsmtest"
)

// TestReinitializeUnderLoad: while four goroutines sign without pause, the module is
// re-initialised three times. No signature fails (calls made meanwhile wait for the
// re-initialisation), every signature verifies, and the token is online afterwards with its
// keys (found again in the new module generation).
func TestReinitializeUnderLoad(t *testing.T) {
	env := hsmtest.New(t)
	pub := env.RSA.Chain[0].PublicKey.(*rsa.PublicKey)
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				d := sha256.Sum256([]byte(time.Now().String()))
				sig, err := env.RSA.Signer.Sign(rand.Reader, d[:], crypto.SHA256)
				if err == nil {
					err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		})
	}
	for i := range 3 {
		before := ok.Load()
		for ok.Load() < before+20 {
			time.Sleep(5 * time.Millisecond)
		}
		if err := hsm.Reinitialize(env.Config.Module, 10*time.Second); err != nil {
			t.Fatalf("Reinitialize %d: %v", i, err)
		}
	}
	before := ok.Load()
	for ok.Load() < before+20 {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d signatures failed across the re-initialisations; first: %v", n, n+ok.Load(), firstErr.Load())
	}
	if st := env.Token.Status(); st.State != hsm.StateOnline {
		t.Errorf("token %s after the re-initialisations: %s", st.State, st.Err)
	}
	if _, err := env.EC.Signer.Sign(rand.Reader, make([]byte, 32), crypto.SHA256); err != nil {
		t.Errorf("the other key after the re-initialisations: %v", err)
	}
	t.Logf("%d signatures across 3 re-initialisations", ok.Load())
}

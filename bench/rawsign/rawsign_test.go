package rawsign_test

import (
	"crypto"
	"strings"
	"testing"

	"github.com/wssignd/wssignd/bench/rawsign"
	"github.com/wssignd/wssignd/hsm/hsmtest"
)

// TestBench runs rawsign.Bench on a fresh SoftHSM2 token while the Token of hsmtest is open, as the harness
// does: every worker signs at least once, every latency is positive, the Token keeps working
// afterwards (Bench neither finalises the module nor logs out), and bad arguments are
// refused. No timing is asserted.
func TestBench(t *testing.T) {
	env := hsmtest.New(t)
	c := env.Config
	for _, tc := range []struct {
		key, mech string
		conc      int
	}{
		{"rsa", rawsign.RSAPKCS, 1},
		{"rsa", rawsign.RSAPKCSSHA256, 2},
		{"ec", rawsign.ECDSA, 3},
	} {
		perSec, lat, err := rawsign.Bench(c.Module, c.TokenLabel, c.PINFile, tc.key, tc.mech, tc.conc, 0)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.key, tc.mech, err)
		}
		if len(lat) < tc.conc || perSec <= 0 {
			t.Errorf("%s %s c=%d: %d signatures, %v/s; want at least one per worker", tc.key, tc.mech, tc.conc, len(lat), perSec)
		}
		for _, l := range lat {
			if l <= 0 {
				t.Errorf("%s %s: latency %v", tc.key, tc.mech, l)
			}
		}
	}
	// The Token still signs: Bench left the module initialised and the user logged in.
	digest := make([]byte, 32)
	if _, err := env.RSA.Signer.Sign(nil, digest, crypto.SHA256); err != nil {
		t.Errorf("the Token no longer signs after Bench: %v", err)
	}

	for _, tc := range []struct {
		name                  string
		token, pin, key, mech string
		conc                  int
		want                  string
	}{
		{"unknown mechanism", c.TokenLabel, c.PINFile, "rsa", "RSA-PSS", 1, "unknown mechanism"},
		{"no such key", c.TokenLabel, c.PINFile, "nope", rawsign.RSAPKCS, 1, "not found"},
		{"no such token", "nope", c.PINFile, "rsa", rawsign.RSAPKCS, 1, "not found"},
		{"no pin file", c.TokenLabel, c.PINFile + ".missing", "rsa", rawsign.RSAPKCS, 1, "pin file"},
		{"no workers", c.TokenLabel, c.PINFile, "rsa", rawsign.RSAPKCS, 0, "concurrency"},
	} {
		_, _, err := rawsign.Bench(c.Module, tc.token, tc.pin, tc.key, tc.mech, tc.conc, 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

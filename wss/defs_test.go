package wss

import (
	"testing"

	"github.com/wssignd/wssignd/internal/defs"
)

// TestDefsNamesMeanSomething: every name the configuration accepts from
// internal/defs has a meaning here: a preset, an encryption algorithm URI,
// a token reference, a layout, a recipient reference.
func TestDefsNamesMeanSomething(t *testing.T) {
	for _, name := range defs.Presets() {
		if _, ok := Preset(name); !ok {
			t.Errorf("preset %q is not defined", name)
		}
	}
	for _, names := range [][]string{defs.DataAlgorithms(), defs.KeyTransports(), defs.OAEPDigests(), defs.MGFs()} {
		for _, name := range names {
			if _, err := XEncAlgorithm(name); err != nil {
				t.Errorf("encryption algorithm %q: %v", name, err)
			}
		}
	}
	for i, r := range TokenReferences() {
		if string(r) != defs.TokenReferences()[i] {
			t.Errorf("token reference %d: %q, defs %q", i, r, defs.TokenReferences()[i])
		}
	}
	for i, l := range Layouts() {
		if string(l) != defs.Layouts()[i] {
			t.Errorf("layout %d: %q, defs %q", i, l, defs.Layouts()[i])
		}
	}
	for i, r := range []RecipientRef{RecipientIssuerSerial, RecipientSKI, RecipientThumbprint} {
		if string(r) != defs.RecipientRefs()[i] {
			t.Errorf("recipient reference %d: %q, defs %q", i, r, defs.RecipientRefs()[i])
		}
	}
}

package hsm

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseURI(t *testing.T) {
	tests := []struct {
		in      string
		want    URI
		wantErr string
	}{
		{in: "pkcs11:token=prod;object=invoice-sig;id=%01", want: URI{Token: "prod", Object: "invoice-sig", ID: []byte{1}}},
		{in: "PKCS11:object=a%20b;type=private", want: URI{Object: "a b", Type: "private"}},
		{in: "pkcs11:serial=DECC0401648;id=%01%02%ff", want: URI{Serial: "DECC0401648", ID: []byte{1, 2, 0xff}}},
		{in: "pkcs11:manufacturer=SoftHSM%20project;model=SoftHSM%20v2;object=k+1", want: URI{Manufacturer: "SoftHSM project", Model: "SoftHSM v2", Object: "k+1"}},
		{in: "pkcs11:object=k?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/pin", want: URI{Object: "k", ModulePath: "/usr/lib/softhsm/libsofthsm2.so", PINSource: "/etc/pin"}},
		{in: "pkcs11:", want: URI{}},
		{in: "pkcs11:object=%E2%82%AC", want: URI{Object: "€"}},
		{in: "pkcs12:object=a", wantErr: "does not start"},
		{in: "object=a", wantErr: "does not start"},
		{in: "pkcs11:object=a;object=b", wantErr: "twice"},
		{in: "pkcs11:object=%zz", wantErr: "malformed percent"},
		{in: "pkcs11:object=%4", wantErr: "malformed percent"},
		{in: "pkcs11:id=", wantErr: "empty id"},
		{in: "pkcs11:slot-id=3", wantErr: "never by slot"},
		{in: "pkcs11:library-manufacturer=x", wantErr: "configured module"},
		{in: "pkcs11:object=a?pin-value=1234", wantErr: "pin-value is refused"},
		{in: "pkcs11:objekt=a", wantErr: "unknown attribute"},
		{in: "pkcs11:x-vendor=a", wantErr: "unknown attribute"},
		{in: "pkcs11:type=secret", wantErr: "type"},
		{in: "pkcs11:object", wantErr: "not name=value"},
		{in: "pkcs11:object=a;", wantErr: "not name=value"},
		{in: "pkcs11:object=a?", wantErr: "empty query"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := ParseURI(tt.in)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrURI) || !bytes.Contains([]byte(err.Error()), []byte(tt.wantErr)) {
					t.Fatalf("ParseURI(%q) = %v, %v; want error containing %q", tt.in, u, err, tt.wantErr)
				}
				if bytes.Contains([]byte(err.Error()), []byte("1234")) {
					t.Errorf("error echoes the pin: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !uriEqual(*u, tt.want) {
				t.Errorf("ParseURI(%q) = %+v, want %+v", tt.in, *u, tt.want)
			}
			back, err := ParseURI(u.String())
			if err != nil || !uriEqual(*back, *u) {
				t.Errorf("round trip of %q via %q: %+v, %v", tt.in, u.String(), back, err)
			}
		})
	}
	u, _ := ParseURI("pkcs11:object=k;id=%01")
	if r := u.KeyRef(); r.Label != "k" || !bytes.Equal(r.ID, []byte{1}) {
		t.Errorf("KeyRef = %v", r)
	}
}

func uriEqual(a, b URI) bool {
	return a.Token == b.Token && a.Serial == b.Serial && a.Manufacturer == b.Manufacturer && a.Model == b.Model &&
		a.Object == b.Object && bytes.Equal(a.ID, b.ID) && a.Type == b.Type && a.ModulePath == b.ModulePath && a.PINSource == b.PINSource
}

// FuzzParseURI: no input panics, and every URI that parses formats to a URI that parses to the
// same value.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{"pkcs11:token=prod;object=invoice-sig;id=%01", "pkcs11:object=a?pin-source=/x&module-path=/y", "pkcs11:", "pkcs11:id=%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURI(s)
		if err != nil {
			return
		}
		back, err := ParseURI(u.String())
		if err != nil || !uriEqual(*back, *u) {
			t.Fatalf("round trip of %q via %q: %+v, %v", s, u.String(), back, err)
		}
	})
}

package hsm

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// URI is an RFC 7512 PKCS#11 URI naming a key (or certificate) on a token, e.g.
// pkcs11:token=prod;object=invoice-sig;id=%01;type=private.
//
// Supported path attributes: token, serial, manufacturer, model (the token); object, id, type
// (the object). Supported query attributes: module-path, pin-source (a file). Refused, with an
// error naming them: slot-id, slot-description, slot-manufacturer and the library-* attributes
// (tokens are never selected by slot, and the library is the configured module), pin-value (a
// PIN does not belong in configuration), unknown and vendor (x-) attributes (a misspelt
// attribute must not silently widen a match), and any attribute given twice.
type URI struct {
	Token        string // CK_TOKEN_INFO.label
	Serial       string // CK_TOKEN_INFO.serialNumber
	Manufacturer string // CK_TOKEN_INFO.manufacturerID
	Model        string // CK_TOKEN_INFO.model
	Object       string // CKA_LABEL
	ID           []byte // CKA_ID
	Type         string // "private", "public", "cert", "secret-key" or "data"
	ModulePath   string // query module-path
	PINSource    string // query pin-source
}

// KeyRef returns the object part of the URI as a KeyRef.
func (u *URI) KeyRef() KeyRef { return KeyRef{Label: u.Object, ID: bytes.Clone(u.ID)} }

// ErrURI is wrapped by every ParseURI error.
var ErrURI = errors.New("invalid pkcs11 uri")

// ParseURI parses an RFC 7512 PKCS#11 URI (see URI for what is supported). Values are
// percent-decoded; a malformed escape is an error.
func ParseURI(s string) (*URI, error) {
	fail := func(format string, args ...any) (*URI, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrURI}, args...)...)
	}
	if len(s) < 7 || !strings.EqualFold(s[:7], "pkcs11:") {
		return fail("does not start with pkcs11:")
	}
	rest := s[7:]
	path, query, hasQuery := strings.Cut(rest, "?")
	u := &URI{}
	seen := map[string]bool{}
	set := func(name, raw string, q bool) error {
		if seen[name] {
			return fmt.Errorf("%w: attribute %q given twice", ErrURI, name)
		}
		seen[name] = true
		v, err := pctDecode(raw)
		if err != nil {
			return fmt.Errorf("%w: attribute %q: %v", ErrURI, name, err)
		}
		switch {
		case !q && name == "token":
			u.Token = v
		case !q && name == "serial":
			u.Serial = v
		case !q && name == "manufacturer":
			u.Manufacturer = v
		case !q && name == "model":
			u.Model = v
		case !q && name == "object":
			u.Object = v
		case !q && name == "id":
			if v == "" {
				return fmt.Errorf("%w: empty id", ErrURI)
			}
			u.ID = []byte(v)
		case !q && name == "type":
			switch v {
			case "private", "public", "cert", "secret-key", "data":
				u.Type = v
			default:
				return fmt.Errorf("%w: type %q is not private, public, cert, secret-key or data", ErrURI, v)
			}
		case q && name == "module-path":
			u.ModulePath = v
		case q && name == "pin-source":
			u.PINSource = v
		case q && name == "pin-value":
			return fmt.Errorf("%w: pin-value is refused: give the PIN in a file (pin-source or pin_file)", ErrURI)
		case !q && (name == "slot-id" || name == "slot-description" || name == "slot-manufacturer"):
			return fmt.Errorf("%w: %s is not supported: tokens are selected by label or serial, never by slot", ErrURI, name)
		case !q && strings.HasPrefix(name, "library-"):
			return fmt.Errorf("%w: %s is not supported: the library is the configured module", ErrURI, name)
		default:
			return fmt.Errorf("%w: unknown attribute %q", ErrURI, name)
		}
		return nil
	}
	if path != "" {
		for _, attr := range strings.Split(path, ";") {
			name, val, ok := strings.Cut(attr, "=")
			if !ok || name == "" {
				return fail("path attribute %q is not name=value", attr)
			}
			if err := set(strings.ToLower(name), val, false); err != nil {
				return nil, err
			}
		}
	}
	if hasQuery {
		if query == "" {
			return fail("empty query")
		}
		for _, attr := range strings.Split(query, "&") {
			name, val, ok := strings.Cut(attr, "=")
			if !ok || name == "" {
				return fail("query attribute %q is not name=value", attr)
			}
			if err := set(strings.ToLower(name), val, true); err != nil {
				return nil, err
			}
		}
	}
	return u, nil
}

// pctDecode decodes percent escapes (a '+' stays a '+'); a malformed escape is an error.
func pctDecode(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", fmt.Errorf("malformed percent escape at byte %d", i)
		}
		b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
		i += 2
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

package wss

// Issuer names of X509IssuerSerial references, matched against
// certificates (by Verify and Decrypt).

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

var dnShortNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
	"2.5.4.5": "SERIALNUMBER", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC",
	"0.9.2342.19200300.100.1.1": "UID", "1.2.840.113549.1.9.1": "EMAILADDRESS",
}

var dnAliases = map[string]string{"E": "EMAILADDRESS", "EMAIL": "EMAILADDRESS", "S": "ST", "SN": "SERIALNUMBER"}

// dnEqual compares an issuer name as written in X509IssuerName (RFC 4514
// or the looser forms other toolkits write) with the certificate's issuer:
// the same attribute type and value pairs, case-insensitively, in any order.
func dnEqual(s string, cert *x509.Certificate) bool {
	var want []string
	for _, atv := range cert.Issuer.Names {
		t := atv.Type.String()
		if n, ok := dnShortNames[t]; ok {
			t = n
		}
		want = append(want, t+"="+strings.ToLower(strings.TrimSpace(fmt.Sprint(atv.Value))))
	}
	got, ok := parseDN(s)
	if !ok || len(got) != len(want) {
		return false
	}
	slices.Sort(want)
	slices.Sort(got)
	return slices.Equal(want, got)
}

func parseDN(s string) ([]string, bool) {
	var out []string
	var cur strings.Builder
	var parts []string
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			if i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
				b, _ := hex.DecodeString(s[i+1 : i+3])
				cur.Write(b)
				i += 2
			} else {
				i++
				cur.WriteByte(s[i])
			}
		case c == ',' || c == '+' || c == ';':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	parts = append(parts, cur.String())
	for _, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return nil, false
		}
		k = strings.ToUpper(strings.TrimSpace(k))
		k = strings.TrimPrefix(k, "OID.")
		if n, ok := dnShortNames[k]; ok {
			k = n
		}
		if n, ok := dnAliases[k]; ok {
			k = n
		}
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, "#") {
			der, err := hex.DecodeString(v[1:])
			if err != nil {
				return nil, false
			}
			var str string
			if _, err := asn1.Unmarshal(der, &str); err != nil {
				return nil, false
			}
			v = str
		}
		out = append(out, k+"="+strings.ToLower(v))
	}
	return out, true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

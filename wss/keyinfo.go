package wss

import (
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/wssignd/wssignd/internal/defs"
)

// TokenReference selects how the Signature's KeyInfo points at the signing
// certificate (WS-Security X.509 Token Profile 1.1 §3.2).
type TokenReference string

const (
	// RefDirect: wsse:Reference URI="#BST-Id" to the BinarySecurityToken
	// (the default, and the only one WS-I BSP 1.1 recommends). A reference
	// to an X509PKIPathv1 token carries wsse11:TokenType (BSP R5215).
	RefDirect TokenReference = defs.RefDirect
	// RefIssuerSerial: ds:X509Data/ds:X509IssuerSerial, issuer DN as
	// RFC 4514 text, serial in decimal.
	RefIssuerSerial TokenReference = defs.RefIssuerSerial
	// RefSKI: wsse:KeyIdentifier of ValueType #X509SubjectKeyIdentifier, the
	// value of the certificate's subject key identifier extension.
	RefSKI TokenReference = defs.RefSKI
	// RefThumbprint: wsse:KeyIdentifier of ValueType
	// oasis-wss-soap-message-security-1.1#ThumbprintSHA1, the SHA-1 of the
	// certificate's DER.
	RefThumbprint TokenReference = defs.RefThumbprint
	// RefX509KeyIdentifier: wsse:KeyIdentifier of ValueType #X509v3 holding
	// the whole certificate (X.509 Token Profile 1.0 style, WSS4J's
	// X509KeyIdentifier). WS-I BSP 1.1 R5206 allows only the subject key
	// identifier and thumbprint KeyIdentifiers for X.509 tokens, so this
	// form is for services that ask for it (WSS4J accepts it).
	RefX509KeyIdentifier TokenReference = defs.RefX509KeyIdentifier
)

// TokenReferences lists every TokenReference, for configuration checks; the
// slice is the caller's.
func TokenReferences() []TokenReference {
	return []TokenReference{RefDirect, RefIssuerSerial, RefSKI, RefThumbprint, RefX509KeyIdentifier}
}

// needsBST reports whether the reference points into the message at the
// BinarySecurityToken.
func (r TokenReference) needsBST() bool { return r == "" || r == RefDirect }

// bstValue returns the BinarySecurityToken content (base64) for the value
// type: the leaf certificate for X509v3, or for X509PKIPathv1 the DER of a
// SEQUENCE OF Certificate ordered from the trust anchor side to the leaf
// (X.509 Token Profile 1.1 §3.1 refers to the PkiPath of X.509 / JDK
// CertPath, whose first certificate is the one closest to the root).
func bstValue(valueType string, chain []*x509.Certificate) (string, error) {
	switch valueType {
	case "", ValueTypeX509v3:
		return base64.StdEncoding.EncodeToString(chain[0].Raw), nil
	case ValueTypeX509PKIPath:
		seq := make([]asn1.RawValue, len(chain))
		for i, c := range chain {
			seq[len(chain)-1-i] = asn1.RawValue{FullBytes: c.Raw}
		}
		der, err := asn1.Marshal(seq)
		if err != nil {
			return "", &Error{Code: CodeInternal, Msg: "encoding the PkiPath", Err: err}
		}
		return base64.StdEncoding.EncodeToString(der), nil
	}
	return "", errorf(CodeUnsupported, "unknown BinarySecurityToken value type %q", valueType)
}

// strTokenType returns the wsse11:TokenType attribute (with its namespace
// declaration) that the SecurityTokenReference for ref carries, or "".
//
// WS-I BSP 1.1 R5215 requires it on every reference to an X509PKIPathv1
// token: a direct reference to a PkiPath BinarySecurityToken. The other
// forms name one certificate (the leaf), not the PkiPath token, even when a
// PkiPath BinarySecurityToken is sent beside them, so they carry none: BSP
// requires no TokenType for an X509v3 token, and WS-Security 1.1 §7.1 makes
// the attribute optional, to be consistent with the ValueType when present
// (R3074). taken are the prefixes the STR element already uses.
func strTokenType(ref TokenReference, bstValueType string, taken []string) string {
	if !ref.needsBST() || bstValueType != ValueTypeX509PKIPath {
		return ""
	}
	p := freePrefix(nil, "wsse11", taken)
	return ` xmlns:` + p + `="` + NSWSSE11 + `" ` + p + `:TokenType="` + ValueTypeX509PKIPath + `"`
}

// strContent renders the children of the SecurityTokenReference for ref.
// ds is the XML-DSig prefix in scope, wsse the WSS one.
func strContent(ref TokenReference, leaf *x509.Certificate, bstID, bstValueType, ds, wsse string) string {
	switch ref {
	case RefIssuerSerial:
		return fmt.Sprintf(`<%[1]s:X509Data><%[1]s:X509IssuerSerial><%[1]s:X509IssuerName>%[2]s</%[1]s:X509IssuerName><%[1]s:X509SerialNumber>%[3]s</%[1]s:X509SerialNumber></%[1]s:X509IssuerSerial></%[1]s:X509Data>`,
			ds, escapeText(IssuerName(leaf)), leaf.SerialNumber.String())
	case RefSKI:
		return keyIdentifier(wsse, ValueTypeSKI, leaf.SubjectKeyId)
	case RefThumbprint:
		sum := sha1.Sum(leaf.Raw)
		return keyIdentifier(wsse, ValueTypeThumbprintSHA1, sum[:])
	case RefX509KeyIdentifier:
		return keyIdentifier(wsse, ValueTypeX509v3, leaf.Raw)
	}
	if bstValueType == "" {
		bstValueType = ValueTypeX509v3
	}
	return fmt.Sprintf(`<%[1]s:Reference URI="#%[2]s" ValueType="%[3]s"/>`, wsse, bstID, bstValueType)
}

func keyIdentifier(wsse, valueType string, value []byte) string {
	return fmt.Sprintf(`<%[1]s:KeyIdentifier EncodingType="%[2]s" ValueType="%[3]s">%[4]s</%[1]s:KeyIdentifier>`,
		wsse, EncodingBase64, valueType, base64.StdEncoding.EncodeToString(value))
}

// checkTokenReference reports options that cannot work with the credential:
// config errors, found at startup by CheckSignOptions.
func checkTokenReference(opts *SignOptions, chain []*x509.Certificate) error {
	switch opts.TokenReference {
	case "", RefDirect, RefIssuerSerial, RefThumbprint, RefX509KeyIdentifier:
	case RefSKI:
		if len(chain[0].SubjectKeyId) == 0 {
			return errorf(CodeUnsupported, "token reference %q: the certificate has no subject key identifier extension", RefSKI)
		}
	default:
		return errorf(CodeUnsupported, "unknown token reference %q", opts.TokenReference)
	}
	switch opts.BSTValueType {
	case "", ValueTypeX509v3, ValueTypeX509PKIPath:
	default:
		return errorf(CodeUnsupported, "unknown BinarySecurityToken value type %q", opts.BSTValueType)
	}
	if opts.TokenReference == RefIssuerSerial {
		if _, err := IssuerNameChecked(chain[0]); err != nil {
			return &Error{Code: CodeUnsupported, Msg: "token reference issuer-serial", Err: err}
		}
	}
	return nil
}

// RFC 4514 §3 short names; other attribute types are written as a dotted
// OID with the value as #hex of its BER encoding, as Java's
// X500Principal.getName(RFC2253) (used by WSS4J) does.
var dnKeywords = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.6":                    "C",
	"2.5.4.9":                    "STREET",
	"0.9.2342.19200300.100.1.25": "DC",
	"0.9.2342.19200300.100.1.1":  "UID",
}

type dnATV struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

type dnRDNSET []dnATV

// IssuerName returns the certificate's issuer distinguished name as RFC 4514
// text, last RDN first, as WSS4J (X500Principal RFC 2253 form) writes
// ds:X509IssuerName. An issuer it cannot decode is returned in Go's form.
func IssuerName(c *x509.Certificate) string {
	s, err := IssuerNameChecked(c)
	if err != nil {
		return c.Issuer.String()
	}
	return s
}

// IssuerNameChecked is IssuerName with the decoding error.
func IssuerNameChecked(c *x509.Certificate) (string, error) {
	var rdns []dnRDNSET
	rest, err := asn1.Unmarshal(c.RawIssuer, &rdns)
	if err != nil {
		return "", fmt.Errorf("issuer name: %w", err)
	}
	if len(rest) != 0 {
		return "", fmt.Errorf("issuer name: trailing data")
	}
	var b strings.Builder
	for i := len(rdns) - 1; i >= 0; i-- {
		if i != len(rdns)-1 {
			b.WriteByte(',')
		}
		for j, atv := range rdns[i] {
			if j > 0 {
				b.WriteByte('+')
			}
			kw, known := dnKeywords[atv.Type.String()]
			str, isString := dnString(atv.Value)
			if !known || !isString {
				b.WriteString(atv.Type.String())
				b.WriteString("=#")
				b.WriteString(hex.EncodeToString(atv.Value.FullBytes))
				continue
			}
			b.WriteString(kw)
			b.WriteByte('=')
			b.WriteString(escapeDNValue(str))
		}
	}
	return b.String(), nil
}

// dnString decodes the directory string types.
func dnString(v asn1.RawValue) (string, bool) {
	if v.Class != asn1.ClassUniversal {
		return "", false
	}
	switch v.Tag {
	case asn1.TagPrintableString, asn1.TagIA5String, asn1.TagUTF8String, asn1.TagT61String, asn1.TagNumericString:
		if !utf8.Valid(v.Bytes) {
			return "", false
		}
		return string(v.Bytes), true
	case asn1.TagBMPString:
		if len(v.Bytes)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(v.Bytes)/2)
		for i := range u {
			u[i] = uint16(v.Bytes[2*i])<<8 | uint16(v.Bytes[2*i+1])
		}
		return string(utf16.Decode(u)), true
	}
	return "", false
}

// escapeDNValue escapes an attribute value per RFC 4514 §2.4.
func escapeDNValue(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == ',' || r == '+' || r == '"' || r == '\\' || r == '<' || r == '>' || r == ';':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\%02x`, r)
		case (r == ' ' || r == '#') && i == 0:
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == ' ' && i == len(s)-1:
			b.WriteString(`\ `)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// escapeText escapes s for XML character data.
func escapeText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\r", "&#xD;").Replace(s)
}

// escapeAttr escapes s for a double-quoted XML attribute value.
func escapeAttr(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "\t", "&#x9;", "\n", "&#xA;", "\r", "&#xD;").Replace(s)
}

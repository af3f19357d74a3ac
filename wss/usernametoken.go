package wss

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Password types of the Username Token Profile 1.1 §3.1.
const (
	PasswordTypeText   = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
	PasswordTypeDigest = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
)

// UsernameToken is a wsse:UsernameToken that Sign adds to the Security
// header (Username Token Profile 1.1). Its String method never shows the
// password.
type UsernameToken struct {
	Username string
	Password string
	// Digest sends Password_Digest = Base64(SHA-1(nonce + created +
	// password)) with a 16-byte wsse:Nonce and wsu:Created; otherwise the
	// password is sent as PasswordText (only sensible over TLS).
	Digest bool
}

// String describes the token without its password.
func (u *UsernameToken) String() string {
	if u == nil {
		return "<nil>"
	}
	kind := "text"
	if u.Digest {
		kind = "digest"
	}
	return fmt.Sprintf("UsernameToken{%s, password %s}", u.Username, kind)
}

// GoString keeps %#v from printing the password.
func (u *UsernameToken) GoString() string { return u.String() }

func (u *UsernameToken) check() error {
	if u.Username == "" {
		return errorf(CodeUnsupported, "UsernameToken without a user name")
	}
	for _, s := range []string{u.Username, u.Password} {
		if !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool {
			return r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF
		}) {
			return errorf(CodeUnsupported, "UsernameToken user name or password holds characters XML cannot carry")
		}
	}
	return nil
}

// PasswordDigest is Base64(SHA-1(nonce ‖ created ‖ password)), nonce raw.
func PasswordDigest(nonce []byte, created, password string) string {
	h := sha1.New()
	h.Write(nonce)
	io.WriteString(h, created)
	io.WriteString(h, password)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// renderUsernameToken writes the token; nonce and created are used for the
// digest form only.
func renderUsernameToken(u *UsernameToken, wsse, wsu, decls, id string, nonce []byte, created string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<%[1]s:UsernameToken%[3]s %[2]s:Id="%[4]s"><%[1]s:Username>%[5]s</%[1]s:Username>`, wsse, wsu, decls, id, escapeText(u.Username))
	if u.Digest {
		fmt.Fprintf(&b, `<%[1]s:Password Type="%[2]s">%[3]s</%[1]s:Password><%[1]s:Nonce EncodingType="%[4]s">%[5]s</%[1]s:Nonce><%[6]s:Created>%[7]s</%[6]s:Created>`,
			wsse, PasswordTypeDigest, PasswordDigest(nonce, created, u.Password), EncodingBase64, base64.StdEncoding.EncodeToString(nonce), wsu, created)
	} else {
		fmt.Fprintf(&b, `<%[1]s:Password Type="%[2]s">%[3]s</%[1]s:Password>`, wsse, PasswordTypeText, escapeText(u.Password))
	}
	fmt.Fprintf(&b, `</%s:UsernameToken>`, wsse)
	return b.String()
}

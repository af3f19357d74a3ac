package config

import (
	"fmt"
	"strings"
	"time"
)

// Profile binds a key to a WS-Security signing policy and to the callers
// that may use it.
type Profile struct {
	// Key is the name of a [keys.NAME] table.
	Key string `toml:"key"`
	// Parts to sign, in order: "Body", "Timestamp", "BinarySecurityToken",
	// "UsernameToken" or "{namespace}localName" for any header block. A
	// trailing "?" marks a part optional. Default ["Body", "Timestamp"].
	Parts []string `toml:"parts"`
	// SignatureMethod is an XML-DSig algorithm URI. Default by key type.
	SignatureMethod string `toml:"signature_method"`
	// DigestMethod is an algorithm URI. Default SHA-256.
	DigestMethod string `toml:"digest_method"`
	// AllowSHA1 opts in to RSA-SHA1 and SHA-1 digests (legacy services only).
	AllowSHA1 bool `toml:"allow_sha1"`
	// TimestampTTL is Expires − Created. Default 300s.
	TimestampTTL Duration `toml:"timestamp_ttl"`
	// AllowUsers are user names or numeric uids that may use this profile;
	// "*" allows every client that can reach the socket.
	AllowUsers []string `toml:"allow_users"`
	// AllowGroups are group names or numeric gids (primary or
	// supplementary) that may use this profile.
	AllowGroups []string `toml:"allow_groups"`
}

func (p *Profile) defaults() {
	if len(p.Parts) == 0 {
		p.Parts = []string{"Body", "Timestamp"}
	}
	if p.TimestampTTL.Duration == 0 {
		p.TimestampTTL.Duration = 300 * time.Second
	}
}

// validate returns the problems of one profile; f is its field path.
func (p *Profile) validate(f string) []string {
	var probs []string
	bad := func(field, format string, args ...any) {
		probs = append(probs, field+": "+fmt.Sprintf(format, args...))
	}
	for i, part := range p.Parts {
		if _, _, _, err := ParsePart(part); err != nil {
			bad(fmt.Sprintf("%s.parts[%d]", f, i), "%v", err)
		}
	}
	if p.TimestampTTL.Duration < time.Second {
		bad(f+".timestamp_ttl", "must be at least 1s")
	}
	if len(p.AllowUsers) == 0 && len(p.AllowGroups) == 0 {
		bad(f, "allows nobody: set allow_users or allow_groups (\"*\" allows every client of the socket)")
	}
	return probs
}

// ParsePart parses a parts entry into a namespace URI and local name. The
// names Body, Timestamp, BinarySecurityToken and UsernameToken stand for
// their WS-Security elements; namespace "" with local "Body" means the SOAP
// Body of either version.
func ParsePart(s string) (space, local string, optional bool, err error) {
	if strings.HasSuffix(s, "?") {
		optional = true
		s = strings.TrimSuffix(s, "?")
	}
	switch s {
	case "Body":
		return "", "Body", optional, nil
	case "Timestamp":
		return "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd", "Timestamp", optional, nil
	case "BinarySecurityToken", "UsernameToken":
		return "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd", s, optional, nil
	}
	if strings.HasPrefix(s, "{") {
		if i := strings.Index(s, "}"); i > 1 && i < len(s)-1 && !strings.ContainsAny(s[i+1:], "{}: ") {
			return s[1:i], s[i+1:], optional, nil
		}
	}
	return "", "", false, fmt.Errorf("%q: want Body, Timestamp, BinarySecurityToken, UsernameToken or {namespace}localName", s)
}

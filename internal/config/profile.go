package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/wssignd/wssignd/internal/defs"
)

// Profile binds a key to a WS-Security signing policy and to the callers
// that may use it. A profile may start from a named preset; every setting
// it names then overrides the preset's.
type Profile struct {
	// Key is the name of a [keys.NAME] table. Required unless signature =
	// false.
	Key string `toml:"key"`
	// Preset is a named starting point: bsp-default, digikoppeling,
	// ehealth-be, dian-co, sat-mx, face-es, irs-aca or sunat-pe (see
	// README "Signing profiles and presets"). Without a preset the
	// defaults below apply.
	Preset string `toml:"preset"`
	// Parts to sign, in order: "Body", "Timestamp", "BinarySecurityToken",
	// "UsernameToken" or "{namespace}localName" for any header block
	// ("{*}localName": in any namespace). A trailing "?" marks a part
	// optional. Default: the preset's, else ["Body", "Timestamp"] (["Body"]
	// with timestamp = false, none with signature = false).
	Parts []string `toml:"parts"`
	// SignatureMethod is an XML-DSig algorithm URI (RSA PKCS#1 v1.5, RSA-PSS
	// of RFC 6931 "#sha256-rsa-MGF1" etc., or ECDSA). Default: the preset's,
	// else by key type (RSA-SHA256, ECDSA with the curve's hash).
	SignatureMethod string `toml:"signature_method"`
	// DigestMethod is an algorithm URI. Default: the preset's, else SHA-256.
	DigestMethod string `toml:"digest_method"`
	// AllowSHA1 opts in to RSA-SHA1 and SHA-1 digests (legacy services only).
	AllowSHA1 *bool `toml:"allow_sha1"`
	// TimestampTTL is Expires − Created. Default: the preset's, else 300s.
	TimestampTTL Duration `toml:"timestamp_ttl"`
	// TimestampMillis writes Created and Expires with milliseconds.
	TimestampMillis *bool `toml:"timestamp_millis"`
	// TimestampExpires = false leaves wsu:Expires out. Default true.
	TimestampExpires *bool `toml:"timestamp_expires"`
	// TimestampZone is how Created and Expires (always UTC) end: "Z"
	// (default) or "+00:00".
	TimestampZone string `toml:"timestamp_zone"`
	// Timestamp = false sends no wsu:Timestamp. Default: the preset's, else
	// true.
	Timestamp *bool `toml:"timestamp"`
	// Signature = false sends the Security header without a Signature
	// (a UsernameToken and/or a Timestamp only); the profile then needs no
	// key and signs no parts. Default: the preset's, else true.
	Signature *bool `toml:"signature"`
	// ReferenceTransforms = false writes References without Transforms,
	// digesting each signed element's inclusive Canonical XML 1.0 form as
	// XML Signature prescribes (WS-I BSP requires Transforms; only for
	// services whose clients send none). Default: the preset's, else true.
	ReferenceTransforms *bool `toml:"reference_transforms"`
	// MustUnderstand = false leaves the mustUnderstand attribute off the
	// Security header wssignd adds. Default: the preset's, else true.
	MustUnderstand *bool `toml:"must_understand"`
	// SignatureConfirmation = true makes the profile a responder's: each
	// sign request passes the SignatureValue(s) of the request it answers
	// (header Wssignd-Signature-Confirmation, or "unsigned"), and the
	// response carries a signed wsse11:SignatureConfirmation for each
	// (WS-Security 1.1 §8.5; Digikoppeling WB014). Default false.
	SignatureConfirmation *bool `toml:"signature_confirmation"`
	// TokenReference is how the signature names its certificate: direct (a
	// reference to the BinarySecurityToken, default), issuer-serial, ski,
	// thumbprint or x509-key-identifier.
	TokenReference string `toml:"token_reference"`
	// IncludeBST sends the BinarySecurityToken even when the token reference
	// does not need it.
	IncludeBST *bool `toml:"include_bst"`
	// BSTValueType is X509v3 (the certificate, default) or X509PKIPathv1
	// (the whole chain).
	BSTValueType string `toml:"bst_value_type"`
	// InclusivePrefixes adds an exclusive C14N InclusiveNamespaces
	// PrefixList, computed from the prefixes each signed element uses, to
	// SignedInfo and to every Reference.
	InclusivePrefixes *bool `toml:"inclusive_prefixes"`
	// Actor is the SOAP 1.1 actor / SOAP 1.2 role of the Security header.
	// Default none (the ultimate receiver).
	Actor string `toml:"actor"`
	// Layout orders the Security header: strict (tokens and Timestamp
	// before the Signature, default), timestamp-first or timestamp-last.
	Layout string `toml:"layout"`
	// SOAPVersion "1.1" or "1.2" refuses envelopes of the other version.
	// Default: the preset's, else both accepted.
	SOAPVersion string `toml:"soap_version"`
	// Username adds a wsse:UsernameToken with this user name; it needs
	// password_file.
	Username string `toml:"username"`
	// PasswordFile holds the UsernameToken password (one trailing newline is
	// ignored). It is read at startup and on reload, must not be readable
	// by others, and is never logged. A relative path is taken from the
	// config file's directory.
	PasswordFile string `toml:"password_file"`
	// PasswordType is digest (PasswordDigest with Nonce and Created,
	// default) or text (PasswordText).
	PasswordType string `toml:"password_type"`
	// AllowUsers are user names or numeric uids that may use this profile;
	// "*" allows every client that can reach the socket.
	AllowUsers []string `toml:"allow_users"`
	// AllowGroups are group names or numeric gids (primary or
	// supplementary) that may use this profile.
	AllowGroups []string `toml:"allow_groups"`
	// Encrypt names an [encrypt.NAME] profile: the envelope is encrypted
	// for its recipient after signing (sign-then-encrypt, the default) or,
	// with EncryptBeforeSign, before (encrypt-then-sign).
	Encrypt string `toml:"encrypt"`
	// EncryptBeforeSign selects encrypt-then-sign.
	EncryptBeforeSign bool `toml:"encrypt_before_sign"`
}

func (p *Profile) defaults() {
	if p.Preset != "" {
		return // the preset supplies what the profile leaves unset
	}
	switch {
	case len(p.Parts) > 0 || isFalse(p.Signature):
	case isFalse(p.Timestamp):
		p.Parts = []string{"Body"}
	default:
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
	oneOf := func(field, v string, allowed []string) {
		if v != "" && !slices.Contains(allowed, v) {
			bad(f+"."+field, "%q is not one of %s", v, strings.Join(allowed, ", "))
		}
	}
	oneOf("preset", p.Preset, defs.Presets())
	oneOf("token_reference", p.TokenReference, defs.TokenReferences())
	oneOf("layout", p.Layout, defs.Layouts())
	oneOf("bst_value_type", p.BSTValueType, []string{"X509v3", "X509PKIPathv1"})
	oneOf("soap_version", p.SOAPVersion, []string{"1.1", "1.2"})
	oneOf("password_type", p.PasswordType, []string{"digest", "text"})
	oneOf("timestamp_zone", p.TimestampZone, []string{"Z", "+00:00"})
	if isFalse(p.Signature) {
		if len(p.Parts) > 0 {
			bad(f+".parts", "nothing is signed with signature = false")
		}
		if p.SignatureConfirmation != nil && *p.SignatureConfirmation {
			bad(f+".signature_confirmation", "a SignatureConfirmation must be signed: it needs signature = true")
		}
		if p.Username == "" && isFalse(p.Timestamp) {
			bad(f, "signature = false and timestamp = false need a username: the Security header would be empty")
		}
	}
	for i, part := range p.Parts {
		if _, _, _, err := ParsePart(part); err != nil {
			bad(fmt.Sprintf("%s.parts[%d]", f, i), "%v", err)
		}
	}
	if p.TimestampTTL.Duration != 0 && p.TimestampTTL.Duration < time.Second {
		bad(f+".timestamp_ttl", "must be at least 1s")
	}
	if (p.Username == "") != (p.PasswordFile == "") {
		bad(f, "username and password_file go together")
	}
	if p.PasswordType != "" && p.Username == "" {
		bad(f+".password_type", "needs username and password_file")
	}
	if len(p.AllowUsers) == 0 && len(p.AllowGroups) == 0 {
		bad(f, "allows nobody: set allow_users or allow_groups (\"*\" allows every client of the socket)")
	}
	return probs
}

func isFalse(b *bool) bool { return b != nil && !*b }

// NeedsKey reports whether the profile signs, and so needs its key. A
// profile with a preset that sends no signature (sunat-pe) needs none
// either; the preset names are the ones package wss defines.
func (p *Profile) NeedsKey() bool {
	if p.Signature != nil {
		return *p.Signature
	}
	return p.Preset != "sunat-pe"
}

// ReadPassword reads the UsernameToken password from PasswordFile, taking a
// relative path from the directory of configFile. It refuses a file that
// group or others may read. It returns "" when the profile has no
// UsernameToken. Errors name the file, never its content.
func (p *Profile) ReadPassword(configFile string) (string, error) {
	if p.PasswordFile == "" {
		return "", nil
	}
	path := p.PasswordFile
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(configFile), path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("password_file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("password_file %s: mode %04o lets group or others access it; chmod go-rwx", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("password_file: %w", err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("password_file %s is empty", path)
	}
	return s, nil
}

// AnyNamespace is the namespace of a "{*}localName" part: a signing
// profile's part that matches the local name in any namespace.
const AnyNamespace = defs.AnyNamespace

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

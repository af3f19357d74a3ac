package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// VerifyProfile says which signed messages /v1/soap/verify accepts.
type VerifyProfile struct {
	// TrustedCerts are PEM files of certificates trusted as signers as
	// they are (pinned, compared byte for byte). A relative path is taken
	// from the config file's directory.
	TrustedCerts []string `toml:"trusted_certs"`
	// CACerts are PEM files of CA certificates (trust anchors): a signer
	// certificate that chains to one of them at verification time is
	// trusted. At least one of trusted_certs and ca_certs.
	CACerts []string `toml:"ca_certs"`
	// IntermediateCerts are PEM files of intermediate CA certificates used
	// to complete chains (tokens may also carry them in a PkiPath).
	IntermediateCerts []string `toml:"intermediate_certs"`
	// SubjectPattern and IssuerPattern are Go regular expressions the
	// signer's subject / issuer DN (RFC 4514, as "CN=x,O=y") must match;
	// anchor with ^...$. Empty: any.
	SubjectPattern string `toml:"subject_pattern"`
	IssuerPattern  string `toml:"issuer_pattern"`
	// Parts that must be signed, checked by node identity: same syntax as
	// the parts of sign profiles; a trailing "?" means "signed when
	// present". Default ["Body", "Timestamp"].
	Parts []string `toml:"parts"`
	// AllowUnsignedAddressing accepts WS-Addressing header blocks that are
	// not signed (by default every one present must be signed).
	AllowUnsignedAddressing bool `toml:"allow_unsigned_addressing"`
	// RequireTimestamp requires a Timestamp even when parts does not name
	// one.
	RequireTimestamp bool `toml:"require_timestamp"`
	// FutureSkew tolerates a Created in the future. Default 60s.
	FutureSkew Duration `toml:"future_skew"`
	// MaxAge is the oldest Created accepted (the TTL). Default 300s.
	MaxAge Duration `toml:"max_age"`
	// MaxLifetime bounds Expires − Created. Default 3600s.
	MaxLifetime Duration `toml:"max_lifetime"`
	// SignatureMethods, DigestMethods and C14NMethods are allow-lists of
	// algorithm URIs. Empty: every SHA-2 signature and digest method, and
	// exclusive C14N without comments.
	SignatureMethods []string `toml:"signature_methods"`
	DigestMethods    []string `toml:"digest_methods"`
	C14NMethods      []string `toml:"c14n_methods"`
	// AllowSHA1 admits RSA-SHA1 and SHA-1 digests (legacy peers only).
	AllowSHA1 bool `toml:"allow_sha1"`
	// MaxReferences bounds the References of a signature. Default 64.
	MaxReferences int `toml:"max_references"`
	// ReplayCacheSize bounds the replay cache (entries). Default 100000.
	//
	// The replay cache lives in memory for the life of the process: a
	// reload keeps it (a new size takes effect at the next start). A
	// process cannot know what an earlier one verified, so it refuses
	// (code replay) every message whose Timestamp Created is before it
	// started (a Created in whole seconds: before the second it started
	// in), and, for max_age + future_skew after the start, every message
	// without a Timestamp. This was chosen over keeping entries on disk
	// under state_dir: it closes the window exactly, whatever happened to
	// the old process (a crash or a kill leaves no file to trust, a disk
	// write per verified message would be on the hot path, and a full or
	// read-only state_dir would reopen the window), at the price of
	// refusing messages created before a restart and delivered after it
	// (senders send them again with a new Timestamp). One window remains:
	// a sender whose clock is ahead of ours (within future_skew) may have
	// a message verified in the last moments before a restart that is
	// dated after it, and so may one verified within the second before a
	// start when Created is in whole seconds.
	ReplayCacheSize int `toml:"replay_cache_size"`
	// UnsignedFaults is "reject" (default) or "accept": an unsigned SOAP
	// Fault is then valid, flagged with unsigned_fault and code
	// unsigned-fault.
	UnsignedFaults string `toml:"unsigned_faults"`
	// Actor selects the Security header by SOAP 1.1 actor / 1.2 role;
	// default the one without.
	Actor string `toml:"actor"`
	// AllowUsers and AllowGroups: as for sign profiles.
	AllowUsers  []string `toml:"allow_users"`
	AllowGroups []string `toml:"allow_groups"`
}

func (p *VerifyProfile) defaults(dir string) {
	abs := func(ps []string) {
		for i, f := range ps {
			if f != "" && !filepath.IsAbs(f) {
				ps[i] = filepath.Join(dir, f)
			}
		}
	}
	abs(p.TrustedCerts)
	abs(p.CACerts)
	abs(p.IntermediateCerts)
	if len(p.Parts) == 0 {
		p.Parts = []string{"Body", "Timestamp"}
	}
	if p.FutureSkew.Duration == 0 {
		p.FutureSkew.Duration = 60 * time.Second
	}
	if p.MaxAge.Duration == 0 {
		p.MaxAge.Duration = 300 * time.Second
	}
	if p.MaxLifetime.Duration == 0 {
		p.MaxLifetime.Duration = 3600 * time.Second
	}
	if p.MaxReferences == 0 {
		p.MaxReferences = 64
	}
	if p.ReplayCacheSize == 0 {
		p.ReplayCacheSize = 100_000
	}
	if p.UnsignedFaults == "" {
		p.UnsignedFaults = "reject"
	}
}

func (p *VerifyProfile) validate(f string, c *Config) []string {
	var probs []string
	bad := func(field, format string, args ...any) {
		probs = append(probs, field+": "+fmt.Sprintf(format, args...))
	}
	if len(p.TrustedCerts) == 0 && len(p.CACerts) == 0 {
		bad(f, "trusts no one: set trusted_certs, ca_certs or both")
	}
	for field, files := range map[string][]string{"trusted_certs": p.TrustedCerts, "ca_certs": p.CACerts, "intermediate_certs": p.IntermediateCerts} {
		for i, file := range files {
			if _, err := ReadCertificates(file); err != nil {
				bad(fmt.Sprintf("%s.%s[%d]", f, field, i), "%v", err)
			}
		}
	}
	for field, pat := range map[string]string{"subject_pattern": p.SubjectPattern, "issuer_pattern": p.IssuerPattern} {
		if _, err := regexp.Compile(pat); err != nil {
			bad(f+"."+field, "%v", err)
		}
	}
	for i, part := range p.Parts {
		if space, _, _, err := ParsePart(part); err != nil {
			bad(fmt.Sprintf("%s.parts[%d]", f, i), "%v", err)
		} else if space == AnyNamespace {
			bad(fmt.Sprintf("%s.parts[%d]", f, i), "%q: a required part names its namespace (\"{*}\" is for signing profiles)", part)
		}
	}
	if p.FutureSkew.Duration < 0 {
		bad(f+".future_skew", "must not be negative")
	}
	if p.MaxAge.Duration < time.Second {
		bad(f+".max_age", "must be at least 1s")
	}
	if p.MaxLifetime.Duration < time.Second {
		bad(f+".max_lifetime", "must be at least 1s")
	}
	if p.MaxReferences < 1 || p.MaxReferences > 1024 {
		bad(f+".max_references", "must be between 1 and 1024")
	}
	if p.ReplayCacheSize < 1 {
		bad(f+".replay_cache_size", "must be at least 1")
	}
	if !slices.Contains([]string{"reject", "accept"}, p.UnsignedFaults) {
		bad(f+".unsigned_faults", "must be reject or accept, not %q", p.UnsignedFaults)
	}
	for field, uris := range map[string][]string{"signature_methods": p.SignatureMethods, "digest_methods": p.DigestMethods, "c14n_methods": p.C14NMethods} {
		for i, u := range uris {
			if u == "" || strings.Contains(u, "md5") {
				bad(fmt.Sprintf("%s.%s[%d]", f, field, i), "%q is not an acceptable algorithm URI", u)
			}
		}
	}
	if len(p.AllowUsers) == 0 && len(p.AllowGroups) == 0 {
		bad(f, "allows nobody: set allow_users or allow_groups (\"*\" allows every client of the socket)")
	}
	slices.Sort(probs) // map iteration order must not reorder the report
	return probs
}

package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/wssignd/wssignd/internal/defs"
)

// Names of the XML Encryption algorithms a profile may choose.
// The accepted encryption algorithm names come from internal/defs, the
// table package wss maps to URIs: the CBC data algorithms need allow_cbc;
// rsa-1_5 (legacy, open to padding-oracle attacks) needs allow_rsa15.
var (
	dataAlgorithms = defs.DataAlgorithms()
	keyTransports  = defs.KeyTransports()
	oaepDigests    = defs.OAEPDigests()
	mgfs           = defs.MGFs()
	recipientRefs  = defs.RecipientRefs()
)

// EncryptProfile configures /v1/soap/encrypt?profile=NAME: for whom and
// how the Body (and chosen header blocks) are encrypted.
type EncryptProfile struct {
	// RecipientCert is a PEM or DER file with the recipient's certificate
	// (an RSA key of at least 2048 bits); a relative path is taken from the
	// config file's directory. Required unless allow_recipient_header is
	// set, in which case a request without the header uses it if set.
	RecipientCert string `toml:"recipient_cert"`
	// AllowRecipientHeader lets a request name the recipient with the
	// Wssignd-Recipient-Cert header (base64 DER), e.g. to encrypt a response
	// for the certificate of the request just verified. The certificate
	// must be currently valid and chain to trust_anchors when set.
	AllowRecipientHeader bool `toml:"allow_recipient_header"`
	// TrustAnchors is a PEM file of CA certificates a certificate from the
	// header must chain to. Empty: any well-formed, currently valid RSA
	// certificate is accepted.
	TrustAnchors string `toml:"trust_anchors"`
	// Parts to encrypt: "Body" (its content) and header blocks as
	// "{namespace}localName" (each becomes a wsse11:EncryptedHeader); a
	// trailing "?" marks a part optional. Default ["Body"].
	Parts []string `toml:"parts"`
	// DataAlgorithm is aes256-gcm (default), aes128-gcm, or with allow_cbc
	// aes128-cbc or aes256-cbc.
	DataAlgorithm string `toml:"data_algorithm"`
	// AllowCBC opts in to the CBC data algorithms (older peers only).
	AllowCBC bool `toml:"allow_cbc"`
	// KeyTransport is rsa-oaep (default; XML Encryption 1.1), rsa-oaep-mgf1p
	// (older peers), or with allow_rsa15 the legacy rsa-1_5.
	KeyTransport string `toml:"key_transport"`
	// AllowRSA15 opts in to the legacy rsa-1_5 key transport.
	AllowRSA15 bool `toml:"allow_rsa15"`
	// OAEPDigest is the OAEP digest: default sha256 for rsa-oaep, sha1 for
	// rsa-oaep-mgf1p.
	OAEPDigest string `toml:"oaep_digest"`
	// MGF is the mask generation function of rsa-oaep; default mgf1sha256.
	MGF string `toml:"mgf"`
	// KeyReference says how the EncryptedKey names the recipient
	// certificate: IssuerSerial (default), SKI or Thumbprint.
	KeyReference string `toml:"key_reference"`
	// AllowUsers and AllowGroups: as for sign profiles.
	AllowUsers  []string `toml:"allow_users"`
	AllowGroups []string `toml:"allow_groups"`
}

func (p *EncryptProfile) defaults(dir string) {
	if len(p.Parts) == 0 {
		p.Parts = []string{"Body"}
	}
	if p.DataAlgorithm == "" {
		p.DataAlgorithm = defs.AES256GCM
	}
	if p.KeyTransport == "" {
		p.KeyTransport = defs.RSAOAEP
	}
	if p.OAEPDigest == "" {
		switch p.KeyTransport {
		case defs.RSAOAEP:
			p.OAEPDigest = defs.SHA256
		case defs.RSAOAEPMGF1P:
			p.OAEPDigest = defs.SHA1
		}
	}
	if p.MGF == "" && p.KeyTransport == defs.RSAOAEP {
		p.MGF = defs.MGF1SHA256
	}
	if p.KeyReference == "" {
		p.KeyReference = defs.RecipientIssuerSerial
	}
	if p.RecipientCert != "" && !filepath.IsAbs(p.RecipientCert) {
		p.RecipientCert = filepath.Join(dir, p.RecipientCert)
	}
	if p.TrustAnchors != "" && !filepath.IsAbs(p.TrustAnchors) {
		p.TrustAnchors = filepath.Join(dir, p.TrustAnchors)
	}
}

func (p *EncryptProfile) validate(f string, c *Config) []string {
	var probs []string
	bad := func(field, format string, args ...any) {
		probs = append(probs, field+": "+fmt.Sprintf(format, args...))
	}
	if p.RecipientCert == "" && !p.AllowRecipientHeader {
		bad(f, "set recipient_cert, allow_recipient_header or both")
	}
	if p.RecipientCert != "" {
		if _, err := ReadCertificates(p.RecipientCert); err != nil {
			bad(f+".recipient_cert", "%v", err)
		}
	}
	if p.TrustAnchors != "" {
		if !p.AllowRecipientHeader {
			bad(f+".trust_anchors", "applies only with allow_recipient_header")
		}
		if _, err := ReadCertificates(p.TrustAnchors); err != nil {
			bad(f+".trust_anchors", "%v", err)
		}
	}
	for i, part := range p.Parts {
		if space, _, _, err := ParsePart(part); err != nil || space == AnyNamespace || part == "Timestamp" || part == "BinarySecurityToken" || part == "UsernameToken" {
			bad(fmt.Sprintf("%s.parts[%d]", f, i), "want Body or {namespace}localName of a header block, not %q", part)
		}
	}
	if !slices.Contains(dataAlgorithms, p.DataAlgorithm) {
		bad(f+".data_algorithm", "must be one of %v, not %q", dataAlgorithms, p.DataAlgorithm)
	} else if (p.DataAlgorithm == defs.AES128CBC || p.DataAlgorithm == defs.AES256CBC) && !p.AllowCBC {
		bad(f+".data_algorithm", "%s needs allow_cbc = true", p.DataAlgorithm)
	}
	switch p.KeyTransport {
	case defs.RSAOAEP:
		if !slices.Contains(mgfs, p.MGF) {
			bad(f+".mgf", "must be one of %v, not %q", mgfs, p.MGF)
		}
	case defs.RSAOAEPMGF1P:
		if p.MGF != "" && p.MGF != defs.MGF1SHA1 {
			bad(f+".mgf", "rsa-oaep-mgf1p always uses mgf1sha1")
		}
	case defs.RSA15:
		if !p.AllowRSA15 {
			bad(f+".key_transport", "the legacy rsa-1_5 needs allow_rsa15 = true")
		}
		if p.OAEPDigest != "" || p.MGF != "" {
			bad(f, "rsa-1_5 takes no oaep_digest or mgf")
		}
	default:
		bad(f+".key_transport", "must be one of %v, not %q", keyTransports, p.KeyTransport)
	}
	if p.KeyTransport != defs.RSA15 && !slices.Contains(oaepDigests, p.OAEPDigest) {
		bad(f+".oaep_digest", "must be one of %v, not %q", oaepDigests, p.OAEPDigest)
	}
	if !slices.Contains(recipientRefs, p.KeyReference) {
		bad(f+".key_reference", "must be one of %v, not %q", recipientRefs, p.KeyReference)
	}
	if len(p.AllowUsers) == 0 && len(p.AllowGroups) == 0 {
		bad(f, "allows nobody: set allow_users or allow_groups (\"*\" allows every client of the socket)")
	}
	return probs
}

// DecryptProfile configures /v1/soap/decrypt?profile=NAME: which key
// decrypts and which algorithms a message may announce.
type DecryptProfile struct {
	// Key is the name of a [keys.NAME] table holding an RSA key.
	Key string `toml:"key"`
	// DataAlgorithms accepted. Default ["aes128-gcm", "aes256-gcm"]; the
	// CBC ones need allow_cbc.
	DataAlgorithms []string `toml:"data_algorithms"`
	// AllowCBC opts in to accepting CBC data algorithms.
	AllowCBC bool `toml:"allow_cbc"`
	// KeyTransports accepted. Default ["rsa-oaep", "rsa-oaep-mgf1p"];
	// rsa-1_5 needs allow_rsa15.
	KeyTransports []string `toml:"key_transports"`
	// AllowRSA15 opts in to accepting the legacy rsa-1_5 key transport.
	AllowRSA15 bool `toml:"allow_rsa15"`
	// RequireSignedBody refuses to decrypt unless the Body is covered by a
	// valid signature that verify_profile accepts: over the Body holding
	// the EncryptedData (encrypt-then-sign, checked before decryption) or
	// over the decrypted Body (sign-then-encrypt, checked after it).
	RequireSignedBody bool `toml:"require_signed_body"`
	// VerifyProfile names the [verify.NAME] table whose trust and rules
	// check the signature for require_signed_body.
	VerifyProfile string `toml:"verify_profile"`
	// Actor selects the Security header holding the EncryptedKey by its
	// SOAP 1.1 actor / SOAP 1.2 role; default: the header without one (or
	// for the ultimate receiver).
	Actor string `toml:"actor"`
	// KeyNames are names peers give the key in a ds:KeyName of the
	// EncryptedKey's KeyInfo (instead of naming its certificate); empty:
	// a ds:KeyName names nothing.
	KeyNames []string `toml:"key_names"`
	// AllowUsers and AllowGroups: as for sign profiles.
	AllowUsers  []string `toml:"allow_users"`
	AllowGroups []string `toml:"allow_groups"`
}

func (p *DecryptProfile) defaults(dir string) {
	if len(p.DataAlgorithms) == 0 {
		p.DataAlgorithms = []string{defs.AES128GCM, defs.AES256GCM}
	}
	if len(p.KeyTransports) == 0 {
		p.KeyTransports = []string{defs.RSAOAEP, defs.RSAOAEPMGF1P}
	}
}

func (p *DecryptProfile) validate(f string, c *Config) []string {
	var probs []string
	bad := func(field, format string, args ...any) {
		probs = append(probs, field+": "+fmt.Sprintf(format, args...))
	}
	if p.Key == "" {
		bad(f+".key", "missing")
	} else if _, ok := c.Keys[p.Key]; !ok {
		bad(f+".key", "no key named %q", p.Key)
	}
	for i, a := range p.DataAlgorithms {
		switch {
		case !slices.Contains(dataAlgorithms, a):
			bad(fmt.Sprintf("%s.data_algorithms[%d]", f, i), "must be one of %v, not %q", dataAlgorithms, a)
		case (a == defs.AES128CBC || a == defs.AES256CBC) && !p.AllowCBC:
			bad(fmt.Sprintf("%s.data_algorithms[%d]", f, i), "%s needs allow_cbc = true", a)
		}
	}
	for i, a := range p.KeyTransports {
		switch {
		case !slices.Contains(keyTransports, a):
			bad(fmt.Sprintf("%s.key_transports[%d]", f, i), "must be one of %v, not %q", keyTransports, a)
		case a == defs.RSA15 && !p.AllowRSA15:
			bad(fmt.Sprintf("%s.key_transports[%d]", f, i), "the legacy rsa-1_5 needs allow_rsa15 = true")
		}
	}
	for i, n := range p.KeyNames {
		if strings.TrimSpace(n) != n || n == "" {
			bad(fmt.Sprintf("%s.key_names[%d]", f, i), "%q: a key name is not empty and has no leading or trailing space", n)
		}
	}
	switch {
	case p.RequireSignedBody && p.VerifyProfile == "":
		bad(f+".verify_profile", "require_signed_body needs a verify_profile")
	case !p.RequireSignedBody && p.VerifyProfile != "":
		bad(f+".verify_profile", "applies only with require_signed_body = true")
	case p.VerifyProfile != "":
		if _, ok := c.Verify[p.VerifyProfile]; !ok {
			bad(f+".verify_profile", "no verify profile named %q", p.VerifyProfile)
		}
	}
	if len(p.AllowUsers) == 0 && len(p.AllowGroups) == 0 {
		bad(f, "allows nobody: set allow_users or allow_groups (\"*\" allows every client of the socket)")
	}
	return probs
}

package wss

import (
	"crypto"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"fmt"

	"github.com/wssignd/wssignd/internal/defs"
)

// XML Encryption 1.0 and 1.1 namespaces, and the WS-Security 1.1 names that
// encryption uses.
const (
	NSXEnc   = "http://www.w3.org/2001/04/xmlenc#"
	NSXEnc11 = "http://www.w3.org/2009/xmlenc11#"

	// TypeContent and TypeElement are the EncryptedData Type values.
	TypeContent = "http://www.w3.org/2001/04/xmlenc#Content"
	TypeElement = "http://www.w3.org/2001/04/xmlenc#Element"

	// TokenTypeEncryptedKey is the wsse11:TokenType of a reference to an EncryptedKey.
	TokenTypeEncryptedKey = "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#EncryptedKey"
)

// Block encryption (data) algorithms.
const (
	AlgAES128GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
	AlgAES256GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
	AlgAES128CBC = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
	AlgAES256CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
)

// Key transport algorithms. AlgRSAOAEP (XML Encryption 1.1) carries its
// digest in ds:DigestMethod and its mask generation function in xenc11:MGF
// (both SHA-1 when absent); AlgRSAOAEPMGF1P always uses MGF1 with SHA-1 and
// a ds:DigestMethod (SHA-1 when absent). AlgRSA15 is legacy: RSAES-PKCS1-v1_5
// is open to Bleichenbacher-style attacks and is used only on explicit opt-in.
const (
	AlgRSAOAEP      = "http://www.w3.org/2009/xmlenc11#rsa-oaep"
	AlgRSAOAEPMGF1P = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
	AlgRSA15        = "http://www.w3.org/2001/04/xmlenc#rsa-1_5"
)

// Mask generation functions of AlgRSAOAEP.
const (
	AlgMGF1SHA1   = "http://www.w3.org/2009/xmlenc11#mgf1sha1"
	AlgMGF1SHA224 = "http://www.w3.org/2009/xmlenc11#mgf1sha224"
	AlgMGF1SHA256 = "http://www.w3.org/2009/xmlenc11#mgf1sha256"
	AlgMGF1SHA384 = "http://www.w3.org/2009/xmlenc11#mgf1sha384"
	AlgMGF1SHA512 = "http://www.w3.org/2009/xmlenc11#mgf1sha512"
)

// KeyIdentifier value types (X.509 Token Profile 1.1, SOAP Message Security 1.1).
const (
	xencVTSKI        = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509SubjectKeyIdentifier"
	xencVTThumbprint = "http://docs.oasis-open.org/wss/oasis-wss-soap-message-security-1.1#ThumbprintSHA1"
)

// Error codes of Encrypt and Decrypt.
const (
	// CodeDecryptionFailed is the one code of every decryption failure once
	// an EncryptedKey for our key was found: bad RSA padding, a wrong key, a
	// tag mismatch, bad CBC padding, a decrypted fragment that is not
	// well-formed, an algorithm the profile does not allow or does not know.
	// Its message is always the same.
	CodeDecryptionFailed Code = "decryption-failed"
	// CodeNoEncryptedKey: the envelope has no EncryptedKey addressed to the
	// decrypting key (decided from public KeyInfo data only).
	CodeNoEncryptedKey Code = "no-encrypted-key"
	// CodeBadRecipient: the recipient certificate cannot be used (not RSA,
	// too small, no usable key reference).
	CodeBadRecipient Code = "bad-recipient"
)

// dataAlg describes one block encryption algorithm.
type dataAlg struct {
	uri     string
	keySize int
	gcm     bool
}

var dataAlgs = map[string]dataAlg{
	AlgAES128GCM: {AlgAES128GCM, 16, true},
	AlgAES256GCM: {AlgAES256GCM, 32, true},
	AlgAES128CBC: {AlgAES128CBC, 16, false},
	AlgAES256CBC: {AlgAES256CBC, 32, false},
}

var mgfHashes = map[string]crypto.Hash{
	AlgMGF1SHA1:   crypto.SHA1,
	AlgMGF1SHA224: crypto.SHA224,
	AlgMGF1SHA256: crypto.SHA256,
	AlgMGF1SHA384: crypto.SHA384,
	AlgMGF1SHA512: crypto.SHA512,
}

// oaepDigests are the ds:DigestMethod values accepted inside an OAEP
// EncryptionMethod. SHA-1 is fine here: OAEP needs no collision resistance.
var oaepDigests = map[string]crypto.Hash{
	AlgSHA1:   crypto.SHA1,
	AlgSHA256: crypto.SHA256,
	AlgSHA384: crypto.SHA384,
	AlgSHA512: crypto.SHA512,
}

// xencShortNames are the names the configuration uses.
var xencShortNames = map[string]string{
	defs.AES128GCM:    AlgAES128GCM,
	defs.AES256GCM:    AlgAES256GCM,
	defs.AES128CBC:    AlgAES128CBC,
	defs.AES256CBC:    AlgAES256CBC,
	defs.RSAOAEP:      AlgRSAOAEP,
	defs.RSAOAEPMGF1P: AlgRSAOAEPMGF1P,
	defs.RSA15:        AlgRSA15,
	defs.SHA1:         AlgSHA1,
	defs.SHA256:       AlgSHA256,
	defs.SHA384:       AlgSHA384,
	defs.SHA512:       AlgSHA512,
	defs.MGF1SHA1:     AlgMGF1SHA1,
	defs.MGF1SHA224:   AlgMGF1SHA224,
	defs.MGF1SHA256:   AlgMGF1SHA256,
	defs.MGF1SHA384:   AlgMGF1SHA384,
	defs.MGF1SHA512:   AlgMGF1SHA512,
}

// XEncAlgorithm resolves an encryption algorithm given by its short name
// ("aes256-gcm", "rsa-oaep", "rsa-oaep-mgf1p", "rsa-1_5", "sha256",
// "mgf1sha256", ...) or by its full URI to the URI.
func XEncAlgorithm(name string) (string, error) {
	if uri, ok := xencShortNames[name]; ok {
		return uri, nil
	}
	for _, uri := range xencShortNames {
		if uri == name {
			return uri, nil
		}
	}
	return "", fmt.Errorf("unknown encryption algorithm %q", name)
}

// IsKeyTransport reports whether uri is a key transport algorithm Encrypt
// and Decrypt implement.
func IsKeyTransport(uri string) bool {
	return uri == AlgRSAOAEP || uri == AlgRSAOAEPMGF1P || uri == AlgRSA15
}

// RecipientRef says how an EncryptedKey names the recipient certificate.
type RecipientRef string

const (
	RecipientIssuerSerial RecipientRef = defs.RecipientIssuerSerial // ds:X509IssuerSerial (the default)
	RecipientSKI          RecipientRef = defs.RecipientSKI          // KeyIdentifier X509SubjectKeyIdentifier
	RecipientThumbprint   RecipientRef = defs.RecipientThumbprint   // KeyIdentifier ThumbprintSHA1
)

// xencSKI returns the certificate's SubjectKeyIdentifier extension, or
// when it has none the SHA-1 of its subjectPublicKey (RFC 5280 §4.2.1.2
// method 1), as WSS4J does.
func xencSKI(c *x509.Certificate) []byte {
	if len(c.SubjectKeyId) > 0 {
		return c.SubjectKeyId
	}
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(c.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:]
}

func xencThumbprint(c *x509.Certificate) []byte {
	sum := sha1.Sum(c.Raw)
	return sum[:]
}

// Package defs is the one source of the names and defaults that both the
// configuration (internal/config, which validates them) and the libraries
// (wss, which gives the names their meaning; api, which applies the limits)
// use. It imports nothing of the module, so every package may import it.
package defs

import "time"

// Request limits applied when the configuration (or api.Config) leaves them
// unset.
const (
	MaxConcurrent  = 64
	MaxBodyBytes   = 16 << 20
	RequestTimeout = 30 * time.Second
)

// AnyNamespace as the namespace of a part to sign ("{*}localName" in the
// configuration) matches the local name in any namespace.
const AnyNamespace = "*"

// Presets: named WS-Security profiles (wss defines each).
const (
	PresetBSPDefault    = "bsp-default"
	PresetDigikoppeling = "digikoppeling"
	PresetEHealthBE     = "ehealth-be"
	PresetDIANCo        = "dian-co"
	PresetSATMX         = "sat-mx"
	PresetFACeES        = "face-es"
	PresetIRSACA        = "irs-aca"
	PresetSUNATPE       = "sunat-pe"
)

// Presets returns every preset name; the slice is the caller's.
func Presets() []string {
	return []string{PresetBSPDefault, PresetDigikoppeling, PresetEHealthBE, PresetDIANCo, PresetSATMX,
		PresetFACeES, PresetIRSACA, PresetSUNATPE}
}

// Token references: how a Signature's KeyInfo names the certificate.
const (
	RefDirect            = "direct"
	RefIssuerSerial      = "issuer-serial"
	RefSKI               = "ski"
	RefThumbprint        = "thumbprint"
	RefX509KeyIdentifier = "x509-key-identifier"
)

// TokenReferences returns every token reference name; the slice is the
// caller's.
func TokenReferences() []string {
	return []string{RefDirect, RefIssuerSerial, RefSKI, RefThumbprint, RefX509KeyIdentifier}
}

// Layouts: the order of the elements of the Security header.
const (
	LayoutStrict         = "strict"
	LayoutTimestampFirst = "timestamp-first"
	LayoutTimestampLast  = "timestamp-last"
)

// Layouts returns every layout name; the slice is the caller's.
func Layouts() []string { return []string{LayoutStrict, LayoutTimestampFirst, LayoutTimestampLast} }

// Short names of the encryption algorithms (wss maps each to its URI).
const (
	AES128GCM = "aes128-gcm"
	AES256GCM = "aes256-gcm"
	AES128CBC = "aes128-cbc"
	AES256CBC = "aes256-cbc"

	RSAOAEP      = "rsa-oaep"
	RSAOAEPMGF1P = "rsa-oaep-mgf1p"
	RSA15        = "rsa-1_5"

	SHA1   = "sha1"
	SHA256 = "sha256"
	SHA384 = "sha384"
	SHA512 = "sha512"

	MGF1SHA1   = "mgf1sha1"
	MGF1SHA224 = "mgf1sha224"
	MGF1SHA256 = "mgf1sha256"
	MGF1SHA384 = "mgf1sha384"
	MGF1SHA512 = "mgf1sha512"
)

// DataAlgorithms returns the block encryption algorithms; the slice is the
// caller's.
func DataAlgorithms() []string { return []string{AES128GCM, AES256GCM, AES128CBC, AES256CBC} }

// KeyTransports returns the key transport algorithms; the slice is the
// caller's.
func KeyTransports() []string { return []string{RSAOAEP, RSAOAEPMGF1P, RSA15} }

// OAEPDigests returns the OAEP digest algorithms; the slice is the caller's.
func OAEPDigests() []string { return []string{SHA1, SHA256, SHA384, SHA512} }

// MGFs returns the MGF1 hash algorithms of rsa-oaep; the slice is the
// caller's.
func MGFs() []string { return []string{MGF1SHA1, MGF1SHA224, MGF1SHA256, MGF1SHA384, MGF1SHA512} }

// Recipient references: how an EncryptedKey names the recipient certificate.
const (
	RecipientIssuerSerial = "IssuerSerial"
	RecipientSKI          = "SKI"
	RecipientThumbprint   = "Thumbprint"
)

// RecipientRefs returns every recipient reference name; the slice is the
// caller's.
func RecipientRefs() []string {
	return []string{RecipientIssuerSerial, RecipientSKI, RecipientThumbprint}
}

package wss

import "time"

// Preset names. A profile starts from a preset and overrides what it must.
const (
	// PresetBSPDefault follows the WS-I Basic Security Profile 1.1 and the
	// OASIS X.509 Token Profile 1.1: it signs the SOAP Body, the Timestamp
	// and the X.509v3 BinarySecurityToken (parts required), references the
	// token by a wsse:Reference to the BST (DirectReference, BSP R3058/R3062
	// prefer it over KeyIdentifier), uses RSA-SHA256 (RFC 6931 §2.3.2) with
	// SHA-256 digests and exclusive C14N (BSP R5404, R5412), and a
	// Timestamp valid 300 s (a common receiver default, e.g. WSS4J's
	// timeToLive). Source: issue #3 item 7; WS-I BSP 1.1; X.509 Token
	// Profile 1.1 §3.2.
	PresetBSPDefault = "bsp-default"

	// PresetDigikoppeling is the Dutch government's Digikoppeling WUS
	// profile (Koppelvlakstandaard WUS, signed profiles 2W-be-S / 2W-be-SE):
	// SOAP 1.1 only; signs the Body, the WS-Addressing 1.0 headers wsa:To,
	// wsa:Action and wsa:MessageID (required) and wsa:ReplyTo,
	// wsa:RelatesTo, wsa:From and wsa:FaultTo when present, and the
	// Timestamp; DirectReference to an X.509v3 BST; RSA-SHA256 with SHA-256
	// digests; Timestamp 300 s. Source: issue #3 item 7; Logius
	// "Digikoppeling Koppelvlakstandaard WUS" 3.x (publicatie.centrumvoorstandaarden.nl/dk/wus/),
	// which requires WS-Addressing headers to be signed with the Body.
	// Which WS-Addressing headers are required rather than optional is our
	// reading; override parts if a service differs.
	PresetDigikoppeling = "digikoppeling"

	// PresetEHealthBE is the Belgian eHealth platform's X.509 WS-Security
	// profile: signs the BinarySecurityToken, the Timestamp and the Body, in
	// that order; DirectReference; RSA-SHA256 with SHA-256 digests;
	// Timestamp 300 s. Source: issue #3 item 7 (eHealth platform "WS-Security
	// X.509" cookbooks describe BST + Timestamp + Body signed with the
	// eHealth certificate).
	PresetEHealthBE = "ehealth-be"

	// PresetDIANCo is Colombia's DIAN electronic invoicing web service
	// (WCF, SOAP 1.2): only wsa:To is signed (required), the Timestamp is
	// sent but not signed, DirectReference to an X.509v3 BST, RSA-SHA256
	// with SHA-256 digests, and exclusive C14N with an InclusiveNamespaces
	// PrefixList on the SignedInfo CanonicalizationMethod and on each
	// Reference transform; Timestamps carry milliseconds as WCF writes
	// them. Source: issue #3 item 7; DIAN "Anexo técnico factura
	// electrónica de venta" web service examples (WCF-generated requests
	// with ec:InclusiveNamespaces on both). TTL 300 s is our default, not
	// DIAN's.
	PresetDIANCo = "dian-co"

	// PresetSATMX is Mexico's SAT "descarga masiva" authentication service:
	// only the Timestamp is signed, with RSA-SHA1 and SHA-1 digests —
	// explicitly legacy, so the preset opts in to SHA-1 — DirectReference
	// to an X.509v3 BST (the e.firma certificate), Timestamp 300 s.
	// Source: issue #3 item 7; SAT "Servicio de Autenticación" WSDL and
	// request examples (xmldsig#rsa-sha1, xmldsig#sha1).
	PresetSATMX = "sat-mx"
)

// PresetNames lists every preset.
var PresetNames = []string{PresetBSPDefault, PresetDigikoppeling, PresetEHealthBE, PresetDIANCo, PresetSATMX}

// Preset returns the SignOptions of a named preset, and whether it exists.
// Each call returns fresh slices, so callers may modify the result.
func Preset(name string) (SignOptions, bool) {
	ttl := 300 * time.Second
	wsa := func(local string, optional bool) Part { return Part{Space: NSWSA, Local: local, Optional: optional} }
	switch name {
	case PresetBSPDefault:
		return SignOptions{
			Parts:           []Part{PartBody, PartTimestamp, PartBST},
			TokenReference:  RefDirect,
			SignatureMethod: AlgRSASHA256,
			DigestMethod:    AlgSHA256,
			TTL:             ttl,
		}, true
	case PresetDigikoppeling:
		return SignOptions{
			SOAPVersion: "1.1",
			Parts: []Part{PartBody, wsa("To", false), wsa("Action", false), wsa("MessageID", false),
				wsa("ReplyTo", true), wsa("RelatesTo", true), wsa("From", true), wsa("FaultTo", true), PartTimestamp},
			TokenReference:  RefDirect,
			SignatureMethod: AlgRSASHA256,
			DigestMethod:    AlgSHA256,
			TTL:             ttl,
		}, true
	case PresetEHealthBE:
		return SignOptions{
			Parts:           []Part{PartBST, PartTimestamp, PartBody},
			TokenReference:  RefDirect,
			SignatureMethod: AlgRSASHA256,
			DigestMethod:    AlgSHA256,
			TTL:             ttl,
		}, true
	case PresetDIANCo:
		return SignOptions{
			SOAPVersion:       "1.2",
			Parts:             []Part{wsa("To", false)},
			TokenReference:    RefDirect,
			SignatureMethod:   AlgRSASHA256,
			DigestMethod:      AlgSHA256,
			InclusivePrefixes: true,
			TimestampMillis:   true,
			TTL:               ttl,
		}, true
	case PresetSATMX:
		return SignOptions{
			Parts:           []Part{PartTimestamp},
			TokenReference:  RefDirect,
			SignatureMethod: AlgRSASHA1,
			DigestMethod:    AlgSHA1,
			AllowSHA1:       true,
			TTL:             ttl,
		}, true
	}
	return SignOptions{}, false
}

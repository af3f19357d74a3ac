package wss

import (
	"time"

	"github.com/wssignd/wssignd/internal/defs"
)

// Preset names. A profile starts from a preset and overrides what it must.
// Each preset follows what the service's public working clients send (the
// project's evidence file names them); where a client and a published
// description disagree, the working client wins, and where the evidence
// is silent the preset keeps this package's defaults (strict layout,
// whole-second Timestamps ending in Z, mustUnderstand, Transforms with
// exclusive C14N and no InclusiveNamespaces).
const (
	// PresetBSPDefault follows the WS-I Basic Security Profile 1.1 and the
	// OASIS X.509 Token Profile 1.1: it signs the SOAP Body, the Timestamp
	// and the X.509v3 BinarySecurityToken (parts required), references the
	// token by a wsse:Reference to the BST (BSP R3022/R3058/R3062), uses
	// RSA-SHA256 (RFC 6931 §2.3.2) with SHA-256 digests (a deliberate
	// departure from the SHA-1 SHOULDs R5420/R5421) and exclusive C14N
	// (R5404, R5412), and a Timestamp valid 300 s (a common receiver
	// default, e.g. WSS4J's timeToLive).
	PresetBSPDefault = defs.PresetBSPDefault

	// PresetDigikoppeling is the Dutch government's Digikoppeling WUS
	// profile (Logius Koppelvlakstandaard WUS, 2W-be-S): SOAP 1.1 only
	// (WW001); the Body, the WS-Addressing headers and the Timestamp each
	// signed with their own Reference (WB004): wsa:To, wsa:Action and
	// wsa:MessageID are required in requests, wsa:From (not sent with
	// queries), wsa:ReplyTo (may be implicit), wsa:FaultTo and
	// wsa:RelatesTo (responses) are signed when present; exclusive C14N
	// (WB007); direct reference to an X.509v3 BST (WB009/WB010);
	// RSA-SHA256 with SHA-256 (SIGN001–004). The Timestamp has Created
	// and Expires in UTC (WB002); the standard prescribes no lifetime, so
	// the 300 s default stays.
	PresetDigikoppeling = defs.PresetDigikoppeling

	// PresetEHealthBE is the Belgian eHealth platform's X.509 profile as
	// the official connector 4.x sends it: signs the BinarySecurityToken,
	// the Timestamp and the Body; direct reference; RSA-SHA256 with
	// SHA-256; no InclusiveNamespaces; mustUnderstand "1"; SOAP 1.1 (the
	// STS WSDL); a Timestamp valid 60 s, the connector's default
	// (security.outgoing.message.timestamp.expires.ttl; eHI uses 5 min,
	// the official connector is the better guide).
	PresetEHealthBE = defs.PresetEHealthBE

	// PresetDIANCo is Colombia's DIAN electronic invoicing web service
	// (WCF, SOAP 1.2) as its working clients (Odoo l10n_co_dian,
	// ubl21dian) send it: only wsa:To is signed, the Timestamp is sent
	// unsigned and first in the Security header (Timestamp, BST,
	// Signature), with milliseconds and Expires = Created + 60 000 s; a
	// direct reference to an X.509v3 BST; RSA-SHA256 with SHA-256;
	// exclusive C14N with an InclusiveNamespaces PrefixList on the
	// SignedInfo CanonicalizationMethod and on each Reference (the
	// WCF-generated shape); no mustUnderstand on the Security header.
	PresetDIANCo = defs.PresetDIANCo

	// PresetSATMX is Mexico's SAT "descarga masiva" authentication service
	// as phpcfdi/sat-ws-descarga-masiva sends it: SOAP 1.1; only the
	// Timestamp is signed, with RSA-SHA1 and SHA-1 digests — legacy, so the
	// preset opts in to SHA-1; direct reference to an X.509v3 BST (the
	// e.firma certificate); exclusive C14N without InclusiveNamespaces;
	// Timestamp first in the Security header (Timestamp, BST, Signature),
	// with milliseconds, valid 5 min; mustUnderstand "1".
	PresetSATMX = defs.PresetSATMX

	// PresetFACeES is Spain's FACe / FACeB2B invoice web services as
	// josemmo/Facturae-PHP sends them: SOAP 1.1; signs the Timestamp and
	// the Body, in that order; direct reference to an X.509v3 BST;
	// RSA-SHA512 with SHA-512; References without Transforms (so each
	// digest is over the element's Canonical XML 1.0 form, which is what
	// that client hashes; a departure from BSP R5416); the Timestamp after
	// the Signature, valid 60 s, its times written with a "+00:00" offset;
	// mustUnderstand "1".
	PresetFACeES = defs.PresetFACeES

	// PresetIRSACA is the US IRS ACA Information Returns (AIR) A2A channel
	// as WSS4J-based public clients send it: SOAP 1.1; signs the Timestamp,
	// the ACATransmitterManifestReqDtl header (whose namespace changes with
	// the tax year's schema, urn:us:gov:treasury:irs:ext:aca:air:7.0,
	// …:ty25, so any namespace matches) and the ACABusinessHeader header,
	// not the (MTOM) Body; the certificate as a KeyIdentifier of ValueType
	// #X509v3 (WSS4J's X509KeyIdentifier, no BinarySecurityToken; a
	// departure from BSP R5206); RSA-SHA256 with SHA-256 (now required;
	// older clients show RSA-SHA1); Timestamp valid 600 s. The status
	// request signs other headers: override parts for it.
	PresetIRSACA = defs.PresetIRSACA

	// PresetSUNATPE is Peru's SUNAT billService as its public PHP clients
	// call it: a UsernameToken (RUC + SOL user) with a PasswordText
	// password, and nothing else: no Signature, no Timestamp. The profile
	// supplies username and password_file. The standard OASIS 2004
	// secext namespace is sent, not the 2002/12 draft's that some older
	// clients use.
	PresetSUNATPE = defs.PresetSUNATPE
)

// PresetNames lists every preset; the slice is the caller's.
func PresetNames() []string { return defs.Presets() }

// AnyNamespace as a Part's Space matches a header of that local name in
// any namespace (for schemas whose namespace changes with their version).
const AnyNamespace = defs.AnyNamespace

// Namespaces of the IRS ACA AIR headers.
const (
	NSIRSACABusinessHeader = "urn:us:gov:treasury:irs:msg:acabusinessheader"
)

// Preset returns the SignOptions of a named preset, and whether it exists.
// Each call returns fresh slices, so callers may modify the result.
func Preset(name string) (SignOptions, bool) {
	wsa := func(local string, optional bool) Part { return Part{Space: NSWSA, Local: local, Optional: optional} }
	switch name {
	case PresetBSPDefault:
		return SignOptions{
			Parts:           []Part{PartBody(), PartTimestamp(), PartBST()},
			TokenReference:  RefDirect,
			SignatureMethod: AlgRSASHA256,
			DigestMethod:    AlgSHA256,
			TTL:             300 * time.Second,
		}, true
	case PresetDigikoppeling:
		return SignOptions{
			SOAPVersion: "1.1",
			Parts: []Part{PartBody(), wsa("To", false), wsa("Action", false), wsa("MessageID", false),
				wsa("ReplyTo", true), wsa("RelatesTo", true), wsa("From", true), wsa("FaultTo", true), PartTimestamp()},
			TokenReference:  RefDirect,
			SignatureMethod: AlgRSASHA256,
			DigestMethod:    AlgSHA256,
			TTL:             300 * time.Second,
		}, true
	case PresetEHealthBE:
		return SignOptions{
			SOAPVersion:     "1.1",
			Parts:           []Part{PartBST(), PartTimestamp(), PartBody()},
			TokenReference:  RefDirect,
			SignatureMethod: AlgRSASHA256,
			DigestMethod:    AlgSHA256,
			TTL:             60 * time.Second,
		}, true
	case PresetDIANCo:
		return SignOptions{
			SOAPVersion:       "1.2",
			Parts:             []Part{wsa("To", false)},
			TokenReference:    RefDirect,
			SignatureMethod:   AlgRSASHA256,
			DigestMethod:      AlgSHA256,
			InclusivePrefixes: true,
			Layout:            LayoutTimestampFirst,
			TimestampMillis:   true,
			TTL:               60000 * time.Second,
			NoMustUnderstand:  true,
		}, true
	case PresetSATMX:
		return SignOptions{
			SOAPVersion:     "1.1",
			Parts:           []Part{PartTimestamp()},
			TokenReference:  RefDirect,
			SignatureMethod: AlgRSASHA1,
			DigestMethod:    AlgSHA1,
			AllowSHA1:       true,
			Layout:          LayoutTimestampFirst,
			TimestampMillis: true,
			TTL:             300 * time.Second,
		}, true
	case PresetFACeES:
		return SignOptions{
			SOAPVersion:     "1.1",
			Parts:           []Part{PartTimestamp(), PartBody()},
			TokenReference:  RefDirect,
			SignatureMethod: AlgRSASHA512,
			DigestMethod:    AlgSHA512,
			NoTransforms:    true,
			Layout:          LayoutTimestampLast,
			TimestampZone:   TimestampZoneOffset,
			TTL:             60 * time.Second,
		}, true
	case PresetIRSACA:
		return SignOptions{
			SOAPVersion: "1.1",
			Parts: []Part{PartTimestamp(), {Space: AnyNamespace, Local: "ACATransmitterManifestReqDtl"},
				{Space: NSIRSACABusinessHeader, Local: "ACABusinessHeader"}},
			TokenReference:  RefX509KeyIdentifier,
			SignatureMethod: AlgRSASHA256,
			DigestMethod:    AlgSHA256,
			TTL:             600 * time.Second,
		}, true
	case PresetSUNATPE:
		return SignOptions{
			NoSignature: true,
			NoTimestamp: true,
			// The profile gives the user name and password; PasswordText.
			UsernameToken: &UsernameToken{Digest: false},
		}, true
	}
	return SignOptions{}, false
}

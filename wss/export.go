package wss

import (
	"crypto"
	"crypto/rsa"
)

// ECDSARaw converts an ASN.1 DER ECDSA signature (what crypto.Signer and
// PKCS#11 wrappers return) to the fixed-width r‖s form of XML-DSig 1.1 and
// JWS, left-padding r and s to size bytes (the curve's byte length).
func ECDSARaw(der []byte, size int) ([]byte, error) { return ecdsaDERToRaw(der, size) }

// SignerOpts returns the crypto.SignerOpts that a signature method asks of a
// crypto.Signer (the hash, or *rsa.PSSOptions with salt length = hash
// length), so that a key's token can be checked for the mechanism at
// startup.
func SignerOpts(signatureMethod string) (crypto.SignerOpts, bool) {
	sa, ok := signatureAlgs[signatureMethod]
	if !ok {
		return nil, false
	}
	if sa.pss {
		return &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: sa.hash}, true
	}
	return sa.hash, true
}

package wss

// ECDSARaw converts an ASN.1 DER ECDSA signature (what crypto.Signer and
// PKCS#11 wrappers return) to the fixed-width r‖s form of XML-DSig 1.1 and
// JWS, left-padding r and s to size bytes (the curve's byte length).
func ECDSARaw(der []byte, size int) ([]byte, error) { return ecdsaDERToRaw(der, size) }

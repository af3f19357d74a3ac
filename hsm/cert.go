package hsm

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// SelfSignedCertificate makes a self-signed end-entity certificate for signer's key, signed by
// signer (so for a token key, inside the token): subject CN=commonName, valid from five minutes
// ago for validFor, key usage digital signature and non-repudiation (plus key encipherment for
// RSA), a random 127-bit serial and a subject key identifier (SHA-1 of the public key, RFC 5280
// method 1, as WS-Security SubjectKeyIdentifier references expect). Signature: SHA-256 with RSA
// PKCS #1 v1.5, or ECDSA with the curve's matching hash. The result is parsed and its signature
// checked before it is returned. It is meant for development and tests.
func SelfSignedCertificate(signer crypto.Signer, commonName string, validFor time.Duration) (*x509.Certificate, error) {
	if signer == nil {
		return nil, errors.New("self-signed certificate: no signer")
	}
	if validFor <= 0 {
		return nil, fmt.Errorf("self-signed certificate: validity %v is not positive", validFor)
	}
	pub := signer.Public()
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}

	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	serial.Add(serial, big.NewInt(1))

	usage := x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	if _, ok := pub.(*rsa.PublicKey); ok {
		usage |= x509.KeyUsageKeyEncipherment
	}
	now := time.Now().Truncate(time.Second)
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(validFor),
		KeyUsage:              usage,
		BasicConstraintsValid: true,
		SubjectKeyId:          ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return nil, fmt.Errorf("self-signed certificate: signature does not verify: %w", err)
	}
	return cert, nil
}

// subjectKeyID is the SHA-1 of a public key's subjectPublicKey bits (RFC 5280 4.2.1.2 method 1).
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var parsed struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(spki, &parsed); err != nil {
		return nil, err
	}
	ski := sha1.Sum(parsed.PublicKey.Bytes)
	return ski[:], nil
}

// IssuerCertificateID is the CKA_ID ImportChain gives an issuer (CA) certificate: its subject
// key identifier extension, or else the SHA-1 of its public key (RFC 5280 4.2.1.2 method 1).
func IssuerCertificateID(c *x509.Certificate) []byte {
	if len(c.SubjectKeyId) > 0 {
		return bytes.Clone(c.SubjectKeyId)
	}
	id, err := subjectKeyID(c.PublicKey)
	if err != nil {
		return nil
	}
	return id
}

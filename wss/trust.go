package wss

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// TrustStore decides which signing certificates Verify accepts: a pinned
// certificate (compared byte for byte), or one that chains to a root of the
// CA pool at verification time. Either way the certificate must be within
// its validity at verification time and, when set, its subject and issuer
// DNs (RFC 4514 strings as crypto/x509 prints them) must match the
// patterns. A nil TrustStore trusts nothing.
type TrustStore struct {
	pinned        []*x509.Certificate
	signers       []*x509.Certificate
	roots         *x509.CertPool
	intermediates *x509.CertPool
	subject       *regexp.Regexp
	issuer        *regexp.Regexp
}

// TrustConfig builds a TrustStore.
type TrustConfig struct {
	Pinned        []*x509.Certificate
	Roots         []*x509.Certificate // CA certificates: trust anchors
	Intermediates []*x509.Certificate // optional, to complete chains
	// Signers are known signer certificates that are not trusted by being
	// listed: a KeyInfo that names a certificate without carrying it
	// (X509IssuerSerial, SubjectKeyIdentifier, ThumbprintSHA1) may resolve
	// to one of them, which must then be pinned or chain to Roots like any
	// other signer.
	Signers []*x509.Certificate
	// SubjectPattern and IssuerPattern, when not "", are regular
	// expressions the leaf's subject / issuer DN must match (anchor them
	// with ^...$ to match the whole DN).
	SubjectPattern, IssuerPattern string
}

// NewTrustStore checks cfg and builds the store.
func NewTrustStore(cfg TrustConfig) (*TrustStore, error) {
	if len(cfg.Pinned) == 0 && len(cfg.Roots) == 0 {
		return nil, errors.New("a trust store needs pinned certificates or CA certificates")
	}
	t := &TrustStore{pinned: cfg.Pinned, signers: cfg.Signers}
	if len(cfg.Roots) > 0 {
		t.roots = x509.NewCertPool()
		for _, c := range cfg.Roots {
			t.roots.AddCert(c)
		}
	}
	t.intermediates = x509.NewCertPool()
	for _, c := range cfg.Intermediates {
		t.intermediates.AddCert(c)
	}
	var err error
	if cfg.SubjectPattern != "" {
		if t.subject, err = regexp.Compile(cfg.SubjectPattern); err != nil {
			return nil, fmt.Errorf("subject pattern: %w", err)
		}
	}
	if cfg.IssuerPattern != "" {
		if t.issuer, err = regexp.Compile(cfg.IssuerPattern); err != nil {
			return nil, fmt.Errorf("issuer pattern: %w", err)
		}
	}
	return t, nil
}

// check reports why leaf (with the chain the message carried, leaf first)
// is not trusted at now, or nil.
func (t *TrustStore) check(leaf *x509.Certificate, chain []*x509.Certificate, now time.Time) error {
	if t == nil {
		return errors.New("the profile trusts no certificate")
	}
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return fmt.Errorf("the certificate of %s is not valid at %s", leaf.Subject, now.UTC().Format(time.RFC3339))
	}
	trusted := false
	for _, p := range t.pinned {
		if bytes.Equal(p.Raw, leaf.Raw) {
			trusted = true
			break
		}
	}
	if !trusted && t.roots != nil {
		inter := t.intermediates.Clone()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{
			Roots: t.roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err == nil {
			trusted = true
		}
	}
	if !trusted {
		return fmt.Errorf("the certificate of %s (issuer %s) is neither pinned nor issued by a trusted CA", leaf.Subject, leaf.Issuer)
	}
	if t.subject != nil && !t.subject.MatchString(leaf.Subject.String()) {
		return fmt.Errorf("the subject %s does not match the profile's pattern", leaf.Subject)
	}
	if t.issuer != nil && !t.issuer.MatchString(leaf.Issuer.String()) {
		return fmt.Errorf("the issuer %s does not match the profile's pattern", leaf.Issuer)
	}
	return nil
}

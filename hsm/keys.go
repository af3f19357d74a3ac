package hsm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// maxChainLength bounds how many issuer certificates FindKey follows on the token.
const maxChainLength = 8

// KeyRef names a key on a token: by label and/or CKA_ID (at least one). When both are given, a
// key must match both.
type KeyRef struct {
	Label string // CKA_LABEL of the private key object
	ID    []byte // CKA_ID of the private key object
}

// String formats the reference for messages, e.g. `label "invoice" id 01`.
func (r KeyRef) String() string {
	var parts []string
	if r.Label != "" {
		parts = append(parts, fmt.Sprintf("label %q", r.Label))
	}
	if len(r.ID) > 0 {
		parts = append(parts, "id "+hex.EncodeToString(r.ID))
	}
	if len(parts) == 0 {
		return "empty key reference"
	}
	return strings.Join(parts, " ")
}

func (r KeyRef) validate() error {
	if r.Label == "" && len(r.ID) == 0 {
		return errors.New("key reference needs a label or an id")
	}
	return nil
}

// Key is a private key on the token with its certificate chain (leaf first).
type Key struct {
	Ref    KeyRef
	Signer crypto.Signer       // every Sign happens inside the token; RSA keys also implement crypto.Decrypter
	Chain  []*x509.Certificate // leaf first; leaf found on the token by the key's CKA_ID (or label), then issuers found on the token
	// Attributes are the private key object's attributes as the token reported them.
	Attributes KeyAttributes
}

// KeyAttributes are attributes of a private key object, read from the token.
type KeyAttributes struct {
	Label string // CKA_LABEL
	ID    []byte // CKA_ID
	Type  string // "RSA" or "EC"

	Token              bool // CKA_TOKEN: stored on the token, not a session object
	Private            bool // CKA_PRIVATE: only visible after login
	Sensitive          bool // CKA_SENSITIVE: the key value cannot be read
	AlwaysSensitive    bool // CKA_ALWAYS_SENSITIVE: never readable since it was created
	Extractable        bool // CKA_EXTRACTABLE: the key can be wrapped out of the token
	NeverExtractable   bool // CKA_NEVER_EXTRACTABLE: never wrappable since it was created
	AlwaysAuthenticate bool // CKA_ALWAYS_AUTHENTICATE: each use needs a context-specific login
}

// keyAttributes reads the attributes of a crypto11 private key object. Booleans a token does
// not report stay false.
func (t *Token) keyAttributes(key any) (KeyAttributes, error) {
	set, err := t.ctx.GetAttributes(key, []crypto11.AttributeType{pkcs11.CKA_LABEL, pkcs11.CKA_ID, pkcs11.CKA_KEY_TYPE})
	if err != nil {
		return KeyAttributes{}, fmt.Errorf("read key attributes: %w", err)
	}
	var a KeyAttributes
	if v := set[pkcs11.CKA_LABEL]; v != nil {
		a.Label = string(v.Value)
	}
	if v := set[pkcs11.CKA_ID]; v != nil && len(v.Value) > 0 {
		a.ID = bytes.Clone(v.Value)
	}
	if v := set[pkcs11.CKA_KEY_TYPE]; v != nil {
		switch ulong(v.Value) {
		case pkcs11.CKK_RSA:
			a.Type = "RSA"
		case pkcs11.CKK_EC:
			a.Type = "EC"
		default:
			a.Type = fmt.Sprintf("CKK 0x%x", ulong(v.Value))
		}
	}
	// One at a time: a token that does not know one attribute fails the whole C_GetAttributeValue.
	for _, f := range []struct {
		typ uint
		dst *bool
	}{
		{pkcs11.CKA_TOKEN, &a.Token},
		{pkcs11.CKA_PRIVATE, &a.Private},
		{pkcs11.CKA_SENSITIVE, &a.Sensitive},
		{pkcs11.CKA_ALWAYS_SENSITIVE, &a.AlwaysSensitive},
		{pkcs11.CKA_EXTRACTABLE, &a.Extractable},
		{pkcs11.CKA_NEVER_EXTRACTABLE, &a.NeverExtractable},
		{pkcs11.CKA_ALWAYS_AUTHENTICATE, &a.AlwaysAuthenticate},
	} {
		v, err := t.ctx.GetAttribute(key, f.typ)
		if err == nil && v != nil && len(v.Value) > 0 {
			*f.dst = v.Value[0] != 0
		}
	}
	return a, nil
}

// ulong decodes a CK_ULONG attribute value (native byte order and size).
func ulong(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return ^uint(0)
}

func (a KeyAttributes) ref() KeyRef { return KeyRef{Label: a.Label, ID: a.ID} }

// FindKey finds the one private key matching ref, its certificate and the certificate's issuers
// on the token, checks that the certificate belongs to the key (same public key as the key's
// public key object, and a self-test signature over a random SHA-256 digest verifies with the
// certificate's public key) and returns it.
//
// The leaf certificate is the certificate object with the key's CKA_ID (the PKCS#11 link between
// a key and its certificate) or, for a key without CKA_ID, with the key's CKA_LABEL. A public key
// object is not required: a private key plus its certificate is enough.
//
// Errors: ErrKeyNotFound, ErrKeyAmbiguous (the message names every match),
// ErrCertificateNotFound, ErrCertificateMismatch, ErrClosed.
func (t *Token) FindKey(ref KeyRef) (*Key, error) {
	if err := ref.validate(); err != nil {
		return nil, err
	}
	if err := t.acquire(); err != nil {
		return nil, err
	}
	defer t.gate.RUnlock()

	privs, err := t.ctx.FindPrivateKeys(ref.ID, []byte(ref.Label))
	if err != nil {
		return nil, fmt.Errorf("find key %v on token %q: %w", ref, t.label, err)
	}
	if len(privs) == 0 {
		return nil, fmt.Errorf("%w: %v on token %q", ErrKeyNotFound, ref, t.label)
	}
	attrs := make([]KeyAttributes, len(privs))
	for i, p := range privs {
		if attrs[i], err = t.keyAttributes(p); err != nil {
			return nil, fmt.Errorf("find key %v on token %q: %w", ref, t.label, err)
		}
	}
	if len(privs) > 1 {
		names := make([]string, len(attrs))
		for i, a := range attrs {
			names[i] = "(" + a.ref().String() + ")"
		}
		return nil, fmt.Errorf("%w: %v matches %d private keys on token %q: %s",
			ErrKeyAmbiguous, ref, len(privs), t.label, strings.Join(names, ", "))
	}
	a := attrs[0]
	fail := func(err error) (*Key, error) {
		return nil, fmt.Errorf("key %v on token %q: %w", ref, t.label, err)
	}
	switch {
	case a.Type != "RSA" && a.Type != "EC":
		return fail(fmt.Errorf("unsupported key type %s", a.Type))
	case a.AlwaysAuthenticate:
		return fail(errors.New("key requires a context-specific login for each use (CKA_ALWAYS_AUTHENTICATE), not supported"))
	}

	var chain []*x509.Certificate
	if err := t.withRawSession(func(sh pkcs11.SessionHandle) error {
		chain, err = t.findChain(sh, a)
		return err
	}); err != nil {
		return fail(err)
	}
	leaf := chain[0]

	switch leaf.PublicKey.(type) {
	case *rsa.PublicKey:
		if a.Type != "RSA" {
			return fail(fmt.Errorf("%w: certificate %s has an RSA public key, the key is %s", ErrCertificateMismatch, describeCert(leaf), a.Type))
		}
	case *ecdsa.PublicKey:
		if a.Type != "EC" {
			return fail(fmt.Errorf("%w: certificate %s has an EC public key, the key is %s", ErrCertificateMismatch, describeCert(leaf), a.Type))
		}
	default:
		return fail(fmt.Errorf("%w: certificate %s has an unsupported public key type %T", ErrCertificateMismatch, describeCert(leaf), leaf.PublicKey))
	}

	// Compare with the public key object, if there is one. Only for keys with a CKA_ID:
	// crypto11 pairs a key without CKA_ID with the first public key of the same type it finds.
	if len(a.ID) > 0 {
		var label []byte
		if a.Label != "" {
			label = []byte(a.Label)
		}
		pairs, err := t.ctx.FindKeyPairs(a.ID, label)
		if err != nil {
			return fail(fmt.Errorf("find public key: %w", err))
		}
		if len(pairs) == 1 && pairs[0].Public() != nil {
			if !publicKeysEqual(leaf.PublicKey, pairs[0].Public()) {
				return fail(fmt.Errorf("%w: certificate %s has a different public key than the key's public key object", ErrCertificateMismatch, describeCert(leaf)))
			}
		}
	}

	key, ok := privs[0].(crypto11.PrivateKey)
	if !ok {
		return fail(fmt.Errorf("unexpected crypto11 key type %T", privs[0]))
	}
	s := t.newSigner(key, leaf.PublicKey)
	if err := selfTest(s, leaf.PublicKey); err != nil {
		return fail(err)
	}

	logAttrs := []any{"token", t.label, "key", ref.String(), "type", a.Type,
		"subject", leaf.Subject.String(), "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter, "chain", len(chain)}
	t.log.Info("key ready", logAttrs...)
	if now := time.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		t.log.Warn("key certificate is outside its validity period", logAttrs...)
	}
	if !a.Sensitive || a.Extractable {
		t.log.Warn("key is readable or extractable", append(logAttrs, "sensitive", a.Sensitive, "extractable", a.Extractable)...)
	}
	return &Key{Ref: ref, Signer: s.exported(), Chain: chain, Attributes: a}, nil
}

// findChain finds the key's certificate and then, as far as the token holds them, its issuers.
func (t *Token) findChain(sh pkcs11.SessionHandle, a KeyAttributes) ([]*x509.Certificate, error) {
	var by *pkcs11.Attribute
	var what string
	if len(a.ID) > 0 {
		by, what = pkcs11.NewAttribute(pkcs11.CKA_ID, a.ID), "id "+hex.EncodeToString(a.ID)
	} else {
		by, what = pkcs11.NewAttribute(pkcs11.CKA_LABEL, a.Label), fmt.Sprintf("label %q", a.Label)
	}
	leaves, err := t.findCertificates(sh, by)
	if err != nil {
		return nil, err
	}
	switch len(leaves) {
	case 0:
		return nil, fmt.Errorf("%w: no certificate with %s", ErrCertificateNotFound, what)
	case 1:
	default:
		names := make([]string, len(leaves))
		for i, c := range leaves {
			names[i] = describeCert(c)
		}
		return nil, fmt.Errorf("%d certificates have %s, expected one: %s", len(leaves), what, strings.Join(names, ", "))
	}
	chain := leaves
	for cur := leaves[0]; len(chain) < maxChainLength && !isSelfSigned(cur); {
		candidates, err := t.findCertificates(sh, pkcs11.NewAttribute(pkcs11.CKA_SUBJECT, cur.RawIssuer))
		if err != nil {
			return nil, err
		}
		var issuer *x509.Certificate
		for _, c := range candidates {
			if cur.CheckSignatureFrom(c) == nil && !containsCert(chain, c) {
				issuer = c
				break
			}
		}
		if issuer == nil {
			break
		}
		chain = append(chain, issuer)
		cur = issuer
	}
	return chain, nil
}

// findCertificates returns every X.509 certificate object matching the attribute.
func (t *Token) findCertificates(sh pkcs11.SessionHandle, by *pkcs11.Attribute) ([]*x509.Certificate, error) {
	template := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
		pkcs11.NewAttribute(pkcs11.CKA_CERTIFICATE_TYPE, pkcs11.CKC_X_509),
		by,
	}
	if err := t.raw.FindObjectsInit(sh, template); err != nil {
		return nil, fmt.Errorf("find certificates: %w", err)
	}
	var handles []pkcs11.ObjectHandle
	for {
		hs, _, err := t.raw.FindObjects(sh, 32)
		if err != nil {
			_ = t.raw.FindObjectsFinal(sh)
			return nil, fmt.Errorf("find certificates: %w", err)
		}
		if len(hs) == 0 {
			break
		}
		handles = append(handles, hs...)
	}
	if err := t.raw.FindObjectsFinal(sh); err != nil {
		return nil, fmt.Errorf("find certificates: %w", err)
	}
	certs := make([]*x509.Certificate, 0, len(handles))
	for _, h := range handles {
		v, err := t.raw.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
		if err != nil {
			return nil, fmt.Errorf("read certificate: %w", err)
		}
		c, err := x509.ParseCertificate(v[0].Value)
		if err != nil {
			return nil, fmt.Errorf("parse certificate object: %v", err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

func containsCert(chain []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range chain {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

func describeCert(c *x509.Certificate) string {
	return fmt.Sprintf("%q (serial %s)", c.Subject.String(), c.SerialNumber.Text(16))
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// selfTest signs a random SHA-256 digest with the token key and verifies the signature with pub
// (RSA PKCS #1 v1.5, ECDSA ASN.1).
func selfTest(s *tokenSigner, pub crypto.PublicKey) error {
	digest := make([]byte, 32)
	_, _ = rand.Read(digest)
	sig, err := s.sign(rand.Reader, digest, crypto.SHA256)
	if err != nil {
		return fmt.Errorf("self-test: %w", err)
	}
	ok := false
	switch p := pub.(type) {
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(p, crypto.SHA256, digest, sig) == nil
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(p, digest, sig)
	}
	if !ok {
		return fmt.Errorf("%w: self-test signature does not verify with the certificate's public key", ErrCertificateMismatch)
	}
	return nil
}

// tokenSigner is a crypto.Signer whose private key is a token object. It checks the signing
// options (crypto11 would, for an unknown hash, sign the bare digest without a DigestInfo) and
// holds the token's gate during the operation.
type tokenSigner struct {
	t   *Token
	key crypto11.PrivateKey
	pub crypto.PublicKey
}

// tokenRSASigner adds crypto.Decrypter to RSA keys.
type tokenRSASigner struct{ *tokenSigner }

func (t *Token) newSigner(key crypto11.PrivateKey, pub crypto.PublicKey) *tokenSigner {
	return &tokenSigner{t: t, key: key, pub: pub}
}

// exported wraps s in the type handed to callers.
func (s *tokenSigner) exported() crypto.Signer {
	if _, ok := s.pub.(*rsa.PublicKey); ok {
		return tokenRSASigner{s}
	}
	return s
}

// Public returns the key's public key (the certificate's, for keys from FindKey).
func (s *tokenSigner) Public() crypto.PublicKey { return s.pub }

// Sign signs digest inside the token. RSA: PKCS #1 v1.5, or PSS for *rsa.PSSOptions (salt length
// rsa.PSSSaltLengthEqualsHash or explicit; not PSSSaltLengthAuto). ECDSA: ASN.1 DER signature.
// Hashes: SHA-1, SHA-224, SHA-256, SHA-384, SHA-512; the digest length must match.
func (s *tokenSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := s.t.acquire(); err != nil {
		return nil, err
	}
	defer s.t.gate.RUnlock()
	return s.sign(rand, digest, opts)
}

// sign is Sign for callers already holding the gate.
func (s *tokenSigner) sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil {
		return nil, errors.New("sign: no signer options")
	}
	h := opts.HashFunc()
	switch h {
	case crypto.SHA1, crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512:
		if len(digest) != h.Size() {
			return nil, fmt.Errorf("sign: digest is %d bytes, %v needs %d", len(digest), h, h.Size())
		}
	default:
		return nil, fmt.Errorf("sign: unsupported hash %v", h)
	}
	if pss, ok := opts.(*rsa.PSSOptions); ok {
		if _, isRSA := s.pub.(*rsa.PublicKey); !isRSA {
			return nil, errors.New("sign: pss options for a non-RSA key")
		}
		if pss.SaltLength == rsa.PSSSaltLengthAuto {
			return nil, errors.New("sign: pss salt length auto is not supported, use rsa.PSSSaltLengthEqualsHash")
		}
	}
	sig, err := s.key.Sign(rand, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("token %q: sign: %w", s.t.label, err)
	}
	return sig, nil
}

// Decrypt decrypts msg inside the token: RSA PKCS #1 v1.5 (nil opts or
// *rsa.PKCS1v15DecryptOptions without SessionKeyLen) or OAEP (*rsa.OAEPOptions, MGF1 hash equal
// to the OAEP hash).
func (s tokenRSASigner) Decrypt(rand io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	d, ok := s.key.(interface {
		Decrypt(io.Reader, []byte, crypto.DecrypterOpts) ([]byte, error)
	})
	if !ok {
		return nil, errors.New("decrypt: key cannot decrypt")
	}
	if err := s.t.acquire(); err != nil {
		return nil, err
	}
	defer s.t.gate.RUnlock()
	pt, err := d.Decrypt(rand, msg, opts)
	if err != nil {
		return nil, fmt.Errorf("token %q: decrypt: %w", s.t.label, err)
	}
	return pt, nil
}

// GenerateRSA generates an RSA key pair of the given size (at least 2048 bits, public exponent
// 65537) on the token, with ref's label and ID (the ID is required) on both halves. The private
// key gets CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE = true, CKA_EXTRACTABLE = false, CKA_SIGN and
// CKA_DECRYPT = true; these are read back and the key is destroyed if the token did not honour
// them. A private key with the same label or ID already on the token is refused (ErrKeyExists).
func (t *Token) GenerateRSA(ref KeyRef, bits int) (crypto.Signer, error) {
	if bits < 2048 {
		return nil, fmt.Errorf("generate rsa key %v: %d bits is too small, use at least 2048", ref, bits)
	}
	return t.generate(ref, ref, keyAlg{rsaBits: bits}, true)
}

// GenerateEC generates an ECDSA key pair on the given curve (P-256, P-384 or P-521) on the token,
// with the same attributes and checks as GenerateRSA (CKA_SIGN, no CKA_DECRYPT).
func (t *Token) GenerateEC(ref KeyRef, curve elliptic.Curve) (crypto.Signer, error) {
	if curve == nil {
		return nil, fmt.Errorf("generate ec key %v: no curve", ref)
	}
	switch curve.Params().Name {
	case "P-256", "P-384", "P-521":
	default:
		return nil, fmt.Errorf("generate ec key %v: unsupported curve %s", ref, curve.Params().Name)
	}
	return t.generate(ref, ref, keyAlg{curve: curve}, true)
}

type keyAlg struct {
	rsaBits int
	curve   elliptic.Curve
}

// generate creates a key pair whose private half has privRef's label and ID and whose public
// half has pubRef's (tests use different ones to build keys without a matching public object).
func (t *Token) generate(privRef, pubRef KeyRef, alg keyAlg, refuseExisting bool) (crypto.Signer, error) {
	kind := "ec"
	if alg.rsaBits > 0 {
		kind = "rsa"
	}
	fail := func(err error) (crypto.Signer, error) {
		return nil, fmt.Errorf("generate %s key %v on token %q: %w", kind, privRef, t.label, err)
	}
	if len(privRef.ID) == 0 || len(pubRef.ID) == 0 {
		return fail(errors.New("an id is required"))
	}
	if err := t.acquire(); err != nil {
		return nil, err
	}
	defer t.gate.RUnlock()

	if refuseExisting {
		if err := t.refuseExisting(privRef); err != nil {
			return fail(err)
		}
	}
	pub, priv := crypto11.NewAttributeSet(), crypto11.NewAttributeSet()
	set := func(s crypto11.AttributeSet, typ uint, v any) {
		_ = s.Set(typ, v) // cannot fail for bool and []byte
	}
	set(priv, pkcs11.CKA_ID, privRef.ID)
	set(pub, pkcs11.CKA_ID, pubRef.ID)
	if privRef.Label != "" {
		set(priv, pkcs11.CKA_LABEL, []byte(privRef.Label))
	}
	if pubRef.Label != "" {
		set(pub, pkcs11.CKA_LABEL, []byte(pubRef.Label))
	}
	set(priv, pkcs11.CKA_TOKEN, true)
	set(priv, pkcs11.CKA_PRIVATE, true)
	set(priv, pkcs11.CKA_SENSITIVE, true)
	set(priv, pkcs11.CKA_EXTRACTABLE, false)
	set(priv, pkcs11.CKA_SIGN, true)
	set(pub, pkcs11.CKA_TOKEN, true)
	set(pub, pkcs11.CKA_PRIVATE, false)
	set(pub, pkcs11.CKA_VERIFY, true)

	var k crypto11.Signer
	var err error
	if alg.rsaBits > 0 {
		set(priv, pkcs11.CKA_DECRYPT, true)
		set(pub, pkcs11.CKA_ENCRYPT, true)
		k, err = t.ctx.GenerateRSAKeyPairWithAttributes(pub, priv, alg.rsaBits)
	} else {
		k, err = t.ctx.GenerateECDSAKeyPairWithAttributes(pub, priv, alg.curve)
	}
	if err != nil {
		return fail(err)
	}
	a, err := t.keyAttributes(k)
	if err != nil {
		_ = k.Delete()
		return fail(err)
	}
	if !a.Token || !a.Private || !a.Sensitive || a.Extractable {
		_ = k.Delete()
		return fail(fmt.Errorf("token did not honour the key template (token=%t private=%t sensitive=%t extractable=%t); key destroyed",
			a.Token, a.Private, a.Sensitive, a.Extractable))
	}
	key, ok := k.(crypto11.PrivateKey)
	if !ok {
		_ = k.Delete()
		return fail(fmt.Errorf("unexpected crypto11 key type %T", k))
	}
	t.log.Info("key generated", "token", t.label, "key", privRef.String(), "type", a.Type)
	return t.newSigner(key, k.Public()).exported(), nil
}

// refuseExisting fails with ErrKeyExists if a private key with ref's label or ID is on the token.
func (t *Token) refuseExisting(ref KeyRef) error {
	check := func(id, label []byte, what string) error {
		ks, err := t.ctx.FindPrivateKeys(id, label)
		if err != nil {
			return err
		}
		if len(ks) > 0 {
			return fmt.Errorf("%w: a private key with %s is already on the token", ErrKeyExists, what)
		}
		return nil
	}
	if len(ref.ID) > 0 {
		if err := check(ref.ID, nil, "id "+hex.EncodeToString(ref.ID)); err != nil {
			return err
		}
	}
	if ref.Label != "" {
		if err := check(nil, []byte(ref.Label), fmt.Sprintf("label %q", ref.Label)); err != nil {
			return err
		}
	}
	return nil
}

// ImportCertificate stores cert on the token as a public token object with ref's label and ID
// (CKA_ID is how FindKey links a key to its certificate, so give the key's ID). It does not
// replace an existing certificate: two certificates with one key's ID make FindKey fail.
func (t *Token) ImportCertificate(ref KeyRef, cert *x509.Certificate) error {
	if err := ref.validate(); err != nil {
		return err
	}
	if cert == nil {
		return fmt.Errorf("import certificate %v: no certificate", ref)
	}
	if err := t.acquire(); err != nil {
		return err
	}
	defer t.gate.RUnlock()
	attrs := crypto11.NewAttributeSet()
	if len(ref.ID) > 0 {
		_ = attrs.Set(pkcs11.CKA_ID, ref.ID)
	}
	if ref.Label != "" {
		_ = attrs.Set(pkcs11.CKA_LABEL, []byte(ref.Label))
	}
	if err := t.ctx.ImportCertificateWithAttributes(attrs, cert); err != nil {
		return fmt.Errorf("import certificate %v on token %q: %w", ref, t.label, err)
	}
	t.log.Info("certificate imported", "token", t.label, "key", ref.String(), "subject", cert.Subject.String())
	return nil
}

package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync"
	"time"

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

// template is the search template of a private key matching r.
func (r KeyRef) template() []*pkcs11.Attribute {
	t := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)}
	if len(r.ID) > 0 {
		t = append(t, pkcs11.NewAttribute(pkcs11.CKA_ID, r.ID))
	}
	if r.Label != "" {
		t = append(t, pkcs11.NewAttribute(pkcs11.CKA_LABEL, r.Label))
	}
	return t
}

// Key is a private key on the token with its certificate chain (leaf first).
type Key struct {
	Ref KeyRef
	// Signer signs inside the token; it implements ContextSigner, and for RSA keys also
	// crypto.Decrypter and ContextDecrypter. It keeps working across token recoveries.
	Signer crypto.Signer
	Chain  []*x509.Certificate // leaf first; leaf found on the token by the key's CKA_ID (or label), then issuers found on the token
	// Attributes are the private key object's attributes as the token reported them.
	Attributes KeyAttributes
}

// SignContext signs with the key within ctx's deadline (see ContextSigner). A Signer that is
// not a ContextSigner (one set by the caller) signs with Sign once ctx is checked; a Key
// without a Signer returns an error.
func (k *Key) SignContext(ctx context.Context, rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if k == nil || k.Signer == nil {
		return nil, errors.New("sign: key has no signer")
	}
	if cs, ok := k.Signer.(ContextSigner); ok {
		return cs.SignContext(ctx, rand, digest, opts)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return k.Signer.Sign(rand, digest, opts)
}

// ContextSigner is a crypto.Signer whose waiting (for a session, for the token) is bounded by a
// context. Sign is SignContext with the Token's Config.OpTimeout.
type ContextSigner interface {
	crypto.Signer
	SignContext(ctx context.Context, rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

// ContextDecrypter is a crypto.Decrypter whose waiting is bounded by a context.
type ContextDecrypter interface {
	crypto.Decrypter
	DecryptContext(ctx context.Context, rand io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error)
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

func (a KeyAttributes) ref() KeyRef { return KeyRef{Label: a.Label, ID: a.ID} }

// readAttr reads one attribute of an object. A token that does not have it (tpm2-pkcs11 has no
// CKA_ID on an object created without one) or will not give it answers with a request error:
// then ok is false and err nil. Any other error is returned.
func readAttr(p *pkcs11.Ctx, sh pkcs11.SessionHandle, h pkcs11.ObjectHandle, typ uint) (v []byte, ok bool, err error) {
	vs, err := p.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, nil)})
	switch {
	case err == nil && len(vs) == 1:
		return vs[0].Value, true, nil
	case err == nil || Classify(err) == ClassRequest:
		return nil, false, nil
	}
	return nil, false, err
}

// readKeyAttributes reads the attributes of a private key object, one at a time: a token that
// lacks one fails a C_GetAttributeValue that asks for several. Attributes a token does not
// report stay empty (booleans false).
func readKeyAttributes(p *pkcs11.Ctx, sh pkcs11.SessionHandle, h pkcs11.ObjectHandle) (KeyAttributes, error) {
	var a KeyAttributes
	fail := func(err error) (KeyAttributes, error) { return a, fmt.Errorf("read key attributes: %w", err) }
	v, _, err := readAttr(p, sh, h, pkcs11.CKA_LABEL)
	if err != nil {
		return fail(err)
	}
	a.Label = string(v)
	if v, _, err = readAttr(p, sh, h, pkcs11.CKA_ID); err != nil {
		return fail(err)
	}
	if len(v) > 0 {
		a.ID = bytes.Clone(v)
	}
	v, ok, err := readAttr(p, sh, h, pkcs11.CKA_KEY_TYPE)
	if err != nil {
		return fail(err)
	}
	switch kt := ulong(v); {
	case !ok:
		a.Type = "unknown"
	case kt == pkcs11.CKK_RSA:
		a.Type = "RSA"
	case kt == pkcs11.CKK_EC:
		a.Type = "EC"
	default:
		a.Type = fmt.Sprintf("CKK 0x%x", kt)
	}
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
		v, _, err := readAttr(p, sh, h, f.typ)
		if err != nil {
			return fail(err)
		}
		*f.dst = len(v) > 0 && v[0] != 0
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

// findObjects returns every object matching template.
func findObjects(p *pkcs11.Ctx, sh pkcs11.SessionHandle, template []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	if err := p.FindObjectsInit(sh, template); err != nil {
		return nil, fmt.Errorf("find objects: %w", err)
	}
	var handles []pkcs11.ObjectHandle
	for {
		hs, _, err := p.FindObjects(sh, 32)
		if err != nil {
			_ = p.FindObjectsFinal(sh)
			return nil, fmt.Errorf("find objects: %w", err)
		}
		if len(hs) == 0 {
			break
		}
		handles = append(handles, hs...)
	}
	if err := p.FindObjectsFinal(sh); err != nil {
		return nil, fmt.Errorf("find objects: %w", err)
	}
	return handles, nil
}

// keyEntry is a private key handed out by this Token. Its object handle is resolved again after
// every recovery (handles are only valid within one C_Initialize).
type keyEntry struct {
	t     *Token
	attrs KeyAttributes
	pub   crypto.PublicKey

	useMu sync.Mutex // serialises uses of a CKA_ALWAYS_AUTHENTICATE key (SignInit, Login, Sign)

	mu     sync.Mutex
	handle pkcs11.ObjectHandle
	gen    uint64
	err    error // why the key could not be found again after a recovery
	// msgMechs: the token's hash-and-sign mechanism per hash, for RSA PKCS #1 v1.5 signatures
	// of whole messages; empty: messages are hashed here (see chooseRSAMechanism).
	msgMechs map[crypto.Hash]uint
}

// auth returns the PIN for a context-specific login if the key needs one, else nil.
func (k *keyEntry) auth() *string { return k.t.authFor(k.attrs) }

// authFor returns the PIN for keys with CKA_ALWAYS_AUTHENTICATE, else nil.
func (t *Token) authFor(a KeyAttributes) *string {
	if !a.AlwaysAuthenticate {
		return nil
	}
	return &t.pin
}

// handleFor returns the key's object handle in module generation gen.
func (k *keyEntry) handleFor(gen uint64) (pkcs11.ObjectHandle, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.gen != gen {
		if k.err != nil {
			return 0, unavailable("key %v: %v", k.attrs.ref(), k.err)
		}
		return 0, unavailable("key %v: not yet found again after recovery", k.attrs.ref())
	}
	return k.handle, nil
}

// refind finds the key again (same label and ID, exactly one match) and self-tests it against
// its public key, then records its handle for generation gen.
func (k *keyEntry) refind(p *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) error {
	err := func() error {
		hs, err := findObjects(p, sh, k.attrs.ref().template())
		if err != nil {
			return err
		}
		switch len(hs) {
		case 0:
			return ErrKeyNotFound
		case 1:
		default:
			return fmt.Errorf("%w: %d private keys match", ErrKeyAmbiguous, len(hs))
		}
		if err := selfTest(p, sh, hs[0], k.pub, k.auth()); err != nil {
			return err
		}
		k.mu.Lock()
		k.handle, k.gen, k.err = hs[0], gen, nil
		k.mu.Unlock()
		return nil
	}()
	if err != nil {
		k.mu.Lock()
		k.err = err
		k.mu.Unlock()
	}
	return err
}

// register adds a key to those the Token finds again after recovery.
func (t *Token) register(k *keyEntry) {
	t.mu.Lock()
	t.keys = append(t.keys, k)
	t.mu.Unlock()
}

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
// ErrCertificateNotFound, ErrCertificateMismatch, ErrClosed, ErrTokenUnavailable.
func (t *Token) FindKey(ref KeyRef) (*Key, error) {
	if err := ref.validate(); err != nil {
		return nil, err
	}
	var (
		a     KeyAttributes
		chain []*x509.Certificate
		entry *keyEntry
	)
	fail := func(err error) (*Key, error) {
		return nil, fmt.Errorf("key %v on token %q: %w", ref, t.label, err)
	}
	_, err := t.admin(func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) ([]byte, error) {
		privs, err := findObjects(p, sh, ref.template())
		if err != nil {
			return nil, err
		}
		if len(privs) == 0 {
			return nil, ErrKeyNotFound
		}
		attrs := make([]KeyAttributes, len(privs))
		for i, h := range privs {
			if attrs[i], err = readKeyAttributes(p, sh, h); err != nil {
				return nil, err
			}
		}
		if len(privs) > 1 {
			names := make([]string, len(attrs))
			for i, a := range attrs {
				names[i] = "(" + a.ref().String() + ")"
			}
			return nil, fmt.Errorf("%w: matches %d private keys: %s", ErrKeyAmbiguous, len(privs), strings.Join(names, ", "))
		}
		a = attrs[0]
		switch {
		case a.Type != "RSA" && a.Type != "EC":
			return nil, fmt.Errorf("unsupported key type %s", a.Type)
		}
		if chain, err = findChain(p, sh, a); err != nil {
			return nil, err
		}
		leaf := chain[0]
		switch leaf.PublicKey.(type) {
		case *rsa.PublicKey:
			if a.Type != "RSA" {
				return nil, fmt.Errorf("%w: certificate %s has an RSA public key, the key is %s", ErrCertificateMismatch, describeCert(leaf), a.Type)
			}
		case *ecdsa.PublicKey:
			if a.Type != "EC" {
				return nil, fmt.Errorf("%w: certificate %s has an EC public key, the key is %s", ErrCertificateMismatch, describeCert(leaf), a.Type)
			}
		default:
			return nil, fmt.Errorf("%w: certificate %s has an unsupported public key type %T", ErrCertificateMismatch, describeCert(leaf), leaf.PublicKey)
		}
		// Compare with the public key object of the same ID, if there is exactly one.
		if len(a.ID) > 0 {
			pubs, err := findObjects(p, sh, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_ID, a.ID),
			})
			if err != nil {
				return nil, err
			}
			if len(pubs) == 1 {
				if pub, err := readPublicKey(p, sh, pubs[0]); err == nil && !publicKeysEqual(leaf.PublicKey, pub) {
					return nil, fmt.Errorf("%w: certificate %s has a different public key than the key's public key object", ErrCertificateMismatch, describeCert(leaf))
				}
			}
		}
		if err := selfTest(p, sh, privs[0], leaf.PublicKey, t.authFor(a)); err != nil {
			return nil, err
		}
		entry = &keyEntry{t: t, attrs: a, pub: leaf.PublicKey, handle: privs[0], gen: gen}
		return nil, nil
	})
	if err != nil {
		return fail(err)
	}
	t.register(entry)
	t.chooseRSAMechanism(context.Background(), entry)
	leaf := chain[0]
	logAttrs := []any{"token_label", t.label, "key", ref.String(), "type", a.Type,
		"subject", leaf.Subject.String(), "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter, "chain", len(chain)}
	t.log.Info("key ready", logAttrs...)
	if now := time.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		t.log.Warn("key certificate is outside its validity period", logAttrs...)
	}
	if !a.Sensitive || a.Extractable {
		t.log.Warn("key is readable or extractable", append(logAttrs, "sensitive", a.Sensitive, "extractable", a.Extractable)...)
	}
	return &Key{Ref: ref, Signer: entry.signer(), Chain: chain, Attributes: a}, nil
}

// findChain finds the key's certificate and then, as far as the token holds them, its issuers.
func findChain(p *pkcs11.Ctx, sh pkcs11.SessionHandle, a KeyAttributes) ([]*x509.Certificate, error) {
	var by *pkcs11.Attribute
	var what string
	if len(a.ID) > 0 {
		by, what = pkcs11.NewAttribute(pkcs11.CKA_ID, a.ID), "id "+hex.EncodeToString(a.ID)
	} else {
		by, what = pkcs11.NewAttribute(pkcs11.CKA_LABEL, a.Label), fmt.Sprintf("label %q", a.Label)
	}
	leaves, err := findCertificates(p, sh, by)
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
		candidates, err := findCertificates(p, sh, pkcs11.NewAttribute(pkcs11.CKA_SUBJECT, cur.RawIssuer))
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
func findCertificates(p *pkcs11.Ctx, sh pkcs11.SessionHandle, by *pkcs11.Attribute) ([]*x509.Certificate, error) {
	handles, err := findObjects(p, sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
		pkcs11.NewAttribute(pkcs11.CKA_CERTIFICATE_TYPE, pkcs11.CKC_X_509),
		by,
	})
	if err != nil {
		return nil, fmt.Errorf("find certificates: %w", err)
	}
	certs := make([]*x509.Certificate, 0, len(handles))
	for _, h := range handles {
		v, err := p.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
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

// curves maps the DER of a named curve's OID (CKA_EC_PARAMS) to the curve.
var curveOIDs = []struct {
	oid   asn1.ObjectIdentifier
	curve elliptic.Curve
}{
	{asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}, elliptic.P256()},
	{asn1.ObjectIdentifier{1, 3, 132, 0, 34}, elliptic.P384()},
	{asn1.ObjectIdentifier{1, 3, 132, 0, 35}, elliptic.P521()},
}

// readPublicKey reads an RSA or EC public key object.
func readPublicKey(p *pkcs11.Ctx, sh pkcs11.SessionHandle, h pkcs11.ObjectHandle) (crypto.PublicKey, error) {
	kt, err := p.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil)})
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	switch ulong(kt[0].Value) {
	case pkcs11.CKK_RSA:
		vs, err := p.GetAttributeValue(sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return nil, fmt.Errorf("read public key: %w", err)
		}
		e := new(big.Int).SetBytes(vs[1].Value)
		if !e.IsInt64() || e.Int64() > 1<<31-1 || e.Int64() < 3 {
			return nil, errors.New("read public key: unsupported rsa public exponent")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(vs[0].Value), E: int(e.Int64())}, nil
	case pkcs11.CKK_EC:
		vs, err := p.GetAttributeValue(sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil),
		})
		if err != nil {
			return nil, fmt.Errorf("read public key: %w", err)
		}
		var oid asn1.ObjectIdentifier
		if _, err := asn1.Unmarshal(vs[0].Value, &oid); err != nil {
			return nil, fmt.Errorf("read public key: ec params: %v", err)
		}
		var curve elliptic.Curve
		for _, c := range curveOIDs {
			if c.oid.Equal(oid) {
				curve = c.curve
			}
		}
		if curve == nil {
			return nil, fmt.Errorf("read public key: unsupported curve %v", oid)
		}
		point := vs[1].Value
		var octets []byte
		if rest, err := asn1.Unmarshal(point, &octets); err == nil && len(rest) == 0 {
			point = octets // DER OCTET STRING, as PKCS#11 v2.40 says; some tokens give it raw
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
		if err != nil {
			return nil, fmt.Errorf("read public key: ec point: %v", err)
		}
		return pub, nil
	}
	return nil, fmt.Errorf("read public key: unsupported key type 0x%x", ulong(kt[0].Value))
}

// selfTest signs a random SHA-256 digest with the key object h and verifies the signature with
// pub (RSA PKCS #1 v1.5, ECDSA).
func selfTest(p *pkcs11.Ctx, sh pkcs11.SessionHandle, h pkcs11.ObjectHandle, pub crypto.PublicKey, auth *string) error {
	digest := make([]byte, 32)
	_, _ = rand.Read(digest)
	sig, err := rawSign(p, sh, h, pub, digest, crypto.SHA256, auth)
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

package hsm

import (
	"crypto"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"

	"github.com/miekg/pkcs11"
)

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
	// alwaysAuth sets CKA_ALWAYS_AUTHENTICATE on the private key (tests of smart-card keys).
	alwaysAuth bool
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
	priv := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_ID, privRef.ID),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
	}
	pub := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_ID, pubRef.ID),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
	}
	if privRef.Label != "" {
		priv = append(priv, pkcs11.NewAttribute(pkcs11.CKA_LABEL, privRef.Label))
	}
	if pubRef.Label != "" {
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_LABEL, pubRef.Label))
	}
	if alg.alwaysAuth {
		priv = append(priv, pkcs11.NewAttribute(pkcs11.CKA_ALWAYS_AUTHENTICATE, true))
	}
	var mech *pkcs11.Mechanism
	if alg.rsaBits > 0 {
		mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, nil)
		priv = append(priv, pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true))
		pub = append(pub,
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, alg.rsaBits),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(65537).Bytes()))
		priv = append(priv, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA))
	} else {
		var oid asn1.ObjectIdentifier
		for _, c := range curveOIDs {
			if c.curve == alg.curve {
				oid = c.oid
			}
		}
		params, err := asn1.Marshal(oid)
		if err != nil || oid == nil {
			return fail(fmt.Errorf("unsupported curve"))
		}
		mech = pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, params))
		priv = append(priv, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC))
	}
	var entry *keyEntry
	_, err := t.admin(func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) ([]byte, error) {
		if refuseExisting {
			if err := refuseExistingKey(p, sh, privRef); err != nil {
				return nil, err
			}
		}
		pubH, privH, err := p.GenerateKeyPair(sh, []*pkcs11.Mechanism{mech}, pub, priv)
		if err != nil {
			return nil, err
		}
		destroy := func() {
			_ = p.DestroyObject(sh, privH)
			_ = p.DestroyObject(sh, pubH)
		}
		a, err := readKeyAttributes(p, sh, privH)
		if err != nil {
			destroy()
			return nil, err
		}
		if !a.Token || !a.Private || !a.Sensitive || a.Extractable {
			destroy()
			return nil, fmt.Errorf("token did not honour the key template (token=%t private=%t sensitive=%t extractable=%t); key destroyed",
				a.Token, a.Private, a.Sensitive, a.Extractable)
		}
		pk, err := readPublicKey(p, sh, pubH)
		if err != nil {
			destroy()
			return nil, err
		}
		entry = &keyEntry{t: t, attrs: a, pub: pk, handle: privH, gen: gen}
		return nil, nil
	})
	if err != nil {
		return fail(err)
	}
	t.register(entry)
	t.log.Info("key generated", "token_label", t.label, "key", privRef.String(), "type", entry.attrs.Type)
	return entry.signer(), nil
}

// refuseExistingKey fails with ErrKeyExists if a private key with ref's label or ID is on the
// token.
func refuseExistingKey(p *pkcs11.Ctx, sh pkcs11.SessionHandle, ref KeyRef) error {
	check := func(r KeyRef, what string) error {
		hs, err := findObjects(p, sh, r.template())
		if err != nil {
			return err
		}
		if len(hs) > 0 {
			return fmt.Errorf("%w: a private key with %s is already on the token", ErrKeyExists, what)
		}
		return nil
	}
	if len(ref.ID) > 0 {
		if err := check(KeyRef{ID: ref.ID}, "id "+hex.EncodeToString(ref.ID)); err != nil {
			return err
		}
	}
	if ref.Label != "" {
		if err := check(KeyRef{Label: ref.Label}, fmt.Sprintf("label %q", ref.Label)); err != nil {
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
	serial, err := asn1.Marshal(cert.SerialNumber)
	if err != nil {
		return fmt.Errorf("import certificate %v: %v", ref, err)
	}
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
		pkcs11.NewAttribute(pkcs11.CKA_CERTIFICATE_TYPE, pkcs11.CKC_X_509),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SUBJECT, cert.RawSubject),
		pkcs11.NewAttribute(pkcs11.CKA_ISSUER, cert.RawIssuer),
		pkcs11.NewAttribute(pkcs11.CKA_SERIAL_NUMBER, serial),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE, cert.Raw),
	}
	if len(ref.ID) > 0 {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, ref.ID))
	}
	if ref.Label != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, ref.Label))
	}
	if _, err := t.admin(func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, _ uint64) ([]byte, error) {
		_, err := p.CreateObject(sh, tmpl)
		return nil, err
	}); err != nil {
		return fmt.Errorf("import certificate %v on token %q: %w", ref, t.label, err)
	}
	t.log.Info("certificate imported", "token_label", t.label, "key", ref.String(), "subject", cert.Subject.String())
	return nil
}

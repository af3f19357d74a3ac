package hsm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"

	"github.com/miekg/pkcs11"
)

// SlotInfo describes a slot of a module and the token in it, as ListSlots reports them.
type SlotInfo struct {
	SlotID       uint
	Description  string
	TokenPresent bool
	// The token's fields, when TokenPresent, without their blank or NUL padding. Serial is
	// reported as the token gives it, all zeros included; SerialUnique says whether it tells
	// this token from the module's others (a serial of all zeros, or one that two tokens share,
	// does not: select such tokens by label).
	Label, Serial, Manufacturer, Model  string
	SerialUnique                        bool
	Initialized, PINInitialized         bool
	PINCountLow, PINFinalTry, PINLocked bool
}

// ListSlots loads the module and lists its slots and tokens, without logging in. It shares the
// module with open Tokens.
func ListSlots(module string) ([]SlotInfo, error) {
	path, err := resolveModule(module)
	if err != nil {
		return nil, err
	}
	cfg := Config{}
	m, err := acquireModule(path, &cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	defer func() { _ = m.release(cfg.opTimeout()) }()
	m.lock()
	defer m.unlock()
	if err := m.ensureInit(); err != nil {
		return nil, err
	}
	slots, err := m.p.GetSlotList(false)
	if err != nil {
		return nil, fmt.Errorf("list slots: %w", err)
	}
	out := make([]SlotInfo, 0, len(slots))
	for _, s := range slots {
		si, err := m.p.GetSlotInfo(s)
		if err != nil {
			return nil, fmt.Errorf("slot %d: %w", s, err)
		}
		info := SlotInfo{SlotID: s, Description: trimPadding(si.SlotDescription), TokenPresent: si.Flags&pkcs11.CKF_TOKEN_PRESENT != 0}
		if info.TokenPresent {
			ti, err := tokenInfo(m.p, s)
			if err != nil {
				return nil, fmt.Errorf("slot %d: token info: %w", s, err)
			}
			info.Label, info.Serial, info.Manufacturer, info.Model = ti.Label, ti.SerialNumber, ti.ManufacturerID, ti.Model
			info.Initialized = ti.Flags&pkcs11.CKF_TOKEN_INITIALIZED != 0
			info.PINInitialized = ti.Flags&pkcs11.CKF_USER_PIN_INITIALIZED != 0
			info.PINCountLow = ti.Flags&pkcs11.CKF_USER_PIN_COUNT_LOW != 0
			info.PINFinalTry = ti.Flags&pkcs11.CKF_USER_PIN_FINAL_TRY != 0
			info.PINLocked = ti.Flags&pkcs11.CKF_USER_PIN_LOCKED != 0
		}
		out = append(out, info)
	}
	count := map[string]int{}
	for _, s := range out {
		if s.TokenPresent {
			count[s.Serial]++
		}
	}
	for i, s := range out {
		out[i].SerialUnique = s.TokenPresent && uniqueSerial(s.Serial) && count[s.Serial] == 1
	}
	return out, nil
}

// ObjectInfo describes a key or certificate object on a token.
type ObjectInfo struct {
	Class string // "private-key", "public-key", "certificate"
	Label string
	ID    []byte
	// KeyType is "RSA", "EC" or a CKK number, for keys.
	KeyType string
	// Certificate is the parsed certificate, for certificates.
	Certificate *x509.Certificate
	// Attributes of private keys.
	Attributes *KeyAttributes
}

// Objects lists the private keys, public keys and certificates on the token.
func (t *Token) Objects() ([]ObjectInfo, error) {
	var out []ObjectInfo
	_, err := t.admin(func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, _ uint64) ([]byte, error) {
		out = nil
		for _, c := range []struct {
			class uint
			name  string
		}{{pkcs11.CKO_PRIVATE_KEY, "private-key"}, {pkcs11.CKO_PUBLIC_KEY, "public-key"}, {pkcs11.CKO_CERTIFICATE, "certificate"}} {
			hs, err := findObjects(p, sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, c.class)})
			if err != nil {
				return nil, err
			}
			for _, h := range hs {
				o := ObjectInfo{Class: c.name}
				// One attribute at a time: an object may lack one (tpm2-pkcs11 keeps no
				// CKA_ID on an object stored without one), and the others still count.
				label, _, err := readAttr(p, sh, h, pkcs11.CKA_LABEL)
				if err != nil {
					return nil, err
				}
				id, _, err := readAttr(p, sh, h, pkcs11.CKA_ID)
				if err != nil {
					return nil, err
				}
				o.Label, o.ID = trimPadding(string(label)), bytes.Clone(id)
				switch c.class {
				case pkcs11.CKO_PRIVATE_KEY:
					a, err := readKeyAttributes(p, sh, h)
					if err != nil {
						return nil, err
					}
					o.KeyType, o.Attributes = a.Type, &a
				case pkcs11.CKO_PUBLIC_KEY:
					if pub, err := readPublicKey(p, sh, h); err == nil {
						o.KeyType = keyType(pub)
					}
				case pkcs11.CKO_CERTIFICATE:
					v, _, err := readAttr(p, sh, h, pkcs11.CKA_VALUE)
					if err != nil {
						return nil, err
					}
					o.Certificate, _ = x509.ParseCertificate(v)
				}
				out = append(out, o)
			}
		}
		return nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list objects on token %q: %w", t.label, err)
	}
	return out, nil
}

func keyType(pub crypto.PublicKey) string {
	switch pub.(type) {
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "EC"
	}
	return fmt.Sprintf("%T", pub)
}

// KeySigner finds the one private key matching ref and its public key (the public key object
// with the key's CKA_ID, or else with its label), self-tests the pair and returns a signer
// (crypto.Decrypter too for RSA). Unlike FindKey it needs no certificate: it is for keys being
// provisioned (certificate requests). Errors: ErrKeyNotFound, ErrKeyAmbiguous,
// ErrCertificateMismatch (the pair does not match).
func (t *Token) KeySigner(ref KeyRef) (crypto.Signer, error) {
	if err := ref.validate(); err != nil {
		return nil, err
	}
	var entry *keyEntry
	_, err := t.admin(func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) ([]byte, error) {
		privs, err := findObjects(p, sh, ref.template())
		if err != nil {
			return nil, err
		}
		switch len(privs) {
		case 0:
			return nil, ErrKeyNotFound
		case 1:
		default:
			return nil, fmt.Errorf("%w: matches %d private keys", ErrKeyAmbiguous, len(privs))
		}
		a, err := readKeyAttributes(p, sh, privs[0])
		if err != nil {
			return nil, err
		}
		by := pkcs11.NewAttribute(pkcs11.CKA_LABEL, a.Label)
		if len(a.ID) > 0 {
			by = pkcs11.NewAttribute(pkcs11.CKA_ID, a.ID)
		}
		pubs, err := findObjects(p, sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY), by})
		if err != nil {
			return nil, err
		}
		if len(pubs) != 1 {
			return nil, fmt.Errorf("%d public key objects belong to the key, need exactly one", len(pubs))
		}
		pub, err := readPublicKey(p, sh, pubs[0])
		if err != nil {
			return nil, err
		}
		if err := selfTest(p, sh, privs[0], pub, t.authFor(a)); err != nil {
			return nil, err
		}
		entry = &keyEntry{t: t, attrs: a, pub: pub, handle: privs[0], gen: gen}
		return nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("key %v on token %q: %w", ref, t.label, err)
	}
	t.register(entry)
	return entry.signer(), nil
}

// ImportChain stores a key's certificate chain on the token: chain[0] (which must hold the
// key's public key) with the key's label and ID, then each issuer certificate that is not on the
// token yet, labelled with its subject's common name and with the CKA_ID IssuerCertificateID
// gives (its subject key identifier): not the key's ID, which names the key's own certificate
// alone. FindKey finds issuers by subject. Every certificate thus has an ID, which tokens such as
// tpm2-pkcs11 need to list it. A leaf already on the token is not stored twice; a different certificate with the
// key's ID is refused (it would make FindKey ambiguous).
func (t *Token) ImportChain(ref KeyRef, chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return errors.New("import chain: no certificate")
	}
	s, err := t.KeySigner(ref)
	if err != nil {
		return err
	}
	if !publicKeysEqual(chain[0].PublicKey, s.Public()) {
		return fmt.Errorf("import chain for key %v: %w: certificate %s holds another public key", ref, ErrCertificateMismatch, describeCert(chain[0]))
	}
	ks := s.(interface{ entry() *keyEntry }).entry()
	for i, c := range chain {
		var present, conflict bool
		_, err := t.admin(func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, _ uint64) ([]byte, error) {
			hs, err := findObjects(p, sh, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
				pkcs11.NewAttribute(pkcs11.CKA_VALUE, c.Raw)})
			if err != nil {
				return nil, err
			}
			present = len(hs) > 0
			if i == 0 && !present && len(ks.attrs.ID) > 0 {
				certs, err := findCertificates(p, sh, pkcs11.NewAttribute(pkcs11.CKA_ID, ks.attrs.ID))
				if err != nil {
					return nil, err
				}
				conflict = len(certs) > 0
			}
			return nil, nil
		})
		if err != nil {
			return fmt.Errorf("import chain for key %v: %w", ref, err)
		}
		switch {
		case conflict:
			return fmt.Errorf("import chain for key %v: another certificate with id %s is on the token; delete it first", ref, hex.EncodeToString(ks.attrs.ID))
		case present:
			continue
		case i == 0:
			err = t.ImportCertificate(ks.attrs.ref(), c)
		default:
			label := c.Subject.CommonName
			if label == "" {
				label = "ca"
			}
			err = t.ImportCertificate(KeyRef{Label: label, ID: IssuerCertificateID(c)}, c)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

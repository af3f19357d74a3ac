package hsm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// ErrMechanism: the token does not offer the mechanism a key operation needs, or not for the
// key's size (C_GetMechanismInfo).
var ErrMechanism = errors.New("mechanism not supported by the token")

// CheckSign asks the token (C_GetMechanismInfo) whether it can sign with this key the way opts
// ask: CKM_RSA_PKCS, CKM_RSA_PKCS_PSS (*rsa.PSSOptions) or CKM_ECDSA, with CKF_SIGN, and the
// key's size within the mechanism's range. Callers check each profile's algorithm at start.
// Errors: ErrMechanism, or ErrTokenUnavailable and friends.
func (k *Key) CheckSign(ctx context.Context, opts crypto.SignerOpts) error {
	var mech uint
	var bits int
	switch p := k.Signer.Public().(type) {
	case *rsa.PublicKey:
		mech, bits = pkcs11.CKM_RSA_PKCS, p.N.BitLen()
		if _, ok := opts.(*rsa.PSSOptions); ok {
			mech = pkcs11.CKM_RSA_PKCS_PSS
		}
	case *ecdsa.PublicKey:
		mech, bits = pkcs11.CKM_ECDSA, p.Curve.Params().BitSize
	default:
		return fmt.Errorf("%w: key type %T", ErrMechanism, p)
	}
	return k.entry().t.checkMechanism(ctx, mech, pkcs11.CKF_SIGN, bits)
}

func (k *Key) entry() *keyEntry {
	return k.Signer.(interface{ entry() *keyEntry }).entry()
}

// mechanismNames names the mechanisms CheckSign asks about, for messages.
var mechanismNames = map[uint]string{
	pkcs11.CKM_RSA_PKCS:      "CKM_RSA_PKCS",
	pkcs11.CKM_RSA_PKCS_PSS:  "CKM_RSA_PKCS_PSS",
	pkcs11.CKM_ECDSA:         "CKM_ECDSA",
	pkcs11.CKM_RSA_PKCS_OAEP: "CKM_RSA_PKCS_OAEP",
	pkcs11.CKM_RSA_X_509:     "CKM_RSA_X_509",
}

func (t *Token) checkMechanism(ctx context.Context, mech, flag uint, bits int) error {
	name := mechanismNames[mech]
	var info pkcs11.MechanismInfo
	_, err := t.do(ctx, t.opTimeout, false, func(p *pkcs11.Ctx, _ pkcs11.SessionHandle, _ uint64) ([]byte, error) {
		t.mu.Lock()
		slot := t.slot
		t.mu.Unlock()
		var err error
		info, err = p.GetMechanismInfo(slot, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)})
		return nil, err
	})
	if rv, ok := ckr(err); ok && rv == pkcs11.CKR_MECHANISM_INVALID {
		return fmt.Errorf("%w: token %q has no %s", ErrMechanism, t.label, name)
	}
	if err != nil {
		return fmt.Errorf("token %q: mechanism info for %s: %w", t.label, name, err)
	}
	if info.Flags&flag == 0 {
		return fmt.Errorf("%w: token %q: %s cannot do this operation (flags 0x%x)", ErrMechanism, t.label, name, info.Flags)
	}
	// Sizes are bits for RSA and EC on most tokens; some report EC sizes in bytes.
	if bits > 0 && info.MaxKeySize > 0 && (uint(bits) < info.MinKeySize || uint(bits) > info.MaxKeySize) &&
		(mech != pkcs11.CKM_ECDSA || uint((bits+7)/8) < info.MinKeySize || uint((bits+7)/8) > info.MaxKeySize) {
		return fmt.Errorf("%w: token %q: %s takes %d to %d bit keys, this key has %d", ErrMechanism, t.label, name, info.MinKeySize, info.MaxKeySize, bits)
	}
	return nil
}

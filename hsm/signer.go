package hsm

//lint:file-ignore SA1019 RSA PKCS #1 v1.5 key transport (XML Encryption rsa-1_5) is a deliberate, opt-in legacy algorithm here; failures are decoded in constant time with implicit rejection.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/miekg/pkcs11"
)

// digestInfoPrefix is the DER of a PKCS #1 v1.5 DigestInfo up to the digest, per hash.
var digestInfoPrefix = map[crypto.Hash][]byte{
	crypto.SHA1:   {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
	crypto.SHA224: {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c},
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

// hashMech maps a hash to its PKCS#11 digest mechanism and MGF1 generator.
var hashMech = map[crypto.Hash]struct{ mech, mgf uint }{
	crypto.SHA1:   {pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1},
	crypto.SHA224: {pkcs11.CKM_SHA224, pkcs11.CKG_MGF1_SHA224},
	crypto.SHA256: {pkcs11.CKM_SHA256, pkcs11.CKG_MGF1_SHA256},
	crypto.SHA384: {pkcs11.CKM_SHA384, pkcs11.CKG_MGF1_SHA384},
	crypto.SHA512: {pkcs11.CKM_SHA512, pkcs11.CKG_MGF1_SHA512},
}

// checkSignOpts validates the signing options against the digest and key: an unknown hash
// would otherwise make the token sign a bare digest without a DigestInfo.
func checkSignOpts(pub crypto.PublicKey, digest []byte, opts crypto.SignerOpts) error {
	if opts == nil {
		return errors.New("sign: no signer options")
	}
	h := opts.HashFunc()
	if _, ok := hashMech[h]; !ok {
		return fmt.Errorf("sign: unsupported hash %v", h)
	}
	if len(digest) != h.Size() {
		return fmt.Errorf("sign: digest is %d bytes, %v needs %d", len(digest), h, h.Size())
	}
	if pss, ok := opts.(*rsa.PSSOptions); ok {
		if _, isRSA := pub.(*rsa.PublicKey); !isRSA {
			return errors.New("sign: pss options for a non-RSA key")
		}
		if pss.SaltLength == rsa.PSSSaltLengthAuto {
			return errors.New("sign: pss salt length auto is not supported, use rsa.PSSSaltLengthEqualsHash")
		}
		if pss.SaltLength < rsa.PSSSaltLengthEqualsHash {
			return fmt.Errorf("sign: invalid pss salt length %d", pss.SaltLength)
		}
	}
	return nil
}

// rawSign signs digest with key object h on session sh: RSA PKCS #1 v1.5 (CKM_RSA_PKCS over a
// DigestInfo) or PSS (CKM_RSA_PKCS_PSS), ECDSA (CKM_ECDSA, r‖s re-encoded as ASN.1 DER). For a
// key with CKA_ALWAYS_AUTHENTICATE, auth is the PIN: C_SignInit is followed by
// C_Login(CKU_CONTEXT_SPECIFIC) on the same session before C_Sign (the caller serialises uses of
// the key).
func rawSign(p *pkcs11.Ctx, sh pkcs11.SessionHandle, h pkcs11.ObjectHandle, pub crypto.PublicKey, digest []byte, opts crypto.SignerOpts, auth *string) ([]byte, error) {
	hash := opts.HashFunc()
	var mech *pkcs11.Mechanism
	var data []byte
	switch pub.(type) {
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			salt := pss.SaltLength
			if salt == rsa.PSSSaltLengthEqualsHash {
				salt = hash.Size()
			}
			hm := hashMech[hash]
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_PSS, pkcs11.NewPSSParams(hm.mech, hm.mgf, uint(salt)))
			data = digest
		} else {
			mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
			data = append(append([]byte(nil), digestInfoPrefix[hash]...), digest...)
		}
	case *ecdsa.PublicKey:
		mech = pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)
		data = digest
	default:
		return nil, fmt.Errorf("sign: unsupported public key type %T", pub)
	}
	if err := p.SignInit(sh, []*pkcs11.Mechanism{mech}, h); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if auth != nil {
		if err := p.Login(sh, pkcs11.CKU_CONTEXT_SPECIFIC, *auth); err != nil {
			// The session has an operation pending: ClassSession errors drop it; make sure
			// this one does too.
			if Classify(err) == ClassPIN {
				return nil, fmt.Errorf("sign: context-specific login: %w", err)
			}
			return nil, fmt.Errorf("sign: context-specific login: %w", pkcs11.Error(pkcs11.CKR_OPERATION_ACTIVE))
		}
	}
	sig, err := p.Sign(sh, data)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	if _, ok := pub.(*ecdsa.PublicKey); ok {
		if len(sig) == 0 || len(sig)%2 != 0 {
			return nil, fmt.Errorf("sign: token returned a %d-byte ecdsa signature", len(sig))
		}
		n := len(sig) / 2
		return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])})
	}
	return sig, nil
}

// tokenSigner is a crypto.Signer whose private key is a token object.
type tokenSigner struct{ k *keyEntry }

// The interfaces the signers promise (Key.Signer's documentation).
var (
	_ ContextSigner    = (*tokenSigner)(nil)
	_ ContextSigner    = tokenRSASigner{}
	_ ContextDecrypter = tokenRSASigner{}
)

// tokenRSASigner adds crypto.Decrypter to RSA keys.
type tokenRSASigner struct{ *tokenSigner }

func (k *keyEntry) signer() crypto.Signer {
	s := &tokenSigner{k: k}
	if _, ok := k.pub.(*rsa.PublicKey); ok {
		return tokenRSASigner{s}
	}
	return s
}

// Public returns the key's public key (the certificate's, for keys from FindKey).
func (s *tokenSigner) Public() crypto.PublicKey { return s.k.pub }

// Sign signs digest inside the token within the Token's Config.OpTimeout. RSA: PKCS #1 v1.5,
// or PSS for *rsa.PSSOptions (salt length rsa.PSSSaltLengthEqualsHash or explicit; not
// PSSSaltLengthAuto). ECDSA: ASN.1 DER signature. Hashes: SHA-1, SHA-224, SHA-256, SHA-384,
// SHA-512; the digest length must match.
func (s *tokenSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.SignContext(context.Background(), rand, digest, opts)
}

// SignContext is Sign within ctx's deadline (and at most the Token's OpTimeout). Errors that
// mean "try later" wrap ErrTokenUnavailable or ErrBusy.
func (s *tokenSigner) SignContext(ctx context.Context, _ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if err := checkSignOpts(s.k.pub, digest, opts); err != nil {
		return nil, err
	}
	t := s.k.t
	return t.do(ctx, t.opTimeout, true, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) ([]byte, error) {
		h, err := s.k.handleFor(gen)
		if err != nil {
			return nil, err
		}
		if s.k.attrs.AlwaysAuthenticate {
			s.k.useMu.Lock()
			defer s.k.useMu.Unlock()
		}
		return rawSign(p, sh, h, s.k.pub, digest, opts, s.k.auth())
	})
}

// Decrypt decrypts msg inside the token within the Token's OpTimeout: RSA PKCS #1 v1.5 (nil
// opts or *rsa.PKCS1v15DecryptOptions) or OAEP (*rsa.OAEPOptions; the MGF1 hash is MGFHash, or
// Hash when MGFHash is zero).
func (s tokenRSASigner) Decrypt(rand io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	return s.DecryptContext(context.Background(), rand, msg, opts)
}

// DecryptContext is Decrypt within ctx's deadline (and at most the Token's OpTimeout).
//
// The token does a raw RSA decryption (CKM_RSA_X_509) and the padding is decoded here, in
// constant time, so that a bad padding takes the same path through the token, the session
// pool and this package as a good one (a token's own padding check answers an error, which is
// a timing and behaviour oracle: Bleichenbacher 1998, Manger 2001; SoftHSM2 even answers
// CKR_GENERAL_ERROR to a bad OAEP padding, which looks like a module failure).
//
// PKCS #1 v1.5 uses implicit rejection: a bad padding is not an error but yields a synthetic
// message derived from the ciphertext (with SessionKeyLen, a key of that length, as
// crypto/rsa does; without, a message of a pseudo-random length), so a caller that treats
// every unwrapped key alike learns nothing. OAEP of any hash, MGF1 hash and label fails with
// one error for every decoding failure, after the same work.
//
// A token that refuses raw RSA decrypts with its own mechanism (CKM_RSA_PKCS or
// CKM_RSA_PKCS_OAEP) and its own error behaviour.
func (s tokenRSASigner) DecryptContext(ctx context.Context, _ io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	var mech *pkcs11.Mechanism
	var oaep *rsa.OAEPOptions
	sessionKeyLen := 0
	switch o := opts.(type) {
	case nil:
		mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
	case *rsa.PKCS1v15DecryptOptions:
		sessionKeyLen = o.SessionKeyLen
		mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)
	case *rsa.OAEPOptions:
		hm, ok := hashMech[o.Hash]
		if !ok {
			return nil, fmt.Errorf("decrypt: unsupported oaep hash %v", o.Hash)
		}
		oaep = &rsa.OAEPOptions{Hash: o.Hash, MGFHash: o.MGFHash, Label: o.Label}
		if oaep.MGFHash == 0 {
			oaep.MGFHash = o.Hash
		}
		m, ok := hashMech[oaep.MGFHash]
		if !ok {
			return nil, fmt.Errorf("decrypt: unsupported oaep mgf1 hash %v", o.MGFHash)
		}
		mech = pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.NewOAEPParams(hm.mech, m.mgf, pkcs11.CKZ_DATA_SPECIFIED, o.Label))
	default:
		return nil, fmt.Errorf("decrypt: unsupported options %T", opts)
	}
	pub, ok := s.k.pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("decrypt: not an RSA key (%T)", s.k.pub)
	}
	k := pub.Size()
	if len(msg) != k {
		return nil, fmt.Errorf("decrypt: ciphertext is %d bytes, the key needs %d", len(msg), k)
	}
	if sessionKeyLen < 0 || sessionKeyLen > k-11 {
		return nil, fmt.Errorf("decrypt: pkcs1v15 session key length %d out of range", sessionKeyLen)
	}
	var synth []byte
	var synthLen int
	if oaep == nil {
		synth, synthLen = syntheticPKCS1v15(pub.N, msg, k)
	}
	t := s.k.t
	out, err := t.do(ctx, t.opTimeout, true, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) ([]byte, error) {
		h, err := s.k.handleFor(gen)
		if err != nil {
			return nil, err
		}
		em, err := rawDecrypt(p, sh, h, pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil), msg)
		if err != nil {
			if !refusedRaw(err) {
				return nil, err
			}
			return rawDecrypt(p, sh, h, mech, msg)
		}
		if oaep != nil {
			return decodeOAEP(em, k, oaep.Hash, oaep.MGFHash, oaep.Label)
		}
		return decodePKCS1v15(em, k, sessionKeyLen, synth, synthLen)
	})
	if err != nil {
		return nil, fmt.Errorf("token %q: %w", t.label, err)
	}
	return out, nil
}

func rawDecrypt(p *pkcs11.Ctx, sh pkcs11.SessionHandle, h pkcs11.ObjectHandle, mech *pkcs11.Mechanism, msg []byte) ([]byte, error) {
	if err := p.DecryptInit(sh, []*pkcs11.Mechanism{mech}, h); err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	pt, err := p.Decrypt(sh, msg)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	return pt, nil
}

// refusedRaw reports whether a token's error to CKM_RSA_X_509 means it does not do raw RSA
// with this key (as some HSMs are configured), rather than a failure of this decryption.
func refusedRaw(err error) bool {
	rv, ok := ckr(err)
	if !ok {
		return false
	}
	switch rv {
	case pkcs11.CKR_MECHANISM_INVALID, pkcs11.CKR_MECHANISM_PARAM_INVALID, pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED,
		pkcs11.CKR_KEY_TYPE_INCONSISTENT, pkcs11.CKR_FUNCTION_NOT_SUPPORTED:
		return true
	}
	return false
}

// entry exposes the key behind a signer to this package.
func (s *tokenSigner) entry() *keyEntry { return s.k }

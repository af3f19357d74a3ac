package hsm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/miekg/pkcs11"
)

// rsaHashMech maps a hash to the token mechanism that hashes and signs with RSA PKCS #1 v1.5,
// for the hashes of the XML-DSig RSA methods (others are hashed here).
var rsaHashMech = map[crypto.Hash]uint{
	crypto.SHA1:   pkcs11.CKM_SHA1_RSA_PKCS,
	crypto.SHA256: pkcs11.CKM_SHA256_RSA_PKCS,
	crypto.SHA384: pkcs11.CKM_SHA384_RSA_PKCS,
	crypto.SHA512: pkcs11.CKM_SHA512_RSA_PKCS,
}

// mechanismTrials is how many signatures chooseRSAMechanism times with each mechanism.
const mechanismTrials = 6

// chooseRSAMechanism decides how the RSA key k signs whole messages (SignMessage with PKCS #1
// v1.5): with the token's hash-and-sign mechanisms (CKM_SHA256_RSA_PKCS and friends, those
// C_GetMechanismInfo lists with CKF_SIGN) when signing a message that way took less time than
// CKM_RSA_PKCS over a DigestInfo, else by hashing here and signing the digest. Both produce the
// same PKCS #1 v1.5 signature: the trials check that they do and that it verifies. Keys that
// need a context-specific login per signature are not measured (each trial would send the PIN);
// they sign digests.
func (t *Token) chooseRSAMechanism(ctx context.Context, k *keyEntry) {
	pub, ok := k.pub.(*rsa.PublicKey)
	if !ok || k.attrs.AlwaysAuthenticate {
		return
	}
	bits := pub.N.BitLen()
	mechs := map[crypto.Hash]uint{}
	for h, m := range rsaHashMech {
		if t.checkMechanism(ctx, m, pkcs11.CKF_SIGN, bits) == nil {
			mechs[h] = m
		}
	}
	if _, ok := mechs[crypto.SHA256]; !ok {
		return
	}
	msg := bytes.Repeat([]byte("wssignd mechanism trial "), 43) // about a SignedInfo's size
	h := crypto.SHA256.New()
	h.Write(msg)
	digest := h.Sum(nil)
	var viaDigest, viaMessage time.Duration
	for range mechanismTrials {
		for _, whole := range []bool{false, true} {
			start := time.Now()
			sig, err := t.do(ctx, t.opTimeout, true, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) ([]byte, error) {
				hd, err := k.handleFor(gen)
				if err != nil {
					return nil, err
				}
				if whole {
					return signWith(p, sh, hd, pkcs11.CKM_SHA256_RSA_PKCS, msg)
				}
				return rawSign(p, sh, hd, k.pub, digest, crypto.SHA256, nil)
			})
			d := time.Since(start)
			if err == nil {
				err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, sig)
			}
			if err != nil {
				if whole {
					t.log.Warn("hash-and-sign mechanism not used", "token_label", t.label, "key", k.attrs.ref().String(), "err", err)
					return
				}
				continue
			}
			if whole {
				viaMessage += d
			} else {
				viaDigest += d
			}
		}
	}
	if viaMessage >= viaDigest {
		return
	}
	k.mu.Lock()
	k.msgMechs = mechs
	k.mu.Unlock()
	t.log.Debug("RSA messages signed with the token's hash-and-sign mechanisms", "token_label", t.label, "key", k.attrs.ref().String(),
		"via_message", viaMessage/mechanismTrials, "via_digest", viaDigest/mechanismTrials)
}

// signWith is C_SignInit(mech) and C_Sign(data) with key object h on session sh.
func signWith(p *pkcs11.Ctx, sh pkcs11.SessionHandle, h pkcs11.ObjectHandle, mech uint, data []byte) ([]byte, error) {
	if err := p.SignInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, h); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	sig, err := p.Sign(sh, data)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return sig, nil
}

// messageMech is the hash-and-sign mechanism for a PKCS #1 v1.5 signature of a message with
// hash, or 0 when the message is to be hashed here.
func (k *keyEntry) messageMech(opts crypto.SignerOpts) uint {
	if _, pss := opts.(*rsa.PSSOptions); pss || opts == nil {
		return 0
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.msgMechs[opts.HashFunc()]
}

// SignMessage signs msg (crypto.MessageSigner): an RSA PKCS #1 v1.5 signature is made by the
// token's hash-and-sign mechanism when it was measured faster than signing a digest (see
// chooseRSAMechanism); anything else hashes msg with opts' hash and signs the digest as Sign
// does. The signature is the same either way.
func (s *tokenSigner) SignMessage(rand io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.SignMessageContext(context.Background(), rand, msg, opts)
}

// SignMessageContext is SignMessage within ctx's deadline (and at most the Token's OpTimeout).
func (s *tokenSigner) SignMessageContext(ctx context.Context, rand io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil {
		return nil, errors.New("sign: no signer options")
	}
	hash := opts.HashFunc()
	if !hash.Available() {
		return nil, fmt.Errorf("sign: unsupported hash %v", hash)
	}
	mech := s.k.messageMech(opts)
	if mech == 0 {
		h := hash.New()
		h.Write(msg)
		return s.SignContext(ctx, rand, h.Sum(nil), opts)
	}
	t := s.k.t
	return t.do(ctx, t.opTimeout, true, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) ([]byte, error) {
		h, err := s.k.handleFor(gen)
		if err != nil {
			return nil, err
		}
		return signWith(p, sh, h, mech, msg)
	})
}

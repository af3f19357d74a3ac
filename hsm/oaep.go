package hsm

import (
	"crypto"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"math/big"
	"sync"
)

// errOAEPDecoding is the one error of OAEP decoding: which check failed is never told (that would
// be a padding oracle, Manger 2001).
var errOAEPDecoding = errors.New("decrypt: oaep decoding failed")

// mgf1 fills out with MGF1 over seed with hash h (RFC 8017 B.2.1).
func mgf1(h crypto.Hash, seed []byte, out []byte) {
	var counter [4]byte
	done := 0
	for done < len(out) {
		d := h.New()
		d.Write(seed)
		d.Write(counter[:])
		done += copy(out[done:], d.Sum(nil))
		binary.BigEndian.PutUint32(counter[:], binary.BigEndian.Uint32(counter[:])+1)
	}
}

// decodeOAEP is EME-OAEP decoding (RFC 8017 7.1.2 step 3) of em, the k-byte result of a raw RSA
// decryption, with hash h, MGF1 hash mh and label. It runs in time independent of em's content
// up to the final copy, and reports every failure alike.
func decodeOAEP(em []byte, k int, h, mh crypto.Hash, label []byte) ([]byte, error) {
	hLen := h.Size()
	if k < 2*hLen+2 || len(em) > k {
		return nil, errOAEPDecoding
	}
	if len(em) < k { // a token may drop leading zero bytes of the integer
		padded := make([]byte, k)
		copy(padded[k-len(em):], em)
		em = padded
	} else {
		em = append([]byte(nil), em...)
	}
	lh := h.New()
	lh.Write(label)
	lHash := lh.Sum(nil)

	y := em[0]
	seed := em[1 : 1+hLen]
	db := em[1+hLen:]
	mask := make([]byte, max(hLen, len(db)))
	mgf1(mh, db, mask[:hLen])
	subtle.XORBytes(seed, seed, mask[:hLen])
	mgf1(mh, seed, mask[:len(db)])
	subtle.XORBytes(db, db, mask[:len(db)])

	good := subtle.ConstantTimeByteEq(y, 0)
	good &= subtle.ConstantTimeCompare(db[:hLen], lHash)

	// db[hLen:] is PS (zeros) ‖ 0x01 ‖ M. Find the 0x01 without branching on the data.
	rest := db[hLen:]
	looking, index, invalid := 1, 0, 0
	for i, b := range rest {
		is0 := subtle.ConstantTimeByteEq(b, 0)
		is1 := subtle.ConstantTimeByteEq(b, 1)
		index = subtle.ConstantTimeSelect(looking&is1, i, index)
		looking = subtle.ConstantTimeSelect(is1, 0, looking)
		invalid = subtle.ConstantTimeSelect(looking&^is0, 1, invalid)
	}
	if good&^invalid&^looking != 1 {
		return nil, errOAEPDecoding
	}
	return rest[index+1:], nil
}

// implicitRejectionSecret keys the synthetic messages of decodePKCS1v15: random per process, so
// that nobody outside can compute them, and fixed within it, so that one ciphertext always
// yields one answer (a repeated query tells nothing).
var implicitRejectionSecret = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("hsm: no random source: " + err.Error()) // crypto/rand never fails on Linux
	}
	return b
})

// syntheticPKCS1v15 derives the stand-in for the plaintext of ciphertext ct under the key with
// modulus n, for implicit rejection (the construction of draft-irtf-cfrg-rsa-guidance and
// OpenSSL 3.2, keyed with a process secret instead of the private exponent, which stays in the
// token): k bytes of message and a length below k-10, both pseudo-random in ct. It costs the
// same for every ct and is computed for every decryption, valid or not.
func syntheticPKCS1v15(n *big.Int, ct []byte, k int) (msg []byte, length int) {
	mac := hmac.New(sha256.New, implicitRejectionSecret())
	mac.Write(n.Bytes())
	mac.Write(ct)
	kdk := mac.Sum(nil)
	const candidates = 64
	stream, err := hkdf.Expand(sha256.New, kdk, "wssignd pkcs1v15 implicit rejection", k+2*candidates)
	if err != nil {
		panic("hsm: hkdf: " + err.Error()) // only for lengths over 255 hashes: k is at most 2048 bytes
	}
	msg = stream[:k]
	// A length in [0, k-11]: the last of the candidates, masked to the bits of k-11, that is
	// below k-10, chosen without branching.
	maxLen := k - 11
	mask := 1
	for mask < maxLen {
		mask = mask<<1 | 1
	}
	for i := range candidates {
		c := int(binary.BigEndian.Uint16(stream[k+2*i:])) & mask
		length = subtle.ConstantTimeSelect(subtle.ConstantTimeLessOrEq(c, maxLen), c, length)
	}
	return msg, length
}

// decodePKCS1v15 is EME-PKCS1-v1_5 decoding (RFC 8017 7.2.2 step 3) of em, the result of a raw
// RSA decryption with a k-byte modulus, with implicit rejection: it never fails on the
// padding. When em is not a valid encryption block (or, with sessionKeyLen > 0, does not hold
// a message of that length), it returns the synthetic message instead (synth, k bytes, and
// synthLen, its length without sessionKeyLen) with no error, as crypto/rsa does for
// PKCS1v15DecryptOptions.SessionKeyLen. Its time does not depend on em's content.
func decodePKCS1v15(em []byte, k int, sessionKeyLen int, synth []byte, synthLen int) ([]byte, error) {
	if k < 11 || len(em) > k || len(synth) != k || sessionKeyLen > k-11 {
		return nil, errors.New("decrypt: pkcs1v15 decoding: bad sizes")
	}
	buf := make([]byte, k)
	copy(buf[k-len(em):], em) // a token may drop leading zero bytes of the integer

	valid := subtle.ConstantTimeByteEq(buf[0], 0) & subtle.ConstantTimeByteEq(buf[1], 2)
	looking, index := 1, 0
	for i := 2; i < k; i++ {
		is0 := subtle.ConstantTimeByteEq(buf[i], 0)
		index = subtle.ConstantTimeSelect(looking&is0, i, index)
		looking = subtle.ConstantTimeSelect(is0, 0, looking)
	}
	valid &= ^looking & 1
	valid &= subtle.ConstantTimeLessOrEq(2+8, index) // at least 8 bytes of padding
	start := index + 1                               // the message is buf[start:]

	if sessionKeyLen > 0 {
		valid &= subtle.ConstantTimeEq(int32(k-start), int32(sessionKeyLen))
		out := make([]byte, sessionKeyLen)
		copy(out, synth[k-sessionKeyLen:])
		subtle.ConstantTimeCopy(valid, out, buf[k-sessionKeyLen:])
		return out, nil
	}
	out := make([]byte, k)
	copy(out, synth)
	subtle.ConstantTimeCopy(valid, out, buf)
	return out[subtle.ConstantTimeSelect(valid, start, k-synthLen):], nil
}

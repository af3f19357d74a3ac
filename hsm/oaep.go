package hsm

import (
	"crypto"
	"crypto/subtle"
	"encoding/binary"
	"errors"
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

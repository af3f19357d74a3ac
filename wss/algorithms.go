package wss

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"fmt"

	dsig "github.com/russellhaering/goxmldsig"
)

// Algorithm identifiers (XML-DSig 1.1, RFC 6931).
const (
	AlgExcC14N             = "http://www.w3.org/2001/10/xml-exc-c14n#"
	AlgExcC14NWithComments = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments"

	AlgSHA1   = "http://www.w3.org/2000/09/xmldsig#sha1"
	AlgSHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
	AlgSHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
	AlgSHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"

	AlgRSASHA1     = dsig.RSASHA1SignatureMethod
	AlgRSASHA256   = dsig.RSASHA256SignatureMethod
	AlgRSASHA384   = dsig.RSASHA384SignatureMethod
	AlgRSASHA512   = dsig.RSASHA512SignatureMethod
	AlgECDSASHA256 = dsig.ECDSASHA256SignatureMethod
	AlgECDSASHA384 = dsig.ECDSASHA384SignatureMethod
	AlgECDSASHA512 = dsig.ECDSASHA512SignatureMethod
	// RSASSA-PSS with MGF1 of the same hash, salt length = hash length and
	// trailer field 1: "RSASSA-PSS Without Parameters", RFC 6931 §2.3.11,
	// unchanged in RFC 9231. xmlsec1 1.2.x does not implement them.
	AlgRSAPSSSHA256 = "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"
	AlgRSAPSSSHA384 = "http://www.w3.org/2007/05/xmldsig-more#sha384-rsa-MGF1"
	AlgRSAPSSSHA512 = "http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1"
)

type keyKind int

const (
	keyRSA keyKind = iota + 1
	keyECDSA
)

// signatureAlg describes one SignatureMethod.
type signatureAlg struct {
	uri    string
	kind   keyKind
	hash   crypto.Hash
	pss    bool
	legacy bool // SHA-1: only on explicit opt-in
}

var signatureAlgs = map[string]signatureAlg{
	AlgRSASHA1:      {AlgRSASHA1, keyRSA, crypto.SHA1, false, true},
	AlgRSASHA256:    {AlgRSASHA256, keyRSA, crypto.SHA256, false, false},
	AlgRSASHA384:    {AlgRSASHA384, keyRSA, crypto.SHA384, false, false},
	AlgRSASHA512:    {AlgRSASHA512, keyRSA, crypto.SHA512, false, false},
	AlgRSAPSSSHA256: {AlgRSAPSSSHA256, keyRSA, crypto.SHA256, true, false},
	AlgRSAPSSSHA384: {AlgRSAPSSSHA384, keyRSA, crypto.SHA384, true, false},
	AlgRSAPSSSHA512: {AlgRSAPSSSHA512, keyRSA, crypto.SHA512, true, false},
	AlgECDSASHA256:  {AlgECDSASHA256, keyECDSA, crypto.SHA256, false, false},
	AlgECDSASHA384:  {AlgECDSASHA384, keyECDSA, crypto.SHA384, false, false},
	AlgECDSASHA512:  {AlgECDSASHA512, keyECDSA, crypto.SHA512, false, false},
}

type digestAlg struct {
	uri    string
	hash   crypto.Hash
	legacy bool
}

var digestAlgs = map[string]digestAlg{
	AlgSHA1:   {AlgSHA1, crypto.SHA1, true},
	AlgSHA256: {AlgSHA256, crypto.SHA256, false},
	AlgSHA384: {AlgSHA384, crypto.SHA384, false},
	AlgSHA512: {AlgSHA512, crypto.SHA512, false},
}

func kindOf(pub crypto.PublicKey) (keyKind, error) {
	switch pub.(type) {
	case *rsa.PublicKey:
		return keyRSA, nil
	case *ecdsa.PublicKey:
		return keyECDSA, nil
	}
	return 0, fmt.Errorf("unsupported public key type %T", pub)
}

// DefaultSignatureMethod is the SignatureMethod used for a key when a profile
// names none: RSA-SHA256 for RSA keys, ECDSA with the hash matching the curve
// size for EC keys.
func DefaultSignatureMethod(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return AlgRSASHA256, nil
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 384:
			return AlgECDSASHA384, nil
		case 521:
			return AlgECDSASHA512, nil
		}
		return AlgECDSASHA256, nil
	}
	return "", fmt.Errorf("unsupported public key type %T", pub)
}

// CheckAlgorithms reports whether the signature and digest methods are known,
// fit the public key, and are allowed (SHA-1 only with allowSHA1). Daemons call
// it at startup so that mismatches are configuration errors, not request errors.
func CheckAlgorithms(pub crypto.PublicKey, signatureMethod, digestMethod string, allowSHA1 bool) error {
	sa, ok := signatureAlgs[signatureMethod]
	if !ok {
		return errorf(CodeUnsupported, "unknown signature method %q", signatureMethod)
	}
	da, ok := digestAlgs[digestMethod]
	if !ok {
		return errorf(CodeUnsupported, "unknown digest method %q", digestMethod)
	}
	if (sa.legacy || da.legacy) && !allowSHA1 {
		return errorf(CodeUnsupported, "SHA-1 algorithms need an explicit opt-in")
	}
	kind, err := kindOf(pub)
	if err != nil {
		return &Error{Code: CodeUnsupported, Msg: "key", Err: err}
	}
	if kind != sa.kind {
		return errorf(CodeUnsupported, "signature method %s does not fit a %T key", signatureMethod, pub)
	}
	return nil
}

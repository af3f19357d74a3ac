package hsm

import (
	"errors"

	"github.com/miekg/pkcs11"
)

// Sentinel errors. Callers branch on them with errors.Is; the error text around them names the
// token, key or file concerned (never a PIN).
var (
	// ErrTokenNotFound: no present token has the configured label or serial.
	ErrTokenNotFound = errors.New("token not found")
	// ErrTokenAmbiguous: more than one present token has the configured label or serial.
	ErrTokenAmbiguous = errors.New("token reference is ambiguous")
	// ErrPINRejected: the token refused the user PIN (incorrect, locked, invalid, wrong length or
	// expired), or reports the user PIN as locked before any login was tried. Never retry
	// automatically: tokens lock after a few failed attempts.
	ErrPINRejected = errors.New("pin rejected")
	// ErrPINMismatch: the token is already open and logged in within this process with another
	// PIN, so the token cannot check this one (PKCS#11 login state is per process: a second
	// C_Login answers CKR_USER_ALREADY_LOGGED_IN whatever the PIN). Unlike ErrPINRejected the
	// token has not refused anything; close the other Token first to have the PIN checked.
	ErrPINMismatch = errors.New("pin differs from the pin this token accepted earlier in this process")
	// ErrClosed: the Token was closed.
	ErrClosed = errors.New("token closed")

	// ErrKeyNotFound: no private key on the token matches the KeyRef.
	ErrKeyNotFound = errors.New("key not found")
	// ErrKeyAmbiguous: two or more private keys on the token match the KeyRef.
	ErrKeyAmbiguous = errors.New("key reference is ambiguous")
	// ErrKeyExists: a key generation was refused because a private key with the same label or
	// ID is already on the token (it would make both ambiguous).
	ErrKeyExists = errors.New("key already exists")
	// ErrCertificateNotFound: the private key has no certificate on the token.
	ErrCertificateNotFound = errors.New("certificate not found")
	// ErrCertificateMismatch: the certificate found for a key is not the certificate of that key
	// (different public key, or the self-test signature does not verify with it).
	ErrCertificateMismatch = errors.New("certificate does not match key")

	// ErrSoftHSMNotInstalled: softhsm2-util or libsofthsm2.so is missing.
	ErrSoftHSMNotInstalled = errors.New("softhsm2 is not installed (apt-get install softhsm2)")
)

// ckr returns the PKCS#11 return value inside err, if there is one. crypto11 wraps pkcs11.Error
// with github.com/pkg/errors (WithMessage/WithMessagef), whose wrappers implement Unwrap since
// v0.9.0, and with fmt.Errorf("%w"); errors.As sees through both.
func ckr(err error) (uint, bool) {
	var e pkcs11.Error
	if errors.As(err, &e) {
		return uint(e), true
	}
	return 0, false
}

// isPINRejection reports whether a PKCS#11 return value means the token refused the PIN.
func isPINRejection(rv uint) bool {
	switch rv {
	case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_LOCKED, pkcs11.CKR_PIN_INVALID,
		pkcs11.CKR_PIN_LEN_RANGE, pkcs11.CKR_PIN_EXPIRED:
		return true
	}
	return false
}

// isTokenAbsence reports whether a PKCS#11 return value means the token went away.
func isTokenAbsence(rv uint) bool {
	switch rv {
	case pkcs11.CKR_TOKEN_NOT_PRESENT, pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_SLOT_ID_INVALID,
		pkcs11.CKR_TOKEN_NOT_RECOGNIZED:
		return true
	}
	return false
}

package hsm

import (
	"errors"
	"fmt"

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
	// expired), or a persisted marker says it refused this very PIN source before. Never retry
	// automatically: tokens lock after a few failed attempts.
	ErrPINRejected = errors.New("pin rejected")
	// ErrPINLocked: the token is locked, not the PIN wrong. It reports the user PIN locked
	// (CKF_USER_PIN_LOCKED) or on its final try (CKF_USER_PIN_FINAL_TRY: then no login was
	// attempted, since one more failure would lock it), or it answered C_Login with
	// CKR_PIN_LOCKED (a TPM in dictionary-attack lockout answers so even to the right PIN). No
	// pin-rejected marker is written: the PIN may be right, and a TPM lockout ends by itself. A
	// Token in this state tries again after Config.PINLockedRetry; an administrator may unlock
	// the PIN or clear the TPM's lockout first. It does not wrap ErrPINRejected.
	ErrPINLocked = errors.New("token locked: the token reports the user pin locked or on its final try, or is in dictionary-attack lockout")
	// ErrPINMismatch: the token is already open and logged in within this process with another
	// PIN, so the token cannot check this one (PKCS#11 login state is per process: a second
	// C_Login answers CKR_USER_ALREADY_LOGGED_IN whatever the PIN). Unlike ErrPINRejected the
	// token has not refused anything; close the other Token first to have the PIN checked.
	ErrPINMismatch = errors.New("pin differs from the pin this token accepted earlier in this process")
	// ErrClosed: the Token was closed.
	ErrClosed = errors.New("token closed")

	// ErrTokenUnavailable: the operation was not done because the token is offline, being
	// recovered, hung (an earlier call has not returned within its deadline), or did not answer
	// within this call's deadline. Retry later; the Token recovers by itself.
	ErrTokenUnavailable = errors.New("token unavailable")
	// ErrBusy: every session of the token was in use until the call's deadline (the token
	// itself answers). Retry later. Distinct from ErrTokenUnavailable so that callers can tell
	// overload from outage; both deserve 503 with Retry-After.
	ErrBusy = errors.New("token busy: no session free within the deadline")

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

// Class is what a PKCS#11 return value means for the caller and for recovery.
type Class int

const (
	// ClassOK: CKR_OK.
	ClassOK Class = iota
	// ClassRequest: this request was wrong (bad data, mechanism, parameters, attribute,
	// template, a key that may not do this). The session and token are fine; do not retry.
	ClassRequest
	// ClassSession: the session is unusable (closed, invalid handle, an operation left active).
	// Replace the session; an idempotent operation may be retried once on a fresh one.
	ClassSession
	// ClassToken: the token went away or lost its state (removed, not present, not recognised,
	// login lost, object handles invalid). Mark it offline and re-attach it.
	ClassToken
	// ClassModule: the module (library, daemon, network link to an HSM) failed or must be
	// re-initialised (device error, general error, not initialised). Finalise and initialise it
	// again, then re-attach every token.
	ClassModule
	// ClassPIN: the token refused the PIN. Never retried.
	ClassPIN
	// ClassBusy: a resource is exhausted for now (memory, session count, function rejected or
	// cancelled). Retry later; the token is fine.
	ClassBusy
)

func (c Class) String() string {
	switch c {
	case ClassOK:
		return "ok"
	case ClassRequest:
		return "request"
	case ClassSession:
		return "session"
	case ClassToken:
		return "token"
	case ClassModule:
		return "module"
	case ClassPIN:
		return "pin"
	case ClassBusy:
		return "busy"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// ckrClass classifies every return value PKCS#11 v2.40 defines. Values not in the table
// (vendor-defined ones included) are ClassModule: an error nobody understands is handled by
// starting the module afresh, which is safe, rather than by retrying into it.
var ckrClass = map[uint]Class{
	pkcs11.CKR_OK: ClassOK,

	// The request itself.
	pkcs11.CKR_ARGUMENTS_BAD:                    ClassRequest,
	pkcs11.CKR_ATTRIBUTE_READ_ONLY:              ClassRequest,
	pkcs11.CKR_ATTRIBUTE_SENSITIVE:              ClassRequest,
	pkcs11.CKR_ATTRIBUTE_TYPE_INVALID:           ClassRequest,
	pkcs11.CKR_ATTRIBUTE_VALUE_INVALID:          ClassRequest,
	pkcs11.CKR_ACTION_PROHIBITED:                ClassRequest,
	pkcs11.CKR_DATA_INVALID:                     ClassRequest,
	pkcs11.CKR_DATA_LEN_RANGE:                   ClassRequest,
	pkcs11.CKR_ENCRYPTED_DATA_INVALID:           ClassRequest,
	pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE:         ClassRequest,
	pkcs11.CKR_FUNCTION_NOT_SUPPORTED:           ClassRequest,
	pkcs11.CKR_KEY_SIZE_RANGE:                   ClassRequest,
	pkcs11.CKR_KEY_TYPE_INCONSISTENT:            ClassRequest,
	pkcs11.CKR_KEY_NOT_NEEDED:                   ClassRequest,
	pkcs11.CKR_KEY_NEEDED:                       ClassRequest,
	pkcs11.CKR_KEY_INDIGESTIBLE:                 ClassRequest,
	pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED:       ClassRequest,
	pkcs11.CKR_KEY_NOT_WRAPPABLE:                ClassRequest,
	pkcs11.CKR_KEY_UNEXTRACTABLE:                ClassRequest,
	pkcs11.CKR_MECHANISM_INVALID:                ClassRequest,
	pkcs11.CKR_MECHANISM_PARAM_INVALID:          ClassRequest,
	pkcs11.CKR_SIGNATURE_INVALID:                ClassRequest,
	pkcs11.CKR_SIGNATURE_LEN_RANGE:              ClassRequest,
	pkcs11.CKR_TEMPLATE_INCOMPLETE:              ClassRequest,
	pkcs11.CKR_TEMPLATE_INCONSISTENT:            ClassRequest,
	pkcs11.CKR_TOKEN_WRITE_PROTECTED:            ClassRequest,
	pkcs11.CKR_UNWRAPPING_KEY_HANDLE_INVALID:    ClassRequest,
	pkcs11.CKR_UNWRAPPING_KEY_SIZE_RANGE:        ClassRequest,
	pkcs11.CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT: ClassRequest,
	pkcs11.CKR_USER_TYPE_INVALID:                ClassRequest,
	pkcs11.CKR_USER_TOO_MANY_TYPES:              ClassRequest,
	pkcs11.CKR_WRAPPED_KEY_INVALID:              ClassRequest,
	pkcs11.CKR_WRAPPED_KEY_LEN_RANGE:            ClassRequest,
	pkcs11.CKR_WRAPPING_KEY_HANDLE_INVALID:      ClassRequest,
	pkcs11.CKR_WRAPPING_KEY_SIZE_RANGE:          ClassRequest,
	pkcs11.CKR_WRAPPING_KEY_TYPE_INCONSISTENT:   ClassRequest,
	pkcs11.CKR_RANDOM_SEED_NOT_SUPPORTED:        ClassRequest,
	pkcs11.CKR_RANDOM_NO_RNG:                    ClassRequest,
	pkcs11.CKR_DOMAIN_PARAMS_INVALID:            ClassRequest,
	pkcs11.CKR_CURVE_NOT_SUPPORTED:              ClassRequest,
	pkcs11.CKR_BUFFER_TOO_SMALL:                 ClassRequest,
	pkcs11.CKR_SAVED_STATE_INVALID:              ClassRequest,
	pkcs11.CKR_INFORMATION_SENSITIVE:            ClassRequest,
	pkcs11.CKR_STATE_UNSAVEABLE:                 ClassRequest,
	pkcs11.CKR_NO_EVENT:                         ClassRequest,
	pkcs11.CKR_PUBLIC_KEY_INVALID:               ClassRequest,
	pkcs11.CKR_NEW_PIN_MODE:                     ClassRequest,
	pkcs11.CKR_NEXT_OTP:                         ClassRequest,
	pkcs11.CKR_EXCEEDED_MAX_ITERATIONS:          ClassRequest,
	pkcs11.CKR_PIN_TOO_WEAK:                     ClassRequest,
	pkcs11.CKR_USER_ALREADY_LOGGED_IN:           ClassRequest,
	pkcs11.CKR_USER_PIN_NOT_INITIALIZED:         ClassRequest,
	pkcs11.CKR_USER_ANOTHER_ALREADY_LOGGED_IN:   ClassRequest,
	pkcs11.CKR_SESSION_READ_ONLY:                ClassRequest,
	pkcs11.CKR_SESSION_EXISTS:                   ClassRequest,
	pkcs11.CKR_SESSION_READ_ONLY_EXISTS:         ClassRequest,
	pkcs11.CKR_SESSION_READ_WRITE_SO_EXISTS:     ClassRequest,
	pkcs11.CKR_SESSION_PARALLEL_NOT_SUPPORTED:   ClassRequest,

	// The session.
	pkcs11.CKR_SESSION_CLOSED:            ClassSession,
	pkcs11.CKR_SESSION_HANDLE_INVALID:    ClassSession,
	pkcs11.CKR_OPERATION_ACTIVE:          ClassSession,
	pkcs11.CKR_OPERATION_NOT_INITIALIZED: ClassSession,
	pkcs11.CKR_FUNCTION_NOT_PARALLEL:     ClassSession,
	pkcs11.CKR_KEY_CHANGED:               ClassSession,
	pkcs11.CKR_CANCEL:                    ClassSession,
	pkcs11.CKR_NEED_TO_CREATE_THREADS:    ClassSession,
	pkcs11.CKR_MUTEX_NOT_LOCKED:          ClassSession,
	pkcs11.CKR_FUNCTION_CANCELED:         ClassSession,

	// The token.
	pkcs11.CKR_DEVICE_REMOVED:        ClassToken,
	pkcs11.CKR_TOKEN_NOT_PRESENT:     ClassToken,
	pkcs11.CKR_TOKEN_NOT_RECOGNIZED:  ClassToken,
	pkcs11.CKR_SLOT_ID_INVALID:       ClassToken,
	pkcs11.CKR_USER_NOT_LOGGED_IN:    ClassToken,
	pkcs11.CKR_KEY_HANDLE_INVALID:    ClassToken,
	pkcs11.CKR_OBJECT_HANDLE_INVALID: ClassToken,

	// The module.
	pkcs11.CKR_DEVICE_ERROR:                 ClassModule,
	pkcs11.CKR_GENERAL_ERROR:                ClassModule,
	pkcs11.CKR_FUNCTION_FAILED:              ClassModule,
	pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED:     ClassModule,
	pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED: ClassModule,
	pkcs11.CKR_CANT_LOCK:                    ClassModule,
	pkcs11.CKR_MUTEX_BAD:                    ClassModule,
	pkcs11.CKR_FIPS_SELF_TEST_FAILED:        ClassModule,
	pkcs11.CKR_LIBRARY_LOAD_FAILED:          ClassModule,

	// The PIN.
	pkcs11.CKR_PIN_INCORRECT: ClassPIN,
	pkcs11.CKR_PIN_INVALID:   ClassPIN,
	pkcs11.CKR_PIN_LEN_RANGE: ClassPIN,
	pkcs11.CKR_PIN_EXPIRED:   ClassPIN,
	pkcs11.CKR_PIN_LOCKED:    ClassPIN,

	// Busy.
	pkcs11.CKR_HOST_MEMORY:       ClassBusy,
	pkcs11.CKR_DEVICE_MEMORY:     ClassBusy,
	pkcs11.CKR_SESSION_COUNT:     ClassBusy,
	pkcs11.CKR_FUNCTION_REJECTED: ClassBusy,
}

// ClassifyCKR returns the class of a PKCS#11 return value. Unknown and vendor-defined values are
// ClassModule.
func ClassifyCKR(rv uint) Class {
	if c, ok := ckrClass[rv]; ok {
		return c
	}
	return ClassModule
}

// Classify returns the class of an error: ClassOK for nil, the class of the PKCS#11 return value
// it wraps, or ClassRequest for errors that carry none (they come from this package's own
// checks).
func Classify(err error) Class {
	if err == nil {
		return ClassOK
	}
	if rv, ok := ckr(err); ok {
		return ClassifyCKR(rv)
	}
	return ClassRequest
}

// ckr returns the PKCS#11 return value inside err, if there is one.
func ckr(err error) (uint, bool) {
	var e pkcs11.Error
	if errors.As(err, &e) {
		return uint(e), true
	}
	return 0, false
}

// isPINRejection reports whether a PKCS#11 return value means the token refused the PIN.
func isPINRejection(rv uint) bool { return ClassifyCKR(rv) == ClassPIN }

// unavailable wraps err so that it is ErrTokenUnavailable for errors.Is, keeping err's text.
func unavailable(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrTokenUnavailable}, args...)...)
}

// Package rawsign is the measurement baseline of the benchmark harness: raw
// C_SignInit+C_Sign on pooled, logged-in sessions through github.com/miekg/pkcs11, with
// nothing of package hsm's session pool, gate, deadlines or recovery in the way. It shares no
// state with hsm.Token, so hsm can change without touching it. Only the harness
// (bench/cmd/wssignd-bench) and its tests use it; the daemon never links it.
package rawsign

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/miekg/pkcs11"
)

// Mechanisms Bench accepts.
const (
	// RSAPKCS is CKM_RSA_PKCS over a DER DigestInfo of a SHA-256 digest: the operation a
	// crypto.Signer over PKCS#11 performs for an RSA PKCS #1 v1.5 SHA-256 signature (the hash is
	// computed outside the token).
	RSAPKCS = "RSA-PKCS"
	// RSAPKCSSHA256 is CKM_SHA256_RSA_PKCS over 32 bytes of data: the token hashes them.
	RSAPKCSSHA256 = "RSA-PKCS-SHA256"
	// ECDSA is CKM_ECDSA over a 32-byte (SHA-256) digest.
	ECDSA = "ECDSA"
)

// sha256DigestInfoPrefix is the DER prefix of a DigestInfo for SHA-256 (RFC 8017 §9.2 note 1).
var sha256DigestInfoPrefix = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// rawCtxs holds the module handles Bench loaded, by module path, so that repeated runs
// do not load the library again. They are never finalised or unloaded (see Bench).
var (
	rawCtxMu sync.Mutex
	rawCtxs  = map[string]*pkcs11.Ctx{}
)

// rawCtx returns a handle on module, initialised. It calls C_Initialize every time: a Token of
// this process may have finalised the module since the last call (closing its last Token does).
func rawCtx(module string) (*pkcs11.Ctx, error) {
	rawCtxMu.Lock()
	defer rawCtxMu.Unlock()
	p := rawCtxs[module]
	if p == nil {
		if p = pkcs11.New(module); p == nil {
			return nil, fmt.Errorf("rawsign: load pkcs#11 module %s: cannot load the library or it has no C_GetFunctionList", module)
		}
		rawCtxs[module] = p
	}
	if err := p.Initialize(); err != nil {
		var rv pkcs11.Error
		if !errors.As(err, &rv) || rv != pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
			return nil, fmt.Errorf("rawsign: initialise pkcs#11 module %s: %w", module, err)
		}
		// Initialised already, by an earlier call or by a Token of this process: the module's
		// state is per process, so its sessions and login are shared with ours.
	}
	return p, nil
}

// Bench signs with the private key labelled keyLabel on the token labelled tokenLabel
// as fast as the token allows: concurrency workers, each on its own session (opened once; the
// user is logged in once for all of them, with the PIN read from pinFile), each running
// C_SignInit+C_Sign in a loop for about d. It returns the signatures per second over all
// workers and the latency of every signature (in no particular order). mech is
// RSAPKCS, RSAPKCSSHA256 or ECDSA. This is the limit any signing path
// over the same token can reach ("raw C_Sign on a pooled session").
//
// PKCS#11 allows one C_Initialize per module and process, and C_Finalize ends every session of
// every user of the module in the process. So Bench loads the module once per process,
// calls C_Initialize at each run (pkcs11.New(module).Initialize(), tolerating
// CKR_CRYPTOKI_ALREADY_INITIALIZED: a Token of this process or an earlier run got there first)
// and never calls C_Finalize nor unloads the module: it is safe to call while Tokens of the same
// module are open (never Finalize while those, or crypto11 contexts, are open), and Tokens
// opened afterwards find the module initialised, which they tolerate. Closing the last Token of
// the module finalises it, ending any Bench run still going: do not overlap the two. Login state belongs to the process, not the
// session: Bench tolerates CKR_USER_ALREADY_LOGGED_IN and never calls C_Logout (that
// would log out open Tokens of the same token); it closes only its own sessions, which ends
// the login only if no other session of the process is open on the token. SOFTHSM2_CONF must
// name the SoftHSM2 configuration before the module is first initialised in the process.
//
// It is a benchmark helper: it has no deadline, no retry and no recovery.
func Bench(module, tokenLabel, pinFile, keyLabel, mech string, concurrency int, d time.Duration) (opsPerSec float64, lat []time.Duration, err error) {
	if concurrency < 1 {
		return 0, nil, fmt.Errorf("rawsign: concurrency %d, want at least 1", concurrency)
	}
	var m []*pkcs11.Mechanism
	digest := sha256.Sum256([]byte("wssignd raw sign benchmark"))
	var data []byte
	switch mech {
	case RSAPKCS:
		m = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS, nil)}
		data = append(append([]byte{}, sha256DigestInfoPrefix...), digest[:]...)
	case RSAPKCSSHA256:
		m = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_RSA_PKCS, nil)}
		data = digest[:]
	case ECDSA:
		m = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}
		data = digest[:]
	default:
		return 0, nil, fmt.Errorf("rawsign: unknown mechanism %q (want %s, %s or %s)", mech, RSAPKCS, RSAPKCSSHA256, ECDSA)
	}
	pin, err := rawReadPIN(pinFile)
	if err != nil {
		return 0, nil, fmt.Errorf("rawsign: %w", err)
	}
	p, err := rawCtx(module)
	if err != nil {
		return 0, nil, err
	}
	slot, err := rawFindSlot(p, tokenLabel)
	if err != nil {
		return 0, nil, err
	}

	sessions := make([]pkcs11.SessionHandle, 0, concurrency)
	defer func() {
		for _, sh := range sessions {
			_ = p.CloseSession(sh)
		}
	}()
	for range concurrency {
		sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			return 0, nil, fmt.Errorf("rawsign: open session: %w", err)
		}
		sessions = append(sessions, sh)
	}
	if err := p.Login(sessions[0], pkcs11.CKU_USER, pin); err != nil {
		var rv pkcs11.Error
		if !errors.As(err, &rv) || rv != pkcs11.CKR_USER_ALREADY_LOGGED_IN {
			return 0, nil, fmt.Errorf("rawsign: login to token %q: %w", tokenLabel, err)
		}
	}
	key, err := rawFindKey(p, sessions[0], keyLabel)
	if err != nil {
		return 0, nil, err
	}

	lats := make([][]time.Duration, concurrency)
	errs := make([]error, concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w, sh := range sessions {
		wg.Go(func() {
			l := make([]time.Duration, 0, 1024)
			for {
				t0 := time.Now()
				if err := p.SignInit(sh, m, key); err != nil {
					errs[w] = fmt.Errorf("rawsign: C_SignInit: %w", err)
					break
				}
				if _, err := p.Sign(sh, data); err != nil {
					errs[w] = fmt.Errorf("rawsign: C_Sign: %w", err)
					break
				}
				t1 := time.Now()
				l = append(l, t1.Sub(t0))
				if !t1.Before(deadline) {
					break
				}
			}
			lats[w] = l
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, nil, err
	}
	for _, l := range lats {
		lat = append(lat, l...)
	}
	return float64(len(lat)) / elapsed.Seconds(), lat, nil
}

// rawFindSlot returns the slot of the one present token labelled label.
func rawFindSlot(p *pkcs11.Ctx, label string) (uint, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("rawsign: list slots: %w", err)
	}
	var found []uint
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err != nil {
			continue // a token removed meanwhile
		}
		if strings.TrimRight(ti.Label, " \x00") == label {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return 0, fmt.Errorf("rawsign: token %q not found", label)
	case 1:
		return found[0], nil
	}
	return 0, fmt.Errorf("rawsign: %d tokens are labelled %q", len(found), label)
}

// rawFindKey returns the handle of the one private key labelled label.
func rawFindKey(p *pkcs11.Ctx, sh pkcs11.SessionHandle, label string) (pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	if err := p.FindObjectsInit(sh, tmpl); err != nil {
		return 0, fmt.Errorf("rawsign: find key %q: %w", label, err)
	}
	objs, _, err := p.FindObjects(sh, 2)
	if ferr := p.FindObjectsFinal(sh); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return 0, fmt.Errorf("rawsign: find key %q: %w", label, err)
	}
	switch len(objs) {
	case 0:
		return 0, fmt.Errorf("rawsign: private key %q not found", label)
	case 1:
		return objs[0], nil
	}
	return 0, fmt.Errorf("rawsign: several private keys are labelled %q", label)
}

// rawReadPIN reads a PIN file as Config.PINFile describes (one trailing "\n" or "\r\n"
// removed, at most 4 KiB, not empty). It is local so that this file does not depend on how the
// rest of the package reads PIN files. The PIN never appears in an error.
func rawReadPIN(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("pin file: %w", err)
	}
	defer f.Close()
	b := make([]byte, 4097)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("pin file %s: %w", path, err)
	}
	if n > 4096 {
		return "", fmt.Errorf("pin file %s is larger than 4 KiB", path)
	}
	pin := string(b[:n])
	if strings.HasSuffix(pin, "\r\n") {
		pin = pin[:len(pin)-2]
	} else {
		pin = strings.TrimSuffix(pin, "\n")
	}
	if pin == "" {
		return "", fmt.Errorf("pin file %s is empty", path)
	}
	return pin, nil
}

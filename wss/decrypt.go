package wss

//lint:file-ignore SA1019 RSA PKCS #1 v1.5 key transport (XML Encryption rsa-1_5) is a deliberate, opt-in legacy algorithm here; failures are decoded in constant time with implicit rejection.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"sort"
	"strings"
)

// DecryptOptions configures Decrypt.
type DecryptOptions struct {
	// SOAPVersion "1.1" or "1.2" refuses envelopes of the other version
	// (invalid-soap); "" accepts both. The api sets it from the request's
	// media type.
	SOAPVersion string
	// Certificate is the certificate of the decrypting key. It selects the
	// EncryptedKey addressed to that key. Required.
	Certificate *x509.Certificate
	// DataAlgorithms are the block encryption algorithm URIs accepted;
	// empty means AlgAES128GCM and AlgAES256GCM. A message announcing any
	// other algorithm fails.
	DataAlgorithms []string
	// KeyTransports are the key transport algorithm URIs accepted; empty
	// means AlgRSAOAEP and AlgRSAOAEPMGF1P. AlgRSA15 is accepted only when
	// listed (legacy: see AlgRSA15).
	KeyTransports []string
	// RequireSignedBody, when not nil, makes Decrypt require a valid
	// signature over the Body, checked by Verify with these options
	// (RequiredParts replaced by the Body, Limits by Decrypt's): either over
	// the Body holding the EncryptedData (encrypt-then-sign), checked before
	// anything is decrypted, or else over the decrypted Body
	// (sign-then-encrypt), checked after decryption, where a failure is a
	// CodeDecryptionFailed like any other so that it tells nothing about
	// the plaintext.
	RequireSignedBody *VerifyOptions
	// Rand is the source of the substitute key; nil means crypto/rand.
	Rand io.Reader
	// Limits bound the input envelope and the decrypted one.
	Limits Limits
	// Actor selects the Security header by its SOAP 1.1 actor / 1.2 role;
	// "" is the one without (or for the ultimate receiver).
	Actor string
	// KeyNames are names of the decrypting key: an EncryptedKey whose
	// KeyInfo holds a ds:KeyName equal to one of them is addressed to it.
	// Empty: a ds:KeyName names nothing.
	KeyNames []string
}

// DecryptResult describes what Decrypt did, for audit.
type DecryptResult struct {
	Envelope       []byte
	EncryptedKeyID string // "" when the EncryptedKey had no Id
	KeyTransport   string
	DataAlgorithm  string
	// References are the Ids of the EncryptedData elements replaced, in
	// ReferenceList order; BodyContent reports whether one of them was the
	// whole content of the SOAP Body.
	References  []string
	BodyContent bool
	// WrappedKeySHA256 is the SHA-256 of the EncryptedKey's CipherValue:
	// what the private key decrypted.
	WrappedKeySHA256 []byte
	// SignedBody, with RequireSignedBody, says where the Body's signature
	// was found: SignedBeforeDecryption or SignedAfterDecryption.
	SignedBody string
	// Verify is the verification result that satisfied RequireSignedBody.
	Verify *VerifyResult
}

// Values of DecryptResult.SignedBody.
const (
	SignedBeforeDecryption = "encrypt-then-sign"
	SignedAfterDecryption  = "sign-then-encrypt"
)

// CodeUnsignedBody: RequireSignedBody is set and the Body holding the
// EncryptedData carries no valid signature while the Body is not
// encrypted either (nothing decrypted could be signed).
const CodeUnsignedBody Code = "unsigned-body"

// errDecryption is the one message of every CodeDecryptionFailed error.
const errDecryption = "the envelope could not be decrypted"

func decryptionFailed(cause error) *Error {
	return &Error{Code: CodeDecryptionFailed, Msg: errDecryption, Err: cause}
}

// Decrypt decrypts the SOAP envelope raw with dec, the private key of
// opts.Certificate. It finds the EncryptedKey of the ultimate receiver's
// Security header addressed to that certificate, unwraps the content key
// with dec.Decrypt (OAEP through *rsa.OAEPOptions with Hash and MGFHash;
// PKCS #1 v1.5 through *rsa.PKCS1v15DecryptOptions), decrypts every
// EncryptedData of its ReferenceList, puts each plaintext in place of its
// EncryptedData (or of its wsse11:EncryptedHeader) and removes the
// EncryptedKey. The result is checked again with the envelope limits.
//
// Once an EncryptedKey for the key is found, every failure — an algorithm
// outside the allow-list or unknown, malformed key or cipher data, bad RSA
// padding, a wrong key, a GCM tag mismatch, bad CBC padding, a plaintext
// that does not parse — returns an *Error with CodeDecryptionFailed and the
// same message. A failed key unwrap is not acted on: a random key takes its
// place and the data decryption fails exactly like a tag mismatch.
//
// A ctx that ends during the work makes Decrypt return an error wrapping
// ctx.Err(): CodeTimeout before the key is used (it is not used after
// that), CodeDecryptionFailed once it was (so that the key's use is
// audited like any other).
func Decrypt(ctx context.Context, raw []byte, dec crypto.Decrypter, opts DecryptOptions) (*DecryptResult, error) {
	if dec == nil || opts.Certificate == nil {
		return nil, errorf(CodeInternal, "decrypt without key or certificate")
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	tree, version, err := parseEnvelopeTree(ctx, raw, opts.Limits)
	if err != nil {
		return nil, err
	}
	if err := checkSOAPVersion(opts.SOAPVersion, version); err != nil {
		return nil, err
	}

	ek, err := findEncryptedKey(tree.root(), version, opts)
	if err != nil {
		return nil, err
	}
	ekID, _ := ek.attrAnyNS("Id")
	res := &DecryptResult{EncryptedKeyID: ekID}
	var vopts VerifyOptions
	if opts.RequireSignedBody != nil {
		vopts = *opts.RequireSignedBody
		vopts.RequiredParts = []Part{PartBody()}
		vopts.Limits = opts.Limits
		// Encrypt-then-sign: the signature is checked before any
		// decryption, on public data only.
		if v, err := Verify(ctx, raw, vopts); err == nil && v.Valid {
			res.SignedBody, res.Verify = SignedBeforeDecryption, v
		}
	}

	kt, oaep, err := keyTransport(ek, opts.KeyTransports)
	if err != nil {
		return nil, decryptionFailed(err)
	}
	res.KeyTransport = kt
	wrapped, err := cipherValue(ek)
	if err != nil {
		return nil, decryptionFailed(err)
	}
	sum := sha256.Sum256(wrapped)
	res.WrappedKeySHA256 = sum[:]

	// The EncryptedData elements of the EncryptedKey's ReferenceList and
	// of the standalone ReferenceLists that designate it.
	drefs, lists, err := dataReferences(ek)
	if err != nil {
		return nil, decryptionFailed(err)
	}
	type part struct {
		ed      elemRef
		alg     dataAlg
		ct      []byte
		replace span // the bytes the plaintext replaces
	}
	var parts []part
	seen := map[elemRef]bool{}
	keySize := 0
	for _, dr := range drefs {
		ed, uri := dr.ed, dr.uri
		if seen[ed] {
			return nil, decryptionFailed(fmt.Errorf("DataReference %q names an EncryptedData twice", uri))
		}
		seen[ed] = true
		if err := checkPlacement(ed); err != nil {
			return nil, decryptionFailed(err)
		}
		em := ed.child(NSXEnc, "EncryptionMethod")
		if !em.ok() {
			return nil, decryptionFailed(errors.New("EncryptedData without EncryptionMethod"))
		}
		emAlg, _ := em.attrAnyNS("Algorithm")
		alg, ok := dataAlgs[emAlg]
		allowed := opts.DataAlgorithms
		if len(allowed) == 0 {
			allowed = []string{AlgAES128GCM, AlgAES256GCM}
		}
		if !ok || !slices.Contains(allowed, alg.uri) || em.hasChildren() {
			return nil, decryptionFailed(fmt.Errorf("data encryption algorithm %q not allowed", emAlg))
		}
		if keySize != 0 && keySize != alg.keySize {
			return nil, decryptionFailed(errors.New("EncryptedData of one key with different key sizes"))
		}
		keySize = alg.keySize
		ct, err := cipherValue(ed)
		if err != nil {
			return nil, decryptionFailed(err)
		}
		p := part{ed: ed, alg: alg, ct: ct}
		switch typ, _ := ed.attrAnyNS("Type"); typ {
		case TypeContent:
			p.replace = spanOf(ed)
			if isBody(ed.parent(), version) {
				res.BodyContent = true
			}
		case TypeElement:
			p.replace = spanOf(ed)
			if parent := ed.parent(); parent.ok() && parent.is(NSWSSE11, "EncryptedHeader") {
				if len(parent.children()) != 1 {
					return nil, decryptionFailed(errors.New("EncryptedHeader with more than the EncryptedData"))
				}
				p.replace = spanOf(parent)
			}
		default:
			return nil, decryptionFailed(errors.New("EncryptedData Type is neither Element nor Content"))
		}
		parts = append(parts, p)
		res.References = append(res.References, uri[1:])
	}
	if len(parts) == 0 {
		return nil, decryptionFailed(errors.New("empty ReferenceList"))
	}
	res.DataAlgorithm = parts[0].alg.uri
	if opts.RequireSignedBody != nil && res.SignedBody == "" && !res.BodyContent {
		// Decided from the structure alone, before any decryption.
		return nil, errorf(CodeUnsignedBody, "the Body is neither signed nor encrypted content")
	}

	// Unwrap the key. Failure is not acted on: a random key stands in, so a
	// padding failure and a tag failure take the same path.
	if err := ctxError(ctx); err != nil {
		return nil, err
	}
	key := make([]byte, keySize)
	if _, err := io.ReadFull(rnd, key); err != nil {
		return nil, &Error{Code: CodeInternal, Msg: "random source", Err: err}
	}
	var got []byte
	var uerr error
	if kt == AlgRSA15 {
		if priv, ok := dec.(*rsa.PrivateKey); ok {
			// The standard library's implicit rejection: a random key of
			// the right length, without an error, on bad padding.
			got, uerr = priv.Decrypt(rnd, wrapped, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: keySize})
		} else {
			got, uerr = dec.Decrypt(rnd, wrapped, &rsa.PKCS1v15DecryptOptions{})
		}
	} else {
		got, uerr = dec.Decrypt(rnd, wrapped, oaep)
	}
	valid := 0
	if uerr == nil {
		valid = 1
	}
	if len(got) == keySize {
		subtle.ConstantTimeCopy(valid, key, got)
	} else if uerr == nil {
		uerr = errors.New("unwrapped key of the wrong length")
	}

	plain := make([][]byte, len(parts))
	var derr error
	for i, p := range parts {
		pt, err := xencOpen(p.alg, key, p.ct)
		if err != nil && derr == nil {
			derr = err
		}
		plain[i] = pt
	}
	// A failed unwrap fails here, after the same work as a tag failure,
	// even if the substitute key happened to "decrypt" (CBC padding can).
	if uerr != nil {
		derr = fmt.Errorf("key unwrap: %w", uerr)
	}
	if derr != nil {
		return nil, decryptionFailed(derr)
	}

	// Splice: plaintexts in place, the EncryptedKey out.
	type edit2 struct {
		s  span
		pt []byte
	}
	edits := make([]edit2, 0, len(parts)+1)
	for i, p := range parts {
		edits = append(edits, edit2{p.replace, plain[i]})
	}
	edits = append(edits, edit2{spanOf(ek), nil})
	for _, l := range lists {
		edits = append(edits, edit2{spanOf(l), nil})
	}
	sort.Slice(edits, func(i, j int) bool { return edits[i].s.start < edits[j].s.start })
	size, pos := len(raw), 0
	for _, e := range edits {
		if e.s.start < pos {
			return nil, decryptionFailed(errors.New("overlapping encrypted parts"))
		}
		size += len(e.pt) - (e.s.end - e.s.start)
		pos = e.s.end
	}
	out := make([]byte, 0, size)
	pos = 0
	for _, e := range edits {
		out = append(out, raw[pos:e.s.start]...)
		out = append(out, e.pt...)
		pos = e.s.end
	}
	out = append(out, raw[pos:]...)
	res.Envelope = out
	if _, err := scanEnvelope(ctx, res.Envelope, opts.Limits); err != nil {
		return nil, decryptionFailed(fmt.Errorf("decrypted envelope: %w", err))
	}
	if opts.RequireSignedBody != nil && res.SignedBody == "" {
		// Sign-then-encrypt: a failure here must look like any other
		// decryption failure.
		v, err := Verify(ctx, res.Envelope, vopts)
		if err != nil {
			return nil, decryptionFailed(fmt.Errorf("verification after decryption: %w", err))
		}
		if !v.Valid {
			return nil, decryptionFailed(fmt.Errorf("no valid signature over the decrypted Body: %s: %s", v.Code, v.Detail))
		}
		res.SignedBody, res.Verify = SignedAfterDecryption, v
	}
	return res, nil
}

// span is the byte range of one element, start tag to end tag.
type span struct{ start, end int }

// spanOf returns the span of el.
func spanOf(el elemRef) span {
	s, e := el.span()
	return span{start: s, end: e}
}

// isBody reports whether el is the Body child of the Envelope.
func isBody(el elemRef, version soapVersion) bool {
	return el.ok() && el.is(version.ns, "Body") && el.parent().ok() && !el.parent().parent().ok()
}

// checkPlacement refuses EncryptedData inside the Security header or inside
// another XML Encryption element.
func checkPlacement(ed elemRef) error {
	for p := ed.parent(); p.ok(); p = p.parent() {
		switch {
		case p.space() == NSXEnc:
			return errors.New("EncryptedData nested in an XML Encryption element")
		case p.is(NSWSSE, "Security"):
			return errors.New("EncryptedData inside the Security header")
		}
	}
	return nil
}

// cipherValue decodes CipherData/CipherValue (CipherReference is refused).
func cipherValue(el elemRef) ([]byte, error) {
	cd := el.child(NSXEnc, "CipherData")
	if !cd.ok() {
		return nil, errors.New("no CipherData")
	}
	cv := cd.child(NSXEnc, "CipherValue")
	if !cv.ok() || len(cd.children()) != 1 || cv.hasChildren() {
		return nil, errors.New("CipherData without exactly one CipherValue")
	}
	n := cv.n()
	content := cv.t.raw[n.tagEnd:n.endTag]
	if bytes.ContainsAny(content, "&<") {
		// References, CDATA sections, comments or PIs: read the text.
		b, err := base64.StdEncoding.DecodeString(strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
				return -1
			}
			return r
		}, cv.leadText()))
		if err != nil {
			return nil, errors.New("CipherValue is not base64")
		}
		return b, nil
	}
	b, err := decodeBase64Raw(content)
	if err != nil {
		return nil, errors.New("CipherValue is not base64")
	}
	return b, nil
}

// decodeBase64Raw decodes character data that is base64 and white space
// (space, TAB, CR, LF) without copying it: the white space is dropped as
// the text is decoded in pieces into a buffer allocated once. The result
// and the errors are those of base64.StdEncoding.DecodeString on the text
// without its white space.
func decodeBase64Raw(text []byte) ([]byte, error) {
	n := len(text)
	for _, c := range text {
		if isSpace(c) {
			n--
		}
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(n))
	var piece [4096]byte
	k, w, left := 0, 0, n
	for _, c := range text {
		if isSpace(c) {
			continue
		}
		piece[k] = c
		k++
		left--
		if k == len(piece) && left > 0 {
			// Padding cannot be followed by more data.
			if bytes.IndexByte(piece[:], '=') >= 0 {
				return nil, base64.CorruptInputError(n - left)
			}
			m, err := base64.StdEncoding.Decode(out[w:], piece[:])
			if err != nil {
				return nil, err
			}
			w += m
			k = 0
		}
	}
	m, err := base64.StdEncoding.Decode(out[w:], piece[:k])
	if err != nil {
		return nil, err
	}
	return out[:w+m], nil
}

// keyTransport reads and checks the EncryptedKey's EncryptionMethod.
func keyTransport(ek elemRef, allowed []string) (string, *rsa.OAEPOptions, error) {
	em := ek.child(NSXEnc, "EncryptionMethod")
	if !em.ok() {
		return "", nil, errors.New("EncryptedKey without EncryptionMethod")
	}
	kt, _ := em.attrAnyNS("Algorithm")
	if len(allowed) == 0 {
		allowed = []string{AlgRSAOAEP, AlgRSAOAEPMGF1P}
	}
	if !IsKeyTransport(kt) || !slices.Contains(allowed, kt) {
		return "", nil, fmt.Errorf("key transport %q not allowed", kt)
	}
	if kt == AlgRSA15 {
		if em.hasChildren() {
			return "", nil, errors.New("parameters for rsa-1_5")
		}
		return kt, nil, nil
	}
	o := &rsa.OAEPOptions{Hash: crypto.SHA1, MGFHash: crypto.SHA1}
	for _, c := range em.children() {
		alg, _ := c.attrAnyNS("Algorithm")
		switch {
		case c.is(NSDSig, "DigestMethod"):
			h, ok := oaepDigests[alg]
			if !ok {
				return "", nil, fmt.Errorf("OAEP digest %q not supported", alg)
			}
			o.Hash = h
		case c.is(NSXEnc11, "MGF") && kt == AlgRSAOAEP:
			h, ok := mgfHashes[alg]
			if !ok {
				return "", nil, fmt.Errorf("MGF %q not supported", alg)
			}
			o.MGFHash = h
		case c.is(NSXEnc, "OAEPparams"):
			l, err := base64.StdEncoding.DecodeString(strings.TrimSpace(c.leadText()))
			if err != nil {
				return "", nil, errors.New("OAEPparams is not base64")
			}
			o.Label = l
		default:
			return "", nil, fmt.Errorf("unexpected %s in EncryptionMethod", c.qname())
		}
	}
	return kt, o, nil
}

// xencOpen decrypts one CipherValue.
func xencOpen(alg dataAlg, key, ct []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if alg.gcm {
		g, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		if len(ct) < g.NonceSize()+g.Overhead() {
			return nil, errors.New("GCM cipher text too short")
		}
		// In place: the cipher text is not used again.
		body := ct[g.NonceSize():]
		return g.Open(body[:0], ct[:g.NonceSize()], body, nil)
	}
	bs := block.BlockSize()
	if len(ct) < 2*bs || len(ct)%bs != 0 {
		return nil, errors.New("CBC cipher text of a wrong length")
	}
	// In place: the cipher text is not used again.
	pt := ct[bs:]
	cipher.NewCBCDecrypter(block, ct[:bs]).CryptBlocks(pt, pt)
	n := int(pt[len(pt)-1])
	if n < 1 || n > bs {
		return nil, errors.New("bad CBC padding")
	}
	return pt[:len(pt)-n], nil
}

// findEncryptedKey returns the first EncryptedKey of the Security header
// addressed to opts.Actor whose KeyInfo names opts.Certificate or one of
// opts.KeyNames (or that has no KeyInfo).
func findEncryptedKey(root elemRef, version soapVersion, opts DecryptOptions) (elemRef, error) {
	cert := opts.Certificate
	header := root.child(version.ns, "Header")
	var sec elemRef
	if header.ok() {
		for _, c := range header.children() {
			if !c.is(NSWSSE, "Security") {
				continue
			}
			actor, _ := c.attr(version.ns, actorAttr(version))
			if actor == roleUltimateReceiver {
				actor = ""
			}
			if actor != opts.Actor {
				continue
			}
			if sec.ok() {
				return elemRef{}, errorf(CodeInvalidSOAP, "two Security headers for the same actor")
			}
			sec = c
		}
	}
	if !sec.ok() {
		return elemRef{}, errorf(CodeNoEncryptedKey, "the envelope has no Security header for this receiver")
	}
	var bsts map[string][]byte
	for _, c := range sec.children() {
		if c.is(NSWSSE, "BinarySecurityToken") {
			if bsts == nil {
				bsts = map[string][]byte{}
			}
			if der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(c.leadText())); err == nil {
				// An Id attribute in any namespace names the token.
				for _, a := range c.attrList() {
					if a.local() == "Id" {
						bsts[a.value()] = der
					}
				}
			}
		}
	}
	for _, c := range sec.children() {
		if !c.is(NSXEnc, "EncryptedKey") {
			continue
		}
		ki := c.child(NSDSig, "KeyInfo")
		if !ki.ok() || keyInfoNames(ki, cert, bsts) || keyNameIn(ki, opts.KeyNames) {
			return c, nil
		}
	}
	return elemRef{}, errorf(CodeNoEncryptedKey, "the envelope has no EncryptedKey for this key")
}

// keyInfoNames reports whether a KeyInfo names cert: through a
// SecurityTokenReference (X509IssuerSerial, SKI or ThumbprintSHA1
// KeyIdentifier, X509v3 KeyIdentifier, Reference to a BinarySecurityToken)
// or directly (X509Data with X509IssuerSerial, X509SKI or X509Certificate).
func keyInfoNames(ki elemRef, cert *x509.Certificate, bsts map[string][]byte) bool {
	for _, c := range ki.children() {
		switch {
		case c.is(NSWSSE, "SecurityTokenReference"):
			for _, r := range c.children() {
				switch {
				case r.is(NSDSig, "X509Data"):
					if x509DataNames(r, cert) {
						return true
					}
				case r.is(NSWSSE, "KeyIdentifier"):
					v, err := base64.StdEncoding.DecodeString(strings.TrimSpace(r.leadText()))
					if err != nil {
						continue
					}
					switch vt, _ := r.attrAnyNS("ValueType"); vt {
					case xencVTSKI:
						if bytes.Equal(v, xencSKI(cert)) {
							return true
						}
					case xencVTThumbprint:
						if bytes.Equal(v, xencThumbprint(cert)) {
							return true
						}
					case ValueTypeX509v3:
						if bytes.Equal(v, cert.Raw) {
							return true
						}
					}
				case r.is(NSWSSE, "Reference"):
					uri, _ := r.attrAnyNS("URI")
					if strings.HasPrefix(uri, "#") && bytes.Equal(bsts[uri[1:]], cert.Raw) {
						return true
					}
				}
			}
		case c.is(NSDSig, "X509Data"):
			if x509DataNames(c, cert) {
				return true
			}
		}
	}
	return false
}

func x509DataNames(xd elemRef, cert *x509.Certificate) bool {
	for _, c := range xd.children() {
		if c.space() != NSDSig {
			continue
		}
		switch c.local() {
		case "X509IssuerSerial":
			name := c.child(NSDSig, "X509IssuerName")
			serial := c.child(NSDSig, "X509SerialNumber")
			if !name.ok() || !serial.ok() {
				continue
			}
			n, ok := new(big.Int).SetString(strings.TrimSpace(serial.leadText()), 10)
			if ok && n.Cmp(cert.SerialNumber) == 0 && dnEqual(name.leadText(), cert) {
				return true
			}
		case "X509SKI":
			if v, err := base64.StdEncoding.DecodeString(strings.TrimSpace(c.leadText())); err == nil && bytes.Equal(v, xencSKI(cert)) {
				return true
			}
		case "X509Certificate":
			if v, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(c.leadText()), "")); err == nil && bytes.Equal(v, cert.Raw) {
				return true
			}
		}
	}
	return false
}

package wss

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
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"sort"
	"strings"

	"github.com/beevik/etree"
)

// DecryptOptions configures Decrypt.
type DecryptOptions struct {
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
	env, err := scanEnvelope(ctx, raw, opts.Limits)
	if err != nil {
		return nil, err
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return nil, errorf(CodeMalformedXML, "not well-formed")
	}
	spans := xencSpans(raw)
	index := map[*etree.Element]int{}
	n := 0
	var walk func(el *etree.Element)
	walk = func(el *etree.Element) {
		index[el] = n
		n++
		for _, c := range el.ChildElements() {
			walk(c)
		}
	}
	walk(doc.Root())
	if n != len(spans) {
		return nil, errorf(CodeInternal, "element count mismatch between parsers")
	}

	ek, err := findEncryptedKey(doc.Root(), env, opts.Certificate)
	if err != nil {
		return nil, err
	}
	res := &DecryptResult{EncryptedKeyID: ek.SelectAttrValue("Id", "")}
	var vopts VerifyOptions
	if opts.RequireSignedBody != nil {
		vopts = *opts.RequireSignedBody
		vopts.RequiredParts = []Part{PartBody}
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

	// The EncryptedData elements of the ReferenceList.
	rl := xencChild(ek, NSXEnc, "ReferenceList")
	if rl == nil {
		return nil, decryptionFailed(errors.New("the EncryptedKey has no ReferenceList"))
	}
	byID := map[string]*etree.Element{}
	xencIndexIDs(doc.Root(), byID)
	type part struct {
		ed      *etree.Element
		alg     dataAlg
		ct      []byte
		replace span // the bytes the plaintext replaces
	}
	var parts []part
	seen := map[*etree.Element]bool{}
	keySize := 0
	for _, c := range rl.ChildElements() {
		if c.NamespaceURI() != NSXEnc || c.Tag != "DataReference" {
			return nil, decryptionFailed(fmt.Errorf("unexpected %s in ReferenceList", c.FullTag()))
		}
		uri := c.SelectAttrValue("URI", "")
		if !strings.HasPrefix(uri, "#") || len(uri) < 2 {
			return nil, decryptionFailed(fmt.Errorf("DataReference %q is not a same-document reference", uri))
		}
		ed := byID[uri[1:]]
		if ed == nil || ed.NamespaceURI() != NSXEnc || ed.Tag != "EncryptedData" || seen[ed] {
			return nil, decryptionFailed(fmt.Errorf("DataReference %q does not name an EncryptedData", uri))
		}
		seen[ed] = true
		if err := checkPlacement(ed, env); err != nil {
			return nil, decryptionFailed(err)
		}
		em := xencChild(ed, NSXEnc, "EncryptionMethod")
		if em == nil {
			return nil, decryptionFailed(errors.New("EncryptedData without EncryptionMethod"))
		}
		alg, ok := dataAlgs[em.SelectAttrValue("Algorithm", "")]
		allowed := opts.DataAlgorithms
		if len(allowed) == 0 {
			allowed = []string{AlgAES128GCM, AlgAES256GCM}
		}
		if !ok || !slices.Contains(allowed, alg.uri) || len(em.ChildElements()) > 0 {
			return nil, decryptionFailed(fmt.Errorf("data encryption algorithm %q not allowed", em.SelectAttrValue("Algorithm", "")))
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
		switch ed.SelectAttrValue("Type", "") {
		case TypeContent:
			p.replace = spans[index[ed]]
			if isBody(ed.Parent(), env) {
				res.BodyContent = true
			}
		case TypeElement:
			p.replace = spans[index[ed]]
			if parent := ed.Parent(); parent != nil && parent.NamespaceURI() == NSWSSE11 && parent.Tag == "EncryptedHeader" {
				if len(parent.ChildElements()) != 1 {
					return nil, decryptionFailed(errors.New("EncryptedHeader with more than the EncryptedData"))
				}
				p.replace = spans[index[parent]]
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
	edits = append(edits, edit2{spans[index[ek]], nil})
	sort.Slice(edits, func(i, j int) bool { return edits[i].s.start < edits[j].s.start })
	var out bytes.Buffer
	pos := 0
	for _, e := range edits {
		if e.s.start < pos {
			return nil, decryptionFailed(errors.New("overlapping encrypted parts"))
		}
		out.Write(raw[pos:e.s.start])
		out.Write(e.pt)
		pos = e.s.end
	}
	out.Write(raw[pos:])
	res.Envelope = out.Bytes()
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

// xencSpans returns the span of every element of raw (already checked by
// scanEnvelope), in document order.
func xencSpans(raw []byte) []span {
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	var out []span
	var stack []int
	for {
		off := int(d.InputOffset())
		tok, err := d.RawToken()
		if err != nil {
			return out
		}
		switch tok.(type) {
		case xml.StartElement:
			stack = append(stack, len(out))
			out = append(out, span{start: off})
		case xml.EndElement:
			if len(stack) == 0 {
				return out
			}
			out[stack[len(stack)-1]].end = int(d.InputOffset())
			stack = stack[:len(stack)-1]
		}
	}
}

func isBody(el *etree.Element, env *envelope) bool {
	return el != nil && el.Tag == "Body" && el.NamespaceURI() == env.version.ns && el.Parent() != nil && el.Parent().Parent() != nil && el.Parent().Parent().Parent() == nil
}

// checkPlacement refuses EncryptedData inside the Security header or inside
// another XML Encryption element.
func checkPlacement(ed *etree.Element, env *envelope) error {
	for p := ed.Parent(); p != nil; p = p.Parent() {
		switch {
		case p.NamespaceURI() == NSXEnc:
			return errors.New("EncryptedData nested in an XML Encryption element")
		case p.NamespaceURI() == NSWSSE && p.Tag == "Security":
			return errors.New("EncryptedData inside the Security header")
		}
	}
	return nil
}

func xencChild(el *etree.Element, space, local string) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == local && c.NamespaceURI() == space {
			return c
		}
	}
	return nil
}

func xencIndexIDs(el *etree.Element, m map[string]*etree.Element) {
	for _, a := range el.Attr {
		if (a.Space == "" && (a.Key == "Id" || a.Key == "ID")) || (a.Key == "Id" && a.NamespaceURI() == NSWSU) || (a.Space == "xml" && a.Key == "id") {
			m[a.Value] = el
		}
	}
	for _, c := range el.ChildElements() {
		xencIndexIDs(c, m)
	}
}

// cipherValue decodes CipherData/CipherValue (CipherReference is refused).
func cipherValue(el *etree.Element) ([]byte, error) {
	cd := xencChild(el, NSXEnc, "CipherData")
	if cd == nil {
		return nil, errors.New("no CipherData")
	}
	cv := xencChild(cd, NSXEnc, "CipherValue")
	if cv == nil || len(cd.ChildElements()) != 1 || len(cv.ChildElements()) != 0 {
		return nil, errors.New("CipherData without exactly one CipherValue")
	}
	b, err := base64.StdEncoding.DecodeString(strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, cv.Text()))
	if err != nil {
		return nil, errors.New("CipherValue is not base64")
	}
	return b, nil
}

// keyTransport reads and checks the EncryptedKey's EncryptionMethod.
func keyTransport(ek *etree.Element, allowed []string) (string, *rsa.OAEPOptions, error) {
	em := xencChild(ek, NSXEnc, "EncryptionMethod")
	if em == nil {
		return "", nil, errors.New("EncryptedKey without EncryptionMethod")
	}
	kt := em.SelectAttrValue("Algorithm", "")
	if len(allowed) == 0 {
		allowed = []string{AlgRSAOAEP, AlgRSAOAEPMGF1P}
	}
	if !IsKeyTransport(kt) || !slices.Contains(allowed, kt) {
		return "", nil, fmt.Errorf("key transport %q not allowed", kt)
	}
	if kt == AlgRSA15 {
		if len(em.ChildElements()) > 0 {
			return "", nil, errors.New("parameters for rsa-1_5")
		}
		return kt, nil, nil
	}
	o := &rsa.OAEPOptions{Hash: crypto.SHA1, MGFHash: crypto.SHA1}
	for _, c := range em.ChildElements() {
		switch {
		case c.Tag == "DigestMethod" && c.NamespaceURI() == NSDSig:
			h, ok := oaepDigests[c.SelectAttrValue("Algorithm", "")]
			if !ok {
				return "", nil, fmt.Errorf("OAEP digest %q not supported", c.SelectAttrValue("Algorithm", ""))
			}
			o.Hash = h
		case c.Tag == "MGF" && c.NamespaceURI() == NSXEnc11 && kt == AlgRSAOAEP:
			h, ok := mgfHashes[c.SelectAttrValue("Algorithm", "")]
			if !ok {
				return "", nil, fmt.Errorf("MGF %q not supported", c.SelectAttrValue("Algorithm", ""))
			}
			o.MGFHash = h
		case c.Tag == "OAEPparams" && c.NamespaceURI() == NSXEnc:
			l, err := base64.StdEncoding.DecodeString(strings.TrimSpace(c.Text()))
			if err != nil {
				return "", nil, errors.New("OAEPparams is not base64")
			}
			o.Label = l
		default:
			return "", nil, fmt.Errorf("unexpected %s in EncryptionMethod", c.FullTag())
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
		return g.Open(nil, ct[:g.NonceSize()], ct[g.NonceSize():], nil)
	}
	bs := block.BlockSize()
	if len(ct) < 2*bs || len(ct)%bs != 0 {
		return nil, errors.New("CBC cipher text of a wrong length")
	}
	pt := make([]byte, len(ct)-bs)
	cipher.NewCBCDecrypter(block, ct[:bs]).CryptBlocks(pt, ct[bs:])
	n := int(pt[len(pt)-1])
	if n < 1 || n > bs {
		return nil, errors.New("bad CBC padding")
	}
	return pt[:len(pt)-n], nil
}

// findEncryptedKey returns the first EncryptedKey of the ultimate
// receiver's Security header whose KeyInfo names cert (or that has no
// KeyInfo).
func findEncryptedKey(root *etree.Element, env *envelope, cert *x509.Certificate) (*etree.Element, error) {
	var header *etree.Element
	for _, c := range root.ChildElements() {
		if c.Tag == "Header" && c.NamespaceURI() == env.version.ns {
			header = c
			break
		}
	}
	var sec *etree.Element
	if header != nil {
		for _, c := range header.ChildElements() {
			if c.Tag != "Security" || c.NamespaceURI() != NSWSSE {
				continue
			}
			actor := false
			for _, a := range c.Attr {
				if a.Key == actorAttr(env.version) && a.Space != "" && a.NamespaceURI() == env.version.ns {
					actor = true
				}
			}
			if actor {
				continue
			}
			if sec != nil {
				return nil, errorf(CodeInvalidSOAP, "two Security headers for the same actor")
			}
			sec = c
		}
	}
	if sec == nil {
		return nil, errorf(CodeNoEncryptedKey, "the envelope has no Security header for this receiver")
	}
	var bsts map[string][]byte
	for _, c := range sec.ChildElements() {
		if c.Tag == "BinarySecurityToken" && c.NamespaceURI() == NSWSSE {
			if bsts == nil {
				bsts = map[string][]byte{}
			}
			if der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(c.Text())); err == nil {
				for _, a := range c.Attr {
					if a.Key == "Id" {
						bsts[a.Value] = der
					}
				}
			}
		}
	}
	for _, c := range sec.ChildElements() {
		if c.Tag != "EncryptedKey" || c.NamespaceURI() != NSXEnc {
			continue
		}
		ki := xencChild(c, NSDSig, "KeyInfo")
		if ki == nil || keyInfoNames(ki, cert, bsts) {
			return c, nil
		}
	}
	return nil, errorf(CodeNoEncryptedKey, "the envelope has no EncryptedKey for this key")
}

// keyInfoNames reports whether a KeyInfo names cert: through a
// SecurityTokenReference (X509IssuerSerial, SKI or ThumbprintSHA1
// KeyIdentifier, X509v3 KeyIdentifier, Reference to a BinarySecurityToken)
// or directly (X509Data with X509IssuerSerial, X509SKI or X509Certificate).
func keyInfoNames(ki *etree.Element, cert *x509.Certificate, bsts map[string][]byte) bool {
	for _, c := range ki.ChildElements() {
		switch {
		case c.Tag == "SecurityTokenReference" && c.NamespaceURI() == NSWSSE:
			for _, r := range c.ChildElements() {
				switch {
				case r.Tag == "X509Data" && r.NamespaceURI() == NSDSig:
					if x509DataNames(r, cert) {
						return true
					}
				case r.Tag == "KeyIdentifier" && r.NamespaceURI() == NSWSSE:
					v, err := base64.StdEncoding.DecodeString(strings.TrimSpace(r.Text()))
					if err != nil {
						continue
					}
					switch r.SelectAttrValue("ValueType", "") {
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
				case r.Tag == "Reference" && r.NamespaceURI() == NSWSSE:
					uri := r.SelectAttrValue("URI", "")
					if strings.HasPrefix(uri, "#") && bytes.Equal(bsts[uri[1:]], cert.Raw) {
						return true
					}
				}
			}
		case c.Tag == "X509Data" && c.NamespaceURI() == NSDSig:
			if x509DataNames(c, cert) {
				return true
			}
		}
	}
	return false
}

func x509DataNames(xd *etree.Element, cert *x509.Certificate) bool {
	for _, c := range xd.ChildElements() {
		if c.NamespaceURI() != NSDSig {
			continue
		}
		switch c.Tag {
		case "X509IssuerSerial":
			name := xencChild(c, NSDSig, "X509IssuerName")
			serial := xencChild(c, NSDSig, "X509SerialNumber")
			if name == nil || serial == nil {
				continue
			}
			n, ok := new(big.Int).SetString(strings.TrimSpace(serial.Text()), 10)
			if ok && n.Cmp(cert.SerialNumber) == 0 && dnEqual(name.Text(), cert) {
				return true
			}
		case "X509SKI":
			if v, err := base64.StdEncoding.DecodeString(strings.TrimSpace(c.Text())); err == nil && bytes.Equal(v, xencSKI(cert)) {
				return true
			}
		case "X509Certificate":
			if v, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(c.Text()), "")); err == nil && bytes.Equal(v, cert.Raw) {
				return true
			}
		}
	}
	return false
}

package wss

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"io"
	"testing"

	"github.com/wssignd/wssignd/internal/testutil"
)

// messageSigner is an RSA key that also signs whole messages, recording them; with corrupt set
// it signs a different message than it is given.
type messageSigner struct {
	*rsa.PrivateKey
	messages [][]byte
	corrupt  bool
}

func (m *messageSigner) SignMessage(rnd io.Reader, msg []byte, opts crypto.SignerOpts) ([]byte, error) {
	m.messages = append(m.messages, bytes.Clone(msg))
	if m.corrupt {
		msg = append(bytes.Clone(msg), ' ')
	}
	h := opts.HashFunc().New()
	h.Write(msg)
	return m.Sign(rnd, h.Sum(nil), opts)
}

// TestSignWithMessageSigner: a crypto.MessageSigner gets the canonical SignedInfo (whose
// digest is the one signed) for RSA PKCS #1 v1.5, not for PSS; a signature of anything else
// fails closed.
func TestSignWithMessageSigner(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	in := testutil.ReadTestdata(t, "envelope-soap11.xml")
	ms := &messageSigner{PrivateKey: cred.Signer.(*rsa.PrivateKey)}
	c := Credential{Signer: ms, Chain: cred.Chain}
	res, err := Sign(context.Background(), in, c, SignOptions{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms.messages) != 1 {
		t.Fatalf("SignMessage called %d times, want 1", len(ms.messages))
	}
	if sum := sha256.Sum256(ms.messages[0]); !bytes.Equal(sum[:], res.SignedInfoHash) || !bytes.HasPrefix(ms.messages[0], []byte("<ds:SignedInfo")) {
		t.Errorf("SignMessage got %.60q, not the SignedInfo whose digest is signed", ms.messages[0])
	}
	// The same signature as a digest signer's (PKCS #1 v1.5 is deterministic).
	want, err := Sign(context.Background(), in, cred, SignOptions{Now: fixedNow, Rand: bytes.NewReader(make([]byte, 4096))})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Sign(context.Background(), in, c, SignOptions{Now: fixedNow, Rand: bytes.NewReader(make([]byte, 4096))})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want.Envelope, got.Envelope) {
		t.Error("signing through SignMessage changed the output")
	}
	// PSS: the digest path.
	ms.messages = nil
	if _, err := Sign(context.Background(), in, c, SignOptions{Now: fixedNow, SignatureMethod: AlgRSAPSSSHA256}); err != nil {
		t.Fatal(err)
	}
	if len(ms.messages) != 0 {
		t.Error("SignMessage used for RSA-PSS")
	}
	// A signature over anything but the SignedInfo never leaves.
	ms.corrupt = true
	if _, err := Sign(context.Background(), in, c, SignOptions{Now: fixedNow}); CodeOf(err) != CodeSigningFailed {
		t.Errorf("corrupt message signature: %v, want %s", err, CodeSigningFailed)
	}
}

package bench_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/wssignd/wssignd/bench"
	"github.com/wssignd/wssignd/internal/testutil"
	"github.com/wssignd/wssignd/wss"
)

const nsSOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"

// shape decodes doc completely (so it is well-formed XML) and returns the
// root element's name, the names of its element children, and the deepest
// element nesting.
func shape(t *testing.T, doc []byte) (root xml.Name, children []xml.Name, depth int) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	level := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v", err)
		}
		switch se := tok.(type) {
		case xml.StartElement:
			switch level {
			case 0:
				root = se.Name
			case 1:
				children = append(children, se.Name)
			}
			level++
			depth = max(depth, level)
		case xml.EndElement:
			level--
		}
	}
	if level != 0 {
		t.Fatalf("unbalanced document: level %d at EOF", level)
	}
	return root, children, depth
}

// TestEnvelope checks that every generated envelope has its size within
// ±5 %, is well-formed and namespace-well-formed (xmllint, an independent
// parser, for every size; encoding/xml too up to 100 KB, which is slow under
// the race detector beyond), is SOAP 1.1 (Envelope with Header then Body,
// realistic nesting), carries each splice marker exactly once and is
// deterministic.
func TestEnvelope(t *testing.T) {
	xmllint := testutil.RequireTool(t, "xmllint", "libxml2-utils")
	dir := t.TempDir()
	for _, s := range bench.Sizes {
		t.Run(s.Name, func(t *testing.T) {
			env := bench.Envelope(s.Bytes)
			for _, m := range []string{bench.HeaderOpen, bench.BodyOpen} {
				if n := bytes.Count(env, []byte(m)); n != 1 {
					t.Errorf("marker %q occurs %d times, want 1", m, n)
				}
			}
			if !bytes.Equal(env, bench.Envelope(s.Bytes)) {
				t.Error("two calls with the same size differ")
			}
			if d := len(env) - s.Bytes; d*20 > s.Bytes || -d*20 > s.Bytes {
				t.Errorf("size %d, want %d ± 5 %%", len(env), s.Bytes)
			}
			f := filepath.Join(dir, s.Name+".xml")
			if err := os.WriteFile(f, env, 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(xmllint, "--noout", "--nonet", f).CombinedOutput(); err != nil || len(out) != 0 {
				t.Errorf("xmllint: %v: %s", err, out)
			}
			if s.Bytes > 100<<10 {
				// Same head and tail as the smaller sizes, whose shape is checked below.
				small := bench.Envelope(100 << 10)
				if !bytes.HasPrefix(env, small[:bytes.Index(small, []byte("<inv:Lines>"))]) {
					t.Error("head differs from the 100KB envelope's")
				}
				if !bytes.HasSuffix(env, small[bytes.LastIndex(small, []byte("</inv:Note>")):]) {
					t.Error("tail differs from the 100KB envelope's")
				}
				return
			}
			root, children, depth := shape(t, env)
			want := []xml.Name{{Space: nsSOAP11, Local: "Header"}, {Space: nsSOAP11, Local: "Body"}}
			if root != (xml.Name{Space: nsSOAP11, Local: "Envelope"}) || len(children) != 2 || children[0] != want[0] || children[1] != want[1] {
				t.Errorf("root %v with children %v, want a SOAP 1.1 Envelope with Header and Body", root, children)
			}
			if depth < 5 {
				t.Errorf("nesting depth %d, want at least 5", depth)
			}
		})
	}
}

// TestEnvelopeSigns checks that wss.Sign accepts generated envelopes and
// that xmlsec1, an independent implementation, verifies the result.
func TestEnvelopeSigns(t *testing.T) {
	cred, cert := credential(t)
	for _, size := range []int{1 << 10, 100 << 10} {
		res, err := wss.Sign(context.Background(), bench.Envelope(size), cred, wss.SignOptions{SOAPVersion: "1.1"})
		if err != nil {
			t.Fatalf("size %d: sign: %v", size, err)
		}
		if out, ok := testutil.XMLSec1Verify(t, res.Envelope, cert); !ok {
			t.Errorf("size %d: xmlsec1 rejects the signed envelope: %s", size, out)
		}
	}
}

func credential(t *testing.T) (wss.Credential, *x509.Certificate) {
	k, c := testutil.TestKey(t, "rsa2048")
	return wss.Credential{Signer: k, Chain: []*x509.Certificate{c}}, c
}

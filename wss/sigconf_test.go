package wss

import (
	"bytes"
	"context"
	"encoding/base64"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/beevik/etree"
	"github.com/wssignd/wssignd/internal/testutil"
)

// TestSignatureConfirmation answers a signed request: the request's
// SignatureValue is read back with RequestSignatureValues, confirmed in a
// signed wsse11:SignatureConfirmation before the response's Signature, and
// the response verifies (own verifier and xmlsec1) and keeps the BSP rules
// (R5441: the confirmation has a wsu:Id).
func TestSignatureConfirmation(t *testing.T) {
	cred := loadCredential(t, "rsa2048")
	request, err := Sign(context.Background(), testutil.ReadTestdata(t, "envelope-wsa.xml"), cred, SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(request.Envelope); err != nil {
		t.Fatal(err)
	}
	want, _ := base64.StdEncoding.DecodeString(doc.FindElement("//Signature/SignatureValue").Text())
	values, err := RequestSignatureValues(request.Envelope, "", Limits{})
	if err != nil || len(values) != 1 || !bytes.Equal(values[0], want) {
		t.Fatalf("RequestSignatureValues: %d values, %v", len(values), err)
	}
	// Another actor's Security header is not ours to confirm.
	if v, err := RequestSignatureValues(request.Envelope, "urn:other", Limits{}); err != nil || len(v) != 0 {
		t.Errorf("values for another actor: %d, %v", len(v), err)
	}
	// An unsigned request has none; line breaks inside the value are fine.
	if v, err := RequestSignatureValues(testutil.ReadTestdata(t, "envelope-soap11.xml"), "", Limits{}); err != nil || len(v) != 0 {
		t.Errorf("values of an unsigned request: %d, %v", len(v), err)
	}
	wrapped := bytes.Replace(request.Envelope, []byte("<ds:SignatureValue>"), []byte("<ds:SignatureValue>\n  "), 1)
	if v, err := RequestSignatureValues(wrapped, "", Limits{}); err != nil || len(v) != 1 || !bytes.Equal(v[0], want) {
		t.Errorf("a wrapped value: %v", err)
	}

	for _, tc := range []struct {
		name   string
		values [][]byte
		layout Layout
		order  string
	}{
		{"one", values, "", "BinarySecurityToken,Timestamp,SignatureConfirmation,Signature"},
		{"two, Timestamp last", [][]byte{want, {1, 2, 3}}, LayoutTimestampLast, "BinarySecurityToken,SignatureConfirmation,SignatureConfirmation,Signature,Timestamp"},
		{"unsigned request", nil, "", "BinarySecurityToken,Timestamp,SignatureConfirmation,Signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, _ := Preset(PresetDigikoppeling)
			opts.SignatureConfirmation, opts.ConfirmValues, opts.Layout = true, tc.values, tc.layout
			res, out := signOK(t, testutil.ReadTestdata(t, "envelope-wsa.xml"), cred, opts)
			sec := securityOf(t, out)
			if got := childTags(sec); got != tc.order {
				t.Errorf("Security holds %s, want %s", got, tc.order)
			}
			var got []string
			for _, sc := range sec.SelectElements("SignatureConfirmation") {
				if sc.NamespaceURI() != NSWSSE11 {
					t.Errorf("SignatureConfirmation in %s", sc.NamespaceURI())
				}
				v, ok := attrNS(sc, "", "Value")
				if !ok {
					v = "(none)"
				}
				got = append(got, v)
				id, _ := attrNS(sc, NSWSU, "Id")
				if !slices.Contains(res.References, "#"+id) {
					t.Errorf("SignatureConfirmation %s is not signed (%v)", id, res.References)
				}
			}
			var wantValues []string
			for _, v := range tc.values {
				wantValues = append(wantValues, base64.StdEncoding.EncodeToString(v))
			}
			if len(tc.values) == 0 {
				wantValues = []string{"(none)"}
			}
			if strings.Join(got, ",") != strings.Join(wantValues, ",") {
				t.Errorf("confirmed %v, want %v", got, wantValues)
			}
			if c := checkBSP(t, res.Envelope, cred.Chain[0]); len(c.out) != 0 {
				t.Errorf("BSP: %v", c.out)
			}
		})
	}

	for _, tc := range []struct {
		name string
		opts SignOptions
	}{
		{"values without the option", SignOptions{ConfirmValues: values}},
		{"without a signature", SignOptions{SignatureConfirmation: true, NoSignature: true, UsernameToken: &UsernameToken{Username: "u"}}},
		{"too many", SignOptions{SignatureConfirmation: true, ConfirmValues: make([][]byte, MaxConfirmations+1)}},
		{"empty value", SignOptions{SignatureConfirmation: true, ConfirmValues: [][]byte{{}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Sign(context.Background(), testutil.ReadTestdata(t, "envelope-soap11.xml"), cred, tc.opts); CodeOf(err) != CodeUnsupported {
				t.Errorf("got %v, want unsupported", err)
			}
		})
	}
}

// FuzzRequestSignatureValues: reading a remote party's request never
// panics, fails with a client's error code, and finds no more values than
// the request has Signature elements.
func FuzzRequestSignatureValues(f *testing.F) {
	fuzzSeeds(f, func(b []byte) { f.Add(b) })
	for _, g := range []string{"preset-bsp-default-soap11.golden.xml", "preset-sat-mx-soap11.golden.xml"} {
		f.Add(testutil.ReadTestdata(f, filepath.Join("golden", g)))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		values, err := RequestSignatureValues(raw, "", Limits{MaxBytes: 1 << 16, MaxDepth: 64, MaxElements: 4096})
		if err != nil {
			if CodeOf(err) == "" || CodeOf(err) == CodeInternal {
				t.Fatalf("error without a client code: %v", err)
			}
			return
		}
		if n := bytes.Count(raw, []byte("Signature")); len(values) > n {
			t.Fatalf("%d values from %d Signature names", len(values), n)
		}
	})
}

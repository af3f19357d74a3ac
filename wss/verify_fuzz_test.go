package wss

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wssignd/wssignd/internal/testutil"
)

// FuzzVerify feeds Verify arbitrary bytes, seeded with the attack corpus
// and the xmlsec1 interop messages. Verify must not panic; an error must be
// a *wss.Error of an "unusable input" code; a verdict must be consistent:
// valid with a signer, the Body and the Timestamp signed, and no code; or
// invalid with a code.
//
//	go test ./wss -run '^$' -fuzz FuzzVerify -fuzztime 5m
func FuzzVerify(f *testing.F) {
	root := testutil.RepoRoot(f)
	for _, pat := range []string{"testdata/attacks/*.xml", "testdata/interop/generated/*.xml"} {
		for _, data := range readFiles(f, filepath.Join(root, pat)) {
			f.Add(data)
		}
	}
	trust := testTrust(f)
	unusable := []Code{CodeMalformedXML, CodeDTDForbidden, CodeTooLarge, CodeTooComplex}
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := VerifyOptions{Trust: trust, Now: fixedNow, Explain: true, Limits: Limits{MaxBytes: 1 << 20, MaxDepth: 64, MaxElements: 10_000}}
		res, err := Verify(context.Background(), data, opts)
		if err != nil {
			var we *Error
			if !errors.As(err, &we) || !slices.Contains(unusable, we.Code) {
				t.Fatalf("error %v is not an unusable-input *Error", err)
			}
			if res != nil {
				t.Fatal("both a result and an error")
			}
			return
		}
		if res == nil {
			t.Fatal("neither a result nor an error")
		}
		if res.Valid {
			if res.Code != "" || res.Signer == nil || res.Timestamp == nil ||
				!slices.Contains(res.Signed, "/Envelope/Body") || !slices.Contains(res.Signed, "/Envelope/Header/Security/Timestamp") {
				t.Fatalf("inconsistent valid verdict: %+v", res)
			}
		} else if res.Code == "" {
			t.Fatalf("invalid verdict without a code: %+v", res)
		}
	})
}

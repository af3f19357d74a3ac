package wss

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wssignd/wssignd/internal/testutil"
)

// FuzzVerifyPeerForms is FuzzVerify with the forms of other stacks admitted
// (inclusive C14N; the STR-Transform always is), seeded with the xmlsec1
// interop messages: Verify must not panic, and a valid verdict must name a
// signer and cover the Body and the Timestamp by node identity.
//
//	go test ./wss -run '^$' -fuzz FuzzVerifyPeerForms -fuzztime 5m
func FuzzVerifyPeerForms(f *testing.F) {
	root := testutil.RepoRoot(f)
	for _, data := range readFiles(f, filepath.Join(root, "testdata/interop/generated/*.xml")) {
		f.Add(data)
	}
	trust := testTrust(f)
	unusable := []Code{CodeMalformedXML, CodeDTDForbidden, CodeTooLarge, CodeTooComplex}
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := VerifyOptions{Trust: trust, Now: fixedNow, Explain: true, AllowInclusiveC14N: true,
			Limits: Limits{MaxBytes: 1 << 20, MaxDepth: 64, MaxElements: 10_000}}
		res, err := Verify(context.Background(), data, opts)
		if err != nil {
			var we *Error
			if !errors.As(err, &we) || !slices.Contains(unusable, we.Code) || res != nil {
				t.Fatalf("error %v is not an unusable-input *Error (result %v)", err, res)
			}
			return
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

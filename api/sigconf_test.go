package api

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"

	"github.com/beevik/etree"
	"github.com/wssignd/wssignd/internal/testutil"
	"github.com/wssignd/wssignd/wss"
)

// TestSignatureConfirmationHeader: a profile with SignatureConfirmation
// confirms the values the caller passes (or an unsigned request), refuses
// a call without them, and a profile without it refuses the header.
func TestSignatureConfirmationHeader(t *testing.T) {
	cred := loadCred(t, "rsa2048")
	keys := &memKeys{creds: map[string]wss.Credential{"rsa": cred}}
	access := Access{UIDs: []uint32{uint32(os.Getuid())}}
	c := serveUnix(t, New(Config{Keys: keys, Profiles: map[string]*Profile{
		"confirm": {Key: "rsa", Access: access, Sign: wss.SignOptions{SignatureConfirmation: true}},
		"plain":   {Key: "rsa", Access: access},
	}}))
	env := string(testutil.ReadTestdata(t, "envelope-soap11.xml"))
	v1, v2 := base64.StdEncoding.EncodeToString([]byte("first value")), base64.StdEncoding.EncodeToString([]byte("second"))
	for _, tc := range []struct {
		name, profile, header string
		status                int
		confirmed             []string // Value attributes; "-" for none
	}{
		{"two values", "confirm", v1 + ", " + v2, 200, []string{v1, v2}},
		{"unsigned request", "confirm", "unsigned", 200, []string{"-"}},
		{"missing", "confirm", "", 400, nil},
		{"not base64", "confirm", "not base64!", 400, nil},
		{"unsigned with a value", "confirm", "unsigned," + v1, 400, nil},
		{"profile without confirmation", "plain", v1, 400, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.header != "" {
				hdr[HeaderSignatureConfirmation] = tc.header
			}
			resp, body := do(t, c, "POST", "/v1/soap/sign?profile="+tc.profile, "text/xml", env, hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status != 200 {
				return
			}
			if out, ok := testutil.XMLSec1Verify(t, body, cred.Chain[0]); !ok {
				t.Fatalf("xmlsec1 rejects: %s", out)
			}
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(body); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, sc := range doc.FindElements("//SignatureConfirmation") {
				got = append(got, sc.SelectAttrValue("Value", "-"))
			}
			if strings.Join(got, ",") != strings.Join(tc.confirmed, ",") {
				t.Errorf("confirmed %v, want %v", got, tc.confirmed)
			}
		})
	}
}

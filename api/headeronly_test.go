package api

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/wssignd/wssignd/internal/testutil"
	"github.com/wssignd/wssignd/wss"
)

// TestSignWithoutSignature: a profile that sends only a UsernameToken uses
// no key: it works while the token is offline, writes no private-key-use
// audit event and no key headers, and GET /v1/keys lists no key for it.
func TestSignWithoutSignature(t *testing.T) {
	keys := &memKeys{offline: true}
	var audit bytes.Buffer
	access := Access{UIDs: []uint32{uint32(os.Getuid())}}
	c := serveUnix(t, New(Config{
		Keys:  keys,
		Audit: slog.New(slog.NewTextHandler(&audit, nil)),
		Profiles: map[string]*Profile{"ut": {Access: access, Sign: wss.SignOptions{
			NoSignature: true, NoTimestamp: true, UsernameToken: &wss.UsernameToken{Username: "u", Password: "p"},
		}}},
	}))
	resp, body := do(t, c, "POST", "/v1/soap/sign?profile=ut", "text/xml", string(testutil.ReadTestdata(t, "envelope-soap11.xml")), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if !strings.Contains(string(body), "<wsse:UsernameToken ") || strings.Contains(string(body), "Signature") {
		t.Errorf("want a UsernameToken and no Signature:\n%s", body)
	}
	if resp.Header.Get("Wssignd-Key") != "" || resp.Header.Get("Wssignd-Cert-Serial") != "" {
		t.Errorf("key headers on a keyless profile: %v", resp.Header)
	}
	if strings.Contains(audit.String(), "private-key-use") {
		t.Errorf("audited a private-key use: %s", audit.String())
	}
	keys.offline = false
	resp, body = do(t, c, "GET", "/v1/keys", "", "", nil)
	if resp.StatusCode != 200 || strings.Join(strings.Fields(string(body)), "") != `{"keys":[]}` {
		t.Errorf("keys: %d %s", resp.StatusCode, body)
	}
}

// Package apitest serves the real API handler for the tests of its clients
// (the client package, the wssign CLI): an in-memory KeyStore over the
// test-only keys in testdata/keys, the standard test configuration, and a
// server on a fresh Unix socket with peer credentials, as in the daemon.
package apitest

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/internal/testutil"
	"github.com/wssignd/wssignd/wss"
)

// MemKeys is an in-memory api.KeyStore. With Offline set every key is
// unavailable and Ready reports the token "mem" offline.
type MemKeys struct {
	Creds   map[string]wss.Credential
	Offline bool
}

var _ api.KeyStore = (*MemKeys)(nil)

// Credential returns the named key, or api.ErrTokenUnavailable when offline.
func (m *MemKeys) Credential(_ context.Context, name string) (wss.Credential, error) {
	if m.Offline {
		return wss.Credential{}, api.ErrTokenUnavailable
	}
	c, ok := m.Creds[name]
	if !ok {
		return c, errors.New("no such key")
	}
	return c, nil
}

// Ready reports one token, "mem".
func (m *MemKeys) Ready(context.Context) (map[string]string, error) {
	if m.Offline {
		return map[string]string{"mem": "offline"}, errors.New("offline")
	}
	return map[string]string{"mem": "online"}, nil
}

// LoadCred loads testdata/keys/<name>.{key,crt} as a credential.
func LoadCred(t testing.TB, name string) wss.Credential {
	t.Helper()
	k, c := testutil.TestKey(t, name)
	return wss.Credential{Signer: k, Chain: []*x509.Certificate{c}}
}

// Keys returns the keys "rsa" (RSA-2048) and "ec" (P-256).
func Keys(t testing.TB) *MemKeys {
	t.Helper()
	return &MemKeys{Creds: map[string]wss.Credential{"rsa": LoadCred(t, "rsa2048"), "ec": LoadCred(t, "ecp256")}}
}

// OtherUID is a uid no test runs as: profiles for it are refused.
const OtherUID = 4_000_000_000

// Config is the configuration the client tests use, for the caller's uid:
// sign profiles "default" (rsa), "ec" and "nobody" (another uid's);
// verify profile "rsa" trusting the rsa certificate; encrypt profiles
// "to-rsa" and "requester"; decrypt profile "rsa"; raw signing with "rsa",
// "ec" and "other" (another uid's).
func Config(t testing.TB, keys *MemKeys) api.Config {
	t.Helper()
	me := api.Access{UIDs: []uint32{uint32(os.Getuid())}}
	other := api.Access{UIDs: []uint32{OtherUID}}
	trust, err := wss.NewTrustStore(wss.TrustConfig{Pinned: []*x509.Certificate{keys.Creds["rsa"].Chain[0]}})
	if err != nil {
		t.Fatal(err)
	}
	return api.Config{
		Keys: keys,
		EncryptProfiles: map[string]*api.EncryptProfile{
			"to-rsa":    {Encrypt: wss.EncryptOptions{Recipient: keys.Creds["rsa"].Chain[0]}, Access: me},
			"requester": {AllowRecipientHeader: true, Access: me},
		},
		DecryptProfiles: map[string]*api.DecryptProfile{"rsa": {Key: "rsa", Access: me}},
		VerifyProfiles: map[string]*api.VerifyProfile{
			"rsa": {Verify: wss.VerifyOptions{Trust: trust, Replay: wss.NewReplayCache(100)}, Access: me},
		},
		Profiles: map[string]*api.Profile{
			"default": {Key: "rsa", Access: me},
			"ec":      {Key: "ec", Access: me},
			"nobody":  {Key: "ec", Access: other},
		},
		RawKeys: map[string]api.Access{"rsa": me, "ec": me, "other": other},
	}
}

// Serve serves h on a fresh Unix socket with peer credentials (api.ConnContext)
// until the test ends, and returns the socket's path (short, in the system's
// temporary directory: socket paths are limited to 108 bytes).
func Serve(t testing.TB, h http.Handler) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "wsapi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ConnContext: api.ConnContext}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wssignd/wssignd/hsm/hsmtest"
	"github.com/wssignd/wssignd/internal/testutil"
)

// BenchmarkDaemonSign1KB signs a 1 KB envelope end to end over the Unix
// socket with the daemon in this process (so that -cpuprofile sees both
// the client and the daemon side).
func BenchmarkDaemonSign1KB(b *testing.B) {
	env := hsmtest.New(b)
	dir := b.TempDir()
	sock := filepath.Join(dir, "s")
	if len(sock) > 100 {
		b.Skip("socket path too long")
	}
	d := startDaemon(b, testConfig(env, sock, ""), sock)
	in := string(testutil.ReadTestdata(b, "envelope-soap11.xml"))
	b.ResetTimer()
	for b.Loop() {
		req, _ := http.NewRequest("POST", "http://wssignd/v1/soap/sign?profile=default", strings.NewReader(in))
		req.Header.Set("Content-Type", "text/xml")
		resp, err := d.client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatal(resp.Status)
		}
	}
}

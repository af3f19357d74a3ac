package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/wssignd/wssignd/hsm/hsmtest"
	"github.com/wssignd/wssignd/internal/testutil"
)

// TestDaemonHostileEnvelopes: the 262 KB namespace-churn envelope (10 000
// declarations on the Envelope, 4 000 header blocks each declaring one
// prefix) gets 413 too-complex on sign, verify and decrypt, and the XML
// limits of [limits] reach the engine: with max_attributes = 32 an element
// of 33 attributes is refused, one of 32 is signed.
func TestDaemonHostileEnvelopes(t *testing.T) {
	env := hsmtest.New(t)
	dir := shortDir(t)
	sock := filepath.Join(dir, "wssignd.sock")
	certFile := filepath.Join(dir, "rsa.pem")
	if err := os.WriteFile(certFile, testutil.CertPEM(env.RSA.Chain[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf(`
[limits]
max_attributes = 32
[verify.rsa]
trusted_certs = [%[1]q]
allow_users = ["%[2]d"]
[decrypt.default]
key = "rsa"
allow_users = ["%[2]d"]
`, certFile, os.Getuid())
	d := startDaemon(t, testConfig(env, sock, extra), sock)

	var churn bytes.Buffer
	churn.WriteString(`<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"`)
	for i := range 10_000 {
		churn.WriteString(` xmlns:n` + strconv.Itoa(i) + `="urn:n` + strconv.Itoa(i) + `"`)
	}
	churn.WriteString(`><soap:Header>`)
	for i := range 4_000 {
		churn.WriteString(`<h:B xmlns:h="urn:h` + strconv.Itoa(i%10) + `"/>`)
	}
	churn.WriteString(`</soap:Header><soap:Body><x/></soap:Body></soap:Envelope>`)
	for _, path := range []string{"/v1/soap/sign?profile=default", "/v1/soap/verify?profile=rsa", "/v1/soap/decrypt?profile=default"} {
		resp, body := d.do(t, "POST", path, "text/xml", churn.Bytes())
		if resp.StatusCode != 413 || !strings.Contains(string(body), `"code":"too-complex"`) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}

	attrs := func(n int) []byte {
		var b strings.Builder
		for i := range n {
			b.WriteString(` a` + strconv.Itoa(i) + `="1"`)
		}
		return []byte(`<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><x` + b.String() + `/></soap:Body></soap:Envelope>`)
	}
	if resp, body := d.do(t, "POST", "/v1/soap/sign?profile=default", "text/xml", attrs(33)); resp.StatusCode != 413 || !strings.Contains(string(body), "more than 32 attributes") {
		t.Errorf("33 attributes with max_attributes = 32: %d %s", resp.StatusCode, body)
	}
	if resp, body := d.do(t, "POST", "/v1/soap/sign?profile=default", "text/xml", attrs(32)); resp.StatusCode != 200 {
		t.Errorf("32 attributes with max_attributes = 32: %d %s", resp.StatusCode, body)
	}
}

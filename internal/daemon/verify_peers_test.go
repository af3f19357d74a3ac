package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wssignd/wssignd/internal/testutil"
	"github.com/wssignd/wssignd/wss"
)

// TestVerifyProfilePeerOptions: signer_certs and allow_inclusive_c14n reach
// wss.VerifyOptions. A message from a CA-issued key that names its
// certificate by issuer and serial verifies with the certificate among
// signer_certs and the CA in ca_certs, and not without signer_certs.
func TestVerifyProfilePeerOptions(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "peer CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err = x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(77), Subject: pkix.Name{CommonName: "peer"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	caFile, leafFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "leaf.pem")
	for f, c := range map[string]*x509.Certificate{caFile: ca, leafFile: leaf} {
		if err := os.WriteFile(f, testutil.CertPEM(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := parseVerifyConfig(t, `
[verify.peer]
ca_certs = ["`+caFile+`"]
signer_certs = ["`+leafFile+`"]
allow_inclusive_c14n = true
allow_users = ["*"]
[verify.plain]
ca_certs = ["`+caFile+`"]
allow_users = ["*"]
`)
	if err != nil {
		t.Fatal(err)
	}
	profiles, err := buildVerifyProfiles(defaultSeams(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !profiles["peer"].Verify.AllowInclusiveC14N || profiles["plain"].Verify.AllowInclusiveC14N {
		t.Errorf("allow_inclusive_c14n not passed on")
	}
	res, err := wss.Sign(context.Background(), testutil.ReadTestdata(t, "envelope-soap11.xml"), wss.Credential{Signer: key, Chain: []*x509.Certificate{leaf}},
		wss.SignOptions{TokenReference: wss.RefIssuerSerial})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := wss.Verify(context.Background(), res.Envelope, profiles["peer"].Verify); err != nil || !v.Valid || v.Signer.KeyRef != wss.SignerRefIssuerSerial {
		t.Errorf("peer: %v %+v", err, v)
	}
	if v, _ := wss.Verify(context.Background(), res.Envelope, profiles["plain"].Verify); v.Valid || v.Code != wss.CodeKeyNotFound {
		t.Errorf("plain: %+v", v)
	}
}

// TestVerifyProfilePeerOptionProblems: an unreadable signer_certs file, and
// an inclusive C14N method listed without allow_inclusive_c14n.
func TestVerifyProfilePeerOptionProblems(t *testing.T) {
	_, err := parseVerifyConfig(t, `
[verify.bad]
trusted_certs = ["rsa2048.pem"]
signer_certs = ["missing.pem"]
c14n_methods = ["http://www.w3.org/2001/10/xml-exc-c14n#", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"]
allow_users = ["*"]
`)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"verify.bad.signer_certs[0]", "verify.bad.c14n_methods[1]: inclusive C14N needs allow_inclusive_c14n"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no problem reported for %s in:\n%v", want, err)
		}
	}
}

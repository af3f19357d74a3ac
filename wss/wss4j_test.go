package wss

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/wssignd/wssignd/internal/testutil"
)

// wss4jJars is the class path of testdata/wss4j/Verify.java: Apache WSS4J
// 1.6 (Debian libwss4j-java, one jar) and what its DOM engine loads:
// Santuario (libxml-security-java), commons-logging, slf4j (with its no-op
// binding, so that only the verdicts reach stdout), and BouncyCastle
// (libbcprov-java), where Santuario 2.1 finds RSA-PSS.
var wss4jJars = []string{"wss4j.jar", "xmlsec.jar", "commons-logging.jar", "slf4j-api.jar", "slf4j-nop.jar", "bcprov.jar"}

// wss4jVerifier is the compiled Verify.java with its class path.
type wss4jVerifier struct {
	java, classpath string
}

// newWSS4JVerifier compiles testdata/wss4j/Verify.java into a temporary
// directory. A missing JDK or jar fails the test in CI and skips it
// elsewhere; under -short it always skips.
func newWSS4JVerifier(t *testing.T) *wss4jVerifier {
	t.Helper()
	testutil.SkipIfShort(t, "java and libwss4j-java")
	java := testutil.RequireTool(t, "java", "openjdk-17-jre-headless")
	javac := testutil.RequireTool(t, "javac", "openjdk-17-jdk-headless")
	cp := []string{t.TempDir()}
	for _, j := range wss4jJars {
		p := filepath.Join("/usr/share/java", j)
		if _, err := os.Stat(p); err != nil {
			msg := p + " not found: apt-get install -y libwss4j-java libbcprov-java"
			if testutil.InCI() {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		cp = append(cp, p)
	}
	classpath := strings.Join(cp, string(os.PathListSeparator))
	src := filepath.Join(testutil.RepoRoot(t), "testdata", "wss4j", "Verify.java")
	if out, err := exec.Command(javac, "-Xlint:all,-path", "-Werror", "-d", cp[0], "-cp", classpath, src).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	return &wss4jVerifier{java: java, classpath: classpath}
}

// wss4jVerdict is WSS4J's answer on one message.
type wss4jVerdict struct {
	ok      bool
	actions string   // the results in the order processed: TS, SIGN, UT, ...
	signed  []string // the signed elements, {namespace}local, in SignedInfo order
	keyref  string   // how the signature's KeyInfo referenced the certificate
	message string   // WSS4J's error when refused
}

// run has WSS4J process every message in one JVM, trusting certs, with
// users (name → password) for UsernameTokens.
func (v *wss4jVerifier) run(t *testing.T, messages map[string][]byte, certs []*x509.Certificate, users map[string]string) map[string]wss4jVerdict {
	t.Helper()
	dir := t.TempDir()
	args := []string{"-cp", v.classpath, "Verify"}
	var pem []byte
	for _, c := range certs {
		pem = append(pem, testutil.CertPEM(c)...)
	}
	trust := filepath.Join(dir, "trust.pem")
	if err := os.WriteFile(trust, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	args = append(args, "-cert", trust)
	for u, p := range users {
		args = append(args, "-user", u+"="+p)
	}
	names := make([]string, 0, len(messages))
	for name := range messages {
		names = append(names, name)
	}
	sort.Strings(names)
	files := map[string]string{}
	for i, name := range names {
		f := filepath.Join(dir, fmt.Sprintf("m%03d.xml", i))
		if err := os.WriteFile(f, messages[name], 0o600); err != nil {
			t.Fatal(err)
		}
		files[f] = name
		args = append(args, f)
	}
	cmd := exec.Command(v.java, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if _, exit := err.(*exec.ExitError); err != nil && !exit {
		t.Fatalf("java: %v", err)
	}
	verdicts := map[string]wss4jVerdict{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		status, rest, _ := strings.Cut(line, " ")
		file, detail, _ := strings.Cut(rest, " ")
		name, known := files[file]
		if !known || (status != "OK" && status != "FAIL") {
			t.Fatalf("unexpected output line %q\nstderr:\n%s", line, stderr.String())
		}
		if status == "FAIL" {
			verdicts[name] = wss4jVerdict{message: detail}
			continue
		}
		vd := wss4jVerdict{ok: true}
		for _, f := range strings.Fields(detail) {
			k, val, _ := strings.Cut(f, "=")
			switch k {
			case "actions":
				vd.actions = val
			case "signed":
				if val != "" {
					vd.signed = strings.Split(val, ",")
				}
			case "keyref":
				vd.keyref = val
			}
		}
		verdicts[name] = vd
	}
	if len(verdicts) != len(messages) {
		t.Fatalf("WSS4J answered on %d of %d messages\nstdout:\n%s\nstderr:\n%s", len(verdicts), len(messages), out, stderr.String())
	}
	if allOK := err == nil; allOK != !anyRefused(verdicts) {
		t.Fatalf("exit status %v does not match the verdicts", err)
	}
	return verdicts
}

func anyRefused(v map[string]wss4jVerdict) bool {
	for _, d := range v {
		if !d.ok {
			return true
		}
	}
	return false
}

// signedElements lists the elements the message's SignedInfo references,
// as {namespace}local in order: what WSS4J must report as signed.
func signedElements(t *testing.T, signed []byte) []string {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(signed); err != nil {
		t.Fatal(err)
	}
	ids := indexIDs(doc.Root())
	var out []string
	for _, r := range doc.FindElements("//Signature/SignedInfo/Reference") {
		el := ids[strings.TrimPrefix(r.SelectAttrValue("URI", ""), "#")]
		if el == nil {
			t.Fatalf("reference %s to nothing", r.SelectAttrValue("URI", ""))
		}
		out = append(out, "{"+el.NamespaceURI()+"}"+el.Tag)
	}
	return out
}

// tamperedVerdict is WSS4J's whole message when a signature does not verify.
const tamperedVerdict = "WSSecurityException: The signature or decryption was invalid"

// wss4jCase is one message for WSS4J and what it must answer: accepted
// with the signed elements of the message, or refused with an error that
// contains refusal (the BSP rule behind it in rule).
type wss4jCase struct {
	envelope []byte
	refusal  string
	rule     string
}

// TestWSS4JInterop has Apache WSS4J, an independent WS-Security
// implementation, verify what Sign produces, as a strict receiver: BSP
// compliance on, signature and certificate trust checked, Timestamp
// checked against the clock. The messages are every token reference with
// and without the BinarySecurityToken, as X509v3 and X509PKIPathv1, on the
// RSA and EC test keys and on a two-certificate chain; every signature
// algorithm; every preset golden message and sign golden message, signed
// afresh (the goldens' fixed clock has expired). WSS4J must refuse a
// tampered message, an untrusted signer and a PkiPath reference stripped
// of its TokenType. The presets that break a BSP rule on purpose, where
// WSS4J enforces it, are refusals named with WSS4J's message and the rule;
// WSS4J 1.6 does not enforce R5206 (x509-key-identifier, irs-aca) nor
// R3022 (include_bst beside another reference), so those verify.
func TestWSS4JInterop(t *testing.T) {
	v := newWSS4JVerifier(t)
	messages := map[string]wss4jCase{}
	add := func(name string, in []byte, cred Credential, opts SignOptions, refusal, rule string) {
		t.Helper()
		res, err := Sign(context.Background(), in, cred, opts)
		if err != nil {
			t.Fatalf("%s: sign: %v", name, err)
		}
		if _, dup := messages[name]; dup {
			t.Fatalf("two messages named %s", name)
		}
		messages[name] = wss4jCase{res.Envelope, refusal, rule}
	}

	soap11 := testutil.ReadTestdata(t, "envelope-soap11.xml")
	rsa, ec, chain := loadCredential(t, "rsa2048"), loadCredential(t, "ecp256"), testChain(t, true)
	creds := []struct {
		name string
		cred Credential
	}{{"rsa2048", rsa}, {"ecp256", ec}, {"chain", chain}}
	for _, c := range creds {
		for _, ref := range TokenReferences() {
			for _, withBST := range []bool{false, true} {
				for _, vt := range []string{ValueTypeX509v3, ValueTypeX509PKIPath} {
					if ref == RefDirect && !withBST {
						continue // the direct reference always sends the BST
					}
					if vt == ValueTypeX509PKIPath && !withBST {
						continue // no BST: its value type does not matter
					}
					name := fmt.Sprintf("ref/%s/%s/bst=%v/%s", c.name, ref, withBST, vt[strings.LastIndex(vt, "#")+1:])
					add(name, soap11, c.cred, SignOptions{TokenReference: ref, IncludeBST: withBST, BSTValueType: vt}, "", "")
				}
			}
		}
	}
	for _, alg := range []struct {
		method string
		cred   Credential
	}{
		{AlgRSASHA256, rsa}, {AlgRSASHA384, rsa}, {AlgRSASHA512, rsa},
		{AlgRSAPSSSHA256, rsa}, {AlgRSAPSSSHA384, rsa}, {AlgRSAPSSSHA512, rsa},
		{AlgECDSASHA256, ec}, {AlgECDSASHA384, ec}, {AlgECDSASHA512, ec},
	} {
		add("alg/"+alg.method, soap11, alg.cred, SignOptions{SignatureMethod: alg.method}, "", "")
	}
	// The presets that break a BSP rule on purpose, where WSS4J enforces
	// the rule: WSS4J's message and the rule.
	presetRefusals := map[string][2]string{
		"preset-face-es-soap11.golden.xml": {"Any SIG_REFERENCE MUST contain a SIG_TRANSFORMS child element", "R5416"},
	}
	for _, tc := range presetGoldenCases(t) {
		r := presetRefusals[tc.golden]
		add("golden/"+tc.golden, testutil.ReadTestdata(t, tc.envelope), rsa, tc.opts(), r[0], r[1])
	}
	for _, tc := range signGoldenCases() {
		add("golden/"+tc.golden, testutil.ReadTestdata(t, tc.envelope), loadCredential(t, tc.key), tc.opts, "", "")
	}
	// A changed Body: the Reference digest no longer matches, and WSS4J says
	// only that (no cause, unlike a missing algorithm).
	good := messages["golden/sign-soap11-rsa.golden.xml"].envelope
	tampered := bytes.Replace(good, []byte("</soapenv:Body>"), []byte("<x/></soapenv:Body>"), 1)
	if bytes.Equal(tampered, good) {
		t.Fatal("the tampering changed nothing")
	}
	messages["tampered-body"] = wss4jCase{tampered, tamperedVerdict, ""}

	// The direct reference to a PkiPath token without its wsse11:TokenType
	// (which Sign writes): WSS4J enforces R5215.
	pkiPath := messages["ref/chain/direct/bst=true/X509PKIPathv1"].envelope
	noTokenType := regexp.MustCompile(` wsse11:TokenType="[^"]*"`).ReplaceAll(pkiPath, nil)
	if bytes.Equal(noTokenType, pkiPath) {
		t.Fatal("the PkiPath reference has no TokenType to remove")
	}
	messages["pkipath-without-tokentype"] = wss4jCase{noTokenType, `Bad TokenType ""`, "R5215"}

	// A signer whose self-signed certificate is not trusted.
	add("untrusted-signer", soap11, untrustedSigner(t, "untrusted signer"), SignOptions{}, "The security token could not be authenticated or authorized", "")

	envelopes := map[string][]byte{}
	for name, m := range messages {
		envelopes[name] = m.envelope
	}
	verdicts := v.run(t, envelopes, []*x509.Certificate{rsa.Chain[0], ec.Chain[0], chain.Chain[0], chain.Chain[1]},
		map[string]string{"alice": "secret", "20123456789MODDATOS": "moddatos"})

	names := make([]string, 0, len(messages))
	for name := range messages {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		m, vd := messages[name], verdicts[name]
		t.Run(name, func(t *testing.T) {
			switch {
			case m.refusal != "" && vd.ok:
				t.Errorf("WSS4J accepts it; want a refusal %q (%s)", m.refusal, m.rule)
			case m.refusal == tamperedVerdict && vd.message != tamperedVerdict:
				t.Errorf("WSS4J refuses with %q; want exactly %q", vd.message, tamperedVerdict)
			case m.refusal != "" && !strings.Contains(vd.message, m.refusal):
				t.Errorf("WSS4J refuses with %q; want %q (%s)", vd.message, m.refusal, m.rule)
			case m.refusal == "" && !vd.ok:
				t.Errorf("WSS4J refuses: %s\n%s", vd.message, m.envelope)
			case m.refusal == "":
				want := signedElements(t, m.envelope)
				if strings.Join(vd.signed, " ") != strings.Join(want, " ") {
					t.Errorf("WSS4J found signed %v, the message references %v", vd.signed, want)
				}
				if !strings.Contains(vd.actions, "TS") && bytes.Contains(m.envelope, []byte(":Timestamp ")) {
					t.Errorf("WSS4J did not process the Timestamp (actions %s)", vd.actions)
				}
			}
			t.Logf("WSS4J: ok=%v actions=%s keyref=%s %s", vd.ok, vd.actions, vd.keyref, vd.message)
		})
	}

	// Trusting only the chain's CA, WSS4J validates the certificate path:
	// from the leaf in an X509v3 token to the CA in its trust store, and
	// along the path an X509PKIPathv1 token carries.
	caTrust := map[string][]byte{}
	for _, vt := range []string{ValueTypeX509v3, ValueTypeX509PKIPath} {
		res, err := Sign(context.Background(), soap11, chain, SignOptions{BSTValueType: vt})
		if err != nil {
			t.Fatal(err)
		}
		caTrust["ca-trust/"+vt[strings.LastIndex(vt, "#")+1:]] = res.Envelope
	}
	for name, vd := range v.run(t, caTrust, []*x509.Certificate{chain.Chain[1]}, nil) {
		t.Run(name, func(t *testing.T) {
			if !vd.ok {
				t.Errorf("WSS4J refuses: %s", vd.message)
			} else if want := signedElements(t, caTrust[name]); strings.Join(vd.signed, " ") != strings.Join(want, " ") {
				t.Errorf("WSS4J found signed %v, the message references %v", vd.signed, want)
			}
		})
	}
}

// untrustedSigner makes an EC P-256 key with a self-signed certificate named cn.
func untrustedSigner(t *testing.T, cn string) Credential {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return Credential{Signer: key, Chain: []*x509.Certificate{cert}}
}

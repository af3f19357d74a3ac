package main

import (
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/wssignd/wssignd/hsm"
	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/internal/daemon"
)

const tokenUsage = `usage: wssignd token COMMAND [flags]

Commands:
  list         list the module's slots and tokens; with a token and PIN also its keys and certificates
  generate     generate a key pair on the token (sensitive, never extractable)
  csr          write a PKCS#10 certificate request signed by a token key
  import-cert  store a key's certificate (and issuer certificates) from a PEM file on the token

The token is named either by -config FILE -token NAME (as the daemon uses it) or by
-module PATH with -label or -serial and -pin-file. Keys are named by -key-label and/or -id (hex).
Run "wssignd token COMMAND -h" for a command's flags.
`

// tokenMain runs "wssignd token ...": token provisioning.
func tokenMain(args []string) int { return tokenRun(args, os.Stdout, os.Stderr) }

// tokenFlags are the flags every token command shares.
type tokenFlags struct {
	configFile, tokenName    string
	module, label, serial    string
	pinFile, keyLabel, keyID string
}

func (f *tokenFlags) register(fs *flag.FlagSet, withKey bool) {
	fs.StringVar(&f.configFile, "config", "", "daemon configuration file to take the token from (with -token)")
	fs.StringVar(&f.tokenName, "token", "", "token name in the configuration ([tokens.NAME])")
	fs.StringVar(&f.module, "module", "", "PKCS#11 module path (without -config)")
	fs.StringVar(&f.label, "label", "", "token label (without -config)")
	fs.StringVar(&f.serial, "serial", "", "token serial number (without -config)")
	fs.StringVar(&f.pinFile, "pin-file", "", "file holding the user PIN (without -config)")
	if withKey {
		fs.StringVar(&f.keyLabel, "key-label", "", "key label (CKA_LABEL)")
		fs.StringVar(&f.keyID, "id", "", "key id (CKA_ID) in hex")
	}
}

// hsmConfig resolves the flags to an hsm configuration.
func (f *tokenFlags) hsmConfig() (hsm.Config, error) {
	if f.configFile != "" {
		if f.module != "" || f.label != "" || f.serial != "" || f.pinFile != "" {
			return hsm.Config{}, errors.New("-config excludes -module, -label, -serial and -pin-file")
		}
		c, err := config.Load(f.configFile)
		if err != nil {
			return hsm.Config{}, err
		}
		return daemon.TokenConfig(c, f.tokenName)
	}
	if f.module == "" {
		return hsm.Config{}, errors.New("-module (or -config and -token) is required")
	}
	return hsm.Config{Module: f.module, TokenLabel: f.label, TokenSerial: f.serial, PINFile: f.pinFile}, nil
}

func (f *tokenFlags) keyRef() (hsm.KeyRef, error) {
	id, err := hex.DecodeString(strings.TrimPrefix(f.keyID, "0x"))
	if err != nil {
		return hsm.KeyRef{}, fmt.Errorf("-id: %v", err)
	}
	ref := hsm.KeyRef{Label: f.keyLabel, ID: id}
	if ref.Label == "" && len(ref.ID) == 0 {
		return ref, errors.New("-key-label or -id is required")
	}
	return ref, nil
}

func tokenRun(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, tokenUsage)
		return 2
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("wssignd token "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f tokenFlags
	var run func() error
	switch cmd {
	case "list":
		f.register(fs, false)
		run = func() error { return tokenList(&f, stdout) }
	case "generate":
		f.register(fs, true)
		typ := fs.String("type", "ec", "key type: rsa or ec")
		bits := fs.Int("bits", 3072, "RSA key size in bits (at least 2048)")
		curve := fs.String("curve", "P-256", "EC curve: P-256, P-384 or P-521")
		run = func() error { return tokenGenerate(&f, *typ, *bits, *curve, stdout) }
	case "csr":
		f.register(fs, true)
		subject := fs.String("subject", "", `subject, e.g. "CN=invoice signer,O=Example,C=DE" (CN, O, OU, L, ST, C)`)
		var dns multiFlag
		fs.Var(&dns, "dns", "DNS subject alternative name (repeatable)")
		out := fs.String("out", "-", "output file for the PEM request (- for standard output)")
		run = func() error { return tokenCSR(&f, *subject, dns, *out, stdout) }
	case "import-cert":
		f.register(fs, true)
		certFile := fs.String("cert", "", "PEM file: the key's certificate first, then its issuers (optional)")
		run = func() error { return tokenImportCert(&f, *certFile, stdout) }
	default:
		fmt.Fprintf(stderr, "wssignd token: unknown command %q\n\n%s", cmd, tokenUsage)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wssignd token %s: unexpected arguments %q\n", cmd, fs.Args())
		return 2
	}
	if err := run(); err != nil {
		fmt.Fprintf(stderr, "wssignd token %s: %v\n", cmd, err)
		if errors.Is(err, hsm.ErrPINRejected) || errors.Is(err, hsm.ErrPINLocked) {
			return exitConfig
		}
		return 1
	}
	return 0
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// openToken opens the token the flags name.
func openToken(f *tokenFlags) (*hsm.Token, error) {
	cfg, err := f.hsmConfig()
	if err != nil {
		return nil, err
	}
	return hsm.Open(cfg)
}

func tokenList(f *tokenFlags, w io.Writer) error {
	cfg, err := f.hsmConfig()
	if err != nil {
		return err
	}
	slots, err := hsm.ListSlots(cfg.Module)
	if err != nil {
		return err
	}
	for _, s := range slots {
		if !s.TokenPresent {
			fmt.Fprintf(w, "slot %d: %s: no token\n", s.SlotID, s.Description)
			continue
		}
		var flags []string
		for _, fl := range []struct {
			on   bool
			name string
		}{{!s.Initialized, "not-initialized"}, {!s.PINInitialized && s.Initialized, "pin-not-initialized"},
			{s.PINCountLow, "pin-count-low"}, {s.PINFinalTry, "pin-final-try"}, {s.PINLocked, "pin-locked"}} {
			if fl.on {
				flags = append(flags, fl.name)
			}
		}
		serial := fmt.Sprintf("%q", s.Serial)
		if !s.SerialUnique {
			serial += " (not unique: select by label)"
		}
		fmt.Fprintf(w, "slot %d: token %q serial %s (%s %s)", s.SlotID, s.Label, serial, s.Manufacturer, s.Model)
		if len(flags) > 0 {
			fmt.Fprintf(w, " [%s]", strings.Join(flags, " "))
		}
		fmt.Fprintln(w)
	}
	if (cfg.TokenLabel == "" && cfg.TokenSerial == "") || cfg.PINFile == "" {
		return nil
	}
	tok, err := hsm.Open(cfg)
	if err != nil {
		return err
	}
	defer tok.Close()
	objs, err := tok.Objects()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "objects on token %q:\n", tok.Label())
	for _, o := range objs {
		fmt.Fprintf(w, "  %-11s label %q id %s", o.Class, o.Label, hexOrDash(o.ID))
		switch {
		case o.Attributes != nil:
			a := o.Attributes
			fmt.Fprintf(w, " %s sensitive=%t extractable=%t always-authenticate=%t", o.KeyType, a.Sensitive, a.Extractable, a.AlwaysAuthenticate)
		case o.Certificate != nil:
			c := o.Certificate
			fmt.Fprintf(w, " subject %q issuer %q serial %s not-after %s", c.Subject.String(), c.Issuer.String(), c.SerialNumber.Text(16), c.NotAfter.UTC().Format("2006-01-02"))
		case o.KeyType != "":
			fmt.Fprintf(w, " %s", o.KeyType)
		}
		fmt.Fprintln(w)
	}
	return nil
}

func hexOrDash(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	return hex.EncodeToString(b)
}

func tokenGenerate(f *tokenFlags, typ string, bits int, curveName string, w io.Writer) error {
	ref, err := f.keyRef()
	if err != nil {
		return err
	}
	if len(ref.ID) == 0 {
		return errors.New("-id is required: it links the key to its certificate")
	}
	var curve elliptic.Curve
	switch typ {
	case "rsa":
	case "ec":
		switch curveName {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return fmt.Errorf("-curve %q: want P-256, P-384 or P-521", curveName)
		}
	default:
		return fmt.Errorf("-type %q: want rsa or ec", typ)
	}
	tok, err := openToken(f)
	if err != nil {
		return err
	}
	defer tok.Close()
	if typ == "rsa" {
		_, err = tok.GenerateRSA(ref, bits)
	} else {
		_, err = tok.GenerateEC(ref, curve)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "generated %s key %v on token %q (sensitive, not extractable)\n", strings.ToUpper(typ), ref, tok.Label())
	return nil
}

// parseSubject parses "CN=a,O=b,OU=c,L=d,ST=e,C=f" (commas inside values escaped as "\,").
func parseSubject(s string) (pkix.Name, error) {
	var n pkix.Name
	if strings.TrimSpace(s) == "" {
		return n, errors.New("-subject is required")
	}
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case s[i] == ',':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	parts = append(parts, cur.String())
	for _, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		k, v = strings.ToUpper(strings.TrimSpace(k)), strings.TrimSpace(v)
		if !ok || v == "" {
			return n, fmt.Errorf("-subject: %q is not KEY=VALUE", p)
		}
		switch k {
		case "CN":
			n.CommonName = v
		case "O":
			n.Organization = append(n.Organization, v)
		case "OU":
			n.OrganizationalUnit = append(n.OrganizationalUnit, v)
		case "L":
			n.Locality = append(n.Locality, v)
		case "ST":
			n.Province = append(n.Province, v)
		case "C":
			n.Country = append(n.Country, v)
		default:
			return n, fmt.Errorf("-subject: unsupported attribute %q (CN, O, OU, L, ST, C)", k)
		}
	}
	return n, nil
}

func tokenCSR(f *tokenFlags, subject string, dns []string, out string, stdout io.Writer) error {
	ref, err := f.keyRef()
	if err != nil {
		return err
	}
	name, err := parseSubject(subject)
	if err != nil {
		return err
	}
	tok, err := openToken(f)
	if err != nil {
		return err
	}
	defer tok.Close()
	signer, err := tok.KeySigner(ref)
	if err != nil {
		return err
	}
	tmpl := &x509.CertificateRequest{Subject: name, DNSNames: dns}
	if _, ok := signer.Public().(*rsa.PublicKey); ok {
		tmpl.SignatureAlgorithm = x509.SHA256WithRSA
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, signer)
	if err != nil {
		return fmt.Errorf("certificate request: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return err
	}
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("certificate request: the token's signature does not verify: %w", err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	if out == "-" {
		_, err = stdout.Write(pemBytes)
		return err
	}
	return os.WriteFile(out, pemBytes, 0o644)
}

func tokenImportCert(f *tokenFlags, certFile string, w io.Writer) error {
	ref, err := f.keyRef()
	if err != nil {
		return err
	}
	if certFile == "" {
		return errors.New("-cert is required")
	}
	chain, err := config.ReadCertificates(certFile)
	if err != nil {
		return err
	}
	tok, err := openToken(f)
	if err != nil {
		return err
	}
	defer tok.Close()
	if err := tok.ImportChain(ref, chain); err != nil {
		return err
	}
	fmt.Fprintf(w, "imported %d certificate(s) for key %v on token %q\n", len(chain), ref, tok.Label())
	return nil
}

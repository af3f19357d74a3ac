package daemon

import (
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"text/template"
	"time"

	"github.com/wssignd/wssignd/hsm"
)

// devKey is a key of the development token.
type devKey struct {
	Name string // key name in the config, also its CKA_LABEL
	ID   []byte
	RSA  bool
	CN   string
}

var devKeys = []devKey{
	{Name: "dev-rsa", ID: []byte{0x01}, RSA: true, CN: "wssignd development RSA"},
	{Name: "dev-ec", ID: []byte{0x02}, CN: "wssignd development EC P-256"},
}

const devTokenLabel = "wssignd-dev"

// devToken creates (or reuses) the development token of the given kind under dir and returns
// its module and PIN file. For a TPM, $TPM2_PKCS11_TCTI names the TPM and $TPM2_PKCS11_STORE the
// tpm2-pkcs11 store (default dir/store); both must reach the daemon's environment too.
func devToken(dir, kind string) (module, pinFile string, err error) {
	if kind == "tpm" {
		tcti := os.Getenv("TPM2_PKCS11_TCTI")
		if tcti == "" {
			return "", "", errors.New("TPM2_PKCS11_TCTI is not set: run scripts/dev-tpm.sh DIR and source DIR/env, or set it (device:/dev/tpmrm0 for the host TPM)")
		}
		store := os.Getenv("TPM2_PKCS11_STORE")
		if store == "" {
			store = filepath.Join(dir, "store")
			if err := os.Setenv("TPM2_PKCS11_STORE", store); err != nil {
				return "", "", err
			}
		}
		tt, err := hsm.InitTPMToken(store, tcti, devTokenLabel)
		if err != nil {
			return "", "", err
		}
		return tt.Module, tt.PINFile, nil
	}
	module, err = hsm.SoftHSMModule()
	if err != nil {
		return "", "", err
	}
	st, err := hsm.InitSoftHSMToken(filepath.Join(dir, "softhsm"), devTokenLabel)
	if err != nil {
		return "", "", err
	}
	if err := os.Setenv("SOFTHSM2_CONF", st.ConfigFile); err != nil {
		return "", "", err
	}
	return module, st.PINFile, nil
}

// DevSetup creates (or reuses) a development token of the given kind ("softhsm" or "tpm")
// with an RSA and an EC key generated on the token, each with a self-signed certificate on the
// token, exports the certificates to dir/certs, and writes dir/wssignd.toml unless it exists.
func DevSetup(dir, socket, kind string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if socket, err = filepath.Abs(socket); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	module, pinFile, err := devToken(dir, kind)
	if err != nil {
		return err
	}
	tok, err := hsm.Open(hsm.Config{Module: module, TokenLabel: devTokenLabel, PINFile: pinFile})
	if err != nil {
		return err
	}
	defer tok.Close()
	certDir := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certDir, 0o755); err != nil {
		return err
	}
	for _, k := range devKeys {
		ref := hsm.KeyRef{Label: k.Name, ID: k.ID}
		key, err := tok.FindKey(ref)
		if errors.Is(err, hsm.ErrKeyNotFound) {
			var signer crypto.Signer
			if k.RSA {
				signer, err = tok.GenerateRSA(ref, 2048)
			} else {
				signer, err = tok.GenerateEC(ref, elliptic.P256())
			}
			if err != nil {
				return fmt.Errorf("generating %s: %w", k.Name, err)
			}
			cert, err := hsm.SelfSignedCertificate(signer, k.CN, 3*365*24*time.Hour)
			if err != nil {
				return fmt.Errorf("certificate for %s: %w", k.Name, err)
			}
			if err := tok.ImportCertificate(ref, cert); err != nil {
				return fmt.Errorf("importing certificate for %s: %w", k.Name, err)
			}
			fmt.Printf("generated %s on %s token %s (private key non-extractable)\n", k.Name, kind, devTokenLabel)
			if key, err = tok.FindKey(ref); err != nil {
				return fmt.Errorf("%s after generation: %w", k.Name, err)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k.Name, err)
		}
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: key.Chain[0].Raw})
		if err := os.WriteFile(filepath.Join(certDir, k.Name+".pem"), pemBytes, 0o644); err != nil {
			return err
		}
	}
	cfgPath := filepath.Join(dir, "wssignd.toml")
	if _, err := os.Stat(cfgPath); err == nil {
		fmt.Printf("keeping existing %s\n", cfgPath)
		return nil
	}
	u, err := user.Current()
	if err != nil {
		return err
	}
	pwPath, err := devPassword(dir)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(cfgPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = devConfig.Execute(f, map[string]any{
		"Socket": socket, "StateDir": filepath.Join(dir, "state"), "Module": module,
		"Label": devTokenLabel, "PINFile": pinFile, "User": u.Username, "PasswordFile": pwPath,
		"Kind": map[string]string{"softhsm": "SoftHSM2", "tpm": "TPM 2.0 (tpm2-pkcs11)"}[kind],
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s\n", cfgPath)
	return nil
}

// devPassword writes a random UsernameToken password for the dev config
// (mode 0600) unless one exists, and returns its path.
func devPassword(dir string) (string, error) {
	path := filepath.Join(dir, "dev-ut-password")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(base64.RawURLEncoding.EncodeToString(b[:])+"\n"), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

var devConfig = template.Must(template.New("dev").Parse(`# wssignd development configuration, written by "wssignd dev-setup".
# Keys live on the {{.Kind}} token below; they were generated on the token and
# cannot be extracted. Edit freely: dev-setup never overwrites this file.

socket = "{{.Socket}}"
socket_mode = "0600"
state_dir = "{{.StateDir}}"
log_level = "info"

# PKCS#11 modules are native code: only these may be loaded.
modules = ["{{.Module}}"]

[limits]
max_body_bytes = 16777216
request_timeout = "30s"

[tokens.dev]
module = "{{.Module}}"
label = "{{.Label}}"
pin_file = "{{.PINFile}}"

[keys.dev-rsa]
token = "dev"
label = "dev-rsa"
id = "01"
raw_sign_users = ["{{.User}}"]   # POST /v1/keys/dev-rsa/sign

[keys.dev-ec]
token = "dev"
label = "dev-ec"
id = "02"
raw_sign_users = ["{{.User}}"]

# One profile per signing preset (see README "Signing presets"); each
# starts from the preset and could override any setting.
#
# default = bsp-default: Body, Timestamp and BinarySecurityToken signed, the
# BinarySecurityToken by direct reference, RSA-SHA256, SHA-256 digests,
# Timestamp valid 300 s.
[profiles.default]
key = "dev-rsa"
preset = "bsp-default"
allow_users = ["{{.User}}"]

[profiles.bsp-default]
key = "dev-rsa"
preset = "bsp-default"
allow_users = ["{{.User}}"]

# SOAP 1.1 only; Body, WS-Addressing headers and Timestamp signed.
[profiles.digikoppeling]
key = "dev-rsa"
preset = "digikoppeling"
allow_users = ["{{.User}}"]

# A Digikoppeling service provider's responses: each sign call passes the
# request's SignatureValue(s) in the Wssignd-Signature-Confirmation header
# (or "unsigned"); the response confirms them in signed
# wsse11:SignatureConfirmation elements.
[profiles.digikoppeling-response]
key = "dev-rsa"
preset = "digikoppeling"
signature_confirmation = true
allow_users = ["{{.User}}"]

# SOAP 1.1 only; BinarySecurityToken, Timestamp and Body signed; 60 s.
[profiles.ehealth-be]
key = "dev-rsa"
preset = "ehealth-be"
allow_users = ["{{.User}}"]

# SOAP 1.2 only; only wsa:To signed, Timestamp unsigned and first, with
# milliseconds, PrefixLists, no mustUnderstand.
[profiles.dian-co]
key = "dev-rsa"
preset = "dian-co"
allow_users = ["{{.User}}"]

# SOAP 1.1 only; Timestamp first, milliseconds; Timestamp only, RSA-SHA1
# and SHA-1: legacy, opted in by the preset.
[profiles.sat-mx]
key = "dev-rsa"
preset = "sat-mx"
allow_users = ["{{.User}}"]

# SOAP 1.1 only; Timestamp and Body signed by References without
# Transforms, RSA-SHA512; Timestamp last, 60 s, "+00:00" times.
[profiles.face-es]
key = "dev-rsa"
preset = "face-es"
allow_users = ["{{.User}}"]

# SOAP 1.1 only; Timestamp, ACATransmitterManifestReqDtl and
# ACABusinessHeader signed (not the Body); the certificate in a
# KeyIdentifier; Timestamp valid 600 s.
[profiles.irs-aca]
key = "dev-rsa"
preset = "irs-aca"
allow_users = ["{{.User}}"]

# A UsernameToken with a PasswordText password and nothing else: no
# signature, so no key.
[profiles.sunat-pe]
preset = "sunat-pe"
username = "20123456789MODDATOS"
password_file = "{{.PasswordFile}}"
allow_users = ["{{.User}}"]

# One profile per token reference. Only "direct" needs the
# BinarySecurityToken, so the others sign Body and Timestamp.
[profiles.ref-direct]
key = "dev-rsa"
token_reference = "direct"
parts = ["Body", "Timestamp", "BinarySecurityToken"]
allow_users = ["{{.User}}"]

[profiles.ref-issuer-serial]
key = "dev-rsa"
token_reference = "issuer-serial"
allow_users = ["{{.User}}"]

[profiles.ref-ski]
key = "dev-rsa"
token_reference = "ski"
allow_users = ["{{.User}}"]

[profiles.ref-thumbprint]
key = "dev-rsa"
token_reference = "thumbprint"
include_bst = true
allow_users = ["{{.User}}"]

[profiles.ref-x509-key-identifier]
key = "dev-rsa"
token_reference = "x509-key-identifier"
allow_users = ["{{.User}}"]

# The BinarySecurityToken as an X509PKIPathv1 (the whole chain).
[profiles.ref-pkipath]
key = "dev-rsa"
bst_value_type = "X509PKIPathv1"
parts = ["Body", "Timestamp", "BinarySecurityToken"]
allow_users = ["{{.User}}"]

# ECDSA P-256: ECDSA-SHA256 (r||s), SHA-256 digests.
[profiles.ecdsa-p256]
key = "dev-ec"
parts = ["Body", "Timestamp"]
allow_users = ["{{.User}}"]

# RSASSA-PSS, MGF1 with SHA-256, salt 32 bytes (RFC 6931 sha256-rsa-MGF1).
[profiles.rsa-pss]
key = "dev-rsa"
signature_method = "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"
allow_users = ["{{.User}}"]

# A UsernameToken (PasswordDigest) signed with the Body and the Timestamp;
# the password file was generated by dev-setup.
[profiles.username-token]
key = "dev-rsa"
preset = "bsp-default"
parts = ["Body", "Timestamp", "UsernameToken"]
username = "dev"
password_file = "{{.PasswordFile}}"
allow_users = ["{{.User}}"]

# Verification: messages signed with the development keys, Body and
# Timestamp signed, SHA-2 only, fresh Timestamp, no replay. The default
# sign profile does not sign WS-Addressing headers, so they may be unsigned
# here; remove allow_unsigned_addressing to require them signed when present.
[verify.default]
trusted_certs = ["certs/dev-rsa.pem", "certs/dev-ec.pem"]
parts = ["Body", "Timestamp"]
allow_unsigned_addressing = true
allow_users = ["{{.User}}"]

# Encryption for the development RSA certificate, or for the certificate a
# request sends in Wssignd-Recipient-Cert: AES-256-GCM, the key wrapped with
# RSA-OAEP (SHA-256, MGF1-SHA-256). SoftHSM2 2.6 cannot unwrap that OAEP
# itself; wssignd then decrypts with raw RSA inside the token and decodes
# OAEP in constant time.
[encrypt.default]
recipient_cert = "certs/dev-rsa.pem"
allow_recipient_header = true
allow_users = ["{{.User}}"]

# Sign, then encrypt the signed Body for the encrypt profile's recipient
# (the Signature stays valid after decryption); and the other order.
[profiles.sign-then-encrypt]
key = "dev-rsa"
preset = "bsp-default"
encrypt = "default"
allow_users = ["{{.User}}"]

[profiles.encrypt-then-sign]
key = "dev-rsa"
preset = "bsp-default"
encrypt = "default"
encrypt_before_sign = true
allow_users = ["{{.User}}"]

# Decryption with the development RSA key, inside the token.
[decrypt.default]
key = "dev-rsa"
allow_users = ["{{.User}}"]
`))

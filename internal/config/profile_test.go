package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const profileBase = `
modules = ["/usr/lib/softhsm/libsofthsm2.so"]
[tokens.t]
module = "/usr/lib/softhsm/libsofthsm2.so"
label = "dev"
pin_file = "/dev/null"
[keys.k]
token = "t"
id = "01"
[profiles.p]
key = "k"
allow_users = ["*"]
`

func TestProfileSettings(t *testing.T) {
	c, err := Parse("/etc/wssignd/w.toml", []byte(profileBase+`
preset = "dian-co"
token_reference = "issuer-serial"
include_bst = true
bst_value_type = "X509PKIPathv1"
inclusive_prefixes = false
timestamp_millis = true
timestamp_expires = false
actor = "urn:a"
layout = "timestamp-last"
soap_version = "1.2"
username = "u"
password_file = "pw"
password_type = "text"
allow_sha1 = false
`))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Profiles["p"]
	if p.Preset != "dian-co" || p.TokenReference != "issuer-serial" || *p.IncludeBST != true || p.BSTValueType != "X509PKIPathv1" ||
		*p.InclusivePrefixes != false || *p.TimestampMillis != true || *p.TimestampExpires != false || p.Actor != "urn:a" ||
		p.Layout != "timestamp-last" || p.SOAPVersion != "1.2" || p.Username != "u" || p.PasswordFile != "pw" ||
		p.PasswordType != "text" || p.AllowSHA1 == nil || *p.AllowSHA1 {
		t.Errorf("settings not decoded: %+v", p)
	}
	// With a preset, unset parts and TTL stay unset: the preset supplies them.
	if p.Parts != nil || p.TimestampTTL.Duration != 0 {
		t.Errorf("defaults applied over a preset: %v %v", p.Parts, p.TimestampTTL)
	}
	// Without a preset the historical defaults apply.
	c, err = Parse("w.toml", []byte(profileBase))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Profiles["p"]; strings.Join(p.Parts, ",") != "Body,Timestamp" || p.TimestampTTL.Duration != 300*time.Second || p.AllowSHA1 != nil {
		t.Errorf("defaults: %+v", p)
	}
}

func TestProfileValidation(t *testing.T) {
	for _, tc := range []struct {
		name, extra, want string
	}{
		{"unknown preset", `preset = "wsi"`, `profiles.p.preset: "wsi" is not one of`},
		{"unknown token reference", `token_reference = "KeyName"`, "profiles.p.token_reference"},
		{"unknown layout", `layout = "lax"`, "profiles.p.layout"},
		{"unknown bst type", `bst_value_type = "PKCS7"`, "profiles.p.bst_value_type"},
		{"unknown soap version", `soap_version = "1.0"`, "profiles.p.soap_version"},
		{"unknown password type", `password_type = "hash"` + "\n" + `username = "u"` + "\n" + `password_file = "f"`, "profiles.p.password_type"},
		{"username without password file", `username = "u"`, "username and password_file go together"},
		{"password file without username", `password_file = "f"`, "username and password_file go together"},
		{"password type alone", `password_type = "text"`, "needs username"},
		{"ttl too short", `timestamp_ttl = "10ms"`, "timestamp_ttl: must be at least 1s"},
		{"bad part", `parts = ["{urn:x}"]`, "profiles.p.parts[0]"},
		{"unknown setting", `token_ref = "ski"`, "unknown setting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("w.toml", []byte(profileBase+tc.extra+"\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestReadPassword(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "w.toml")
	write := func(name, content string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("ok", "pa ss\r\n", 0o600)
	write("two-lines", "pa\nss\n\n", 0o400)
	write("loose", "topsecret\n", 0o640)
	write("empty", "\n", 0o600)
	for _, tc := range []struct {
		file, want, err string
	}{
		{"ok", "pa ss", ""},
		{filepath.Join(dir, "ok"), "pa ss", ""},
		{"two-lines", "pa\nss\n", ""},
		{"loose", "", "chmod go-rwx"},
		{"empty", "", "is empty"},
		{"missing", "", "password_file"},
		{"", "", ""},
	} {
		got, err := (&Profile{PasswordFile: tc.file}).ReadPassword(cfg)
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("%s: got %q, %v; want %q", tc.file, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: err %v, want %q", tc.file, err, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

func TestProfileHeaderSettings(t *testing.T) {
	c, err := Parse("w.toml", []byte(profileBase+`
timestamp_zone = "+00:00"
timestamp = false
reference_transforms = false
must_understand = false
`))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Profiles["p"]
	if p.TimestampZone != "+00:00" || !isFalse(p.Timestamp) || !isFalse(p.ReferenceTransforms) || !isFalse(p.MustUnderstand) || p.Signature != nil {
		t.Errorf("settings not decoded: %+v", p)
	}
	// Without a Timestamp, the default parts are the Body alone.
	if strings.Join(p.Parts, ",") != "Body" {
		t.Errorf("default parts without a Timestamp: %v", p.Parts)
	}
	if !p.NeedsKey() {
		t.Error("a signing profile needs no key")
	}

	// A profile that does not sign needs no key and gets no parts.
	keyless := strings.Replace(profileBase, `key = "k"`+"\n", "", 1)
	for _, extra := range []string{
		"signature = false\nusername = \"u\"\npassword_file = \"pw\"\n",
		"preset = \"sunat-pe\"\nusername = \"u\"\npassword_file = \"pw\"\n",
	} {
		c, err := Parse("w.toml", []byte(keyless+extra))
		if err != nil {
			t.Fatalf("%q: %v", extra, err)
		}
		if p := c.Profiles["p"]; p.NeedsKey() || p.Parts != nil {
			t.Errorf("%q: needs a key %v, parts %v", extra, p.NeedsKey(), p.Parts)
		}
	}
	if _, err := Parse("w.toml", []byte(keyless+`preset = "bsp-default"`+"\n")); err == nil || !strings.Contains(err.Error(), "profiles.p.key") {
		t.Errorf("a signing profile without a key: %v", err)
	}

	for _, tc := range []struct{ name, extra, want string }{
		{"bad zone", `timestamp_zone = "+01:00"`, "profiles.p.timestamp_zone"},
		{"parts without signature", "signature = false\nparts = [\"Body\"]\nusername = \"u\"\npassword_file = \"pw\"", "profiles.p.parts: nothing is signed"},
		{"empty header", "signature = false\ntimestamp = false", "the Security header would be empty"},
		{"confirmation without signature", "signature = false\nsignature_confirmation = true\nusername = \"u\"\npassword_file = \"pw\"", "profiles.p.signature_confirmation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("w.toml", []byte(profileBase+tc.extra+"\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// TestAnyNamespacePart: "{*}local" is a signing profile's part; verify and
// encrypt profiles, which match exact QNames, refuse it.
func TestAnyNamespacePart(t *testing.T) {
	space, local, _, err := ParsePart("{*}ACATransmitterManifestReqDtl")
	if err != nil || space != AnyNamespace || local != "ACATransmitterManifestReqDtl" {
		t.Fatalf("ParsePart: %q %q %v", space, local, err)
	}
	if _, err := Parse("w.toml", []byte(profileBase+`parts = ["Timestamp", "{*}X"]`+"\n")); err != nil {
		t.Errorf("signing profile: %v", err)
	}
	has := func(probs []string, want string) bool {
		for _, p := range probs {
			if strings.Contains(p, want) {
				return true
			}
		}
		return false
	}
	if probs := (&VerifyProfile{Parts: []string{"{*}X"}}).validate("verify.v", &Config{}); !has(probs, "verify.v.parts[0]") {
		t.Errorf("verify profile: %v", probs)
	}
	if probs := (&EncryptProfile{Parts: []string{"{*}X"}}).validate("encrypt.e", &Config{}); !has(probs, "encrypt.e.parts[0]") {
		t.Errorf("encrypt profile: %v", probs)
	}
}

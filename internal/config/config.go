// Package config loads and validates the wssignd TOML configuration.
//
// Load reads one file and reports every problem it finds at once, each naming
// the file and the field, so that an operator fixes a config in one round.
// The struct field comments below are the reference for every setting.
package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/wssignd/wssignd/internal/defs"
)

// Config is the whole configuration file.
type Config struct {
	// Socket is the path of the Unix socket to listen on when systemd does
	// not pass one; a relative path is taken from the config file's
	// directory. Default /run/wssignd/wssignd.sock.
	Socket string `toml:"socket"`
	// SocketMode is the octal file mode of a socket wssignd creates itself.
	// Default "0660".
	SocketMode string `toml:"socket_mode"`
	// StateDir holds persistent state (e.g. PIN-rejected markers). Default
	// $STATE_DIRECTORY, else /var/lib/wssignd.
	StateDir string `toml:"state_dir"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `toml:"log_level"`
	// LogFormat is text or json. Default text.
	LogFormat string `toml:"log_format"`
	// AdminUsers and AdminGroups (names or numbers) may read the daemon's
	// details: every series of GET /metrics (token names and states, every
	// key's counts, the Go runtime and the process) and each token's state
	// in GET /readyz. Any other client of the socket gets from /metrics
	// only the series labelled with a key it may use (the access of
	// GET /v1/keys, plus decrypt profiles and raw signing), and from
	// /readyz only the verdict. Default (both empty): root, and the
	// daemon's own user and group (wssignd under the shipped unit): put a
	// Prometheus scraper in that group, or name it here.
	AdminUsers  []string `toml:"admin_users"`
	AdminGroups []string `toml:"admin_groups"`
	// Modules is the allow-list of PKCS#11 module paths a token may load.
	// PKCS#11 modules are native code: nothing else is ever loaded.
	Modules []string `toml:"modules"`
	// Limits bound every request.
	Limits Limits `toml:"limits"`
	// Tokens by name.
	Tokens map[string]*Token `toml:"tokens"`
	// Keys by name.
	Keys map[string]*Key `toml:"keys"`
	// Profiles by name: what a sign request may ask for.
	Profiles map[string]*Profile `toml:"profiles"`
	// Verify profiles by name: trust and rules for /v1/soap/verify.
	Verify map[string]*VerifyProfile `toml:"verify"`
	// Encrypt profiles by name, for /v1/soap/encrypt.
	Encrypt map[string]*EncryptProfile `toml:"encrypt"`
	// Decrypt profiles by name, for /v1/soap/decrypt.
	Decrypt map[string]*DecryptProfile `toml:"decrypt"`

	// File is the path the configuration was loaded from (not a setting).
	File string `toml:"-"`
}

// Limits bound requests.
type Limits struct {
	// MaxBodyBytes is the largest request body accepted. Default 16 MiB.
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// MaxDepth is the deepest element nesting accepted. 0 (or absent)
	// takes the XML engine's default, 256.
	MaxDepth int `toml:"max_depth"`
	// MaxElements is the most elements an envelope may have. 0 (or absent)
	// takes the XML engine's default, 1 000 000.
	MaxElements int `toml:"max_elements"`
	// RequestTimeout bounds each request, token wait included. Default 30s.
	RequestTimeout Duration `toml:"request_timeout"`
	// MaxConcurrent is the most requests worked on at once; more get 503
	// overloaded. A request takes its place only once its body is read, so
	// clients that send slowly do not hold places. Default 64.
	MaxConcurrent int `toml:"max_concurrent"`
	// MaxConcurrentPerPeer is the most requests one caller (uid) may have
	// in flight, body reading included; more get 503 too-many-requests.
	// Default max_concurrent / 4 (at least 1).
	MaxConcurrentPerPeer int `toml:"max_concurrent_per_peer"`
	// MaxInFlightBodyBytes bounds the request-body bytes held at once
	// (each body counts its Content-Length, or max_body_bytes without one);
	// more get 503 overloaded, and one caller may hold a quarter of it (at
	// least max_body_bytes; more get 503 too-many-requests). Memory per request is a small
	// multiple of its body, so this, not max_concurrent × max_body_bytes,
	// bounds the memory requests use. Default 8 × max_body_bytes (128 MiB);
	// at least max_body_bytes.
	MaxInFlightBodyBytes int64 `toml:"max_inflight_body_bytes"`
	// BodyIdleTimeout is how long a request body may make no progress;
	// the whole body must arrive within request_timeout. Slower bodies get
	// 408 body-timeout. Default 5s.
	BodyIdleTimeout Duration `toml:"body_idle_timeout"`
	// XMLLimits: max_attributes, max_namespaces_in_scope,
	// max_namespace_declarations, max_name_bytes, max_text_bytes and
	// max_attribute_value_bytes (see XMLLimits).
	XMLLimits
}

// Token is a PKCS#11 token.
type Token struct {
	// Module is the PKCS#11 module path; it must be listed in modules.
	Module string `toml:"module"`
	// Label selects the token by its label. Exactly one of label and serial.
	Label string `toml:"label"`
	// Serial selects the token by its serial number.
	Serial string `toml:"serial"`
	// PINFile is the file holding the user PIN. A relative path is taken
	// from the config file's directory. Either pin_file or pin_credential.
	PINFile string `toml:"pin_file"`
	// PINCredential names a systemd credential ($CREDENTIALS_DIRECTORY/NAME).
	PINCredential string `toml:"pin_credential"`
	// MaxSessions is the session pool size. Default 8.
	MaxSessions int `toml:"max_sessions"`
	// KeepAlive, when set, probes the token this often (sign and verify
	// with a key), so that an HSM that drops idle sessions, or a dead
	// link, is noticed and recovered before a request needs it.
	KeepAlive Duration `toml:"keep_alive"`
	// MaxCallsInFlight bounds the PKCS#11 calls in flight at once in the
	// token's module; a hung HSM holds at most this many threads. 0 means
	// the hsm default (64; 1 for p11-kit-client.so, whose client cannot
	// take concurrent calls across a server restart).
	MaxCallsInFlight int `toml:"max_calls_in_flight"`
}

// Key is a private key with its certificate on a token.
type Key struct {
	// Token is the name of a [tokens.NAME] table.
	Token string `toml:"token"`
	// Label is the key's CKA_LABEL. At least one of label and id.
	Label string `toml:"label"`
	// ID is the key's CKA_ID in hex.
	ID string `toml:"id"`
	// URI is an RFC 7512 pkcs11: URI of the key (object and/or id), e.g.
	// "pkcs11:object=invoice-sig;id=%01", instead of label and id. Its
	// token, serial, manufacturer and model, if given, must match the key's
	// token table.
	URI string `toml:"uri"`
	// RawSignUsers and RawSignGroups (names or numbers) may use
	// POST /v1/keys/NAME/sign to sign digests of their own making; empty
	// means no one. "*" in users allows every client of the socket.
	RawSignUsers  []string `toml:"raw_sign_users"`
	RawSignGroups []string `toml:"raw_sign_groups"`
}

// Duration is a time.Duration written as a string such as "300s" or "1m".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Error lists every problem found in one configuration file.
type Error struct {
	File     string
	Problems []string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %d problem(s):\n  %s", e.File, len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// Load reads, defaults and validates the configuration at path. A file that
// group or others may write is refused: it controls which native modules load.
func Load(path string) (*Config, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, &Error{File: path, Problems: []string{fmt.Sprintf("file mode %04o lets group or others write it; chmod go-w", fi.Mode().Perm())}}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates configuration bytes; path names the file in
// errors and anchors relative paths.
func Parse(path string, data []byte) (*Config, error) {
	c := &Config{File: path}
	md, err := toml.Decode(string(data), c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: path, Problems: []string{fmt.Sprintf("line %d: %s", pe.Position.Line, pe.Message)}}
		}
		return nil, &Error{File: path, Problems: []string{err.Error()}}
	}
	var probs []string
	for _, k := range md.Undecoded() {
		probs = append(probs, fmt.Sprintf("%s: unknown setting", k))
	}
	c.defaults()
	probs = append(probs, c.validate()...)
	if len(probs) > 0 {
		return nil, &Error{File: path, Problems: probs}
	}
	return c, nil
}

func (c *Config) defaults() {
	if c.Socket == "" {
		c.Socket = "/run/wssignd/wssignd.sock"
	}
	if c.SocketMode == "" {
		c.SocketMode = "0660"
	}
	if c.StateDir == "" {
		c.StateDir = os.Getenv("STATE_DIRECTORY")
		if c.StateDir == "" {
			c.StateDir = "/var/lib/wssignd"
		}
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	l := &c.Limits
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = defs.MaxBodyBytes
	}
	if l.RequestTimeout.Duration == 0 {
		l.RequestTimeout.Duration = defs.RequestTimeout
	}
	if l.MaxConcurrent == 0 {
		l.MaxConcurrent = defs.MaxConcurrent
	}
	if l.MaxConcurrentPerPeer == 0 {
		l.MaxConcurrentPerPeer = max(1, l.MaxConcurrent/4)
	}
	if l.MaxInFlightBodyBytes == 0 {
		l.MaxInFlightBodyBytes = 8 * l.MaxBodyBytes
	}
	if l.BodyIdleTimeout.Duration == 0 {
		l.BodyIdleTimeout.Duration = 5 * time.Second
	}
	dir := filepath.Dir(c.File)
	if !filepath.IsAbs(c.Socket) {
		c.Socket = filepath.Join(dir, c.Socket)
	}
	for _, t := range c.Tokens {
		if t.MaxSessions == 0 {
			t.MaxSessions = 8
		}
		if t.PINFile != "" && !filepath.IsAbs(t.PINFile) {
			t.PINFile = filepath.Join(dir, t.PINFile)
		}
	}
	for _, p := range c.Profiles {
		p.defaults()
	}
	for _, p := range c.Verify {
		p.defaults(dir)
	}
	for _, p := range c.Encrypt {
		p.defaults(dir)
	}
	for _, p := range c.Decrypt {
		p.defaults(dir)
	}
}

func (c *Config) validate() []string {
	var probs []string
	bad := func(field, format string, args ...any) {
		probs = append(probs, field+": "+fmt.Sprintf(format, args...))
	}
	if _, err := c.SocketFileMode(); err != nil {
		bad("socket_mode", "%v", err)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		bad("log_level", "must be debug, info, warn or error, not %q", c.LogLevel)
	}
	if !slices.Contains([]string{"text", "json"}, c.LogFormat) {
		bad("log_format", "must be text or json, not %q", c.LogFormat)
	}
	for i, m := range c.Modules {
		if !filepath.IsAbs(m) {
			bad(fmt.Sprintf("modules[%d]", i), "module path %q must be absolute", m)
		}
	}
	l := c.Limits
	if l.MaxBodyBytes < 1024 {
		bad("limits.max_body_bytes", "must be at least 1024")
	}
	if l.MaxDepth != 0 && l.MaxDepth < 8 {
		bad("limits.max_depth", "must be 0 (the default) or at least 8")
	}
	if l.MaxElements != 0 && l.MaxElements < 16 {
		bad("limits.max_elements", "must be 0 (the default) or at least 16")
	}
	if l.RequestTimeout.Duration < 0 {
		bad("limits.request_timeout", "must be positive")
	}
	if l.MaxConcurrent < 1 {
		bad("limits.max_concurrent", "must be at least 1")
	}
	if l.MaxConcurrentPerPeer < 1 {
		bad("limits.max_concurrent_per_peer", "must be at least 1")
	}
	if l.MaxInFlightBodyBytes < l.MaxBodyBytes {
		bad("limits.max_inflight_body_bytes", "must be at least max_body_bytes (%d)", l.MaxBodyBytes)
	}
	if l.BodyIdleTimeout.Duration < 100*time.Millisecond {
		bad("limits.body_idle_timeout", "must be at least 100ms")
	}
	l.XMLLimits.validate(bad)
	for _, name := range slices.Sorted(maps.Keys(c.Tokens)) {
		t := c.Tokens[name]
		f := "tokens." + name
		if t.Module == "" {
			bad(f+".module", "missing")
		} else if !slices.Contains(c.Modules, t.Module) {
			bad(f+".module", "%q is not in the modules allow-list", t.Module)
		}
		if (t.Label == "") == (t.Serial == "") {
			bad(f, "set exactly one of label and serial")
		}
		if (t.PINFile == "") == (t.PINCredential == "") {
			bad(f, "set exactly one of pin_file and pin_credential")
		}
		if t.PINFile != "" {
			if _, err := os.Stat(t.PINFile); err != nil {
				bad(f+".pin_file", "%v", errors.Unwrap(err))
			}
		}
		if t.PINCredential != "" && strings.ContainsAny(t.PINCredential, "/\x00") {
			bad(f+".pin_credential", "must be a plain credential name")
		}
		if t.MaxSessions < 2 {
			bad(f+".max_sessions", "must be at least 2")
		}
		if t.KeepAlive.Duration != 0 && t.KeepAlive.Duration < time.Second {
			bad(f+".keep_alive", "must be at least 1s (or unset)")
		}
		if t.MaxCallsInFlight < 0 {
			bad(f+".max_calls_in_flight", "must not be negative")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Keys)) {
		k := c.Keys[name]
		f := "keys." + name
		if _, ok := c.Tokens[k.Token]; !ok {
			bad(f+".token", "no token named %q", k.Token)
		}
		switch {
		case k.URI != "" && (k.Label != "" || k.ID != ""):
			bad(f, "set uri, or label and id, not both")
		case k.URI != "" && !strings.HasPrefix(k.URI, "pkcs11:"):
			bad(f+".uri", "must be a pkcs11: URI (RFC 7512)")
		case k.URI == "" && k.Label == "" && k.ID == "":
			bad(f, "set label, id or both (or uri)")
		}
		if tok, ok := c.Tokens[k.Token]; ok && k.URI != "" {
			if v, ok := uriAttr(k.URI, "token"); ok && tok.Label != "" && v != tok.Label {
				bad(f+".uri", "names token %q but tokens.%s has label %q", v, k.Token, tok.Label)
			}
			if v, ok := uriAttr(k.URI, "serial"); ok && tok.Serial != "" && v != tok.Serial {
				bad(f+".uri", "names serial %q but tokens.%s has serial %q", v, k.Token, tok.Serial)
			}
		}
		if _, err := k.IDBytes(); err != nil {
			bad(f+".id", "%v", err)
		}
	}
	if len(c.Profiles) == 0 {
		bad("profiles", "no profile is configured")
	}
	for _, name := range slices.Sorted(maps.Keys(c.Profiles)) {
		p := c.Profiles[name]
		if _, ok := c.Keys[p.Key]; !ok && (p.Key != "" || p.NeedsKey()) {
			bad("profiles."+name+".key", "no key named %q", p.Key)
		}
		probs = append(probs, p.validate("profiles."+name)...)
		if _, ok := c.Encrypt[p.Encrypt]; p.Encrypt != "" && !ok {
			bad("profiles."+name+".encrypt", "no encrypt profile named %q", p.Encrypt)
		}
		if p.EncryptBeforeSign && p.Encrypt == "" {
			bad("profiles."+name+".encrypt_before_sign", "needs encrypt")
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Verify)) {
		probs = append(probs, c.Verify[name].validate("verify."+name, c)...)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Encrypt)) {
		probs = append(probs, c.Encrypt[name].validate("encrypt."+name, c)...)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Decrypt)) {
		probs = append(probs, c.Decrypt[name].validate("decrypt."+name, c)...)
	}
	return probs
}

// SocketFileMode parses SocketMode.
func (c *Config) SocketFileMode() (fs.FileMode, error) {
	var m uint32
	if _, err := fmt.Sscanf(c.SocketMode, "%o", &m); err != nil || m > 0o777 {
		return 0, fmt.Errorf("%q is not an octal file mode", c.SocketMode)
	}
	return fs.FileMode(m), nil
}

// IDBytes decodes the hex CKA_ID (":" separators allowed).
func (k *Key) IDBytes() ([]byte, error) {
	if k.ID == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(strings.ReplaceAll(k.ID, ":", ""))
	if err != nil {
		return nil, fmt.Errorf("%q is not hex", k.ID)
	}
	return b, nil
}

// uriAttr returns a path attribute of a pkcs11: URI, percent-decoded.
func uriAttr(uri, name string) (string, bool) {
	path, _, _ := strings.Cut(strings.TrimPrefix(uri, "pkcs11:"), "?")
	for _, a := range strings.Split(path, ";") {
		if k, v, ok := strings.Cut(a, "="); ok && k == name {
			if d, err := url.PathUnescape(v); err == nil {
				return d, true
			}
			return v, true
		}
	}
	return "", false
}

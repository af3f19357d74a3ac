package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wssignd/wssignd/hsm/hsmtest"
	"github.com/wssignd/wssignd/internal/testutil"
)

// requireRootSetpriv stops the test unless it runs as root with setpriv
// available: t.Fatal in CI, t.Skip elsewhere.
func requireRootSetpriv(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		msg := "peer-credential tests need root, to run clients as other uids"
		if testutil.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return testutil.RequireTool(t, "setpriv", "util-linux")
}

// unusedIDs returns n uids that no passwd entry and no group entry name:
// real kernel identities that nothing else on the host owns.
func unusedIDs(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	for id := 61000 + os.Getpid()%1000; len(out) < n && id < 65000; id++ {
		_, uerr := user.LookupId(strconv.Itoa(id))
		_, gerr := user.LookupGroupId(strconv.Itoa(id))
		var unk user.UnknownUserIdError
		var unkg user.UnknownGroupIdError
		if errors.As(uerr, &unk) && errors.As(gerr, &unkg) {
			out = append(out, id)
		}
	}
	if len(out) < n {
		t.Fatalf("found only %d unused ids", len(out))
	}
	return out
}

// buildWssign builds the wssign CLI into a directory every user can read.
func buildWssign(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not found to build wssign: %v", err)
	}
	dir, err := os.MkdirTemp("", "wsbin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "wssign")
	cmd := exec.Command(gobin, "build", "-o", bin, "./cmd/wssign")
	cmd.Dir = testutil.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/wssign: %v\n%s", err, out)
	}
	return bin
}

// authConfig: two users each with their own profile and raw-sign key, a
// profile open to a group, and a socket every local user can connect to
// (so only the daemon's authorisation stands between them and the keys).
func authConfig(env *hsmtest.Env, socket string, alice, bob, team int) string {
	return fmt.Sprintf(`
socket = %q
socket_mode = "0666"
modules = [%q]
[tokens.t]
module = %q
label = %q
pin_file = %q
[keys.rsa]
token = "t"
label = "rsa"
raw_sign_users = ["%d"]
[keys.ec]
token = "t"
id = "02"
raw_sign_users = ["%d"]
[profiles.alice]
key = "rsa"
allow_users = ["%d"]
[profiles.bob]
key = "ec"
allow_users = ["%d"]
[profiles.team]
key = "ec"
allow_groups = ["%d"]
`, socket, env.Soft.Module, env.Soft.Module, env.Soft.Label, env.Soft.PINFile, alice, bob, alice, bob, team)
}

var requestIDRe = regexp.MustCompile(`request [0-9a-f]{24}`)

// TestPeerCredentialAuthorisation runs the wssign binary as two other real
// uids (setpriv, no passwd entries needed) against the daemon on a
// world-connectable socket: each may use only its own profiles and raw-sign
// key and lists only its own keys; the other's are 403, worded exactly
// like a profile that does not exist; a supplementary group (read by the
// daemon with SO_PEERGROUPS) opens a group profile; refusals are audited
// with the kernel's uid.
func TestPeerCredentialAuthorisation(t *testing.T) {
	setpriv := requireRootSetpriv(t)
	ids := unusedIDs(t, 4)
	alice, bob, team, stranger := ids[0], ids[1], ids[2], ids[3]
	bin := buildWssign(t)
	env := hsmtest.New(t)
	dir := shortDir(t)
	if err := os.Chmod(dir, 0o755); err != nil { // other users must reach the socket
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "wssignd.sock")
	d := startDaemon(t, authConfig(env, sock, alice, bob, team), sock)
	envelope := testutil.ReadTestdata(t, "envelope-soap11.xml")

	type res struct {
		code           int
		stdout, stderr string
	}
	// as runs wssign as uid (primary group = uid) with the given
	// supplementary groups.
	as := func(uid int, groups []int, stdin []byte, args ...string) res {
		t.Helper()
		pargs := []string{"--reuid=" + strconv.Itoa(uid), "--regid=" + strconv.Itoa(uid)}
		if len(groups) == 0 {
			pargs = append(pargs, "--clear-groups")
		} else {
			var gs []string
			for _, g := range groups {
				gs = append(gs, strconv.Itoa(g))
			}
			pargs = append(pargs, "--groups="+strings.Join(gs, ","))
		}
		pargs = append(pargs, bin, "-socket", sock)
		cmd := exec.Command(setpriv, append(pargs, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("running wssign as %d: %v", uid, err)
		}
		return res{cmd.ProcessState.ExitCode(), out.String(), errb.String()}
	}

	// Signing: each uid with its own profile; the other's is refused.
	for _, tc := range []struct {
		name    string
		uid     int
		groups  []int
		profile string
		ok      bool
	}{
		{"alice signs with alice", alice, nil, "alice", true},
		{"bob signs with bob", bob, nil, "bob", true},
		{"bob refused alice's profile", bob, nil, "alice", false},
		{"alice refused bob's profile", alice, nil, "bob", false},
		{"alice refused the team profile", alice, nil, "team", false},
		{"alice in the team group signs with team", alice, []int{team}, "team", true},
	} {
		r := as(tc.uid, tc.groups, envelope, "sign", "-profile", tc.profile)
		if tc.ok {
			if r.code != 0 {
				t.Errorf("%s: exit %d: %s", tc.name, r.code, r.stderr)
				continue
			}
			c := env.RSA.Chain[0]
			if tc.profile != "alice" {
				c = env.EC.Chain[0]
			}
			if xo, ok := testutil.XMLSec1Verify(t, []byte(r.stdout), c); !ok {
				t.Errorf("%s: xmlsec1 rejects: %s", tc.name, xo)
			}
			continue
		}
		if r.code != 1 || !strings.Contains(r.stderr, "(forbidden, request ") || strings.Contains(r.stdout, "Signature") {
			t.Errorf("%s: exit %d, stdout %d bytes, stderr %q; want exit 1 forbidden", tc.name, r.code, len(r.stdout), r.stderr)
		}
	}

	// A refusal gives no hint that the profile exists.
	other := as(bob, nil, envelope, "sign", "-profile", "alice")
	none := as(bob, nil, envelope, "sign", "-profile", "no-such-profile")
	if a, b := requestIDRe.ReplaceAllString(other.stderr, "request X"), requestIDRe.ReplaceAllString(none.stderr, "request X"); a != b {
		t.Errorf("another user's profile and a missing one are told apart:\n%q\n%q", a, b)
	}

	// Keys: each uid sees only the keys of its own profiles.
	for _, tc := range []struct {
		uid    int
		groups []int
		want   map[string][]string // key → profiles
	}{
		{alice, nil, map[string][]string{"rsa": {"alice"}}},
		{bob, nil, map[string][]string{"ec": {"bob"}}},
		{alice, []int{team}, map[string][]string{"rsa": {"alice"}, "ec": {"team"}}},
		{stranger, nil, map[string][]string{}}, // a uid with no profile sees nothing
	} {
		r := as(tc.uid, tc.groups, nil, "keys", "-json")
		if r.code != 0 {
			t.Errorf("keys as %d: exit %d: %s", tc.uid, r.code, r.stderr)
			continue
		}
		var got struct {
			Keys []struct {
				Name           string
				Profiles       []string
				CertificatePEM string `json:"certificate_pem"`
			}
		}
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("keys as %d: %v: %s", tc.uid, err, r.stdout)
		}
		seen := map[string][]string{}
		for _, k := range got.Keys {
			seen[k.Name] = k.Profiles
		}
		if len(seen) != len(tc.want) {
			t.Errorf("keys as uid %d groups %v: %v, want %v", tc.uid, tc.groups, seen, tc.want)
			continue
		}
		for k, p := range tc.want {
			if !slices.Equal(seen[k], p) {
				t.Errorf("keys as uid %d groups %v: %v, want %v", tc.uid, tc.groups, seen, tc.want)
			}
		}
	}

	// Raw signing: bob may use ec, not rsa.
	digest := sha256.Sum256([]byte("peer credentials"))
	r := as(bob, nil, nil, "raw-sign", "-key", "rsa", "-scheme", "pkcs1v15", hex.EncodeToString(digest[:]))
	if r.code != 1 || !strings.Contains(r.stderr, "(forbidden, request ") {
		t.Errorf("bob raw-signs with alice's key: exit %d, stderr %q", r.code, r.stderr)
	}
	r = as(bob, nil, nil, "raw-sign", "-key", "ec", "-scheme", "ecdsa", hex.EncodeToString(digest[:]))
	if r.code != 0 {
		t.Errorf("bob raw-signs with his key: exit %d, stderr %q", r.code, r.stderr)
	} else {
		sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(r.stdout))
		pub := env.EC.Chain[0].PublicKey.(*ecdsa.PublicKey)
		if err != nil || !ecdsa.VerifyASN1(pub, digest[:], sig) {
			t.Errorf("bob's raw signature does not verify with the ec certificate (%v)", err)
		}
	}

	// A socket the user may not connect to (mode 0600, root's) is "cannot
	// reach the daemon", exit 3, not a refusal.
	closed := filepath.Join(dir, "private.sock")
	ln, err := net.Listen("unix", closed)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chmod(closed, 0o600); err != nil {
		t.Fatal(err)
	}
	r = as(bob, nil, nil, "-socket", closed, "health")
	if r.code != 3 || !strings.Contains(r.stderr, "permission denied") {
		t.Errorf("health on a socket bob may not open: exit %d, stderr %q", r.code, r.stderr)
	}

	// The refusals are audited with the kernel's word for the caller.
	if n := d.logs.count("peer_uid=" + strconv.Itoa(bob)); n == 0 {
		t.Errorf("no audit line names peer_uid=%d", bob)
	}
}

// TestCLIRoundTrip runs the wssign binary against the daemon (keys in
// SoftHSM2): what `wssign sign` produces, `wssign verify` accepts (exit
// 0, the signer is the key's certificate), for RSA and ECDSA, from a file
// and from standard input; a tampered message is exit 4 with the failed
// check on stderr, and a message signed by the other key is exit 4 too.
func TestCLIRoundTrip(t *testing.T) {
	bin := buildWssign(t)
	env := hsmtest.New(t)
	dir := shortDir(t)
	sock := filepath.Join(dir, "wssignd.sock")
	rsaPEM, ecPEM := filepath.Join(dir, "rsa.pem"), filepath.Join(dir, "ec.pem")
	for f, c := range map[string][]byte{rsaPEM: testutil.CertPEM(env.RSA.Chain[0]), ecPEM: testutil.CertPEM(env.EC.Chain[0])} {
		if err := os.WriteFile(f, c, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	extra := fmt.Sprintf(`
[verify.rsa]
trusted_certs = [%q]
allow_users = ["%d"]
[verify.ec]
trusted_certs = [%q]
allow_users = ["%d"]
`, rsaPEM, os.Getuid(), ecPEM, os.Getuid())
	startDaemon(t, testConfig(env, sock, extra), sock)

	wssign := func(stdin []byte, args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"-socket", sock}, args...)...)
		cmd.Stdin = bytes.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("wssign: %v", err)
		}
		return cmd.ProcessState.ExitCode(), out.String(), errb.String()
	}
	type verdict struct {
		Valid  bool
		Code   string
		Signer struct{ SHA256 string }
		Signed []string
	}
	for _, tc := range []struct {
		sign, verify, other, file string
		leaf                      []byte
		text, forged              string // Body text and its tampered form
	}{
		{"default", "rsa", "ec", "envelope-soap11.xml", env.RSA.Chain[0].Raw, ">1234.50<", ">9234.50<"},
		{"ecdsa", "ec", "rsa", "envelope-soap12.xml", env.EC.Chain[0].Raw, ">WSS<", ">WSX<"},
	} {
		in := filepath.Join(testutil.RepoRoot(t), "testdata", tc.file)
		sign := func(fromStdin bool) string {
			t.Helper()
			args := []string{"sign", "-profile", tc.sign, in}
			var stdin []byte
			if fromStdin {
				stdin = testutil.ReadTestdata(t, tc.file)
				args = []string{"sign", "-profile", tc.sign}
			}
			code, signed, stderr := wssign(stdin, args...)
			if code != 0 {
				t.Fatalf("sign %s: exit %d: %s", tc.sign, code, stderr)
			}
			return signed
		}
		verify := func(signed string, fromFile bool) (int, verdict, string) {
			t.Helper()
			args := []string{"verify", "-profile", tc.verify}
			if fromFile {
				f := filepath.Join(dir, "signed.xml")
				if err := os.WriteFile(f, []byte(signed), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, f)
			}
			code, out, stderr := wssign([]byte(signed), args...)
			var v verdict
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("%v: exit %d, %v: %q %s", args, code, err, out, stderr)
			}
			return code, v, stderr
		}
		sum := sha256.Sum256(tc.leaf)
		for _, fromFile := range []bool{true, false} {
			signed := sign(!fromFile)
			code, v, stderr := verify(signed, fromFile)
			if code != 0 || !v.Valid || v.Signer.SHA256 != hex.EncodeToString(sum[:]) || !slices.Contains(v.Signed, "/Envelope/Body") {
				t.Errorf("%s (file %v): exit %d, verdict %+v, stderr %q", tc.file, fromFile, code, v, stderr)
			}
			// The same message again is a replay: exit 4.
			code, v, stderr = verify(signed, fromFile)
			if code != 4 || v.Valid || v.Code != "replay" || !strings.HasPrefix(stderr, "wssign: the signature is not valid: replay") {
				t.Errorf("%s replayed: exit %d, verdict %+v, stderr %q", tc.file, code, v, stderr)
			}
		}
		// Tampered Body text: not valid, exit 4, and not for replay.
		signed := sign(false)
		tampered := strings.Replace(signed, tc.text, tc.forged, 1)
		if tampered == signed {
			t.Fatalf("%s: nothing to tamper with in the envelope", tc.file)
		}
		code, v, stderr := verify(tampered, false)
		if code != 4 || v.Valid || v.Code == "" || v.Code == "replay" || !strings.HasPrefix(stderr, "wssign: the signature is not valid: "+v.Code) {
			t.Errorf("tampered %s: exit %d, verdict %+v, stderr %q", tc.file, code, v, stderr)
		}
		t.Logf("tampered %s: %s", tc.file, v.Code)
		// Signed by the key the profile does not trust: exit 4.
		code, out, _ := wssign([]byte(sign(false)), "verify", "-profile", tc.other)
		v = verdict{}
		_ = json.Unmarshal([]byte(out), &v)
		if code != 4 || v.Valid || v.Code == "replay" {
			t.Errorf("%s verified with profile %s (trusting the other key): exit %d, %+v", tc.sign, tc.other, code, v)
		}
	}
}

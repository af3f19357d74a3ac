// Command wssign is the command-line client of wssignd: it sends SOAP
// envelopes and digests to the daemon's Unix socket and writes the answer
// to standard output.
//
// Usage:
//
//	wssign [-socket PATH] sign    [-profile P] [-content-type T] [FILE|-]
//	wssign [-socket PATH] verify  [-profile P] [-content-type T] [-explain] [FILE|-]
//	wssign [-socket PATH] encrypt [-profile P] [-content-type T] [-recipient-cert PEM] [FILE|-]
//	wssign [-socket PATH] decrypt [-profile P] [-content-type T] [FILE|-]
//	wssign [-socket PATH] keys    [-json]
//	wssign [-socket PATH] health
//	wssign [-socket PATH] raw-sign -key K [-hash SHA-256] -scheme pkcs1v15|pss|ecdsa
//	                               [-format der|raw] [-encoding base64|hex|binary] DIGEST-HEX|FILE|-
//
// The socket is -socket, else $WSSIGN_SOCKET, else /run/wssignd/wssignd.sock.
// Envelopes are read from FILE or standard input ("-" or no argument). The
// content type defaults to application/soap+xml for a SOAP 1.2 envelope and
// text/xml otherwise. The profile defaults to "default".
//
// verify prints the JSON verdict. keys prints one line per key (or the JSON
// list with -json). health prints liveness and each token's state.
// raw-sign takes the digest as hex on the command line, or a file (or "-")
// holding it in binary or hex, and prints the signature in base64.
//
// Errors from the daemon are printed from its problem document:
//
//	wssign: <title>: <detail> (<code>, request <id>)
//
// Exit status:
//
//	0  success (verify: the signature is valid; health: ready)
//	1  the daemon refused or failed the request (health: not ready)
//	2  usage error (bad flags or arguments, unreadable input file)
//	3  the daemon cannot be reached (no socket, refused, permission denied)
//	4  verify: the verdict is "not valid"
package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wssignd/wssignd/client"
)

// DefaultSocket is where wssignd listens unless configured otherwise.
const DefaultSocket = "/run/wssignd/wssignd.sock"

// Exit statuses.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitUnreachable = 3
	exitInvalid     = 4
)

var getenv = os.Getenv

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage:
  wssign [-socket PATH] sign    [-profile P] [-content-type T] [FILE|-]
  wssign [-socket PATH] verify  [-profile P] [-content-type T] [-explain] [FILE|-]
  wssign [-socket PATH] encrypt [-profile P] [-content-type T] [-recipient-cert PEM] [FILE|-]
  wssign [-socket PATH] decrypt [-profile P] [-content-type T] [FILE|-]
  wssign [-socket PATH] keys    [-json]
  wssign [-socket PATH] health
  wssign [-socket PATH] raw-sign -key K [-hash SHA-256] -scheme pkcs1v15|pss|ecdsa
                                 [-format der|raw] [-encoding base64|hex|binary] DIGEST-HEX|FILE|-

The socket is -socket, else $WSSIGN_SOCKET, else ` + DefaultSocket + `.
Exit status: 0 ok, 1 refused or failed (problem printed), 2 usage,
3 cannot reach the daemon, 4 verify: signature not valid.
`

// usageError is a mistake in the command line or its input files.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// errInvalid is returned by verify for a "not valid" verdict.
var errInvalid = errors.New("the signature is not valid")

// errNotReady is returned by health when a token is not online.
var errNotReady = errors.New("not ready")

// run is the whole CLI: it returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := flag.NewFlagSet("wssign", flag.ContinueOnError)
	g.SetOutput(io.Discard)
	socket := g.String("socket", "", "")
	if err := g.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		fmt.Fprintf(stderr, "wssign: %v\n%s", err, usage)
		return exitUsage
	}
	rest := g.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	if rest[0] == "help" {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	cmd := &command{name: rest[0], stdin: stdin, stdout: stdout, socket: *socket}
	err := cmd.run(rest[1:])
	return report(err, stderr)
}

// report prints err and maps it to the exit status.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	var pe *client.ProblemError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "wssign: %s\n", ue.msg)
		return exitUsage
	case errors.Is(err, errInvalid):
		fmt.Fprintf(stderr, "wssign: %v\n", err)
		return exitInvalid
	case errors.As(err, &pe):
		fmt.Fprintf(stderr, "wssign: %s\n", pe.Error())
		return exitFailed
	case errors.Is(err, client.ErrUnreachable):
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		fmt.Fprintf(stderr, "wssign: %v\n", err)
		return exitUnreachable
	}
	var ue2 *url.Error
	if errors.As(err, &ue2) {
		err = ue2.Err
	}
	fmt.Fprintf(stderr, "wssign: %v\n", err)
	return exitFailed
}

type command struct {
	name   string
	stdin  io.Reader
	stdout io.Writer
	socket string
}

func (c *command) flags() (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("wssign "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sock := fs.String("socket", c.socket, "the daemon's socket")
	return fs, sock
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return usagef("%s: see wssign -h", fs.Name())
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	return nil
}

func (c *command) client(sock string) *client.Client {
	if sock == "" {
		sock = getenv("WSSIGN_SOCKET")
	}
	if sock == "" {
		sock = DefaultSocket
	}
	return client.New(sock)
}

func (c *command) run(args []string) error {
	switch c.name {
	case "sign", "verify", "encrypt", "decrypt":
		return c.envelope(args)
	case "keys":
		return c.keys(args)
	case "health":
		return c.health(args)
	case "raw-sign":
		return c.rawSign(args)
	}
	return usagef("unknown command %q (sign, verify, encrypt, decrypt, keys, health, raw-sign)", c.name)
}

func (c *command) envelope(args []string) error {
	fs, sock := c.flags()
	profile := fs.String("profile", "default", "profile name")
	ctype := fs.String("content-type", "", "text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2); default by the envelope's namespace")
	timeout := fs.Duration("timeout", time.Minute, "request timeout")
	var explain *bool
	var recipient *string
	switch c.name {
	case "verify":
		explain = fs.Bool("explain", false, "per-reference digests in the verdict")
	case "encrypt":
		recipient = fs.String("recipient-cert", "", "PEM file of the recipient certificate, for profiles that allow one per request")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if *profile == "" {
		return usagef("%s: -profile must not be empty", c.name)
	}
	if fs.NArg() > 1 {
		return usagef("%s: one input file at most", c.name)
	}
	in, err := c.readInput(fs.Arg(0))
	if err != nil {
		return err
	}
	if *ctype == "" {
		*ctype = sniffContentType(in)
	}
	var cert *x509.Certificate
	if recipient != nil && *recipient != "" {
		if cert, err = readCert(*recipient); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cl := c.client(*sock)
	var out []byte
	switch c.name {
	case "sign":
		out, err = cl.Sign(ctx, *profile, in, *ctype)
	case "encrypt":
		out, err = cl.Encrypt(ctx, *profile, in, *ctype, cert)
	case "decrypt":
		out, err = cl.Decrypt(ctx, *profile, in, *ctype)
	case "verify":
		var res *client.VerifyResult
		if res, err = cl.Verify(ctx, *profile, in, *ctype, *explain); err != nil {
			return err
		}
		var buf bytes.Buffer
		if json.Indent(&buf, res.Raw, "", "  ") != nil {
			buf.Reset()
			buf.Write(res.Raw)
		}
		if !bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
			buf.WriteByte('\n')
		}
		if _, err := c.stdout.Write(buf.Bytes()); err != nil {
			return err
		}
		if !res.Valid {
			if res.Code != "" {
				return fmt.Errorf("%w: %s: %s", errInvalid, res.Code, res.Detail)
			}
			return errInvalid
		}
		return nil
	}
	if err != nil {
		return err
	}
	_, err = c.stdout.Write(out)
	return err
}

// soap12 is the SOAP 1.2 envelope namespace.
const soap12 = "http://www.w3.org/2003/05/soap-envelope"

// sniffContentType picks the media type of an envelope: SOAP 1.2 when its
// namespace appears, else SOAP 1.1. The daemon checks the envelope itself;
// this only saves typing -content-type.
func sniffContentType(b []byte) string {
	if bytes.Contains(b, []byte(soap12)) {
		return "application/soap+xml"
	}
	return "text/xml"
}

func (c *command) readInput(name string) ([]byte, error) {
	if name == "" || name == "-" {
		b, err := io.ReadAll(c.stdin)
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, usagef("%s: %v", c.name, err)
	}
	return b, nil
}

func readCert(name string) (*x509.Certificate, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, usagef("-recipient-cert: %v", err)
	}
	if blk, _ := pem.Decode(b); blk != nil {
		b = blk.Bytes
	}
	cert, err := x509.ParseCertificate(b)
	if err != nil {
		return nil, usagef("-recipient-cert %s: %v", name, err)
	}
	return cert, nil
}

func (c *command) keys(args []string) error {
	fs, sock := c.flags()
	asJSON := fs.Bool("json", false, "print the JSON list, with certificates")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("keys takes no arguments")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys, err := c.client(*sock).Keys(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Keys []client.KeyInfo `json:"keys"`
		}{keys})
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tALGORITHM\tPROFILES\tSERIAL\tNOT AFTER\tSUBJECT")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.Name, k.Algorithm, strings.Join(k.Profiles, ","),
			k.Serial, k.NotAfter.UTC().Format("2006-01-02"), k.Subject)
	}
	return tw.Flush()
}

func (c *command) health(args []string) error {
	fs, sock := c.flags()
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("health takes no arguments")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := c.client(*sock)
	h, err := cl.Health(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "alive: %s\n", h.Status)
	r, err := cl.Ready(ctx)
	if err != nil && !errors.Is(err, client.ErrNotReady) {
		return err
	}
	fmt.Fprintf(c.stdout, "ready: %s\n", r.Status)
	names := slices.Sorted(maps.Keys(r.Tokens))
	for _, n := range names {
		fmt.Fprintf(c.stdout, "token %s: %s\n", n, r.Tokens[n])
	}
	if err != nil {
		return fmt.Errorf("%w: a token is not online", errNotReady)
	}
	return nil
}

var hashSizes = map[string]int{"SHA-256": 32, "SHA-384": 48, "SHA-512": 64}

func (c *command) rawSign(args []string) error {
	fs, sock := c.flags()
	key := fs.String("key", "", "key name (see wssign keys)")
	hash := fs.String("hash", "SHA-256", "SHA-256, SHA-384 or SHA-512: the hash that made the digest")
	scheme := fs.String("scheme", "", "pkcs1v15 or pss (RSA), ecdsa (EC)")
	format := fs.String("format", "", "ECDSA signature format: der (default) or raw (r‖s)")
	encoding := fs.String("encoding", "base64", "output: base64, hex or binary")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *key == "" || *scheme == "" {
		return usagef("raw-sign: -key and -scheme are required")
	}
	size, ok := hashSizes[*hash]
	if !ok {
		return usagef("raw-sign: -hash must be SHA-256, SHA-384 or SHA-512")
	}
	if *encoding != "base64" && *encoding != "hex" && *encoding != "binary" {
		return usagef("raw-sign: -encoding must be base64, hex or binary")
	}
	if fs.NArg() != 1 {
		return usagef("raw-sign: give the digest (hex), or a file holding it, or - for standard input")
	}
	digest, err := c.readDigest(fs.Arg(0), size)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sig, err := c.client(*sock).RawSign(ctx, *key, client.RawSignRequest{
		Digest: base64.StdEncoding.EncodeToString(digest), Hash: *hash, Scheme: *scheme, Format: *format,
	})
	if err != nil {
		return err
	}
	switch *encoding {
	case "hex":
		_, err = fmt.Fprintln(c.stdout, hex.EncodeToString(sig))
	case "binary":
		_, err = c.stdout.Write(sig)
	default:
		_, err = fmt.Fprintln(c.stdout, base64.StdEncoding.EncodeToString(sig))
	}
	return err
}

// readDigest takes a hex digest of the right size from the argument, or
// else reads the named file (or standard input for "-") holding the digest
// in binary or hex.
func (c *command) readDigest(arg string, size int) ([]byte, error) {
	if len(arg) == 2*size {
		if d, err := hex.DecodeString(arg); err == nil {
			return d, nil
		}
	}
	var b []byte
	var err error
	if arg == "-" {
		b, err = io.ReadAll(io.LimitReader(c.stdin, 1024))
	} else {
		b, err = os.ReadFile(arg)
		if err != nil {
			return nil, usagef("raw-sign: %q is neither a %d-byte hex digest nor a readable file: %v", arg, size, err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading standard input: %w", err)
	}
	if len(b) == size {
		return b, nil
	}
	if d, err := hex.DecodeString(strings.TrimSpace(string(b))); err == nil && len(d) == size {
		return d, nil
	}
	return nil, usagef("raw-sign: the digest must be %d bytes (binary) or %d hex digits", size, 2*size)
}

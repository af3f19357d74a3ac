package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/wssignd/wssignd/internal/daemon"
)

// devSetupMain creates (or reuses) a SoftHSM2 token under dir (or, with
// -token tpm, a tpm2-pkcs11 token on a TPM) with an RSA and an EC key
// generated on the token, each with a self-signed certificate on the token,
// exports the certificates, and writes a development config.
func devSetupMain(args []string) int {
	fs := flag.NewFlagSet("wssignd dev-setup", flag.ContinueOnError)
	dir := fs.String("dir", "var", "directory for the token, PINs, certificates and config")
	socket := fs.String("socket", "run/wssignd.sock", "socket path for the development config")
	kind := fs.String("token", "softhsm", "token kind: softhsm (a SoftHSM2 token under -dir) or tpm (a tpm2-pkcs11 token in $TPM2_PKCS11_STORE on the TPM $TPM2_PKCS11_TCTI names; see scripts/dev-tpm.sh)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *kind != "softhsm" && *kind != "tpm" {
		fmt.Fprintf(os.Stderr, "wssignd dev-setup: -token %q: want softhsm or tpm\n", *kind)
		return 2
	}
	if err := daemon.DevSetup(*dir, *socket, *kind); err != nil {
		fmt.Fprintln(os.Stderr, "wssignd dev-setup:", err)
		return 1
	}
	return 0
}

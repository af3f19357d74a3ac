package main

import (
	"fmt"
	"os"
)

// tokenMain runs "wssignd token ...": token provisioning. (Issue #4.)
func tokenMain(args []string) int {
	fmt.Fprintln(os.Stderr, "wssignd token: not available in this build")
	return 2
}

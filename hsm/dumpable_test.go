package hsm

import "golang.org/x/sys/unix"

// Dumpable reports whether the process is dumpable (prctl PR_GET_DUMPABLE), for the tests
// of the core-dump hardening.
func Dumpable() (bool, error) {
	v, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		return false, err
	}
	return v != 0, nil
}

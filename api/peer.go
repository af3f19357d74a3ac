package api

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Peer is the identity of the process at the other end of a Unix socket
// connection, as the kernel recorded it when the connection was made.
type Peer struct {
	UID    uint32
	GID    uint32
	PID    int32
	Groups []uint32 // supplementary groups (SO_PEERGROUPS); nil if unavailable
	Known  bool     // false for connections without peer credentials
}

type peerKey struct{}

// ConnContext is an http.Server ConnContext hook that attaches the peer's
// credentials to each connection's context.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	p, err := PeerOf(c)
	if err != nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFrom returns the peer stored by ConnContext.
func PeerFrom(ctx context.Context) Peer {
	p, _ := ctx.Value(peerKey{}).(Peer)
	return p
}

// PeerOf reads SO_PEERCRED and SO_PEERGROUPS from a Unix connection.
func PeerOf(c net.Conn) (Peer, error) {
	if w, ok := c.(interface{ Unwrap() net.Conn }); ok {
		c = w.Unwrap()
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{}, fmt.Errorf("not a unix socket connection")
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var p Peer
	var serr error
	err = rc.Control(func(fd uintptr) {
		var cred *unix.Ucred
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if serr != nil {
			return
		}
		p = Peer{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid, Known: true}
		p.Groups = peerGroups(int(fd))
	})
	if err != nil {
		return Peer{}, err
	}
	if serr != nil {
		return Peer{}, serr
	}
	return p, nil
}

// peerGroups reads SO_PEERGROUPS (Linux 4.13+); nil when not supported.
func peerGroups(fd int) []uint32 {
	buf := make([]byte, 64*4)
	for range 3 {
		n := uint32(len(buf))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		if e == syscall.ERANGE {
			buf = make([]byte, int(n)+64)
			continue
		}
		if e != 0 {
			return nil
		}
		gs := make([]uint32, 0, n/4)
		for i := 0; i+4 <= int(n); i += 4 {
			gs = append(gs, binary.NativeEndian.Uint32(buf[i:]))
		}
		return gs
	}
	return nil
}

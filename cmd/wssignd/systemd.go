package main

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/internal/daemon"
)

// listenFDName is the FileDescriptorName= of wssignd.socket: the daemon
// takes the activated socket by this name from LISTEN_FDNAMES.
const listenFDName = "wssignd-api"

// apiListener returns the API listener: the socket systemd passed under the
// name listenFDName, else (no LISTEN_FDS for this process, i.e. started by
// hand) one wssignd creates at c.Socket.
//
// When systemd passes sockets but none is named listenFDName, or the named
// one is not a Unix stream socket, apiListener fails instead of listening
// elsewhere: clients would wait on a socket nobody serves, and callers are
// authorized by their Unix peer credentials, which only AF_UNIX carries.
func apiListener(c *config.Config) (net.Listener, error) {
	files := activation.Files(true)
	if len(files) == 0 {
		mode, err := c.SocketFileMode()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", daemon.ErrConfig, err)
		}
		return listenUnix(c.Socket, mode)
	}
	return activatedListener(files)
}

// activatedListener picks the listener named listenFDName among the files
// systemd passed and closes all the others.
func activatedListener(files []*os.File) (net.Listener, error) {
	var (
		ln    net.Listener
		err   error
		names []string
	)
	for _, f := range files {
		names = append(names, f.Name())
		if f.Name() != listenFDName || ln != nil || err != nil {
			f.Close()
			continue
		}
		l, ferr := net.FileListener(f)
		f.Close()
		switch {
		case ferr != nil:
			err = fmt.Errorf("socket activation: fd %q is not a listening socket: %w", listenFDName, ferr)
		case l.Addr().Network() != "unix":
			l.Close()
			err = fmt.Errorf("socket activation: fd %q is a %s socket; wssignd serves only on a Unix stream socket", listenFDName, l.Addr().Network())
		default:
			ln = l
		}
	}
	if err != nil {
		return nil, err
	}
	if ln == nil {
		return nil, fmt.Errorf("socket activation: systemd passed %v but none named %q (FileDescriptorName= in wssignd.socket)", names, listenFDName)
	}
	return ln, nil
}

// sdNotify sends state to $NOTIFY_SOCKET; without one it does nothing. The
// variable stays set: the daemon notifies more than once.
var sdNotify = func(state string) error {
	_, err := sddaemon.SdNotify(false, state)
	return err
}

// notifyReady tells systemd the daemon serves, with the token states in
// STATUS=. The daemon is ready even when a token is offline: readiness of
// the service is not the health of an HSM.
func notifyReady(tokenStates map[string]string) {
	_ = sdNotify(sddaemon.SdNotifyReady + "\n" + statusLine("serving", tokenStates))
}

// notifyReloading tells systemd a reload (SIGHUP) has begun. Call
// notifyReady when it is done, whether it succeeded or not.
func notifyReloading() {
	_ = sdNotify(reloadingMessage())
}

func reloadingMessage() string {
	// MONOTONIC_USEC is required by Type=notify-reload (systemd >= 253) and
	// harmless before; SdNotifyMonotonicUsec ends in a newline.
	return sddaemon.SdNotifyReloading + "\n" + sddaemon.SdNotifyMonotonicUsec() + "STATUS=reloading configuration"
}

// notifyStopping tells systemd the daemon is draining.
func notifyStopping() {
	_ = sdNotify(sddaemon.SdNotifyStopping + "\nSTATUS=stopping: draining requests in flight")
}

// watchdog pings systemd's watchdog at half of WatchdogSec= until ctx is
// done. The ping shows that the process schedules goroutines and timers; it
// deliberately ignores token health, so an HSM outage never gets the daemon
// killed and restarted.
func watchdog(ctx context.Context) {
	interval, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		_ = sdNotify(sddaemon.SdNotifyWatchdog)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// statusLine renders "STATUS=<what>; tokens: a=online, b=offline" with the
// tokens sorted by name, on one line whatever the names contain.
func statusLine(what string, tokenStates map[string]string) string {
	names := slices.Sorted(maps.Keys(tokenStates))
	var b strings.Builder
	b.WriteString("STATUS=" + what)
	if len(names) > 0 {
		b.WriteString("; tokens: ")
		for i, n := range names {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(oneLine(n) + "=" + oneLine(tokenStates[n]))
		}
	}
	return b.String()
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

package main

import (
	"context"
	"net"

	"github.com/wssignd/wssignd/internal/config"
)

// apiListener returns the API listener: the socket systemd passed, else one
// wssignd creates at c.Socket. (Socket activation: issue #8.)
func apiListener(c *config.Config) (net.Listener, error) {
	mode, _ := c.SocketFileMode()
	return listenUnix(c.Socket, mode)
}

// notifyReady tells systemd the daemon serves, with the token states.
func notifyReady(tokenStates map[string]string) {}

// notifyStopping tells systemd the daemon is draining.
func notifyStopping() {}

// watchdog pings systemd's watchdog from the main loop until ctx is done.
func watchdog(ctx context.Context) {}

// Command wssignd is the WS-Security signing daemon: it serves the wssignd
// HTTP API on a Unix socket and signs with keys that stay inside PKCS#11
// tokens.
//
// Usage:
//
//	wssignd [-config FILE]               serve
//	wssignd -check-config [-config FILE] validate the configuration and exit
//	wssignd dev-setup [-dir DIR] [-socket PATH]
//	                                     create a SoftHSM2 development token and config
//
// Exit status: 0 on a clean stop, 1 on errors, 2 on usage errors, 78
// (EX_CONFIG) when a token rejects its PIN at startup or the configuration
// is invalid: systemd's RestartPreventExitStatus=78 then stops restarts
// that would lock the token.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/wss"
)

const exitConfig = 78

var osGetenv = os.Getenv

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "dev-setup":
			os.Exit(devSetupMain(os.Args[2:]))
		case "token":
			os.Exit(tokenMain(os.Args[2:]))
		}
	}
	os.Exit(serveMain(os.Args[1:]))
}

func serveMain(args []string) int {
	fs := flag.NewFlagSet("wssignd", flag.ContinueOnError)
	cfgPath := fs.String("config", "/etc/wssignd/wssignd.toml", "configuration file")
	check := fs.Bool("check-config", false, "validate the configuration and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wssignd:", err)
		return exitConfig
	}
	if *check {
		fmt.Printf("%s: OK (%d tokens, %d keys, %d profiles)\n", c.File, len(c.Tokens), len(c.Keys), len(c.Profiles))
		return 0
	}
	log := newLogger(c)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, c, log, nil); err != nil {
		log.Error("wssignd stopped", "err", err)
		if errors.Is(err, errPINRejected) || errors.Is(err, errConfig) {
			return exitConfig
		}
		return 1
	}
	return 0
}

func newLogger(c *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

var errConfig = errors.New("configuration error")

// serve runs the daemon until ctx is done, then drains. ready, if not nil,
// is called once the socket accepts connections.
func serve(ctx context.Context, c *config.Config, log *slog.Logger, ready func()) error {
	ks, err := openKeyStore(c, log)
	if err != nil {
		return err
	}
	defer ks.Close()
	profiles, err := buildProfiles(c, ks)
	if err != nil {
		return fmt.Errorf("%w: %v", errConfig, err)
	}
	vprofiles, err := buildVerifyProfiles(c)
	if err != nil {
		return fmt.Errorf("%w: %v", errConfig, err)
	}
	eprofiles, dprofiles, err := buildCryptProfiles(c, ks)
	if err != nil {
		return fmt.Errorf("%w: %v", errConfig, err)
	}
	handler := api.New(api.Config{
		Keys:            ks,
		Profiles:        profiles,
		VerifyProfiles:  vprofiles,
		EncryptProfiles: eprofiles,
		DecryptProfiles: dprofiles,
		MaxBodyBytes:    c.Limits.MaxBodyBytes,
		Limits:          wss.Limits{MaxBytes: c.Limits.MaxBodyBytes, MaxDepth: c.Limits.MaxDepth, MaxElements: c.Limits.MaxElements},
		RequestTimeout:  c.Limits.RequestTimeout.Duration,
		MaxConcurrent:   c.Limits.MaxConcurrent,
		Log:             log,
	})
	ln, err := apiListener(c)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ConnContext:       api.ConnContext,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       c.Limits.RequestTimeout.Duration,
		WriteTimeout:      c.Limits.RequestTimeout.Duration + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("wssignd serving", "socket", ln.Addr().String(), "profiles", len(profiles))
	states, _ := ks.Ready(ctx)
	notifyReady(states)
	go watchdog(ctx)
	if ready != nil {
		ready()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		log.Info("stopping: draining requests in flight")
	}
	notifyStopping()
	drain, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(drain); err != nil {
		log.Warn("drain incomplete", "err", err)
	}
	return nil
}

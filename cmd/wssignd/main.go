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
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wssignd/wssignd/api"
	"github.com/wssignd/wssignd/hsm"
	"github.com/wssignd/wssignd/internal/config"
	"github.com/wssignd/wssignd/internal/daemon"
)

const exitConfig = 78

func main() {
	// No core dumps and no ptrace by other processes of the same user: the
	// process holds PINs and session handles.
	if err := hsm.HardenProcess(); err != nil {
		fmt.Fprintln(os.Stderr, "wssignd: warning: cannot harden the process:", err)
	}
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
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile (go tool pprof) of the daemon's life to `file`, for measurement")
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
	setMemoryLimit(log)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "wssignd: cpu profile:", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, c, log, nil); err != nil {
		log.Error("wssignd stopped", "err", err)
		if errors.Is(err, daemon.ErrPINRejected) || errors.Is(err, daemon.ErrConfig) {
			return exitConfig
		}
		return 1
	}
	return 0
}

// setMemoryLimit gives the Go runtime a soft memory limit of 80% of the
// service's cgroup memory.max (systemd's MemoryMax=), so that the garbage
// collector works harder before the kernel kills the service. GOMEMLIMIT,
// when set, wins (the runtime has applied it); without a cgroup limit
// nothing changes.
func setMemoryLimit(log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	hard, ok := cgroupMemoryMax("/proc/self/cgroup", "/sys/fs/cgroup")
	if !ok {
		return
	}
	soft := hard / 10 * 8
	debug.SetMemoryLimit(soft)
	log.Info("go memory limit set", "bytes", soft, "cgroup_memory_max", hard)
}

// cgroupMemoryMax reads the memory.max of the cgroup (v2) that procCgroup
// (/proc/self/cgroup) names, under root (/sys/fs/cgroup); false when there
// is none or it is "max".
func cgroupMemoryMax(procCgroup, root string) (int64, bool) {
	b, err := os.ReadFile(procCgroup)
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		path, ok := strings.CutPrefix(line, "0::")
		if !ok {
			continue
		}
		v, err := os.ReadFile(filepath.Join(root, filepath.Clean("/"+path), "memory.max"))
		if err != nil {
			return 0, false
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
		if err != nil || n <= 0 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// logLevel is the level of the logger newLogger made; a reload changes it.
var logLevel = new(slog.LevelVar)

func newLogger(c *config.Config) *slog.Logger {
	setLogLevel(c)
	opts := &slog.HandlerOptions{Level: logLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func setLogLevel(c *config.Config) {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	logLevel.Set(level)
}

// serve runs the daemon until ctx is done, then drains. SIGHUP reloads the
// configuration from c.File: the new one is loaded and its keys self-tested
// beside the old, then swapped in atomically; a bad one is logged and the
// old one keeps serving. ready, if not nil, is called once the socket
// accepts connections; opts go to daemon.New.
func serve(ctx context.Context, c *config.Config, log *slog.Logger, ready func(), opts ...daemon.Option) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	d, err := daemon.New(c, log, opts...)
	if err != nil {
		return err
	}
	defer d.Close()

	ln, err := apiListener(c)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           d.Handler(),
		ConnContext:       api.ConnContext,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       c.Limits.RequestTimeout.Duration,
		WriteTimeout:      c.Limits.RequestTimeout.Duration + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(api.Listener(ln)) }()
	log.Info("wssignd serving", "socket", ln.Addr().String(), "profiles", len(c.Profiles))
	states, _ := d.Ready(ctx)
	notifyReady(states)
	go watchdog(ctx)
	if ready != nil {
		ready()
	}
	for running := true; running; {
		select {
		case err := <-errc:
			return err
		case <-hup:
			reload(d, log)
		case <-ctx.Done():
			log.Info("stopping: draining requests in flight")
			running = false
		}
	}
	notifyStopping()
	drain, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(drain); err != nil {
		log.Warn("drain incomplete", "err", err)
	}
	return nil
}

// reload loads the configuration file again and swaps it in if it is good.
func reload(d *daemon.Daemon, log *slog.Logger) {
	old := d.Config()
	notifyReloading()
	defer func() {
		states, _ := d.Ready(context.Background())
		notifyReady(states)
	}()
	c, err := config.Load(old.File)
	if err != nil {
		log.Error("reload refused: the old configuration keeps serving", "err", err)
		return
	}
	if c.Socket != old.Socket || c.SocketMode != old.SocketMode {
		log.Warn("reload: socket settings change only at restart")
	}
	if err := d.Reload(c); err != nil {
		log.Error("reload refused: the old configuration keeps serving", "err", err)
		return
	}
	setLogLevel(c)
	log.Info("configuration reloaded", "file", c.File, "profiles", len(c.Profiles))
}

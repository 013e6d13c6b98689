// Command gameserver runs one scratch-card game server.
//
//	gameserver -game goldenclover|wilddig|forestteaparty -listen ADDR -admin ADDR \
//	    -log-dir DIR -data-dir DIR [-legacy]
//
// -legacy restores build 20251030111505's nil-session panic. The server logs
// one JSON line {"msg":"listening","addr":...,"admin":...} once both
// listeners are bound (port 0 picks a free port).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/game"
)

// version may be set at link time: -ldflags "-X main.version=20251106120000".
var version string

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "gameserver:", err)
		}
		os.Exit(2)
	}
}

func run(args []string) error {
	var cfg gameserver.Config
	var secretFile, memLimit string
	fs := flag.NewFlagSet("gameserver", flag.ContinueOnError)
	fs.StringVar(&cfg.Game, "game", "", "game to serve: "+strings.Join(game.Names(), "|"))
	fs.StringVar(&cfg.Service, "service", "", "service name (default from -game: goldenclover, wilddiggr, forestteaparty)")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:7000", "game listener address")
	fs.StringVar(&cfg.Admin, "admin", "127.0.0.1:6060", "admin listener (/metrics, /healthz, /readyz, and /debug/pprof unless -pprof is set)")
	fs.StringVar(&cfg.Pprof, "pprof", "", "separate listener for /debug/pprof, e.g. 127.0.0.1:6061 when -admin listens beyond localhost (goroutine dumps carry player data)")
	fs.StringVar(&cfg.LogDir, "log-dir", "log", "directory for *.stacktrace.log files and gameserver.log")
	fs.StringVar(&cfg.DataDir, "data-dir", "data", "directory for the wallet ledger")
	fs.BoolVar(&cfg.Legacy, "legacy", false, "restore build 20251030111505's behaviour (nil-session panics, leaked goroutines)")
	fs.StringVar(&secretFile, "secret-file", "", "file holding the ticket secret (default: the built-in development secret)")
	fs.DurationVar(&cfg.WalletLatency, "wallet-latency", gameserver.DefaultWalletLatency, "latency added inside each deduction (negative: none)")
	fs.StringVar(&memLimit, "memory-limit", "512MiB", "memory limit to report when neither a cgroup limit nor GOMEMLIMIT is set")
	fs.IntVar(&cfg.MaxFrameSize, "max-frame", 0, "maximum frame size in bytes (default 64KiB)")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", 0, "read deadline between frames (default 60s)")
	fs.DurationVar(&cfg.StaleAfter, "stale-after", 0, "reap sessions silent this long (default 30s)")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", 0, "deadline of one write to a client (default 5s)")
	fs.BoolVar(&cfg.NewLedger, "new-ledger", false, "start a fresh ledger where -data-dir's marker shows one was kept but wallet.db is missing or empty (every balance resets)")
	fs.IntVar(&cfg.RedeliveryPage, "redelivery-page", 0, "results sent at once to a returning player; the rest follow as acks arrive (default 256)")
	fs.IntVar(&cfg.MaxConns, "max-conns", 0, "concurrent game connections (default: RLIMIT_NOFILE less a tenth)")
	fs.IntVar(&cfg.MaxUnauthConns, "max-unauth-conns", 0, "of those, connections not yet past their hello (default min(1024, max-conns/4))")
	fs.DurationVar(&cfg.HelloTimeout, "hello-timeout", 0, "time a new connection has to authenticate (default 10s)")
	fs.StringVar(&cfg.Version, "version", version, "build stamp reported in gameserver_build_info")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.WalletLatency == 0 {
		cfg.WalletLatency = -1 // explicit 0: none
	}
	n, err := parseBytes(memLimit)
	if err != nil {
		return fmt.Errorf("-memory-limit: %w", err)
	}
	cfg.MemoryLimit = n
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return err
		}
		if cfg.Secret = bytes.TrimSpace(b); len(cfg.Secret) == 0 {
			return fmt.Errorf("-secret-file %s is empty", secretFile)
		}
	}

	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	srv, err := gameserver.New(cfg, logger)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return srv.Run(ctx)
}

// parseBytes reads sizes like 512MiB, 1GiB, 1000000 or 64KB.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// Command gameserver runs one scratch-card game server.
//
//	gameserver -game goldenclover|wilddig|forestteaparty [-listen ADDR] [-admin ADDR]
//	    [-pprof ADDR] -log-dir DIR -data-dir DIR [-legacy]
//
// -legacy restores build 20251030111505's nil-session panic. Fatal runtime
// errors, which recover cannot catch, are copied to
// fatal-<start>-<pid>.stacktrace.log in -log-dir. -fault-injection (demos and
// tests) serves POST /debug/fault?kind=fatal|panic|leak beside /debug/pprof,
// on loopback only. The server logs msg=listening with addr, admin and pprof
// once its listeners are bound (port 0 picks a free port). -h lists every
// flag; --version prints the build.
//
// Ports: the game listener defaults to 7000, the admin listener to 7060 and
// the conventional separate pprof listener is 7061. None of them is on the
// Prometheus "Default port allocations" list, whose exporter range
// 9100-9999 is full.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/game"
	"github.com/stackwatch/stackwatch/internal/cli"
)

const program = "gameserver"

func main() { cli.Main(program, run) }

func run(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var cfg gameserver.Config
	var secretFile, memLimit string
	fs := flag.NewFlagSet(program, flag.ContinueOnError)
	fs.SetOutput(stderr)
	common := cli.Register(fs, program)
	fs.StringVar(&cfg.Game, "game", "", "game to serve: "+strings.Join(game.Names(), "|"))
	fs.StringVar(&cfg.Service, "service", "", "service name (default from -game: goldenclover, wilddiggr, forestteaparty)")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:7000", "game listener `address`")
	fs.StringVar(&cfg.Admin, "admin", "127.0.0.1:7060", "admin listener `address`: /metrics, /healthz, /readyz, and /debug/pprof unless -pprof is set")
	fs.StringVar(&cfg.Pprof, "pprof", "", "separate listener `address` for /debug/pprof, conventionally 127.0.0.1:7061, when -admin listens beyond loopback (goroutine dumps carry player data)")
	fs.StringVar(&cfg.LogDir, "log-dir", "log", "`directory` for *.stacktrace.log files and gameserver.log")
	fs.StringVar(&cfg.DataDir, "data-dir", "data", "`directory` for the wallet ledger")
	fs.BoolVar(&cfg.Legacy, "legacy", false, "restore build 20251030111505's behaviour (nil-session panics, leaked goroutines)")
	fs.StringVar(&secretFile, "secret-file", "", "`file` holding the ticket secret (default: the built-in development secret)")
	fs.DurationVar(&cfg.WalletLatency, "wallet-latency", gameserver.DefaultWalletLatency, "latency added inside each deduction (negative: none)")
	fs.StringVar(&memLimit, "memory-limit", "512MiB", "memory limit to report when neither a cgroup limit nor GOMEMLIMIT is set")
	fs.IntVar(&cfg.MaxFrameSize, "max-frame", 0, "maximum frame size in bytes (default 64KiB)")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", 0, "read deadline between frames (default 60s)")
	fs.DurationVar(&cfg.StaleAfter, "stale-after", 0, "reap sessions silent this long (default 30s)")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", 0, "deadline of one write to a client (default 5s)")
	fs.BoolVar(&cfg.NewLedger, "new-ledger", false, "start a fresh ledger where -data-dir's marker shows one was kept but wallet.db is missing or empty (every balance resets)")
	fs.DurationVar(&cfg.BetHistory, "bet-history", 0, "prune settled, acknowledged bets older than this from the ledger, bounding its size; then each player's bet ids must increase (shorter first, then bytewise), as an id at or below the pruned mark is refused (default 0: keep every bet, ids free-form)")
	fs.IntVar(&cfg.RedeliveryPage, "redelivery-page", 0, "results sent at once to a returning player; the rest follow as acks arrive (default 256)")
	fs.IntVar(&cfg.MaxConns, "max-conns", 0, "concurrent game connections (default: RLIMIT_NOFILE less a tenth)")
	fs.IntVar(&cfg.MaxUnauthConns, "max-unauth-conns", 0, "of those, connections not yet past their hello (default min(1024, max-conns/4))")
	fs.DurationVar(&cfg.HelloTimeout, "hello-timeout", 0, "time a new connection has to authenticate (default 10s)")
	fs.BoolVar(&cfg.FaultInjection, "fault-injection", false, "for demos and tests: serve POST /debug/fault?kind=fatal|panic|leak beside /debug/pprof, which must then be on loopback (fatal kills the process)")
	if stop, err := common.Parse(fs, args, stdout); stop {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected arguments %q", fs.Args())
	}
	if _, err := game.Lookup(cfg.Game); err != nil {
		return cli.Usagef("-game %q: want one of %s", cfg.Game, strings.Join(game.Names(), ", "))
	}
	if err := checkListeners(&cfg); err != nil {
		return err
	}
	if flag, addr := pprofListener(&cfg); cfg.FaultInjection && !loopback(addr) {
		return cli.Usagef("-fault-injection is served beside /debug/pprof, on loopback only; %s is %s", flag, addr)
	}
	if cfg.WalletLatency == 0 {
		cfg.WalletLatency = -1 // explicit 0: none
	}
	n, err := parseBytes(memLimit)
	if err != nil {
		return cli.Usagef("-memory-limit: %v", err)
	}
	cfg.MemoryLimit = n
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return fmt.Errorf("-secret-file: %w", err)
		}
		if cfg.Secret = bytes.TrimSpace(b); len(cfg.Secret) == 0 {
			return fmt.Errorf("-secret-file %s is empty", secretFile)
		}
	}

	logger := common.Logger(stderr)
	srv, err := gameserver.New(cfg, logger)
	if err != nil {
		return explain(err, cfg)
	}
	// Fatal errors bypass recover; the runtime copies them to this file.
	if crash, err := gameserver.CaptureCrashes(cfg.LogDir, time.Now()); err != nil {
		logger.Warn("fatal errors will reach stderr only", "err", err)
	} else {
		logger.Info("fatal errors are copied to a file", "file", crash.Path())
		defer func() {
			if err := crash.Close(); err != nil {
				logger.Warn("crash output file left behind", "file", crash.Path(), "err", err)
			}
		}()
	}
	return explain(srv.Run(ctx), cfg)
}

// checkListeners refuses listener addresses that cannot work: bad syntax,
// or one port given to two listeners.
func checkListeners(cfg *gameserver.Config) error {
	seen := map[string]string{}
	for _, l := range listeners(cfg) {
		if l.addr == "" {
			continue
		}
		host, port, err := net.SplitHostPort(l.addr)
		if err != nil {
			return cli.Usagef("%s %s: %v", l.flag, l.addr, err)
		}
		if port == "0" {
			continue
		}
		key := host + ":" + port
		if other, dup := seen[key]; dup {
			return cli.Usagef("%s and %s are both %s", other, l.flag, l.addr)
		}
		seen[key] = l.flag
	}
	return nil
}

// pprofListener is the flag and address serving /debug/pprof.
func pprofListener(cfg *gameserver.Config) (flag, addr string) {
	if cfg.Pprof != "" {
		return "-pprof", cfg.Pprof
	}
	return "-admin", cfg.Admin
}

// loopback reports whether a listener on addr stays on this machine.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

type listener struct{ flag, addr string }

func listeners(cfg *gameserver.Config) []listener {
	return []listener{{"-listen", cfg.Listen}, {"-admin", cfg.Admin}, {"-pprof", cfg.Pprof}}
}

// explain rewords the server's errors for this command line: a listener
// that failed to bind is named by its flag ("-listen 127.0.0.1:7000: bind:
// address already in use"), and the package's own "gameserver: " prefix is
// dropped, since cli.Main prints the program's.
func explain(err error, cfg gameserver.Config) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, gameserver.ErrConfig) {
		return cli.Usagef("%v", err)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "listen" && op.Addr != nil {
		for _, l := range listeners(&cfg) {
			if a, rerr := net.ResolveTCPAddr("tcp", l.addr); rerr == nil && a.String() == op.Addr.String() {
				return fmt.Errorf("%s %s: %w", l.flag, l.addr, op.Err)
			}
		}
	}
	if msg, ok := strings.CutPrefix(err.Error(), program+": "); ok {
		return prefixless{msg, err}
	}
	return err
}

// prefixless is err with its message replaced.
type prefixless struct {
	msg string
	err error
}

func (p prefixless) Error() string { return p.msg }
func (p prefixless) Unwrap() error { return p.err }

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

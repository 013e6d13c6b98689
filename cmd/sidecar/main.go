// Command sidecar watches a game server's stacktrace files and log and
// exports what it finds as Prometheus metrics and a JSON API.
//
//	sidecar -service NAME -log-dir DIR -data-dir DIR [-listen ADDR] [-target URL] [flags]
//	sidecar analyze [-json] PATH...
//	sidecar dumps list|pull|diff|leaks|capture -sidecar URL
//
// It follows the Prometheus family's conventions (internal/cli): -h and
// --help exit 0, --version prints the build, -log.level and -log.format
// (logfmt by default, or json) set the logs on stderr, a failure exits 1
// and a usage error 2. After binding, the sidecar logs msg=listening
// addr=HOST:PORT, so -listen may use port 0.
// SIGINT and SIGTERM shut it down gracefully (state saved).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stackwatch/stackwatch/internal/cli"
	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar"
	"github.com/stackwatch/stackwatch/sidecar/analyze"
	"github.com/stackwatch/stackwatch/sidecar/bearer"
	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/dumpcli"
	"github.com/stackwatch/stackwatch/sidecar/profiler"
	"github.com/stackwatch/stackwatch/sidecar/watch"
	"github.com/stackwatch/stackwatch/sidecar/webui"
)

// DefaultListen is the sidecar's default HTTP address. Its port is outside
// 9100-9999, the exporter range of the Prometheus wiki's "Default port
// allocations", which has been fully allocated since 2023; 9091, the old
// default, is the Pushgateway's. See docs/architecture.md.
const DefaultListen = "127.0.0.1:39190"

// DefaultMemoryLimit is the sidecar's soft memory limit: with its crash
// groups and file records capped, its live heap stays near 30 MB even for
// 15,000 distinct crash sites, and the limit keeps garbage from doubling it.
const DefaultMemoryLimit = 64 << 20

// program names the binary in messages, --version and its build_info
// metric (stackwatch_sidecar_build_info).
const program = "stackwatch_sidecar"

// subcommands run instead of the sidecar when named as the first argument.
var subcommands = map[string]cli.Command{
	"analyze": analyze.Run,
	"dumps":   dumpcli.Run,
}

func main() {
	cli.Main("sidecar", func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
		return run(ctx, args, stdout, stderr)
	})
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if cmd, ok := subcommands[args[0]]; ok {
			return cmd(ctx, args[1:], os.Stdin, stdout, stderr)
		}
	}
	f, stop, err := parseFlags(args, stdout, stderr)
	if stop || err != nil {
		return err
	}
	cfg := f.sidecar
	logger := f.common.Logger(stderr)
	if f.memoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// A soft limit: the GC works harder near it rather than let freed
		// memory pile up beside the game server (see docs/benchmarks.md).
		debug.SetMemoryLimit(f.memoryLimit)
	}
	cfg.Logger = logger
	// Crash groups and dumps can carry player data: beyond localhost the API
	// needs a bearer token, and Resolve refuses to start without one.
	token, err := bearer.Resolve(f.listen, f.tokenFile)
	if err != nil {
		return err
	}
	// One guard for the API and the web UI: the bearer token, or a session
	// cookie from the UI's login form.
	auth := webui.NewAuth(cfg.Service, token)
	auth.SetLogger(logger)
	cfg.Auth = auth.Middleware
	ui, err := webui.New(webui.Config{Service: cfg.Service, Auth: auth, Logger: logger})
	if err != nil {
		return err
	}
	cfg.UI = ui.Handler()
	// Bind before New creates -data-dir, so a port in use leaves nothing
	// behind.
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			err = op.Err
		}
		return fmt.Errorf("-listen %s: %w", f.listen, err)
	}
	defer ln.Close()
	sc, err := sidecar.New(cfg)
	if err != nil {
		return err
	}
	for _, c := range []prometheus.Collector{
		cli.BuildInfo(program),
		metrics.AuthFailures.NewCounterFunc(func() float64 { return float64(auth.LimitStats().Failures) }),
		metrics.AuthThrottled.NewCounterFunc(func() float64 {
			s := auth.LimitStats()
			return float64(s.Throttled + s.ThrottledGlobal)
		}),
	} {
		if err := sc.Registerer().Register(c); err != nil {
			return err
		}
	}
	var profiled webui.Profiler // nil without -target
	if cfg.Target != "" {
		pc := f.profiler
		pc.Target, pc.Service, pc.DataDir, pc.Auth = cfg.Target, cfg.Service, cfg.DataDir, cfg.Auth
		prof, err := profiler.New(pc, sc.Registerer(), logger)
		if err != nil {
			return err
		}
		prof.Register(sc.Mux())
		sc.AddComponent(prof)
		sc.AddPanicHook(prof.OnPanics)
		profiled = prof
	}
	ui.Attach(sc, profiled)
	logger.Info("listening", "addr", ln.Addr().String(), "service", cfg.Service, "log_dir", cfg.LogDir,
		"data_dir", cfg.DataDir, "polling", sc.Polling())
	if err := sc.Run(ctx, ln); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

type flags struct {
	sidecar     sidecar.Config
	profiler    profiler.Config
	listen      string
	tokenFile   string
	memoryLimit int64
	common      *cli.Common
}

// parseFlags returns stop=true when the command is done (-h, --version) or
// the flags are wrong.
func parseFlags(args []string, stdout, stderr io.Writer) (f flags, stop bool, err error) {
	cfg, pc := &f.sidecar, &f.profiler
	fs := flag.NewFlagSet("sidecar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.common = cli.Register(fs, program)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: sidecar -service NAME -log-dir DIR -data-dir DIR [-listen ADDR] [-target URL] [flags]\n"+
			"       sidecar analyze [-json] PATH...\n"+
			"       sidecar dumps list|pull|diff|leaks|capture [-sidecar URL] [-token-file F]\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.Service, "service", "", "service name, the service label on every series (required)")
	fs.StringVar(&cfg.LogDir, "log-dir", "", "directory the game server writes *.stacktrace.log files to (required)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory for the sidecar's state (required)")
	fs.StringVar(&f.listen, "listen", DefaultListen, "HTTP address for /metrics, /api/v1/*, /healthz, /readyz (port 0 picks one)")
	fs.StringVar(&cfg.Target, "target", "", "game server pprof or admin URL (e.g. http://127.0.0.1:7061) for goroutine profiling")
	fs.StringVar(&cfg.Pattern, "pattern", watch.DefaultPattern, "stacktrace file name pattern")
	fs.DurationVar(&cfg.Settle, "settle", watch.DefaultSettle, "quiet period before a file written in place is read")
	fs.DurationVar(&cfg.RescanInterval, "rescan-interval", watch.DefaultRescanInterval, "period of the safety rescan of -log-dir")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", watch.DefaultPollInterval, "polling period when inotify is unavailable")
	fs.BoolVar(&cfg.ForcePoll, "force-poll", false, "poll -log-dir even when inotify works (e.g. network file systems)")
	fs.StringVar(&cfg.ServerLog, "server-log", "", `game server JSON log to count closed-session warnings in (default <log-dir>/gameserver.log; "-" disables)`)
	fs.DurationVar(&cfg.TailInterval, "tail-interval", 250*time.Millisecond, "how often the server log is read")
	age := new(days)
	fs.Var(age, "retention-age", "delete stacktrace files older than this (e.g. 7d, 36h; 0 = off)")
	fs.IntVar(&cfg.Retention.MaxFiles, "retention-max-files", 0, "keep at most this many stacktrace files, deleting the oldest (0 = off)")
	fs.Int64Var(&cfg.Retention.MaxBytes, "retention-max-bytes", 0, "keep at most this many bytes of stacktrace files (0 = off)")
	fs.DurationVar(&cfg.RetentionInterval, "retention-interval", time.Minute, "how often retention runs")
	fs.IntVar(&cfg.MaxSiteLabels, "max-site-labels", 20, "crash_site label values before the rest become \"other\"")
	fs.IntVar(&cfg.MaxCrashGroups, "max-crash-groups", crash.DefaultMaxGroups, "crash groups kept in memory and state; the least recently seen beyond it roll into one \"other\" group that keeps their counts")
	fs.DurationVar(&cfg.StateInterval, "state-interval", time.Second, "how often changed state is saved")
	fs.DurationVar(&cfg.IncompleteAfter, "incomplete-after", time.Minute, "how long a file may stay empty or half written before it counts as a parse failure")
	fs.Int64Var(&f.memoryLimit, "memory-limit", DefaultMemoryLimit, "soft memory limit in bytes for the Go runtime (0: none; GOMEMLIMIT overrides)")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the API bearer token (required when -listen is beyond localhost)")
	fs.DurationVar(&pc.Interval, "scrape-interval", 15*time.Second, "period of goroutine profile scrapes of -target")
	fs.IntVar(&pc.KeepEvery, "dump-every", 20, "keep the first and every Nth scrape as a dump (negative: never)")
	fs.IntVar(&pc.Dumps.MaxCount, "dump-max-count", 50, "goroutine dumps kept in the ring")
	fs.Int64Var(&pc.Dumps.MaxBytes, "dump-max-bytes", 64<<20, "bytes of goroutine dumps kept in the ring")
	fs.IntVar(&pc.GoroutineThreshold, "goroutine-threshold", 10000, "capture a dump when the goroutine count rises to this (0: off)")
	fs.IntVar(&pc.PanicBurst, "panic-burst", 5, "capture a dump after this many new panics within a minute (negative: off)")
	fs.IntVar(&pc.Leak.BlockedThreshold, "leak-blocked-threshold", 100, "goroutines blocked at one channel operation that make a leak suspect")
	fs.IntVar(&pc.LeakProfileEvery, "leak-profile-every", 1, "scrape /debug/pprof/goroutineleak every Nth scrape (negative: never)")
	if stop, err = f.common.Parse(fs, args, stdout); stop {
		return
	}
	stop = true
	switch {
	case fs.NArg() > 0:
		err = cli.Usagef("unexpected argument %q (subcommands: analyze, dumps)", fs.Arg(0))
	case cfg.Service == "":
		err = cli.Usagef("-service is required")
	case cfg.LogDir == "":
		err = cli.Usagef("-log-dir is required")
	case cfg.DataDir == "":
		err = cli.Usagef("-data-dir is required")
	case cfg.Target != "" && !httpURL(cfg.Target):
		err = cli.Usagef("-target %q: want an http(s) URL such as http://127.0.0.1:7061", cfg.Target)
	default:
		err = negative(fs)
		stop = err != nil
	}
	cfg.Retention.MaxAge = time.Duration(*age)
	return
}

// httpURL reports whether s is an http or https URL with a host.
func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// negative refuses a negative value for any numeric flag but those whose
// help gives negative a meaning.
func negative(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(fl *flag.Flag) {
		if err != nil || strings.Contains(fl.Usage, "negative") {
			return
		}
		if g, ok := fl.Value.(flag.Getter); ok {
			switch v := g.Get().(type) {
			case int:
				if v < 0 {
					err = cli.Usagef("-%s %d: must not be negative", fl.Name, v)
				}
			case int64:
				if v < 0 {
					err = cli.Usagef("-%s %d: must not be negative", fl.Name, v)
				}
			case time.Duration:
				if v < 0 {
					err = cli.Usagef("-%s %v: must not be negative", fl.Name, v)
				}
			}
		}
	})
	return err
}

// days is a duration flag that also accepts whole days ("7d").
type days time.Duration

func (d *days) String() string { return time.Duration(*d).String() }

func (d *days) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.ParseFloat(n, 64)
		// !(v >= 0) also rejects NaN; the upper bound keeps the product in range.
		if err != nil || !(v >= 0) || v > float64(math.MaxInt64)/float64(24*time.Hour) {
			return fmt.Errorf("bad day count %q", s)
		}
		*d = days(v * float64(24*time.Hour))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("bad duration %q", s)
	}
	*d = days(v)
	return nil
}

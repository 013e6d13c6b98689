// Package cli holds the conventions every stackwatch binary shares, as the
// Prometheus family does them: -h and --help exit 0, --version prints the
// build from prometheus/common/version, -log.level and -log.format come from
// promslog, and a command exits 1 on failure and 2 on a usage error. Every
// failure is printed once, as "<program>: <why>".
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"
)

// Exit statuses.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// errUsage marks an error as the caller's mistake (exit 2).
var errUsage = errors.New("usage error")

// usageError keeps the message but answers errors.Is(err, errUsage).
// printed is set when the flag package has already shown it with the usage.
type usageError struct {
	err     error
	printed bool
}

func (e usageError) Error() string   { return e.err.Error() }
func (e usageError) Unwrap() []error { return []error{e.err, errUsage} }

// Usagef returns a usage error (exit 2) with a formatted message.
func Usagef(format string, a ...any) error {
	return usageError{err: fmt.Errorf(format, a...)}
}

// IsUsage reports whether err is a usage error.
func IsUsage(err error) bool { return errors.Is(err, errUsage) }

// ExitCode maps the error a command returned to its exit status: nil and
// flag.ErrHelp (the user asked for help) are 0, usage errors 2, anything
// else 1.
func ExitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case IsUsage(err):
		return ExitUsage
	default:
		return ExitFailure
	}
}

// Common are the flags every binary has.
type Common struct {
	program string
	Log     *promslog.Config
	version bool
}

// Register adds -version, -log.level and -log.format to fs. Go's flag
// package accepts both -name and --name, so --version and --help work too.
func Register(fs *flag.FlagSet, program string) *Common {
	c := &Common{program: program, Log: &promslog.Config{Level: promslog.NewLevel(), Format: promslog.NewFormat()}}
	_ = c.Log.Level.Set("info")
	_ = c.Log.Format.Set("logfmt")
	fs.BoolVar(&c.version, "version", false, "print version information and exit")
	fs.Var(levelFlag{c.Log.Level}, "log.level", "only log messages with the given severity or above: debug, info, warn, error")
	fs.Var(formatFlag{c.Log.Format}, "log.format", "output format of log messages: logfmt or json")
	return c
}

// levelFlag and formatFlag adapt promslog's values to the flag package,
// whose help output calls String on a zero value: promslog.Level's zero
// value panics there.
type levelFlag struct{ *promslog.Level }

func (f levelFlag) String() string {
	if f.Level == nil {
		return ""
	}
	return f.Level.String()
}

type formatFlag struct{ *promslog.Format }

func (f formatFlag) String() string {
	if f.Format == nil {
		return ""
	}
	return f.Format.String()
}

// Parse parses args with fs, which must use flag.ContinueOnError. It
// returns flag.ErrHelp after -h (exit 0), a usage error for a bad flag
// (exit 2, the flag package has already printed why and the usage), and
// stop=true after printing --version to stdout.
func (c *Common) Parse(fs *flag.FlagSet, args []string, stdout io.Writer) (stop bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, flag.ErrHelp
		}
		return true, usageError{err: err, printed: true}
	}
	if c.version {
		fmt.Fprintln(stdout, version.Print(c.program))
		return true, nil
	}
	return false, nil
}

// Logger returns the promslog logger the flags ask for, writing to w.
func (c *Common) Logger(w io.Writer) *slog.Logger {
	cfg := *c.Log
	cfg.Writer = w
	return promslog.New(&cfg)
}

// versionLine is the one-line build summary shown on landing pages.
func versionLine() string {
	return "version " + version.Version + ", revision " + version.GetRevision() + ", " + version.GoVersion
}

// BuildInfo returns the <program>_build_info collector: a constant 1 with
// version, revision, branch, goversion, goos and goarch labels.
func BuildInfo(program string) prometheus.Collector {
	return versioncollector.NewCollector(program)
}

// Command is a binary's or subcommand's body. It reads flags from args and
// stops when ctx is cancelled (Ctrl-C).
type Command func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error

// Main runs cmd with os.Args, cancelling its context on SIGINT and SIGTERM,
// prints a failure as "<program>: <why>" and exits with ExitCode. Usage
// errors from the flag package were printed by it already.
func Main(program string, cmd Command) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cmd(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	code := ExitCode(err)
	var u usageError
	if code != ExitOK && !(errors.As(err, &u) && u.printed) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", program, err)
	}
	os.Exit(code)
}

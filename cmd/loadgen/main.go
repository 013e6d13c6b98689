// Command loadgen drives a local game server with concurrent players who
// disconnect mid-bet, and checks that no bet is lost, settled twice or missing
// from the wallet ledger.
//
//	loadgen -addr 127.0.0.1:7000 -clients 200 -duration 20s -disconnect 0.2 [-json]
//
// The result goes to stdout, as text or (-json) as one JSON object; progress
// and logs go to stderr in the -log.format chosen. The exit status is 0 when
// nothing was lost and nothing mismatched, 1 when the run failed (the server
// unreachable, or it lost or mismatched bets), 2 for bad usage.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/stackwatch/stackwatch/internal/cli"
	"github.com/stackwatch/stackwatch/loadgen"
)

const program = "loadgen"

func main() { cli.Main(program, run) }

func run(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(program, flag.ContinueOnError)
	fs.SetOutput(stderr)
	common := cli.Register(fs, program)
	var (
		cfg        loadgen.Config
		asJSON     bool
		secretFile string
		progress   time.Duration
	)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:7000", "game server `address` (loopback only)")
	fs.IntVar(&cfg.Clients, "clients", 50, "concurrent players")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "length of the betting phase")
	fs.Float64Var(&cfg.Disconnect, "disconnect", 0.2, "probability of disconnecting right after a bet, before its result")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON on stdout")
	fs.Int64Var(&cfg.Bet, "bet", 10, "amount per bet")
	fs.Int64Var(&cfg.MaxBets, "max-bets", 0, "stop after this many distinct bets in total (0: no cap)")
	fs.DurationVar(&cfg.Drain, "drain", 30*time.Second, "bound on the drain phase that resolves outstanding bets")
	fs.DurationVar(&cfg.ResultTimeout, "result-timeout", 5*time.Second, "wait for a result this long before resending the bet")
	fs.DurationVar(&cfg.DisconnectJitter, "disconnect-jitter", 0, "drop a random time up to this long after the bet instead of right after it")
	fs.DurationVar(&cfg.Away, "away", 250*time.Millisecond, "how long a disconnected player stays away before reconnecting")
	fs.DurationVar(&cfg.RedeliveryWait, "redelivery-wait", 500*time.Millisecond, "after a reconnect, wait this long for a redelivered result before resending")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed for the disconnect dice (0: random)")
	fs.StringVar(&secretFile, "secret-file", "", "`file` holding the ticket secret (default: the built-in development secret)")
	fs.StringVar(&cfg.PlayerPrefix, "player-prefix", "", "player id prefix (default: random per run)")
	fs.DurationVar(&progress, "progress", 2*time.Second, "interval of the progress log lines (0: none)")
	if stop, err := common.Parse(fs, args, stdout); stop {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected arguments %q", fs.Args())
	}
	if err := cfg.Validate(); err != nil {
		return cli.Usagef("%s", unprefixed(err))
	}
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
	cfg.Logger = logger
	if progress > 0 {
		cfg.Progress, cfg.ProgressInterval = logWriter{logger}, progress
	}

	// Fail fast, with the reason, rather than after every player has
	// given up dialling.
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("-addr %s: %w", cfg.Addr, dialReason(err))
	}
	conn.Close()

	s, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err // only a bad configuration, which Validate has refused already
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			return err
		}
	} else {
		printSummary(stdout, s)
	}
	if !s.OK() {
		return fmt.Errorf("run failed: %s", failures(s))
	}
	return nil
}

// dialReason drops the address net.OpError repeats: "connect: connection refused".
func dialReason(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// unprefixed is err without the loadgen package's own "loadgen: " prefix,
// since cli.Main prints the program's.
func unprefixed(err error) string {
	return strings.TrimPrefix(err.Error(), program+": ")
}

// failures names what made a run fail.
func failures(s loadgen.Summary) string {
	var why []string
	for _, f := range []struct {
		n    int64
		what string
	}{
		{s.NeverConnected, "players never connected"},
		{s.Lost, "bets lost"},
		{s.DuplicateSettlements, "bets settled twice"},
		{s.Misdelivered, "results misdelivered"},
		{s.BalanceMismatches, "balances mismatched"},
		{s.BalanceUnchecked, "balances unreadable"},
	} {
		if f.n > 0 {
			why = append(why, fmt.Sprint(f.n, " ", f.what))
		}
	}
	return strings.Join(why, ", ")
}

// logWriter turns the load generator's progress lines into log records, so
// stderr holds one format.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		if line := strings.TrimSpace(strings.TrimPrefix(sc.Text(), program+":")); line != "" {
			w.log.Info(line)
		}
	}
	return len(p), nil
}

func printSummary(w io.Writer, s loadgen.Summary) {
	verdict := "OK: nothing lost, nothing mismatched"
	if !s.OK() {
		verdict = "FAIL" // why: on stderr, from run's error
	}
	fmt.Fprintf(w, `loadgen summary (%d clients, %.0fs betting, %.1fs total)
  bets placed            %d (%d resends)
  results received       %d
  rejected               %d
  lost                   %d (resend refused %d)
  duplicate deliveries   %d (redelivered %d)
  duplicate settlements  %d
  misdelivered           %d
  balance mismatches     %d (checked %d, unreadable %d)
  disconnects            %d (reconnects %d)
  latency p50 / p99      %.1f ms / %.1f ms
  throughput             %.1f bets/s
%s
`, s.Clients, s.DurationSeconds, s.ElapsedSeconds, s.BetsPlaced, s.Resends, s.Results, s.Rejected, s.Lost, s.RefusedResends,
		s.DuplicateDeliveries, s.Redelivered, s.DuplicateSettlements, s.Misdelivered, s.BalanceMismatches, s.BalanceChecks,
		s.BalanceUnchecked, s.Disconnects, s.Reconnects, s.P50ms, s.P99ms, s.BetsPerSecond, verdict)
	for _, e := range s.Errors {
		fmt.Fprintf(w, "  ! %s\n", e)
	}
}

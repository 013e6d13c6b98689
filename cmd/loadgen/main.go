// Command loadgen drives a local game server with concurrent players who
// disconnect mid-bet, and checks that no bet is lost, settled twice or missing
// from the wallet ledger.
//
//	loadgen -addr 127.0.0.1:7000 -clients 200 -duration 20s -disconnect 0.2 [-json]
//
// Progress goes to stderr; the summary to stdout (as JSON with -json). The
// exit status is 0 only when nothing was lost and nothing mismatched, 1 when
// the server failed the run, 2 for bad usage.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/stackwatch/stackwatch/loadgen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg        loadgen.Config
		asJSON     bool
		secretFile string
		progress   time.Duration
		verbose    bool
	)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:7000", "game server `address` (loopback only)")
	fs.IntVar(&cfg.Clients, "clients", 50, "concurrent players")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "length of the betting phase")
	fs.Float64Var(&cfg.Disconnect, "disconnect", 0.2, "probability of disconnecting right after a bet, before its result")
	fs.BoolVar(&asJSON, "json", false, "print the summary as JSON on stdout")
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
	fs.DurationVar(&progress, "progress", 2*time.Second, "progress line interval on stderr (0: none)")
	fs.BoolVar(&verbose, "v", false, "debug logging on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadgen: unexpected arguments %q\n", fs.Args())
		return 2
	}
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			fmt.Fprintf(stderr, "loadgen: %v\n", err)
			return 2
		}
		if cfg.Secret = bytes.TrimSpace(b); len(cfg.Secret) == 0 {
			fmt.Fprintf(stderr, "loadgen: secret file %s is empty\n", secretFile)
			return 2
		}
	}
	if progress > 0 {
		cfg.Progress, cfg.ProgressInterval = stderr, progress
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := loadgen.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 2
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			fmt.Fprintf(stderr, "loadgen: %v\n", err)
			return 2
		}
	} else {
		printSummary(stdout, s)
	}
	if !s.OK() {
		return 1
	}
	return 0
}

func printSummary(w io.Writer, s loadgen.Summary) {
	verdict := "OK: nothing lost, nothing mismatched"
	if !s.OK() {
		verdict = "FAIL"
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

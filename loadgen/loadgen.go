// Package loadgen drives a game server the way the incident's players did:
// many concurrent players betting, some of them dropping the connection right
// after a bet, then reconnecting. It proves what the server promises: every
// bet gets exactly one settlement, its result reaches the player (directly or
// redelivered after a reconnect), and each wallet balance matches the results
// the player saw.
//
// Each player bets one scratch card at a time with a unique bet id. The
// server pushes a dropped bet's result to the player's next session; a bet
// whose result has not arrived RedeliveryWait after the reconnect is resent
// with the same id as a last resort (the server settles a bet id once). When the betting phase ends, a bounded
// drain phase keeps reconnecting players until each last bet is resolved or
// the deadline passes; whatever is still unresolved is lost.
package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stackwatch/stackwatch/gameserver/ticket"
)

// Limits that keep a run bounded whatever the configuration says.
const (
	MaxClients  = 10000
	MaxDuration = 24 * time.Hour
)

// Config describes one run. Zero values take the documented defaults.
type Config struct {
	Addr       string        // game server address; must be a loopback address
	Clients    int           // concurrent players (1..MaxClients)
	Duration   time.Duration // betting phase
	Disconnect float64       // probability [0,1] of dropping the connection right after sending a bet

	Bet     int64 // amount per bet; default 10
	MaxBets int64 // cap on distinct bets across all players; 0 means no cap

	// Drain bounds the phase after betting in which players reconnect to
	// resolve their last bet and read their final balance; default 30s.
	Drain time.Duration
	// ResultTimeout is how long a connected player waits for a result before
	// resending the bet; default 5s.
	ResultTimeout time.Duration
	// DisconnectJitter, when set, delays each deliberate disconnect by a
	// random time in [0, DisconnectJitter) after the bet is sent, so some
	// drops land after the server has taken the stake but before its result
	// is written (the dead-letter path) rather than before the deduction
	// (the abort path). Default 0: drop right after sending.
	DisconnectJitter time.Duration
	// Away is how long a player stays away after a deliberate disconnect
	// before reconnecting; default 250ms. A player back before the server
	// answers is found by the response and never meets the nil session.
	Away time.Duration
	// RedeliveryWait is how long a player waits after reconnecting for a
	// redelivered result before resending the bet; default 500ms.
	RedeliveryWait time.Duration

	Secret       []byte // ticket secret; nil means ticket.DevSecret
	PlayerPrefix string // player id prefix; default "lg-<random>", unique per run
	Seed         uint64 // seeds the disconnect dice; 0 picks one at random

	// Target, when set, is asked for the server address at every connect,
	// so players can follow a server that restarted elsewhere. Each address
	// must still be loopback.
	Target func() string

	Progress         io.Writer     // periodic progress lines; nil for none
	ProgressInterval time.Duration // default 2s
	Logger           *slog.Logger  // nil discards
}

// Summary is the outcome of a run. A run is clean (OK) when nothing was
// lost, misdelivered, settled twice or out of balance.
type Summary struct {
	Clients              int      `json:"clients"`
	DurationSeconds      float64  `json:"duration_seconds"` // betting phase as configured
	ElapsedSeconds       float64  `json:"elapsed_seconds"`  // whole run, drain included
	BetsPlaced           int64    `json:"bets_placed"`      // distinct bet ids sent
	BetsSent             int64    `json:"bets_sent"`        // bet frames sent, resends included
	Resends              int64    `json:"resends"`
	Results              int64    `json:"results_received"` // distinct bet ids settled
	Rejected             int64    `json:"rejected"`         // bets the server refused for good (e.g. insufficient funds)
	RefusedResends       int64    `json:"refused_resends"`  // lost bets whose resend the server refused (legacy: "duplicate bet id")
	Lost                 int64    `json:"lost"`             // bets placed but neither settled nor refused
	Deliveries           int64    `json:"deliveries"`       // BetResult frames received
	Redelivered          int64    `json:"redelivered"`      // results of dropped bets the server pushed without a resend
	DuplicateDeliveries  int64    `json:"duplicate_deliveries"`
	DuplicateSettlements int64    `json:"duplicate_settlements"` // same bet id, different outcome
	Misdelivered         int64    `json:"misdelivered"`          // results naming another player or an unknown bet
	BalanceChecks        int64    `json:"balance_checks"`
	BalanceMismatches    int64    `json:"balance_mismatches"`
	BalanceUnchecked     int64    `json:"balance_unchecked"` // players whose final balance could not be read
	Disconnects          int64    `json:"disconnects"`       // deliberate drops right after a bet
	Reconnects           int64    `json:"reconnects"`
	DialFailures         int64    `json:"dial_failures"`
	NeverConnected       int64    `json:"players_never_connected"`
	P50ms                float64  `json:"p50_ms"` // bet first sent → first result
	P99ms                float64  `json:"p99_ms"`
	P99ConnectedMs       float64  `json:"p99_connected_ms"` // bets whose player stayed connected
	P99DroppedMs         float64  `json:"p99_dropped_ms"`   // bets whose player dropped: send → result, across the reconnect
	MaxMs                float64  `json:"max_ms"`
	BetsPerSecond        float64  `json:"bets_per_second"`  // results over the betting phase
	Errors               []string `json:"errors,omitempty"` // first few player-level failures
}

// OK reports whether the run proved the server correct.
func (s Summary) OK() bool {
	return s.NeverConnected == 0 && s.Lost == 0 && s.DuplicateSettlements == 0 && s.Misdelivered == 0 && s.BalanceMismatches == 0 && s.BalanceUnchecked == 0
}

func (s Summary) String() string {
	return fmt.Sprintf("clients=%d placed=%d results=%d rejected=%d lost=%d refused_resends=%d resends=%d deliveries=%d redelivered=%d "+
		"dup_deliveries=%d dup_settlements=%d misdelivered=%d balance_mismatches=%d balance_unchecked=%d "+
		"disconnects=%d reconnects=%d never_connected=%d p50=%.1fms p99=%.1fms p99_connected=%.1fms p99_dropped=%.1fms bets/s=%.1f",
		s.Clients, s.BetsPlaced, s.Results, s.Rejected, s.Lost, s.RefusedResends, s.Resends, s.Deliveries, s.Redelivered,
		s.DuplicateDeliveries, s.DuplicateSettlements, s.Misdelivered, s.BalanceMismatches, s.BalanceUnchecked,
		s.Disconnects, s.Reconnects, s.NeverConnected, s.P50ms, s.P99ms, s.P99ConnectedMs, s.P99DroppedMs, s.BetsPerSecond)
}

// ErrNotLoopback is returned for a target outside the machine: the load
// generator only ever drives local servers.
var ErrNotLoopback = errors.New("loadgen: target is not a loopback address")

// CheckLoopback returns an error unless addr is host:port on loopback.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("loadgen: bad address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: %q", ErrNotLoopback, addr)
	}
	return nil
}

// Validate reports the first setting of cfg that Run would refuse.
func (cfg *Config) Validate() error {
	switch {
	case cfg.Clients < 1 || cfg.Clients > MaxClients:
		return fmt.Errorf("loadgen: clients must be 1..%d, got %d", MaxClients, cfg.Clients)
	case cfg.Duration <= 0 || cfg.Duration > MaxDuration:
		return fmt.Errorf("loadgen: duration must be in (0, %v], got %v", MaxDuration, cfg.Duration)
	case cfg.Disconnect < 0 || cfg.Disconnect > 1:
		return fmt.Errorf("loadgen: disconnect probability must be in [0,1], got %v", cfg.Disconnect)
	case cfg.Bet < 0 || cfg.MaxBets < 0 || cfg.Drain < 0 || cfg.ResultTimeout < 0 || cfg.RedeliveryWait < 0 || cfg.Away < 0 || cfg.DisconnectJitter < 0:
		return errors.New("loadgen: negative bet, max bets or timeout")
	case cfg.Drain > MaxDuration:
		return fmt.Errorf("loadgen: drain must be at most %v", MaxDuration)
	}
	if cfg.Target == nil {
		if err := CheckLoopback(cfg.Addr); err != nil {
			return err
		}
	} else if err := CheckLoopback(cfg.Target()); err != nil {
		return err
	}
	if cfg.PlayerPrefix != "" && !ticket.ValidPlayerID(cfg.PlayerPrefix+"0") {
		return fmt.Errorf("loadgen: player prefix %q makes invalid player ids", cfg.PlayerPrefix)
	}
	return nil
}

func (cfg *Config) defaults() {
	if cfg.Bet == 0 {
		cfg.Bet = 10
	}
	if cfg.Drain == 0 {
		cfg.Drain = 30 * time.Second
	}
	if cfg.ResultTimeout == 0 {
		cfg.ResultTimeout = 5 * time.Second
	}
	if cfg.Away == 0 {
		cfg.Away = 250 * time.Millisecond
	}
	if cfg.RedeliveryWait == 0 {
		cfg.RedeliveryWait = 500 * time.Millisecond
	}
	if cfg.Secret == nil {
		cfg.Secret = []byte(ticket.DevSecret)
	}
	if cfg.PlayerPrefix == "" {
		var b [4]byte
		rand.Read(b[:])
		cfg.PlayerPrefix = "lg-" + hex.EncodeToString(b[:]) + "-"
	}
	if cfg.Seed == 0 {
		cfg.Seed = mrand.Uint64()
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Target == nil {
		addr := cfg.Addr
		cfg.Target = func() string { return addr }
	}
}

// counters are shared by all players and read by the progress printer.
type counters struct {
	placed, sent, resends, results, rejected, deliveries, redelivered atomic.Int64
	dupDeliveries, dupSettlements, misdelivered, refusedResends       atomic.Int64
	disconnects, reconnects, dialFailures                             atomic.Int64
	budget                                                            atomic.Int64 // bets left under MaxBets
	lastDialErr                                                       atomic.Pointer[string]
}

// Run drives the server described by cfg and reports what it saw. It returns
// an error only for a bad configuration; a misbehaving server shows in the
// Summary (see Summary.OK). Cancelling ctx ends the run early, and bets then
// unresolved count as lost.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	cfg.defaults()

	start := time.Now()
	r := &run{
		cfg:       cfg,
		betUntil:  start.Add(cfg.Duration),
		drainTill: start.Add(cfg.Duration + cfg.Drain),
		expires:   start.Add(cfg.Duration + cfg.Drain + time.Hour),
	}
	r.c.budget.Store(cfg.MaxBets)

	progressDone := make(chan struct{})
	stopProgress := make(chan struct{})
	go func() {
		defer close(progressDone)
		r.progress(start, stopProgress)
	}()

	// Throughput counts the results that arrived within the betting phase.
	var resolvedInBetPhase atomic.Int64
	snap := time.AfterFunc(cfg.Duration, func() { resolvedInBetPhase.Store(r.c.results.Load()) })
	players := make([]*player, cfg.Clients)
	var wg sync.WaitGroup
	for i := range players {
		p := r.newPlayer(i)
		players[i] = p
		wg.Go(func() { p.run(ctx) })
	}
	wg.Wait()
	betPhase := cfg.Duration
	if snap.Stop() { // ended early (cancelled, or every player out of bets)
		betPhase = time.Since(start)
		resolvedInBetPhase.Store(r.c.results.Load())
	}
	close(stopProgress)
	<-progressDone

	s := r.summarize(players, start, betPhase, resolvedInBetPhase.Load())
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "loadgen: done in %.1fs: %s\n", s.ElapsedSeconds, s)
	}
	return s, nil
}

type run struct {
	cfg       Config
	betUntil  time.Time
	drainTill time.Time
	expires   time.Time // ticket expiry
	c         counters

	errMu  sync.Mutex
	errors []string
}

func (r *run) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.cfg.Logger.Warn(msg)
	r.errMu.Lock()
	if len(r.errors) < 10 {
		r.errors = append(r.errors, msg)
	}
	r.errMu.Unlock()
}

func (r *run) progress(start time.Time, stop <-chan struct{}) {
	if r.cfg.Progress == nil {
		<-stop
		return
	}
	t := time.NewTicker(r.cfg.ProgressInterval)
	defer t.Stop()
	var lastResults, lastDialFailures int64
	last := start
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			res := r.c.results.Load()
			phase := "betting"
			if now.After(r.betUntil) {
				phase = "draining"
			}
			// A server that died shows as dial failures: say why, not
			// only bets/s=0.
			why := ""
			if df := r.c.dialFailures.Load(); df > lastDialFailures {
				if e := r.c.lastDialErr.Load(); e != nil {
					why = fmt.Sprintf(" last_dial_error=%q", *e)
				}
				lastDialFailures = df
			}
			fmt.Fprintf(r.cfg.Progress, "loadgen: %5.1fs %s placed=%d results=%d in_flight=%d resends=%d disconnects=%d reconnects=%d dial_failures=%d bets/s=%.0f%s\n",
				now.Sub(start).Seconds(), phase, r.c.placed.Load(), res, r.c.placed.Load()-res-r.c.rejected.Load(),
				r.c.resends.Load(), r.c.disconnects.Load(), r.c.reconnects.Load(), lastDialFailures,
				float64(res-lastResults)/now.Sub(last).Seconds(), why)
			lastResults, last = res, now
		}
	}
}

func (r *run) summarize(players []*player, start time.Time, betPhase time.Duration, resolvedInBetPhase int64) Summary {
	s := Summary{
		Clients:              r.cfg.Clients,
		DurationSeconds:      r.cfg.Duration.Seconds(),
		ElapsedSeconds:       time.Since(start).Seconds(),
		BetsPlaced:           r.c.placed.Load(),
		BetsSent:             r.c.sent.Load(),
		Resends:              r.c.resends.Load(),
		Results:              r.c.results.Load(),
		Rejected:             r.c.rejected.Load(),
		RefusedResends:       r.c.refusedResends.Load(),
		Deliveries:           r.c.deliveries.Load(),
		Redelivered:          r.c.redelivered.Load(),
		DuplicateDeliveries:  r.c.dupDeliveries.Load(),
		DuplicateSettlements: r.c.dupSettlements.Load(),
		Misdelivered:         r.c.misdelivered.Load(),
		Disconnects:          r.c.disconnects.Load(),
		Reconnects:           r.c.reconnects.Load(),
		DialFailures:         r.c.dialFailures.Load(),
	}
	var lat, connected, dropped []time.Duration
	for _, p := range players {
		if !p.connected {
			s.NeverConnected++
		}
		p.mu.Lock()
		connected = append(connected, p.latencies...)
		dropped = append(dropped, p.dropLatency...)
		for _, b := range p.bets {
			if b.lost() {
				s.Lost++
			}
		}
		switch {
		case p.balanceErr != nil:
			s.BalanceUnchecked++
		case p.balanceRead:
			s.BalanceChecks++
			if p.finalBalance != p.expectedBalance() {
				s.BalanceMismatches++
				r.fail("player %s: balance %d, ledger says %d", p.id, p.finalBalance, p.expectedBalance())
			}
		}
		p.mu.Unlock()
	}
	lat = append(append(lat, connected...), dropped...)
	s.P99ConnectedMs = ms(p99(connected))
	s.P99DroppedMs = ms(p99(dropped))
	if len(lat) > 0 {
		slices.Sort(lat)
		s.P50ms = ms(percentile(lat, 0.50))
		s.P99ms = ms(percentile(lat, 0.99))
		s.MaxMs = ms(lat[len(lat)-1])
	}
	if d := betPhase.Seconds(); d > 0 {
		s.BetsPerSecond = float64(resolvedInBetPhase) / d
	}
	r.errMu.Lock()
	s.Errors = slices.Clone(r.errors)
	r.errMu.Unlock()
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// p99 sorts samples and returns their 99th percentile (0 for none).
func p99(samples []time.Duration) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	return percentile(samples, 0.99)
}

// percentile uses the nearest-rank method on sorted samples.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

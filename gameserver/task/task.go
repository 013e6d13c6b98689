// Package task is the game server's bet flow, structured and named like the
// incident's arcade-wilddig-gameserver/task package so that stacks read like
// the report's:
//
//	ClientCashDeductRes                    deducts the stake in a goroutine, then
//	  ClientWildDigGetAPIBetResponse       draws the card and
//	    ClientCashWinAccountRes            starts the win-credit goroutine,
//	      ClientGetWilddigReckonBetRes     whose closure settles the bet;
//	    onWildDigBetClientResp             then the handler sends the result
//	      clientWrite                      to the player's session.
//
// In legacy mode (build 20251030111505) the wilddig and goldenclover handlers
// write to whatever session the player has at response time — nil after a
// disconnect — and panic; the reckon goroutine, waiting for the handler to
// confirm the response, is left behind. In patched mode every fix in the
// report applies: checked sessions, cancellation before the deduction,
// settlement that survives the client, retries with backoff, a durable
// dead-letter outbox delivered on reconnect.
package task

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stackwatch/stackwatch/gameserver/game"
	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/gameserver/session"
	"github.com/stackwatch/stackwatch/gameserver/stacktool"
	"github.com/stackwatch/stackwatch/gameserver/wallet"
	"github.com/stackwatch/stackwatch/metrics"
)

// Session is a player's connection as the bet flow sees it. It is an
// interface, as in the original, so a missing session is the nil interface
// and prints as {0x0, 0x0} in a stack trace.
type Session interface {
	ID() uint64
	PlayerID() string
	Write(data []byte, size int) error
	IsClosed() bool
}

// ClosedSessionMsg is forestteaparty's warning when a result finds the
// player's session closed (the report's log line, in English).
const ClosedSessionMsg = "[Client] Gate session closed, message cannot be sent"

// Metrics are the collectors the flow updates. Build them with NewMetrics.
type Metrics struct {
	NilSessionAttempts  prometheus.Counter
	ClientWriteFailures *prometheus.CounterVec
	BetDuration         prometheus.Histogram
	BetResults          *prometheus.CounterVec
}

// NewMetrics builds the flow's collectors from the catalog, with every label
// value present from the start.
func NewMetrics() *Metrics {
	m := &Metrics{
		NilSessionAttempts:  metrics.NilSessionAttempts.NewCounter(),
		ClientWriteFailures: metrics.ClientWriteFailures.NewCounterVec(),
		BetDuration:         metrics.BetDuration.NewHistogram(),
		BetResults:          metrics.BetResults.NewCounterVec(),
	}
	for _, r := range []string{metrics.ReasonNilSession, metrics.ReasonClosedSession, metrics.ReasonIOError, metrics.ReasonTimeout} {
		m.ClientWriteFailures.WithLabelValues(r)
	}
	for _, o := range []string{metrics.OutcomeDelivered, metrics.OutcomeQueued, metrics.OutcomeDeadLettered, metrics.OutcomeFailed} {
		m.BetResults.WithLabelValues(o)
	}
	return m
}

// Collectors lists the collectors for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.NilSessionAttempts, m.ClientWriteFailures, m.BetDuration, m.BetResults}
}

// RetryPolicy bounds live redelivery of a result whose session was gone.
type RetryPolicy struct {
	Base     time.Duration // first delay
	Max      time.Duration // cap on one delay
	Tries    int           // tries before the result is dead-lettered
	MaxQueue int           // queue bound; beyond it results go straight to the dead-letter store
}

// DefaultRetryPolicy retries for about seven seconds.
var DefaultRetryPolicy = RetryPolicy{Base: 50 * time.Millisecond, Max: 2 * time.Second, Tries: 8, MaxQueue: 100_000}

// Config wires a Task.
type Config struct {
	Game     *game.Game
	Legacy   bool
	Wallet   *wallet.Wallet
	Sessions *session.Manager
	Recorder *stacktool.Recorder
	Metrics  *Metrics
	Logger   *slog.Logger
	Retry    RetryPolicy // zero means DefaultRetryPolicy
	// RedeliveryPage bounds the results sent at once when a player comes
	// back; the rest follow as the player acks. 0 means DefaultRedeliveryPage.
	RedeliveryPage int
}

// DefaultRedeliveryPage is the default Config.RedeliveryPage.
const DefaultRedeliveryPage = 256

// Task runs bets for one game.
type Task struct {
	game     *game.Game
	legacy   bool
	wallet   *wallet.Wallet
	sessions *session.Manager
	rec      *stacktool.Recorder
	m        *Metrics
	log      *slog.Logger

	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup // bet and win-credit goroutines, until a legacy reckon parks
	parked    sync.WaitGroup // legacy reckon goroutines parked for the handler's confirmation

	inflightMu sync.Mutex
	inflight   map[string]*inflight

	retry *retrier
	leaks leakRegistry
	page  int // backlog page size

	boxMu sync.Mutex
	boxes map[string]*mailbox // players with a delivery or backlog under way
}

type inflight struct {
	n    int
	idle chan struct{}
}

// New builds a Task. Call Close when done.
func New(cfg Config) (*Task, error) {
	if cfg.Game == nil || cfg.Wallet == nil || cfg.Sessions == nil || cfg.Recorder == nil {
		return nil, errors.New("task: Game, Wallet, Sessions and Recorder are required")
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Retry == (RetryPolicy{}) {
		cfg.Retry = DefaultRetryPolicy
	}
	t := &Task{
		game: cfg.Game, legacy: cfg.Legacy, wallet: cfg.Wallet, sessions: cfg.Sessions, rec: cfg.Recorder,
		m: cfg.Metrics, log: cfg.Logger, closing: make(chan struct{}), inflight: make(map[string]*inflight),
		page: cmp.Or(cfg.RedeliveryPage, DefaultRedeliveryPage), boxes: make(map[string]*mailbox),
	}
	t.retry = newRetrier(t, cfg.Retry)
	t.leaks.init()
	if t.legacy {
		legacyTasks.Add(1)
	}
	return t, nil
}

// Run drives the retry queue until ctx ends.
func (t *Task) Run(ctx context.Context) { t.retry.run(ctx) }

// Close stops new work and waits for every bet goroutine. Legacy mode's
// leaked goroutines are released (so a test's leak check passes) only where
// the runtime cannot have proven them leaked: waking a goroutine the
// goroutineleak profile marked kills the process ("bad g->status in
// ready"). With that profile built in they stay parked, as in the original.
func (t *Task) Close() {
	t.closeOnce.Do(func() {
		close(t.closing)
		t.wg.Wait()
		if !leakProfileBuiltIn() {
			t.leaks.releaseAll()
			t.parked.Wait()
		}
		if t.legacy {
			legacyTasks.Add(-1)
		}
	})
}

// Legacy reports whether the task runs build 20251030111505's behaviour.
func (t *Task) Legacy() bool { return t.legacy }

// Pending is the number of results waiting in the retry queue.
func (t *Task) Pending() int { return t.retry.len() }

// LeakedGoroutines is the number of legacy reckon goroutines still waiting.
func (t *Task) LeakedGoroutines() int { return t.leaks.len() }

// bet is one bet in flight.
type bet struct {
	player string
	id     string
	amount int64
	start  time.Time

	outcomeOnce atomic.Bool
	responded   *waiter // legacy: the handler's confirmation the reckon waits for
}

func (t *Task) outcome(b *bet, outcome string) {
	if b.outcomeOnce.CompareAndSwap(false, true) {
		t.m.BetResults.WithLabelValues(outcome).Inc()
	}
}

// MaxBetsInFlight bounds one player's unsettled bets in patched mode, so a
// client flooding Bet frames cannot grow the goroutine count without bound.
const MaxBetsInFlight = 64

// begin records a bet in flight for player, unless limit (>0) are already.
func (t *Task) begin(player string, limit int) bool {
	t.inflightMu.Lock()
	defer t.inflightMu.Unlock()
	f := t.inflight[player]
	if f == nil {
		f = &inflight{idle: make(chan struct{})}
		t.inflight[player] = f
	}
	if limit > 0 && f.n >= limit {
		return false
	}
	f.n++
	return true
}

func (t *Task) end(player string) {
	t.inflightMu.Lock()
	defer t.inflightMu.Unlock()
	f := t.inflight[player]
	if f == nil {
		return
	}
	if f.n--; f.n == 0 {
		close(f.idle)
		delete(t.inflight, player)
	}
}

// Balance returns the player's ledger balance once every bet received from
// them so far has settled.
func (t *Task) Balance(ctx context.Context, player string) (int64, error) {
	t.inflightMu.Lock()
	f := t.inflight[player]
	t.inflightMu.Unlock()
	if f != nil {
		select {
		case <-f.idle:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-t.closing:
			return 0, errors.New("task: shutting down")
		}
	}
	return t.wallet.Balance(player)
}

// lookup returns the player's current session, or the nil interface.
func (t *Task) lookup(player string) Session {
	if s, ok := t.sessions.Get(player); ok {
		return s
	}
	return nil
}

// countWriteFailure records a failed clientWrite by reason.
func (t *Task) countWriteFailure(err error) {
	reason := metrics.ReasonIOError
	switch {
	case errors.Is(err, ErrSessionNil):
		reason = metrics.ReasonNilSession
		t.m.NilSessionAttempts.Inc()
	case errors.Is(err, ErrSessionClosed):
		reason = metrics.ReasonClosedSession
	case session.IsTimeout(err):
		reason = metrics.ReasonTimeout
	}
	t.m.ClientWriteFailures.WithLabelValues(reason).Inc()
}

var errWrongOwner = errors.New("task: session belongs to another player")

// errPlayerAway: the player has no open session; the result waits in the
// outbox for their reconnect.
var errPlayerAway = errors.New("task: player has no open session")

// deliver writes a result to session, which must belong to player: a
// result only ever goes to its owner.
func (t *Task) deliver(s Session, player string, data []byte) error {
	if s != nil && s.PlayerID() != player {
		t.log.Error("refusing to deliver a result to another player's session",
			"owner", player, "session_player", s.PlayerID(), "session", s.ID())
		return errWrongOwner
	}
	err := clientWrite(s, data, len(data))
	if err != nil {
		t.countWriteFailure(err)
	}
	return err
}

// sendError tells the player's current session that a bet failed.
func (t *Task) sendError(player string, e *protocol.Error) {
	s := t.lookup(player)
	if s == nil || s.IsClosed() {
		return
	}
	data, err := protocol.Marshal(protocol.TypeError, e)
	if err != nil {
		return
	}
	if err := t.deliver(s, player, data); err != nil {
		t.log.Debug("error reply not sent", "player", player, "err", err)
	}
}

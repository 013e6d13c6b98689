// Package gameserver is the scratch-card game server of the stackwatch
// project: a TCP server for one of the three games (see package protocol for
// the wire format and package task for the bet flow), with a durable wallet,
// and an admin listener serving /metrics, pprof and health checks.
//
// With Config.Legacy it replays build 20251030111505's bug: results written
// to nil sessions panic, each panic leaves a stacktrace file in the log
// directory, and goroutines leak.
package gameserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/version"

	"github.com/stackwatch/stackwatch/gameserver/game"
	"github.com/stackwatch/stackwatch/gameserver/session"
	"github.com/stackwatch/stackwatch/gameserver/stacktool"
	"github.com/stackwatch/stackwatch/gameserver/task"
	"github.com/stackwatch/stackwatch/gameserver/wallet"
	"github.com/stackwatch/stackwatch/internal/cli"
	"github.com/stackwatch/stackwatch/metrics"
)

// LogFileName is the JSON log the server writes in its log directory, beside
// the stacktrace files.
const LogFileName = "gameserver.log"

// Server is one game server.
type Server struct {
	cfg     Config
	log     *slog.Logger // with service, game and mode
	baseLog *slog.Logger
	logFile *os.File

	ln      net.Listener
	adminLn net.Listener
	pprofLn net.Listener   // nil: pprof is served on the admin listener
	https   []*http.Server // admin, then pprof if separate
	reg     *prometheus.Registry

	wallet   *wallet.Wallet
	sessions *session.Manager
	task     *task.Task
	rec      *stacktool.Recorder

	sessionsCreated prometheus.Counter
	sessionsClosed  prometheus.Counter
	panics          prometheus.Counter
	refused         *prometheus.CounterVec

	nextSession atomic.Uint64
	ready       atomic.Bool
	runOnce     atomic.Bool

	connsMu sync.Mutex
	conns   map[net.Conn]struct{}
	unauth  int // of conns, those before their Hello
	connWG  sync.WaitGroup
}

// New checks cfg, binds the listeners, opens the ledger (settling any bet a
// crash left unsettled) and returns a server ready to Run. logger may be nil
// (JSON on stderr); everything is also logged as JSON to LogDir/gameserver.log.
//
// A failed New names what failed and the flag involved, and leaves nothing
// behind: listeners closed, and the log and data directories removed if it
// created them.
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, configError{err}
	}
	g, _ := game.Lookup(cfg.Game)
	if logger == nil {
		logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	s := &Server{cfg: cfg, conns: make(map[net.Conn]struct{})}
	var undo []func()
	ok := false
	defer func() {
		if !ok {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	listen := func(flag, addr string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("-%s %s: %w", flag, addr, err)
		}
		undo = append(undo, func() { ln.Close() })
		return ln, nil
	}
	var err error
	if s.ln, err = listen("listen", cfg.Listen); err != nil {
		return nil, err
	}
	if s.adminLn, err = listen("admin", cfg.Admin); err != nil {
		return nil, err
	}
	if cfg.Pprof != "" {
		if s.pprofLn, err = listen("pprof", cfg.Pprof); err != nil {
			return nil, err
		}
	}
	for _, d := range []struct{ flag, dir string }{{"log-dir", cfg.LogDir}, {"data-dir", cfg.DataDir}} {
		created, err := mkdirAll(d.dir)
		if created != "" {
			undo = append(undo, func() { os.RemoveAll(created) })
		}
		if err != nil {
			return nil, fmt.Errorf("-%s %s: %w", d.flag, d.dir, err)
		}
	}

	logPath := filepath.Join(cfg.LogDir, LogFileName)
	_, statErr := os.Stat(logPath)
	s.logFile, err = os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("-log-dir %s: %w", cfg.LogDir, err)
	}
	undo = append(undo, func() {
		s.logFile.Close()
		if errors.Is(statErr, fs.ErrNotExist) {
			os.Remove(logPath)
		}
	})
	s.baseLog = slog.New(slog.NewMultiHandler(logger.Handler(), slog.NewJSONHandler(s.logFile, nil)))
	s.log = s.baseLog.With("service", cfg.Service, "game", cfg.Game, "mode", cfg.Mode())

	s.wallet, err = wallet.Open(cfg.DataDir, wallet.Options{
		InitialBalance: cfg.InitialBalance, Latency: cfg.WalletLatency, Outbox: !cfg.Legacy, New: cfg.NewLedger,
		BetHistory: cfg.BetHistory,
	})
	if err != nil {
		return nil, fmt.Errorf("-data-dir %s: %w", cfg.DataDir, err)
	}
	undo = append(undo, func() { s.wallet.Close() })

	s.reg = prometheus.NewRegistry()
	tm := task.NewMetrics()
	s.sessionsCreated = metrics.SessionsCreated.NewCounter()
	s.sessionsClosed = metrics.SessionsClosed.NewCounter()
	s.panics = metrics.PanicsRecovered.NewCounter()
	s.refused = metrics.ConnectionsRefused.NewCounterVec()
	for _, r := range []string{metrics.ReasonMaxConns, metrics.ReasonUnauthenticated} {
		s.refused.WithLabelValues(r)
	}
	s.sessions = session.NewManager(func(*session.GateSession, string) { s.sessionsClosed.Inc() })
	s.rec = &stacktool.Recorder{Dir: cfg.LogDir, Service: cfg.Service, Legacy: cfg.Legacy, Logger: s.log,
		OnPanic: func(any, string) { s.panics.Inc() }}
	s.task, err = task.New(task.Config{Game: g, Legacy: cfg.Legacy, Wallet: s.wallet, Sessions: s.sessions,
		Recorder: s.rec, Metrics: tm, Logger: s.log, Retry: cfg.Retry, RedeliveryPage: cfg.RedeliveryPage})
	if err != nil {
		return nil, err
	}
	undo = append(undo, s.task.Close)
	if err := s.recoverLedger(tm); err != nil {
		return nil, fmt.Errorf("-data-dir %s: %w", cfg.DataDir, err)
	}
	if err := s.register(tm); err != nil {
		return nil, err
	}

	admin := http.NewServeMux()
	s.registerAdmin(admin)
	if s.pprofLn == nil {
		registerPprof(admin)
	}
	s.https = append(s.https, &http.Server{Handler: admin, ReadHeaderTimeout: 5 * time.Second})
	var pprofMux *http.ServeMux // nil: pprof shares the admin mux
	if s.pprofLn != nil {
		pprofMux = http.NewServeMux()
		registerPprof(pprofMux)
		s.https = append(s.https, &http.Server{Handler: pprofMux, ReadHeaderTimeout: 5 * time.Second})
	}
	if err := s.registerLandingAndFault(admin, pprofMux); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// mkdirAll is os.MkdirAll that also returns the topmost directory it
// created (empty if dir existed), for removal when start-up fails.
func mkdirAll(dir string) (created string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		created = d
		if filepath.Dir(d) == d {
			break
		}
	}
	return created, os.MkdirAll(abs, 0o755)
}

// recoverLedger settles bets a crash left between deduction and settlement.
// Their results wait in the outbox for the player's reconnect.
func (s *Server) recoverLedger(tm *task.Metrics) error {
	results, err := s.wallet.Recover()
	if err != nil {
		return err
	}
	outcome := metrics.OutcomeDeadLettered
	if s.cfg.Legacy {
		outcome = metrics.OutcomeFailed // no outbox: the player never hears
	}
	for _, r := range results {
		if !s.cfg.Legacy {
			if err := s.wallet.MarkDead(r.PlayerID, r.BetID); err != nil {
				return err
			}
		}
		tm.BetResults.WithLabelValues(outcome).Inc()
	}
	if len(results) > 0 {
		s.log.Warn("settled bets left unsettled by the last run", "bets", len(results))
	}
	return nil
}

func (s *Server) register(tm *task.Metrics) error {
	reg := s.reg
	mode := metrics.GameserverModeInfo.NewGaugeVec()
	mode.WithLabelValues(s.cfg.Mode()).Set(1)
	limit := float64(memoryLimit(s.cfg.MemoryLimit))
	cs := append(tm.Collectors(),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		s.sessionsCreated, s.sessionsClosed, s.panics, s.refused, cli.BuildInfo("gameserver"), mode,
		metrics.SessionsActive.NewGaugeFunc(func() float64 { return float64(s.sessions.Len()) }),
		metrics.PendingResponses.NewGaugeFunc(func() float64 { return float64(s.task.Pending()) }),
		metrics.DeadLetters.NewGaugeFunc(func() float64 { return float64(s.wallet.DeadLetters()) }),
		metrics.BetsPruned.NewCounterFunc(func() float64 { return float64(s.wallet.Pruned()) }),
		metrics.BetsForgotten.NewCounterFunc(func() float64 { return float64(s.wallet.Refused()) }),
		metrics.MemoryInUse.NewGaugeFunc(residentMemory),
		metrics.MemoryLimit.NewGaugeFunc(func() float64 { return limit }),
	)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}

// Addr is the game listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// AdminAddr is the admin listener's address.
func (s *Server) AdminAddr() net.Addr { return s.adminLn.Addr() }

// PprofAddr is the address serving /debug/pprof: the separate pprof
// listener if configured, else the admin listener.
func (s *Server) PprofAddr() net.Addr {
	if s.pprofLn != nil {
		return s.pprofLn.Addr()
	}
	return s.adminLn.Addr()
}

// Registry is the server's private metric registry; every series carries
// service="<name>".
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Config is the effective configuration, defaults applied.
func (s *Server) Config() Config { return s.cfg }

// Wallet exposes the ledger (for tests and tools).
func (s *Server) Wallet() *wallet.Wallet { return s.wallet }

// Task exposes the bet flow (for tests and tools).
func (s *Server) Task() *task.Task { return s.task }

// Run serves until ctx ends, then shuts down gracefully: listeners closed,
// sessions closed, bets in flight settled, the ledger closed. Goroutines the
// legacy mode leaked are released too, so nothing is left behind. Run may be
// called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.runOnce.CompareAndSwap(false, true) {
		return errors.New("Run called twice")
	}
	// Addresses first, so process-based tests find them easily:
	// {"time":...,"level":"INFO","msg":"listening","addr":"127.0.0.1:PORT","admin":"127.0.0.1:PORT",...}
	s.baseLog.Info("listening", "addr", s.Addr().String(), "admin", s.AdminAddr().String(), "pprof", s.PprofAddr().String(),
		"service", s.cfg.Service, "game", s.cfg.Game, "mode", s.cfg.Mode(), "version", version.Version,
		"log_dir", s.cfg.LogDir, "data_dir", s.cfg.DataDir)

	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { s.task.Run(bg) })
	if !s.cfg.Legacy {
		wg.Go(func() { s.sessions.RunReaper(bg, s.cfg.ReapInterval, s.cfg.StaleAfter) })
	}
	adminErr := make(chan error, len(s.https))
	for i, ln := range []net.Listener{s.adminLn, s.pprofLn}[:len(s.https)] {
		wg.Go(func() {
			if err := s.https[i].Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				adminErr <- err
			}
		})
	}
	acceptErr := make(chan error, 1)
	wg.Go(func() { acceptErr <- s.accept(bg) })
	s.ready.Store(true)

	var err error
	select {
	case <-ctx.Done():
	case err = <-acceptErr:
		err = fmt.Errorf("accept: %w", err)
	case err = <-adminErr:
		err = fmt.Errorf("admin: %w", err)
	}

	s.ready.Store(false)
	s.log.Info("shutting down")
	s.ln.Close()
	s.sessions.CloseAll()
	s.closeConns()
	s.connWG.Wait()
	s.task.Close() // bets in flight settle; their results stay in the outbox
	stopBG()
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	for _, h := range s.https {
		h.Shutdown(shutCtx)
	}
	cancel()
	wg.Wait()
	if cerr := s.wallet.Close(); cerr != nil && err == nil {
		err = cerr
	}
	s.log.Info("stopped")
	s.logFile.Close()
	return err
}

func (s *Server) accept(ctx context.Context) error {
	var delay time.Duration
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off and go on.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "in", delay)
			select {
			case <-time.After(delay):
				continue
			case <-ctx.Done():
				return nil
			}
		}
		delay = 0
		if reason, ok := s.track(conn); !ok {
			if reason != "" {
				s.refused.WithLabelValues(reason).Inc()
				if tc, ok := conn.(*net.TCPConn); ok {
					tc.SetLinger(0) // a reset: no TIME_WAIT, and the descriptor goes at once
				}
			}
			conn.Close()
			continue
		}
		go s.serveConn(ctx, conn)
	}
}

// track registers a new, unauthenticated connection for shutdown, within
// the connection caps. If it may not stay, it returns the cap it hit (empty
// once shutting down).
func (s *Server) track(c net.Conn) (refusal string, ok bool) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	switch {
	case s.conns == nil:
		return "", false
	case len(s.conns) >= s.cfg.MaxConns:
		return metrics.ReasonMaxConns, false
	case s.unauth >= s.cfg.MaxUnauthConns:
		return metrics.ReasonUnauthenticated, false
	}
	s.conns[c] = struct{}{}
	s.unauth++
	s.connWG.Add(1)
	return "", true
}

// authenticated moves a connection out of the unauthenticated cap once its
// Hello is settled, accepted or not.
func (s *Server) authenticated() {
	s.connsMu.Lock()
	s.unauth--
	s.connsMu.Unlock()
}

func (s *Server) untrack(c net.Conn) {
	s.connsMu.Lock()
	delete(s.conns, c)
	s.connsMu.Unlock()
	s.connWG.Done()
}

func (s *Server) closeConns() {
	s.connsMu.Lock()
	conns := s.conns
	s.conns = nil
	s.connsMu.Unlock()
	for c := range conns {
		c.Close()
	}
}

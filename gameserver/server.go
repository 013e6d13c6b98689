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
	"github.com/stackwatch/stackwatch/gameserver/ticket"
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

	nextSession atomic.Uint64
	ready       atomic.Bool
	runOnce     atomic.Bool

	connsMu sync.Mutex
	conns   map[net.Conn]struct{}
	connWG  sync.WaitGroup
}

// New opens the ledger (settling any bet a crash left unsettled), binds both
// listeners and returns a server ready to Run. logger may be nil (JSON on
// stderr); everything is also logged as JSON to LogDir/gameserver.log.
func New(cfg Config, logger *slog.Logger) (s *Server, err error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	g, _ := game.Lookup(cfg.Game)
	for _, d := range []string{cfg.LogDir, cfg.DataDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("gameserver: %w", err)
		}
	}
	if logger == nil {
		logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	s = &Server{cfg: cfg, conns: make(map[net.Conn]struct{})}
	var closers []func() error
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()

	s.logFile, err = os.OpenFile(filepath.Join(cfg.LogDir, LogFileName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("gameserver: log file: %w", err)
	}
	closers = append(closers, s.logFile.Close)
	s.baseLog = slog.New(slog.NewMultiHandler(logger.Handler(), slog.NewJSONHandler(s.logFile, nil)))
	s.log = s.baseLog.With("service", cfg.Service, "game", cfg.Game, "mode", cfg.Mode())

	s.wallet, err = wallet.Open(cfg.DataDir, wallet.Options{
		InitialBalance: cfg.InitialBalance, Latency: cfg.WalletLatency, Outbox: !cfg.Legacy,
	})
	if err != nil {
		return nil, err
	}
	closers = append(closers, s.wallet.Close)

	s.reg = prometheus.NewRegistry()
	tm := task.NewMetrics()
	s.sessionsCreated = metrics.SessionsCreated.NewCounter()
	s.sessionsClosed = metrics.SessionsClosed.NewCounter()
	s.panics = metrics.PanicsRecovered.NewCounter()
	s.sessions = session.NewManager(func(*session.GateSession, string) { s.sessionsClosed.Inc() })
	s.rec = &stacktool.Recorder{Dir: cfg.LogDir, Service: cfg.Service, Legacy: cfg.Legacy, Logger: s.log,
		OnPanic: func(any, string) { s.panics.Inc() }}
	s.task, err = task.New(task.Config{Game: g, Legacy: cfg.Legacy, Wallet: s.wallet, Sessions: s.sessions,
		Recorder: s.rec, Metrics: tm, Logger: s.log, Retry: cfg.Retry})
	if err != nil {
		return nil, err
	}
	t := s.task // not s.task in the closure: a failed New returns s = nil
	closers = append(closers, func() error { t.Close(); return nil })
	if err := s.recoverLedger(tm); err != nil {
		return nil, err
	}
	if err := s.register(tm); err != nil {
		return nil, err
	}

	if s.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("gameserver: listen: %w", err)
	}
	closers = append(closers, s.ln.Close)
	if s.adminLn, err = net.Listen("tcp", cfg.Admin); err != nil {
		return nil, fmt.Errorf("gameserver: admin listen: %w", err)
	}
	closers = append(closers, s.adminLn.Close)
	admin := http.NewServeMux()
	s.registerAdmin(admin)
	if cfg.Pprof == "" {
		registerPprof(admin)
	} else {
		if s.pprofLn, err = net.Listen("tcp", cfg.Pprof); err != nil {
			return nil, fmt.Errorf("gameserver: pprof listen: %w", err)
		}
		closers = append(closers, s.pprofLn.Close)
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
	return s, nil
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
	reg := metrics.WrapService(s.reg, s.cfg.Service)
	mode := metrics.GameserverModeInfo.NewGaugeVec()
	mode.WithLabelValues(s.cfg.Mode()).Set(1)
	limit := float64(memoryLimit(s.cfg.MemoryLimit))
	cs := append(tm.Collectors(),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		s.sessionsCreated, s.sessionsClosed, s.panics, cli.BuildInfo("gameserver"), mode,
		metrics.SessionsActive.NewGaugeFunc(func() float64 { return float64(s.sessions.Len()) }),
		metrics.PendingResponses.NewGaugeFunc(func() float64 { return float64(s.task.Pending()) }),
		metrics.DeadLetters.NewGaugeFunc(func() float64 { return float64(s.wallet.DeadLetters()) }),
		metrics.MemoryInUse.NewGaugeFunc(residentMemory),
		metrics.MemoryLimit.NewGaugeFunc(func() float64 { return limit }),
	)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("gameserver: register metrics: %w", err)
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
		return errors.New("gameserver: Run called twice")
	}
	// Addresses first, so process-based tests find them easily:
	// {"time":...,"level":"INFO","msg":"listening","addr":"127.0.0.1:PORT","admin":"127.0.0.1:PORT",...}
	s.baseLog.Info("listening", "addr", s.Addr().String(), "admin", s.AdminAddr().String(), "pprof", s.PprofAddr().String(),
		"service", s.cfg.Service, "game", s.cfg.Game, "mode", s.cfg.Mode(), "version", version.Version,
		"log_dir", s.cfg.LogDir, "data_dir", s.cfg.DataDir)
	s.warnDevSecret()
	s.warnPprofExposed()

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
		err = fmt.Errorf("gameserver: accept: %w", err)
	case err = <-adminErr:
		err = fmt.Errorf("gameserver: admin: %w", err)
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

func (s *Server) warnDevSecret() {
	if string(s.cfg.Secret) != ticket.DevSecret {
		return
	}
	if ip := addrIP(s.Addr()); ip != nil && ip.IsLoopback() {
		return
	}
	s.log.Warn("!!! INSECURE: the built-in development ticket secret is in use on a non-loopback address; "+
		"anyone can forge player tickets. Set -secret-file.", "addr", s.Addr().String())
}

// warnPprofExposed warns when goroutine dumps, which carry player data in
// their arguments, are served beyond loopback.
func (s *Server) warnPprofExposed() {
	if ip := addrIP(s.PprofAddr()); ip != nil && ip.IsLoopback() {
		return
	}
	s.log.Warn("!!! /debug/pprof is served beyond loopback; goroutine dumps carry player data. "+
		"Set -pprof 127.0.0.1:PORT and point the sidecar's -target at it.", "pprof", s.PprofAddr().String())
}

func addrIP(a net.Addr) net.IP {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP
	}
	return nil
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
		if !s.track(conn) {
			conn.Close()
			continue
		}
		go s.serveConn(ctx, conn)
	}
}

// track registers a connection for shutdown; false once shutting down.
func (s *Server) track(c net.Conn) bool {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	if s.conns == nil {
		return false
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	return true
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

// Package sidecar runs stackwatch's sidecar: it wires the stacktrace-file
// pipeline (watch → ingest: decide, readfile, stacktrace, crash → the
// exporter here), the server log tailer, retention and the state file, and
// serves Prometheus metrics and a JSON API.
//
// Other parts plug in through three hooks: Mux (add HTTP routes before Run),
// Registerer (register collectors) and Config.Components (run alongside the
// sidecar and stopped with it). CrashGroups and CrashGroup read the crash
// groups, e.g. for a UI (Config.UI).
// Config.OnPanics reports each batch of newly counted panics, e.g. to capture
// a goroutine dump on a burst.
package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/ingest"
	"github.com/stackwatch/stackwatch/sidecar/logtail"
	"github.com/stackwatch/stackwatch/sidecar/retention"
	"github.com/stackwatch/stackwatch/sidecar/state"
	"github.com/stackwatch/stackwatch/sidecar/watch"
)

// ClosedSessionMsg is the msg of the game server's closed-session warning
// (forestteaparty's graceful path), counted in the server's JSON log.
const ClosedSessionMsg = "[Client] Gate session closed, message cannot be sent"

// DefaultServerLog is the server log's name inside the log directory.
const DefaultServerLog = "gameserver.log"

// Component is run alongside the sidecar by Run, with the same context.
type Component interface {
	Run(ctx context.Context) error
}

// ComponentFunc adapts a function to Component.
type ComponentFunc func(ctx context.Context) error

// Run calls f.
func (f ComponentFunc) Run(ctx context.Context) error { return f(ctx) }

// Config configures a Sidecar. Zero values take the defaults noted.
type Config struct {
	Service string // required: the service label on every series
	LogDir  string // required: where the server writes stacktrace files
	DataDir string // required: where state.json is kept

	Pattern        string        // default "*.stacktrace.log"
	Settle         time.Duration // quiet period for files written in place; default watch.DefaultSettle
	RescanInterval time.Duration // safety rescan period; default 1m
	PollInterval   time.Duration // polling period without inotify; default 250ms
	ForcePoll      bool          // poll even when inotify works

	// ServerLog is the server's JSON log; default <LogDir>/gameserver.log,
	// "-" disables tailing.
	ServerLog    string
	TailInterval time.Duration // default 250ms

	Retention         retention.Policy // off by default
	RetentionInterval time.Duration    // default 1m

	MaxSiteLabels int // crash_site label budget; default crash.DefaultMaxSiteLabels
	// MaxCrashGroups bounds the crash groups kept in memory and in the
	// state; past it the least recently seen roll into one "other" group
	// that keeps their counts. Default crash.DefaultMaxGroups.
	MaxCrashGroups int
	// MaxFileRecords bounds the per-file records in the state file; default
	// ingest.DefaultMaxFiles (see package state, Size).
	MaxFileRecords int
	StateInterval  time.Duration // how often state is saved when changed; default 1s
	// IncompleteAfter is how long a file may stay empty or hold only a
	// panic message before it counts as a parse failure; default 1m.
	IncompleteAfter time.Duration

	// Target is the game server's admin URL, for components that scrape it.
	Target string

	Logger *slog.Logger

	// Auth, if set, wraps the /api/v1 routes the sidecar serves (e.g.
	// bearer.Middleware): crash examples can carry player data. /metrics,
	// /healthz, /readyz and the landing page stay open.
	Auth func(http.Handler) http.Handler

	// UI, if set, is served at / and /ui/ behind Auth instead of the
	// landing page (the developer view).
	UI http.Handler

	// Components run alongside the sidecar (e.g. the goroutine profiler).
	// An error from one is logged and does not stop the others.
	Components []Component
	// OnPanics, if set, is called with the number of panics just counted,
	// from the ingest goroutine, so it must not block. It is not called for
	// the backlog taken in at start, only for panics that arrive later.
	OnPanics func(n int)
}

func (c *Config) defaults() error {
	switch {
	case c.Service == "":
		return errors.New("no service name")
	case c.LogDir == "":
		return errors.New("no log directory")
	case c.DataDir == "":
		return errors.New("no data directory")
	}
	if c.Pattern == "" {
		c.Pattern = watch.DefaultPattern
	}
	if _, err := filepath.Match(c.Pattern, ""); err != nil {
		return fmt.Errorf("bad pattern %q: %w", c.Pattern, err)
	}
	if c.ServerLog == "" {
		c.ServerLog = filepath.Join(c.LogDir, DefaultServerLog)
	}
	if c.RetentionInterval <= 0 {
		c.RetentionInterval = time.Minute
	}
	if c.StateInterval <= 0 {
		c.StateInterval = time.Second
	}
	if c.IncompleteAfter <= 0 {
		c.IncompleteAfter = ingest.DefaultIncompleteAfter
	}
	if c.MaxCrashGroups < 0 || c.MaxFileRecords < 0 {
		return errors.New("crash group and file record caps must not be negative")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Retention.MaxAge < 0 || c.Retention.MaxFiles < 0 || c.Retention.MaxBytes < 0 {
		return errors.New("retention bounds must not be negative")
	}
	return nil
}

// Sidecar is one running sidecar. Build it with New, then Run it. It only
// wires the parts together: the stacktrace pipeline (watch → ingest, which
// decides, reads, parses and groups → the exporter), the server log tailer,
// retention and the state file.
type Sidecar struct {
	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	mux     *http.ServeMux
	store   *state.Store
	loaded  state.Loaded
	watcher *watch.Watcher
	tailer  *logtail.Tailer
	groups  *crash.Groups
	m       *exporter

	ready   atomic.Bool
	healthy atomic.Bool
	hooks   []func(n int) // OnPanics and AddPanicHook; fixed once Run starts
	saveMu  sync.Mutex    // serialises Save calls

	// mu serialises the pipeline's events with the log tailer, retention
	// and the state snapshot, so a saved state is never half an event: the
	// seen files, the crash groups and the counters always agree.
	mu       sync.Mutex
	pipeline *ingest.Pipeline
	logPos   state.Log
	changes  uint64 // pipeline.Changes() when last saved
	dirty    bool   // counters or log position changed since the last save
}

// New loads the state, builds the exporter and the watcher. It does not
// start anything; call Run.
func New(cfg Config) (*Sidecar, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Sidecar{
		cfg: cfg, log: cfg.Logger.With("service", cfg.Service), reg: prometheus.NewRegistry(), mux: http.NewServeMux(),
		groups: crash.NewGroupsMax(cfg.MaxCrashGroups),
	}
	s.healthy.Store(true)
	if cfg.OnPanics != nil {
		s.hooks = append(s.hooks, cfg.OnPanics)
	}
	var err error
	if s.store, err = state.NewStore(cfg.DataDir, s.log); err != nil {
		return nil, err
	}
	st, loaded, err := s.store.Load()
	if err != nil {
		return nil, err
	}
	s.loaded = loaded
	if s.m, err = newExporter(s, crash.NewSiteLabels(cfg.MaxSiteLabels)); err != nil {
		return nil, err
	}
	s.pipeline = ingest.New(ingest.Config{
		IncompleteAfter: cfg.IncompleteAfter, Corrupt: loaded.Corrupt, Logger: s.log,
	}, s.groups, s.m)
	s.restore(st)

	s.watcher, err = watch.New(watch.Config{
		Dir: cfg.LogDir, Pattern: cfg.Pattern, Settle: cfg.Settle, RescanInterval: cfg.RescanInterval,
		PollInterval: cfg.PollInterval, ForcePoll: cfg.ForcePoll, Logger: s.log,
	})
	if err != nil {
		return nil, err
	}
	s.m.setPolling(s.watcher.Polling()) // inotify may have failed in watch.New
	if cfg.ServerLog != "-" {
		pos := logtail.Position{}
		if l := st.Log; l.Path == cfg.ServerLog {
			pos = logtail.Position{Dev: l.Dev, Ino: l.Ino, Offset: l.Offset, Head: l.Head, HeadN: l.HeadN}
		}
		s.tailer, err = logtail.New(logtail.Config{
			Path: cfg.ServerLog, Interval: cfg.TailInterval, Match: logtail.JSONMsg(ClosedSessionMsg),
			StartAtEnd: loaded.Corrupt, Logger: s.log,
		}, pos)
		if err != nil {
			return nil, err
		}
	}
	s.routes()
	return s, nil
}

// restore brings back what the state file holds: the file records, the
// crash groups and the counters. It runs before Run.
func (s *Sidecar) restore(st *state.State) {
	s.pipeline.Restore(st.Files, st.SeenBefore)
	s.groups.Restore(st.Groups)
	s.m.restore(st.Counters, st.Groups)
	s.logPos = st.Log
	s.changes = s.pipeline.Changes()
	s.m.files(s.pipeline.Files())
}

// AddComponent adds a component to run alongside the sidecar (see
// Config.Components). Call it before Run.
func (s *Sidecar) AddComponent(c Component) { s.cfg.Components = append(s.cfg.Components, c) }

// AddPanicHook adds a function called like Config.OnPanics (from the ingest
// goroutine, for panics counted after the backlog; it must not block). Call
// it before Run.
func (s *Sidecar) AddPanicHook(f func(n int)) { s.hooks = append(s.hooks, f) }

// Mux is the HTTP mux Run serves; add routes before Run.
func (s *Sidecar) Mux() *http.ServeMux { return s.mux }

// Handler is the sidecar's HTTP handler (the mux).
func (s *Sidecar) Handler() http.Handler { return s.mux }

// Registerer registers collectors on the sidecar's registry, served on
// /metrics.
func (s *Sidecar) Registerer() prometheus.Registerer { return s.reg }

// Gatherer is the sidecar's registry, as served on /metrics.
func (s *Sidecar) Gatherer() prometheus.Gatherer { return s.reg }

// CrashGroups returns the crash groups from offset on, at most limit of
// them (all for limit < 0), largest first, and how many there are in all.
// The "other" group, which holds the groups rolled out past
// -max-crash-groups, is among them.
func (s *Sidecar) CrashGroups(offset, limit int) (groups []crash.Group, total int) {
	all := s.groups.Snapshot()
	offset = min(max(offset, 0), len(all))
	end := len(all)
	if limit >= 0 {
		end = min(end, offset+limit)
	}
	return all[offset:end], len(all)
}

// CrashGroup returns the crash group of key, with its file list.
func (s *Sidecar) CrashGroup(key string) (crash.Group, bool) { return s.groups.Get(key) }

// Ready reports whether the backlog has been ingested.
func (s *Sidecar) Ready() bool { return s.ready.Load() }

// Polling reports whether the watcher fell back to polling.
func (s *Sidecar) Polling() bool { return s.m.isPolling() }

// Loaded says how the state file was found at start.
func (s *Sidecar) Loaded() state.Loaded { return s.loaded }

// Run runs the sidecar until ctx is done, serving HTTP on ln unless ln is
// nil. It saves the state before returning. It returns an error only if the
// watcher fails for good (the log directory cannot be watched or polled).
func (s *Sidecar) Run(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		watchErr error
	)
	wg.Go(func() {
		if err := s.watcher.Run(ctx, s.handle); err != nil {
			watchErr = err
			s.healthy.Store(false)
			s.log.Error("watcher stopped", "err", err)
			cancel()
		}
	})
	if s.tailer != nil {
		wg.Go(func() { _ = s.tailer.Run(ctx, s.onLogLines) })
	}
	wg.Go(func() { s.saveLoop(ctx) })
	if s.cfg.Retention.Enabled() {
		wg.Go(func() { s.retentionLoop(ctx) })
	}
	for _, c := range s.cfg.Components {
		wg.Go(func() {
			if err := c.Run(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("component stopped", "component", fmt.Sprintf("%T", c), "err", err)
			}
		})
	}
	if ln != nil {
		srv := &http.Server{
			Handler: s.mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute,
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}
		wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("http server stopped", "err", err)
				cancel()
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			_ = srv.Shutdown(sctx)
		})
	}
	<-ctx.Done()
	wg.Wait()
	if err := s.save(); err != nil {
		s.log.Error("final state save failed", "err", err)
	}
	return watchErr
}

func (s *Sidecar) saveLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.StateInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.save(); err != nil {
				s.log.Error("state save failed; will retry", "path", s.store.Path(), "err", err)
			}
		}
	}
}

// save writes the state if it changed since the last save.
func (s *Sidecar) save() error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	changes := s.pipeline.Changes()
	if !s.dirty && changes == s.changes {
		s.mu.Unlock()
		return nil
	}
	snap := &state.State{Log: s.logPos, Counters: s.m.series(), Groups: s.groups.Snapshot()}
	snap.Files, snap.SeenBefore = s.pipeline.Records(s.cfg.MaxFileRecords)
	s.dirty, s.changes = false, changes
	s.mu.Unlock()
	if err := s.store.Save(snap); err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return err
	}
	return nil
}

// Package profiler is the sidecar's goroutine watch: it scrapes the game
// server's goroutine profile (and, where served, the runtime's goroutineleak
// profile) on a schedule, feeds the leak detector, exports the goroutine
// metrics, keeps dumps in a bounded ring on the chosen triggers, and serves
// them over HTTP for developers.
//
// Only debug=0 profiles are scraped on a schedule: they are aggregated
// counts and cheap for the target. debug=2, which stops the world to print
// every goroutine, is fetched only when a developer asks (GET
// /api/v1/stacks) and is size-capped. Every fetch from the target, whoever
// asks, holds one lock until its body is parsed: the target never serves
// two of ours at once, and the sidecar holds one body at a time, capped
// before and after gunzip.
//
// A UI in the same process reads it through methods rather than the HTTP
// API: Status (suspects and their signals, scrape state), History (the
// recent scrapes, for trends), Goroutines (current stack groups, largest
// first), Leaked (the runtime's proven leaks), Store (the dump list and raw
// dumps), DumpGroups, DiffDumps, CaptureNow and Stacks.
package profiler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/dumps"
	"github.com/stackwatch/stackwatch/sidecar/goroutines"
	"github.com/stackwatch/stackwatch/sidecar/leak"
)

// Values of metrics.LabelTrigger on DumpsCaptured, as the catalog's help
// names them.
const (
	TriggerSchedule  = "schedule"
	TriggerThreshold = "threshold"
	TriggerPanics    = "panics"
	TriggerAlert     = "alert"
	TriggerManual    = "manual"
)

// Values of metrics.LabelProfile on ScrapeDuration.
const (
	ProfileGoroutine     = "goroutine"
	ProfileGoroutineLeak = "goroutineleak"
	ProfileStacks        = "goroutine_debug2" // on-demand debug=2 fetch
)

// Values of metrics.LabelReason on ScrapeErrors, as the catalog's help
// names them.
const (
	ReasonUnreachable = "unreachable"
	ReasonTimeout     = "timeout"
	ReasonStatus      = "status"
	ReasonTooLarge    = "too_large"
	ReasonMalformed   = "malformed"
)

// Config configures a Profiler. Zero fields take the defaults noted.
type Config struct {
	Target  string // base URL of the server's admin listener, e.g. http://127.0.0.1:7060 (required)
	Service string // service name recorded in dumps and matched against alerts (required)
	DataDir string // dumps are kept in DataDir/dumps (required)

	Interval        time.Duration // between scrapes; default 15s, as Pyroscope and Parca
	Timeout         time.Duration // per request, body included; default 10s, at most Interval
	MaxProfileBytes int64         // cap on a scraped profile, both as served and gunzipped; default 16 MiB
	MaxStacksBytes  int64         // cap on an on-demand debug=2 dump; default 32 MiB
	MaxBodyBytes    int64         // cap on API request bodies; default 1 MiB

	// Capture triggers.
	KeepEvery          int           // keep the 1st and every Nth scrape as a dump; default 20 (5 min at 15s); negative disables
	GoroutineThreshold int           // dump when the goroutine count rises to this; 0 disables
	PanicBurst         int           // panics within PanicWindow that trigger a dump; default 5; negative disables
	PanicWindow        time.Duration // default 1 minute
	Cooldown           time.Duration // least time between two panic- or alert-triggered dumps; default 1 minute

	// LeakProfileEvery scrapes the goroutineleak profile on every Nth
	// scrape; default 1. Each such scrape runs a leak-detecting GC cycle on
	// the target, so a big server may want it rarer; negative disables.
	LeakProfileEvery int

	LeakTopN int // locations exported per signal before the rest become "other"; default 10
	// HistoryLen is how many scrapes History keeps; default 240 (an hour
	// at 15s).
	HistoryLen int
	Leak       leak.Config // detector thresholds
	Dumps      dumps.Limits

	// Auth wraps every API route (e.g. bearer.Middleware); nil serves them
	// unauthenticated, which is only right on localhost (see bearer.Resolve).
	Auth func(http.Handler) http.Handler

	Client *http.Client // nil: a client with Timeout
}

func (c Config) withDefaults() (Config, error) {
	if c.Target == "" || c.Service == "" || c.DataDir == "" {
		return c, errors.New("profiler: Target, Service and DataDir are required")
	}
	u, err := url.Parse(c.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("profiler: target %q is not an http(s) URL", c.Target)
	}
	c.Target = strings.TrimSuffix(c.Target, "/")
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Interval, 15*time.Second)
	def(&c.Timeout, 10*time.Second)
	def(&c.PanicWindow, time.Minute)
	def(&c.Cooldown, time.Minute)
	// As Prometheus' scrape_timeout: a scrape never outlives its interval,
	// so the schedule cannot fall behind a slow target.
	c.Timeout = min(c.Timeout, c.Interval)
	defN := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	defN(&c.MaxProfileBytes, 16<<20)
	defN(&c.MaxStacksBytes, 32<<20)
	defN(&c.MaxBodyBytes, 1<<20)
	if c.KeepEvery == 0 {
		c.KeepEvery = 20
	}
	if c.PanicBurst == 0 {
		c.PanicBurst = 5
	}
	if c.LeakProfileEvery == 0 {
		c.LeakProfileEvery = 1
	}
	if c.LeakTopN <= 0 {
		c.LeakTopN = 10
	}
	if c.HistoryLen <= 0 {
		c.HistoryLen = 240
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: c.Timeout}
	}
	return c, nil
}

type promMetrics struct {
	goroutines     prometheus.Gauge
	groups         prometheus.Gauge
	suspects       *prometheus.GaugeVec
	leaked         prometheus.Gauge
	leakAvailable  prometheus.Gauge
	scrapeDuration *prometheus.HistogramVec
	scrapeErrors   *prometheus.CounterVec
	captured       *prometheus.CounterVec
}

// Profiler scrapes one target. Create it with New, start Run, and mount its
// routes with Register.
type Profiler struct {
	cfg   Config
	log   *slog.Logger
	store *dumps.Store
	det   *leak.Detector
	m     promMetrics

	captures chan captureRequest // asynchronous triggers: panics, alerts
	busy     chan struct{}       // one on-demand request waiting or fetching at a time
	target   chan struct{}       // one fetch from the target at a time (see acquire)

	mu            sync.Mutex
	last          *goroutines.Snapshot
	lastLeaked    *goroutines.Snapshot
	leakAvailable *bool // nil until the first answer
	lastScrape    time.Time
	lastErr       error
	scrapes       int
	armed         bool // goroutine threshold: re-armed once the count falls back
	panics        []panicBatch
	lastTrigger   map[string]time.Time
	history       []Sample // oldest first, at most HistoryLen
}

type panicBatch struct {
	at time.Time
	n  int
}

type captureRequest struct {
	trigger, reason string
}

// New builds a Profiler: it opens the dump ring and registers the goroutine
// metrics on reg.
func New(cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Profiler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	store, err := dumps.Open(filepath.Join(cfg.DataDir, "dumps"), cfg.Dumps)
	if err != nil {
		return nil, fmt.Errorf("profiler: %w", err)
	}
	p := &Profiler{
		cfg: cfg, log: logger.With("component", "profiler", "target", cfg.Target), store: store,
		det:      leak.New(cfg.Leak),
		captures: make(chan captureRequest, 4),
		busy:     make(chan struct{}, 1),
		target:   make(chan struct{}, 1),
		armed:    true, lastTrigger: map[string]time.Time{},
		m: promMetrics{
			goroutines:     metrics.Goroutines.NewGauge(),
			groups:         metrics.GoroutineStackGroups.NewGauge(),
			suspects:       metrics.LeakSuspects.NewGaugeVec(),
			leaked:         metrics.GoroutinesLeaked.NewGauge(),
			leakAvailable:  metrics.GoroutineLeakProfileAvailable.NewGauge(),
			scrapeDuration: metrics.ScrapeDuration.NewHistogramVec(),
			scrapeErrors:   metrics.ScrapeErrors.NewCounterVec(),
			captured:       metrics.DumpsCaptured.NewCounterVec(),
		},
	}
	for _, r := range []string{ReasonUnreachable, ReasonTimeout, ReasonStatus, ReasonTooLarge, ReasonMalformed} {
		p.m.scrapeErrors.WithLabelValues(r)
	}
	for _, t := range []string{TriggerSchedule, TriggerThreshold, TriggerPanics, TriggerAlert, TriggerManual} {
		p.m.captured.WithLabelValues(t)
	}
	collectors := []prometheus.Collector{
		p.m.goroutines, p.m.groups, p.m.suspects, p.m.leaked, p.m.leakAvailable,
		p.m.scrapeDuration, p.m.scrapeErrors, p.m.captured,
		metrics.Dumps.NewGaugeFunc(func() float64 { n, _ := store.Usage(); return float64(n) }),
		metrics.DumpsBytes.NewGaugeFunc(func() float64 { _, b := store.Usage(); return float64(b) }),
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("profiler: register metrics: %w", err)
		}
	}
	return p, nil
}

// Store returns the dump ring.
func (p *Profiler) Store() *dumps.Store { return p.store }

// Run scrapes at once and then every Interval until ctx ends, and performs
// triggered captures. It returns nil when ctx is cancelled.
func (p *Profiler) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case req := <-p.captures:
				if _, err := p.Capture(ctx, req.trigger, req.reason); err != nil && ctx.Err() == nil {
					p.log.Error("triggered dump failed", "trigger", req.trigger, "reason", req.reason, "err", err)
				}
			}
		}
	})
	tick := time.NewTicker(p.cfg.Interval)
	defer tick.Stop()
	for {
		p.Scrape(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Scrape fetches and analyses the target's goroutine profile (and its
// goroutineleak profile, when served) once, updates metrics and suspects,
// and keeps the profile as a dump when the schedule or the goroutine
// threshold says so. Run calls it on its schedule.
func (p *Profiler) Scrape(ctx context.Context) error {
	start := time.Now()
	data, snap, err := p.fetchProfile(ctx, "/debug/pprof/goroutine", ProfileGoroutine)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // our shutdown, not the target's fault
		}
		p.mu.Lock()
		p.lastErr = err
		p.mu.Unlock()
		p.log.Warn("goroutine profile scrape failed", "err", err)
		return err
	}
	p.m.scrapeDuration.WithLabelValues(ProfileGoroutine).Observe(time.Since(start).Seconds())

	p.mu.Lock()
	n := p.scrapes + 1
	leaked, available := p.lastLeaked, p.leakAvailable
	p.mu.Unlock()
	if every := p.cfg.LeakProfileEvery; every > 0 && (n-1)%every == 0 {
		leaked, available = p.scrapeLeakProfile(ctx)
	}
	suspects := p.det.Observe(snap, leaked)

	p.m.goroutines.Set(float64(snap.Total))
	p.m.groups.Set(float64(len(snap.Groups)))
	p.exportSuspects(suspects)
	if available != nil {
		p.m.leakAvailable.Set(b2f(*available))
	}
	if leaked != nil {
		p.m.leaked.Set(float64(leaked.Total))
	} else if available != nil && !*available {
		p.m.leaked.Set(0)
	}

	p.mu.Lock()
	p.last, p.lastLeaked, p.lastScrape, p.lastErr = snap, leaked, start, nil
	p.record(Sample{Time: start, Goroutines: snap.Total, Suspects: p.topSuspects(suspects)})
	if available != nil {
		p.leakAvailable = available
	}
	p.scrapes++
	trigger, reason := "", ""
	if t := p.cfg.GoroutineThreshold; t > 0 {
		if p.armed && snap.Total >= t {
			trigger, reason, p.armed = TriggerThreshold, fmt.Sprintf("%d goroutines ≥ threshold %d", snap.Total, t), false
		} else if !p.armed && snap.Total < t-t/10 {
			p.armed = true // hysteresis: one dump per excursion
		}
	}
	if trigger == "" && p.cfg.KeepEvery > 0 && (p.scrapes-1)%p.cfg.KeepEvery == 0 {
		trigger, reason = TriggerSchedule, fmt.Sprintf("scrape %d (every %d)", p.scrapes, p.cfg.KeepEvery)
	}
	p.mu.Unlock()

	if trigger != "" {
		if _, err := p.keep(data, snap, trigger, reason); err != nil {
			p.log.Error("storing dump failed", "trigger", trigger, "err", err)
		}
	}
	return nil
}

// Sample is one scrape in History.
type Sample struct {
	Time       time.Time `json:"time"`
	Goroutines int       `json:"goroutines"`
	// Suspects maps the LeakTopN largest leak-suspect locations of the
	// scrape (leak.Suspect.Label) to the goroutines there.
	Suspects map[string]int `json:"suspects,omitempty"`
}

// record appends s to the history, dropping the oldest beyond HistoryLen.
// Callers hold p.mu.
func (p *Profiler) record(s Sample) {
	if len(p.history) == p.cfg.HistoryLen {
		p.history = append(p.history[:0], p.history[1:]...)
	}
	p.history = append(p.history, s)
}

// topSuspects maps the LeakTopN largest suspects (suspects come largest
// first) to their counts, so a sample stays small whatever the target does.
func (p *Profiler) topSuspects(suspects []leak.Suspect) map[string]int {
	if len(suspects) == 0 {
		return nil
	}
	m := make(map[string]int, min(len(suspects), p.cfg.LeakTopN))
	for _, s := range suspects[:min(len(suspects), p.cfg.LeakTopN)] {
		m[s.Label()] = s.Count
	}
	return m
}

// History returns the last HistoryLen successful scrapes, oldest first:
// the goroutine total and each leak suspect's count, for trend lines.
func (p *Profiler) History() []Sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.history)
}

// Goroutines returns the last scraped goroutine profile, its stack groups
// largest first, or nil before the first scrape. It is shared: read only.
func (p *Profiler) Goroutines() *goroutines.Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// Leaked returns the goroutines the runtime proved leaked in its last
// goroutineleak profile, grouped by stack, or nil when the target does
// not serve that profile (see Status().LeakProfile). Read only.
func (p *Profiler) Leaked() *goroutines.Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastLeaked
}

// scrapeLeakProfile fetches /debug/pprof/goroutineleak. A 404 means the
// target was built without GOEXPERIMENT=goroutineleakprofile: reported as
// unavailable, not as an error. available is nil when the answer was an
// error (the previous state stands).
func (p *Profiler) scrapeLeakProfile(ctx context.Context) (leaked *goroutines.Snapshot, available *bool) {
	start := time.Now()
	_, snap, err := p.fetchProfile(ctx, "/debug/pprof/goroutineleak", ProfileGoroutineLeak)
	var se *ScrapeError
	switch {
	case errors.As(err, &se) && se.StatusCode == http.StatusNotFound:
		return nil, new(false)
	case err != nil:
		if ctx.Err() == nil {
			p.log.Warn("goroutineleak profile scrape failed", "err", err)
		}
		return nil, nil
	}
	p.m.scrapeDuration.WithLabelValues(ProfileGoroutineLeak).Observe(time.Since(start).Seconds())
	return snap, new(true)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// exportSuspects sets LeakSuspects: per signal, the LeakTopN largest
// locations get their own series and the rest are summed into "other", so
// cardinality stays bounded whatever the target does.
func (p *Profiler) exportSuspects(suspects []leak.Suspect) {
	p.m.suspects.Reset()
	for _, signal := range []string{metrics.SignalBlocked, metrics.SignalGrowth, metrics.SignalRuntime} {
		var with []leak.Suspect
		for _, s := range suspects {
			if s.Has(signal) {
				with = append(with, s)
			}
		}
		count := func(s leak.Suspect) int {
			if signal == metrics.SignalRuntime {
				return s.Leaked
			}
			return s.Count
		}
		slices.SortStableFunc(with, func(a, b leak.Suspect) int { return count(b) - count(a) })
		other := 0
		for i, s := range with {
			if i < p.cfg.LeakTopN {
				p.m.suspects.WithLabelValues(s.Label(), signal).Add(float64(count(s)))
			} else {
				other += count(s)
			}
		}
		if other > 0 {
			p.m.suspects.WithLabelValues(metrics.OtherCrashSite, signal).Set(float64(other))
		}
	}
}

// Capture fetches a fresh goroutine profile and keeps it as a dump.
func (p *Profiler) Capture(ctx context.Context, trigger, reason string) (dumps.Meta, error) {
	data, snap, err := p.fetchProfile(ctx, "/debug/pprof/goroutine", ProfileGoroutine)
	if err != nil {
		return dumps.Meta{}, err
	}
	return p.keep(data, snap, trigger, reason)
}

func (p *Profiler) keep(data []byte, snap *goroutines.Snapshot, trigger, reason string) (dumps.Meta, error) {
	m, err := p.store.Put(data, dumps.Meta{
		Service: p.cfg.Service, Profile: ProfileGoroutine, Goroutines: snap.Total, Groups: len(snap.Groups),
		Trigger: trigger, Reason: reason,
	})
	if err != nil {
		return dumps.Meta{}, err
	}
	p.m.captured.WithLabelValues(trigger).Inc()
	p.log.Info("goroutine dump captured", "id", m.ID, "trigger", trigger, "reason", reason, "goroutines", m.Goroutines, "bytes", m.Bytes)
	return m, nil
}

// OnPanics tells the profiler that n new panics were read (the stacktrace
// watcher calls it). PanicBurst panics within PanicWindow trigger a dump,
// at most one per Cooldown. It never blocks.
func (p *Profiler) OnPanics(n int) {
	if n <= 0 || p.cfg.PanicBurst < 0 {
		return
	}
	now := time.Now()
	p.mu.Lock()
	p.panics = append(p.panics, panicBatch{now, n})
	total := 0
	keep := p.panics[:0]
	for _, b := range p.panics {
		if now.Sub(b.at) <= p.cfg.PanicWindow {
			keep = append(keep, b)
			total += b.n
		}
	}
	p.panics = keep
	fire := total >= p.cfg.PanicBurst && p.cooledDown(TriggerPanics, now)
	if fire {
		p.panics = p.panics[:0]
	}
	p.mu.Unlock()
	if fire {
		p.enqueue(TriggerPanics, fmt.Sprintf("%d panics within %s", total, p.cfg.PanicWindow))
	}
}

// cooledDown reports whether trigger may fire now, and if so records it.
// Callers hold p.mu.
func (p *Profiler) cooledDown(trigger string, now time.Time) bool {
	if last, ok := p.lastTrigger[trigger]; ok && now.Sub(last) < p.cfg.Cooldown {
		return false
	}
	p.lastTrigger[trigger] = now
	return true
}

func (p *Profiler) enqueue(trigger, reason string) bool {
	select {
	case p.captures <- captureRequest{trigger, reason}:
		return true
	default:
		p.log.Warn("dump request dropped: capture queue full", "trigger", trigger)
		return false
	}
}

// Status is the profiler's view of its target, served at /api/v1/leaks.
type Status struct {
	Service     string         `json:"service"`
	Target      string         `json:"target"`
	LastScrape  time.Time      `json:"last_scrape,omitzero"`
	LastError   string         `json:"last_error,omitempty"`
	Goroutines  int            `json:"goroutines"`
	StackGroups int            `json:"stack_groups"`
	LeakProfile string         `json:"leak_profile"` // "available", "not available", "disabled" or "unknown"
	Leaked      int            `json:"leaked"`
	Suspects    []leak.Suspect `json:"suspects"`
	Thresholds  leak.Config    `json:"thresholds"`
}

// Status returns the current suspects and scrape state.
func (p *Profiler) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Status{Service: p.cfg.Service, Target: p.cfg.Target, LastScrape: p.lastScrape, LeakProfile: "unknown",
		Suspects: p.det.Suspects(), Thresholds: p.det.Config()}
	if st.Suspects == nil {
		st.Suspects = []leak.Suspect{}
	}
	if p.lastErr != nil {
		st.LastError = p.lastErr.Error()
	}
	if p.last != nil {
		st.Goroutines, st.StackGroups = p.last.Total, len(p.last.Groups)
	}
	switch {
	case p.cfg.LeakProfileEvery < 0:
		st.LeakProfile = "disabled"
	case p.leakAvailable != nil:
		st.LeakProfile = map[bool]string{true: "available", false: "not available"}[*p.leakAvailable]
	}
	if p.lastLeaked != nil {
		st.Leaked = p.lastLeaked.Total
	}
	return st
}

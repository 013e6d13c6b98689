// Package report writes the incident report of ../shared/incident-report.md
// from live data: Prometheus (every service's figures, the alerts' states
// and timeline) and, when given, each service's sidecar (crash groups with
// their example traces, the dumps captured).
//
// Every figure comes from a recorded query, listed at the end of the
// report, so a reader can trace it. Metric names come from package
// metrics.
package report

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/stackwatch/stackwatch/alerts"
	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar"
	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/dumps"
)

// The incident report's success criteria.
const (
	MaxMemoryPercent  = 90   // memory usage < 90% on all services
	MaxGoroutines     = 5000 // goroutine count < 5,000
	MinBetSuccessRate = 99.5 // bet success rate > 99.5%
	maxSidecarBody    = 8 << 20
)

// Service statuses, as the report's overview shows them.
const (
	StatusCritical = "critical"
	StatusWarning  = "warning"
	StatusOK       = "ok"
)

// Options say what to report on.
type Options struct {
	Prometheus string        // base URL of the Prometheus HTTP API (required)
	Since      time.Duration // the analysis window, ending at Now; default 24h
	Sidecars   []string      // sidecar base URLs, for crash groups and dumps
	Token      string        // bearer token for the sidecars, if they need one
	Match      []Matcher     // label matchers every query carries (-match)
	Now        time.Time     // end of the window; default time.Now()
	Client     *http.Client  // default: 30s timeout
}

// Report is everything the report shows.
type Report struct {
	Generated  time.Time
	From, To   time.Time
	Since      time.Duration
	Prometheus string
	Sidecars   []string
	Match      []string // the -match matchers, in PromQL
	Summary    string
	Services   []Service
	CrashSites []CrashSite
	Timeline   []Event
	Criteria   []Criterion
	Firing     []FiringAlert
	Queries    []Query
	Warnings   []string // what could not be read, and why
}

// Service is one service's row in the overview and the impact sections.
type Service struct {
	Name        string
	Status      string
	Stacktraces float64 // panics counted in the window
	Files       float64 // stacktrace files on disk now
	First, Last time.Time

	MemoryInUse, MemoryLimit float64 // bytes; 0 when not exported
	NilSessions              float64 // writes to a nil session in the window
	ClosedSessionWarnings    float64 // forestteaparty's graceful path
	Bets                     map[string]float64
	Goroutines               float64 // peak in the window
	LeakSuspect              string  // the location with the most suspected goroutines
	LeakSuspectCount         float64
	Leaked                   float64 // proven by the runtime's goroutineleak profile
}

// MemoryPercent is memory in use as a percentage of the limit, or -1 when
// unknown.
func (s Service) MemoryPercent() float64 {
	if s.MemoryLimit <= 0 {
		return -1
	}
	return 100 * s.MemoryInUse / s.MemoryLimit
}

// BetsTotal is every bet settled in the window.
func (s Service) BetsTotal() float64 {
	t := 0.0
	for _, v := range s.Bets {
		t += v
	}
	return t
}

// FailedBets are bets whose result never reached the player.
func (s Service) FailedBets() float64 { return s.Bets[metrics.OutcomeFailed] }

// BetSuccessPercent is the share of settled bets that did not fail, or -1
// with no bets.
func (s Service) BetSuccessPercent() float64 {
	t := s.BetsTotal()
	if t == 0 {
		return -1
	}
	return 100 * (t - s.FailedBets()) / t
}

// CrashSite is one crash group as a sidecar reported it.
type CrashSite struct {
	Service string
	crash.Group
}

// Event is one line of the timeline.
type Event struct {
	Time    time.Time
	Service string
	What    string
}

// Criterion is one success criterion checked for one service.
type Criterion struct {
	Service string
	Name    string
	Figure  string
	Met     bool
}

// FiringAlert is an alert firing at the end of the window.
type FiringAlert struct {
	Name, Service, Severity, Summary, Runbook string
	ActiveAt                                  time.Time
}

// Query is one PromQL query the report ran.
type Query struct {
	Purpose, Expr string
	Range         bool
}

// gatherer runs the queries and records them.
type gatherer struct {
	api  v1.API
	opt  Options
	rep  *Report
	win  string // the window as PromQL duration
	step time.Duration
}

// Gather queries Prometheus and the sidecars and builds the report. A
// sidecar that cannot be read is a warning in the report, not a failure;
// Prometheus is required.
func Gather(ctx context.Context, opt Options) (*Report, error) {
	if opt.Prometheus == "" {
		return nil, errors.New("report: a Prometheus URL is required")
	}
	if opt.Since <= 0 {
		opt.Since = 24 * time.Hour
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	if opt.Client == nil {
		opt.Client = &http.Client{Timeout: 30 * time.Second}
	}
	c, err := api.NewClient(api.Config{Address: opt.Prometheus, Client: opt.Client})
	if err != nil {
		return nil, fmt.Errorf("report: prometheus %q: %w", opt.Prometheus, err)
	}
	g := &gatherer{api: v1.NewAPI(c), opt: opt, win: model.Duration(opt.Since).String(),
		step: max(opt.Since/600, time.Second).Round(time.Second)}
	g.rep = &Report{Generated: time.Now(), From: opt.Now.Add(-opt.Since), To: opt.Now, Since: opt.Since,
		Prometheus: opt.Prometheus, Sidecars: opt.Sidecars}
	for _, m := range opt.Match {
		g.rep.Match = append(g.rep.Match, m.String())
	}
	if err := g.services(ctx); err != nil {
		return nil, err
	}
	covered := g.sidecars(ctx)
	if err := g.crashSites(ctx, covered); err != nil {
		return nil, err
	}
	if err := g.alerts(ctx); err != nil {
		return nil, err
	}
	g.criteria()
	g.rep.Summary = summary(g.rep)
	return g.rep, nil
}

func (g *gatherer) instant(ctx context.Context, purpose, expr string) (model.Vector, error) {
	g.rep.Queries = append(g.rep.Queries, Query{Purpose: purpose, Expr: expr})
	v, _, _, err := g.api.Query(ctx, expr, g.opt.Now)
	if err != nil {
		return nil, fmt.Errorf("report: query %s: %w", expr, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("report: query %s: got %s, want a vector", expr, v.Type())
	}
	return vec, nil
}

func (g *gatherer) rangeQuery(ctx context.Context, purpose, expr string) (model.Matrix, error) {
	g.rep.Queries = append(g.rep.Queries, Query{Purpose: purpose, Expr: expr, Range: true})
	v, _, _, err := g.api.QueryRange(ctx, expr, v1.Range{Start: g.rep.From, End: g.rep.To, Step: g.step})
	if err != nil {
		return nil, fmt.Errorf("report: query %s: %w", expr, err)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("report: query %s: got %s, want a matrix", expr, v.Type())
	}
	return m, nil
}

// windowCount is PromQL for how much counter m grew in the window, by
// service. The sidecar and the game server keep their counters across
// restarts, so the growth is the value now minus the value at the window's
// start, 0 for a series born inside the window: increase() would miss
// everything counted before its first scrape, the whole first burst of an
// incident. A series that went down (a reset) counts its drop as nothing.
func (g *gatherer) windowCount(m metrics.Metric, by ...string) string {
	sel := g.sel(m.Name)
	return fmt.Sprintf(`sum by (%s) (clamp_min(%s - (%s offset %s or %s * 0), 0))`,
		strings.Join(by, ", "), sel, sel, g.win, sel)
}

// sel is a selector for metric name with the -match matchers and more.
func (g *gatherer) sel(name string, more ...string) string {
	ms := make([]string, 0, len(g.opt.Match)+len(more))
	for _, m := range g.opt.Match {
		ms = append(ms, m.String())
	}
	ms = append(ms, more...)
	if len(ms) == 0 {
		return name
	}
	return name + "{" + strings.Join(ms, ", ") + "}"
}

// byService returns each sample's value by its service label.
func byService(vec model.Vector) map[string]float64 {
	out := map[string]float64{}
	for _, s := range vec {
		out[string(s.Metric[metrics.LabelService])] = float64(s.Value)
	}
	return out
}

func (g *gatherer) services(ctx context.Context) error {
	svc := metrics.LabelService
	q := func(purpose, expr string) (map[string]float64, error) {
		vec, err := g.instant(ctx, purpose, expr)
		return byService(vec), err
	}
	type figure struct {
		purpose, expr string
		set           func(*Service, float64)
	}
	figures := []figure{
		{"Services (every scraped target with a service label)",
			fmt.Sprintf(`count by (%s) (%s)`, svc, g.sel(metrics.Up.Name, svc+`!=""`)), func(*Service, float64) {}},
		{"Stacktraces: panics counted in the window",
			g.windowCount(metrics.Panics, svc), func(s *Service, v float64) { s.Stacktraces = v }},
		{"Stacktrace files on disk now",
			fmt.Sprintf(`max by (%s) (%s)`, svc, g.sel(metrics.StacktraceFiles.Name)), func(s *Service, v float64) { s.Files = v }},
		{"Latest occurrence: newest panic file's time",
			fmt.Sprintf(`max by (%s) (%s) > 0`, svc, g.sel(metrics.LastPanicTimestamp.Name)), func(s *Service, v float64) { s.Last = unix(v) }},
		{"Memory in use",
			fmt.Sprintf(`max by (%s) (%s)`, svc, g.sel(metrics.MemoryInUse.Name)), func(s *Service, v float64) { s.MemoryInUse = v }},
		{"Memory limit",
			fmt.Sprintf(`max by (%s) (%s)`, svc, g.sel(metrics.MemoryLimit.Name)), func(s *Service, v float64) { s.MemoryLimit = v }},
		{"Writes to a nil session in the window",
			g.windowCount(metrics.NilSessionAttempts, svc), func(s *Service, v float64) { s.NilSessions = v }},
		{"Closed-session warnings (the graceful path) in the window",
			g.windowCount(metrics.ClosedSessionWarnings, svc), func(s *Service, v float64) { s.ClosedSessionWarnings = v }},
		{"Peak goroutines in the window (the sidecar's scrape of the server)",
			fmt.Sprintf(`max by (%s) (max_over_time(%s[%s]))`, svc, g.sel(metrics.Goroutines.Name), g.win), func(s *Service, v float64) { s.Goroutines = v }},
		{"Goroutines the runtime proved leaked",
			fmt.Sprintf(`max by (%s) (%s)`, svc, g.sel(metrics.GoroutinesLeaked.Name)), func(s *Service, v float64) { s.Leaked = v }},
	}
	all := map[string]*Service{}
	get := func(name string) *Service {
		if all[name] == nil {
			all[name] = &Service{Name: name, Bets: map[string]float64{}}
		}
		return all[name]
	}
	for _, f := range figures {
		vals, err := q(f.purpose, f.expr)
		if err != nil {
			return err
		}
		for name, v := range vals {
			if name != "" {
				f.set(get(name), v)
			}
		}
	}
	// One service name in several clusters or namespaces (staging beside
	// production) would add their figures up: say so, and how to narrow.
	mixed, err := g.instant(ctx, "Services scraped in more than one cluster or namespace",
		fmt.Sprintf(`count by (%s) (count by (%s, %s, %s) (%s)) > 1`, svc, svc, metrics.LabelCluster, metrics.LabelNamespace,
			g.sel(metrics.Up.Name, svc+`!=""`)))
	if err != nil {
		return err
	}
	for _, s := range mixed {
		g.rep.Warnings = append(g.rep.Warnings, fmt.Sprintf(
			"%s is scraped in %.0f clusters or namespaces and its figures add them up; narrow the report with -match namespace=NAME or -match cluster=NAME",
			s.Metric[metrics.LabelService], float64(s.Value)))
	}
	bets, err := g.instant(ctx, "Bets settled in the window, by outcome",
		g.windowCount(metrics.BetResults, svc, metrics.LabelOutcome))
	if err != nil {
		return err
	}
	for _, s := range bets {
		if name := string(s.Metric[metrics.LabelService]); name != "" {
			get(name).Bets[string(s.Metric[metrics.LabelOutcome])] = float64(s.Value)
		}
	}
	suspects, err := g.instant(ctx, "Leak suspects: goroutines parked or growing at one location",
		fmt.Sprintf(`max by (%s, %s) (%s)`, svc, metrics.LabelLocation, g.sel(metrics.LeakSuspects.Name, fmt.Sprintf("%s!=%q", metrics.LabelSignal, metrics.SignalRuntime))))
	if err != nil {
		return err
	}
	for _, s := range suspects {
		if name := string(s.Metric[metrics.LabelService]); name != "" {
			if sv := get(name); float64(s.Value) > sv.LeakSuspectCount {
				sv.LeakSuspect, sv.LeakSuspectCount = string(s.Metric[metrics.LabelLocation]), float64(s.Value)
			}
		}
	}
	// First occurrence: the first step at which the panic counter rose.
	counters, err := g.rangeQuery(ctx, "First occurrence: the panic counter over the window",
		fmt.Sprintf(`sum by (%s) (%s)`, svc, g.sel(metrics.Panics.Name)))
	if err != nil {
		return err
	}
	for _, series := range counters {
		name := string(series.Metric[metrics.LabelService])
		if name == "" || len(series.Values) == 0 {
			continue
		}
		if t, ok := firstRise(series.Values, g.rep.From.Add(g.step)); ok {
			get(name).First = t
			g.rep.Timeline = append(g.rep.Timeline, Event{t, name, "first panic in the window"})
		}
	}
	for _, s := range all {
		if s.Stacktraces < 0.5 { // none in the window: the newest file is older
			s.First, s.Last = time.Time{}, time.Time{}
		}
		g.rep.Services = append(g.rep.Services, *s)
	}
	slices.SortFunc(g.rep.Services, func(a, b Service) int {
		return cmp.Or(cmp.Compare(b.Stacktraces, a.Stacktraces), strings.Compare(a.Name, b.Name))
	})
	return nil
}

// firstRise returns the time of the first sample above the first one; or
// the first sample itself when the series only began after begun (the
// counter appeared with panics already counted).
func firstRise(vals []model.SamplePair, begun time.Time) (time.Time, bool) {
	first := vals[0]
	if first.Value > 0 && first.Timestamp.Time().After(begun) {
		return first.Timestamp.Time(), true
	}
	for _, p := range vals[1:] {
		if p.Value > first.Value {
			return p.Timestamp.Time(), true
		}
	}
	return time.Time{}, false
}

func unix(v float64) time.Time {
	return time.Unix(0, int64(v*1e9)).UTC()
}

// selected reports whether labels pass every -match matcher, for what
// comes from Prometheus' alerts API rather than a query.
func (g *gatherer) selected(ls model.LabelSet) bool {
	for _, m := range g.opt.Match {
		if !m.Matches(ls) {
			return false
		}
	}
	return true
}

// alerts reads the firing alerts (status, runbooks) and the timeline of
// pending and firing states.
func (g *gatherer) alerts(ctx context.Context) error {
	g.rep.Queries = append(g.rep.Queries, Query{Purpose: "Alerts active now, with annotations", Expr: "GET /api/v1/alerts"})
	res, err := g.api.Alerts(ctx)
	if err != nil {
		return fmt.Errorf("report: prometheus alerts: %w", err)
	}
	status := map[string]string{}
	for _, a := range res.Alerts {
		if a.State != v1.AlertStateFiring || !g.selected(a.Labels) {
			continue
		}
		fa := FiringAlert{
			Name: string(a.Labels[model.AlertNameLabel]), Service: string(a.Labels[metrics.LabelService]),
			Severity: string(a.Labels[alerts.LabelSeverity]), Summary: string(a.Annotations["summary"]),
			Runbook: string(a.Annotations["runbook_url"]), ActiveAt: a.ActiveAt,
		}
		g.rep.Firing = append(g.rep.Firing, fa)
		switch {
		case fa.Severity == alerts.SeverityCritical:
			status[fa.Service] = StatusCritical
		case status[fa.Service] == "":
			status[fa.Service] = StatusWarning
		}
	}
	slices.SortFunc(g.rep.Firing, func(a, b FiringAlert) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), strings.Compare(a.Name, b.Name))
	})
	for i := range g.rep.Services {
		s := &g.rep.Services[i]
		s.Status = cmp.Or(status[s.Name], StatusOK)
	}

	// Pending: when each alert became active, exactly, from ALERTS_FOR_STATE
	// (its value); firing: the first step at which ALERTS says so.
	active, err := g.instant(ctx, "Timeline: when each alert became active (pending)",
		fmt.Sprintf(`min by (%s, %s) (min_over_time(%s[%s]))`, model.AlertNameLabel, metrics.LabelService, g.sel(metrics.AlertsForState.Name), g.win))
	if err != nil {
		return err
	}
	for _, s := range active {
		if t := unix(float64(s.Value)); !t.Before(g.rep.From) {
			g.rep.Timeline = append(g.rep.Timeline, Event{t, string(s.Metric[metrics.LabelService]),
				fmt.Sprintf("%s %s", s.Metric[model.AlertNameLabel], v1.AlertStatePending)})
		}
	}
	firing, err := g.rangeQuery(ctx, "Timeline: when each alert was firing",
		fmt.Sprintf(`max by (%s, %s) (%s)`, model.AlertNameLabel, metrics.LabelService, g.sel(metrics.Alerts.Name, fmt.Sprintf("%s=%q", alertStateLabel, v1.AlertStateFiring))))
	if err != nil {
		return err
	}
	for _, series := range firing {
		if len(series.Values) > 0 {
			g.rep.Timeline = append(g.rep.Timeline, Event{series.Values[0].Timestamp.Time(),
				string(series.Metric[metrics.LabelService]), fmt.Sprintf("%s %s", series.Metric[model.AlertNameLabel], v1.AlertStateFiring)})
		}
	}
	// Dumps counted by Prometheus, for services whose sidecar was not asked.
	dumped, err := g.instant(ctx, "Goroutine dumps captured in the window, by trigger",
		g.windowCount(metrics.DumpsCaptured, metrics.LabelService, metrics.LabelTrigger)+" >= 0.5")
	if err != nil {
		return err
	}
	asked := map[string]bool{}
	for _, e := range g.rep.Timeline {
		if strings.HasPrefix(e.What, "dump captured") {
			asked[e.Service] = true
		}
	}
	for _, s := range dumped {
		if svc := string(s.Metric[metrics.LabelService]); !asked[svc] {
			g.rep.Timeline = append(g.rep.Timeline, Event{g.rep.To, svc,
				fmt.Sprintf("%.0f goroutine dump(s) captured in the window (trigger %s)", float64(s.Value), s.Metric[metrics.LabelTrigger])})
		}
	}
	sort.SliceStable(g.rep.Timeline, func(i, j int) bool {
		a, b := g.rep.Timeline[i], g.rep.Timeline[j]
		return a.Time.Before(b.Time) || a.Time.Equal(b.Time) && a.Service+a.What < b.Service+b.What
	})
	return nil
}

// alertStateLabel is the label of ALERTS that holds pending or firing.
const alertStateLabel = "alertstate"

// sidecars reads each sidecar's crash groups and dumps, and returns the
// services they answered for.
func (g *gatherer) sidecars(ctx context.Context) map[string]bool {
	covered := map[string]bool{}
	for _, base := range g.opt.Sidecars {
		base = strings.TrimSuffix(base, "/")
		service, groups, err := g.crashGroups(ctx, base)
		if err != nil {
			g.rep.Warnings = append(g.rep.Warnings, fmt.Sprintf("sidecar %s: %v", base, err))
			continue
		}
		covered[service] = true
		for _, grp := range groups {
			if !grp.LastSeen.Before(g.rep.From) {
				g.rep.CrashSites = append(g.rep.CrashSites, CrashSite{service, grp})
			}
		}
		var list struct {
			Service string       `json:"service"`
			Dumps   []dumps.Meta `json:"dumps"`
		}
		if err := g.getJSON(ctx, base+"/api/v1/dumps", &list); err != nil {
			if !errors.Is(err, errNotFound) { // a sidecar without -target keeps no dumps
				g.rep.Warnings = append(g.rep.Warnings, fmt.Sprintf("sidecar %s dumps: %v", base, err))
			}
			continue
		}
		for _, d := range list.Dumps {
			if !d.Time.Before(g.rep.From) && !d.Time.After(g.rep.To) {
				g.rep.Timeline = append(g.rep.Timeline, Event{d.Time, d.Service,
					fmt.Sprintf("dump captured (%s, %d goroutines): %s/ui/dumps/%s", d.Trigger, d.Goroutines, base, d.ID)})
			}
		}
	}
	return covered
}

// crashSites lists the crash sites Prometheus knows (the bounded
// crash_site label) for the services no sidecar answered for: no caller,
// no trace.
func (g *gatherer) crashSites(ctx context.Context, covered map[string]bool) error {
	vec, err := g.instant(ctx, "Crash sites: panics in the window by site and kind",
		g.windowCount(metrics.Panics, metrics.LabelService, metrics.LabelCrashSite, metrics.LabelKind)+" >= 0.5")
	if err != nil {
		return err
	}
	for _, s := range vec {
		if covered[string(s.Metric[metrics.LabelService])] {
			continue
		}
		n := float64(s.Value)
		g.rep.CrashSites = append(g.rep.CrashSites, CrashSite{string(s.Metric[metrics.LabelService]), crash.Group{
			Kind: string(s.Metric[metrics.LabelKind]), CrashSite: crash.Site{Function: string(s.Metric[metrics.LabelCrashSite])},
			Count: int(n + 0.5), RatePerHour: new(n / g.opt.Since.Hours()),
		}})
	}
	slices.SortFunc(g.rep.CrashSites, func(a, b CrashSite) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Service, b.Service))
	})
	return nil
}

// maxCrashPages bounds the pages of crash groups read from one sidecar
// (each up to sidecar.MaxCrashesLimit groups).
const maxCrashPages = 20

// crashGroups reads every page of a sidecar's crash groups.
func (g *gatherer) crashGroups(ctx context.Context, base string) (string, []crash.Group, error) {
	var all []crash.Group
	offset := 0
	for range maxCrashPages {
		var page sidecar.CrashesResponse
		url := fmt.Sprintf("%s/api/v1/crashes?limit=%d&offset=%d", base, sidecar.MaxCrashesLimit, offset)
		if err := g.getJSON(ctx, url, &page); err != nil {
			return "", nil, err
		}
		all = append(all, page.Groups...)
		if page.NextOffset == nil || *page.NextOffset <= offset {
			return page.Service, all, nil
		}
		offset = *page.NextOffset
	}
	return "", nil, fmt.Errorf("more than %d pages of crash groups", maxCrashPages)
}

var errNotFound = errors.New("not found")

func (g *gatherer) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if g.opt.Token != "" {
		req.Header.Set("Authorization", "Bearer "+g.opt.Token)
	}
	resp, err := g.opt.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSidecarBody+1))
	switch {
	case err != nil:
		return err
	case resp.StatusCode == http.StatusNotFound:
		return errNotFound
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s: %s", url, resp.Status)
	case len(body) > maxSidecarBody:
		return fmt.Errorf("%s: answer larger than %d bytes", url, maxSidecarBody)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: %w", url, err)
	}
	return nil
}

// criteria checks the report's success criteria for every service.
func (g *gatherer) criteria() {
	for _, s := range g.rep.Services {
		add := func(name, figure string, met bool) {
			g.rep.Criteria = append(g.rep.Criteria, Criterion{s.Name, name, figure, met})
		}
		add("Zero new stacktrace files", fmt.Sprintf("%.0f in the window", s.Stacktraces), s.Stacktraces < 0.5)
		if p := s.MemoryPercent(); p >= 0 {
			add(fmt.Sprintf("Memory usage < %d%%", MaxMemoryPercent), fmt.Sprintf("%.0f%% of the limit", p), p < MaxMemoryPercent)
		} else {
			add(fmt.Sprintf("Memory usage < %d%%", MaxMemoryPercent), "not exported", false)
		}
		add(fmt.Sprintf("Goroutine count < %s", thousands(MaxGoroutines)), fmt.Sprintf("peak %s", thousands(s.Goroutines)), s.Goroutines < MaxGoroutines)
		if p := s.BetSuccessPercent(); p >= 0 {
			add(fmt.Sprintf("Bet success rate > %.1f%%", MinBetSuccessRate),
				fmt.Sprintf("%.2f%% (%s of %s failed)", p, thousands(s.FailedBets()), thousands(s.BetsTotal())), p > MinBetSuccessRate)
		} else {
			add(fmt.Sprintf("Bet success rate > %.1f%%", MinBetSuccessRate), "no bets in the window", false)
		}
	}
}

// thousands formats v rounded, with commas: 5000 → "5,000".
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// summary is the executive summary: one paragraph from the figures.
func summary(r *Report) string {
	var crit, warn []string
	panics, failed, leaked := 0.0, 0.0, 0.0
	for _, s := range r.Services {
		switch s.Status {
		case StatusCritical:
			crit = append(crit, s.Name)
		case StatusWarning:
			warn = append(warn, s.Name)
		}
		panics += s.Stacktraces
		failed += s.FailedBets()
		leaked += s.LeakSuspectCount
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Over the last %s, %d of %d services are critical", model.Duration(r.Since), len(crit), len(r.Services))
	if len(crit) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(crit, ", "))
	}
	fmt.Fprintf(&b, " and %d at warning", len(warn))
	if len(warn) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(warn, ", "))
	}
	fmt.Fprintf(&b, ". They wrote %s stacktraces", thousands(panics))
	var per []string
	for _, s := range r.Services {
		if s.Stacktraces >= 0.5 {
			p := fmt.Sprintf("%s %s", s.Name, thousands(s.Stacktraces))
			if m := s.MemoryPercent(); m >= 0 {
				p += fmt.Sprintf(" at %.0f%% memory", m)
			}
			per = append(per, p)
		}
	}
	if len(per) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(per, "; "))
	}
	b.WriteString(".")
	if len(r.CrashSites) > 0 {
		top := r.CrashSites[0]
		fmt.Fprintf(&b, " The largest crash group is %s in %s (%s, called from %s, %d panics)", shortFunc(top.CrashSite.Function),
			top.Service, top.Kind, shortFunc(top.Caller), top.Count)
		if top.NilReceiver {
			b.WriteString(", whose first argument, the client session, is nil")
		}
		b.WriteString(".")
	}
	if failed >= 0.5 {
		fmt.Fprintf(&b, " %s bets failed to reach their players.", thousands(failed))
	}
	if leaked >= 0.5 {
		fmt.Fprintf(&b, " %s goroutines are parked at leak suspects.", thousands(leaked))
	}
	for _, s := range r.Services {
		if s.Stacktraces < 0.5 && s.ClosedSessionWarnings >= 0.5 {
			fmt.Fprintf(&b, " %s took the graceful path instead: %s closed-session warnings and no panics.", s.Name, thousands(s.ClosedSessionWarnings))
		}
	}
	if len(r.Firing) > 0 {
		names := map[string]bool{}
		var list []string
		for _, a := range r.Firing {
			if !names[a.Name] {
				names[a.Name] = true
				list = append(list, a.Name)
			}
		}
		fmt.Fprintf(&b, " Firing now: %s.", strings.Join(list, ", "))
	} else {
		b.WriteString(" No alert is firing.")
	}
	return b.String()
}

// shortFunc drops the import path from a function name.
func shortFunc(fn string) string {
	if i := strings.LastIndexByte(fn, '/'); i >= 0 {
		return fn[i+1:]
	}
	return fn
}

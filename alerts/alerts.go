// Package alerts defines stackwatch's Prometheus alerting rules in Go.
//
// Every metric, label and label value comes from package metrics, so a rule
// cannot name a series nobody exports. The shipped rule file
// (stackwatch.rules.yml) is generated from Rules by ./gen; a test fails when
// the file drifts from the code. The thresholds live in Config so the
// dashboards (package dashboards) draw the same lines the alerts fire on.
//
// Conventions follow the monitoring mixins: severity is critical (pages) or
// warning, summary is static, description is templated with the service and
// the value, runbook_url points at docs/runbooks/<AlertName>.md under
// Config.RunbookBaseURL, every selector names its job and every aggregation
// keeps cluster, namespace and service (a label a deployment lacks drops out).
//
// Demo returns the same rules on a shorter clock (Config.TimeScale); make demo
// loads demo/stackwatch.rules.yml, generated from it and drift-tested like the
// shipped file, so the demo pages with the very rules production runs.
package alerts

//go:generate go run ./gen -o stackwatch.rules.yml
//go:generate go run ./gen -demo -o demo/stackwatch.rules.yml

import (
	"fmt"
	"strconv"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/stackwatch/stackwatch/metrics"
)

// Alert names. Runbooks are docs/runbooks/<name>.md.
const (
	HighNilSessionRate      = "HighNilSessionRate"
	NewPanicDetected        = "NewPanicDetected"
	StacktraceFilesHigh     = "StacktraceFilesHigh"
	GoroutineLeakDetected   = "GoroutineLeakDetected"
	MemoryNearLimit         = "MemoryNearLimit"
	ClientWriteFailuresHigh = "ClientWriteFailuresHigh"
	BetSuccessRateLow       = "BetSuccessRateLow"
	GameServerFatalCrash    = "GameServerFatalCrash"
	GameServerDown          = "GameServerDown"
	SidecarDown             = "SidecarDown"
	GameServerAbsent        = "GameServerAbsent"
	SidecarAbsent           = "SidecarAbsent"
)

// Label names and values the rules attach; Alertmanager routes on them.
const (
	LabelSeverity    = "severity"
	SeverityCritical = "critical" // pages on-call
	SeverityWarning  = "warning"  // goes to the ops channel
)

// Config holds the thresholds and the deployment-specific parts of the rules.
type Config struct {
	// RunbookBaseURL is prefixed to docs/runbooks/<alert>.md: where your
	// copy of this repository's docs is served, e.g.
	// https://git.example.com/games/stackwatch/-/blob/main. Empty (the
	// default) gives the repository-relative path; the chart's
	// runbookBaseURL value and alerts/gen -runbook-base set it.
	RunbookBaseURL string

	// TimeScale multiplies every rate window, for: duration and lookback.
	// 1 in production; Demo uses 0.2 so the incident pages within three
	// minutes with the same expressions.
	TimeScale float64

	// NilSessionsPerMinute is the HighNilSessionRate threshold. The report's
	// table says "> 10 per minute"; its YAML compared a per-second rate with
	// 10, i.e. 600/min, which would never have fired.
	NilSessionsPerMinute float64
	// StacktraceFiles is the on-disk count that means "restart the service".
	StacktraceFiles float64
	// Goroutines is the go_goroutines level that means "check for leaks".
	Goroutines float64
	// LeakSuspectGoroutines: goroutines parked at sidecar-flagged leak
	// locations above this level count as a leak.
	LeakSuspectGoroutines float64
	// MemoryLimitRatio is in-use/limit above which to scale out.
	MemoryLimitRatio float64
	// ClientWriteFailuresPerMinute is the failed-write rate worth investigating.
	ClientWriteFailuresPerMinute float64
	// BetSuccessRatio is the report's success criterion (1 - failed/all).
	BetSuccessRatio float64

	// GameserverJob and SidecarJob are regexes matched against the job
	// label; every selector carries one, so another exporter's go_goroutines
	// or up never fires a stackwatch alert. They must match the scrape
	// config / PodMonitor.
	GameserverJob string
	SidecarJob    string
}

// Default returns the thresholds of the incident report's monitoring plan.
func Default() Config {
	return Config{
		TimeScale:                    1,
		NilSessionsPerMinute:         10,
		StacktraceFiles:              50,
		Goroutines:                   10000,
		LeakSuspectGoroutines:        0,
		MemoryLimitRatio:             0.9,
		ClientWriteFailuresPerMinute: 100,
		BetSuccessRatio:              0.995,
		GameserverJob:                "gameserver",
		SidecarJob:                   "stackwatch-sidecar",
	}
}

// DemoTimeScale is the clock of make demo: a 5m window becomes 1m.
const DemoTimeScale = 0.2

// Demo returns Default on the demo's clock: HighNilSessionRate averages over
// 1m and fires after 1m, so a legacy service pages within three minutes.
func Demo() Config {
	c := Default()
	c.TimeScale = DemoTimeScale
	return c
}

// Validate rejects thresholds that would make a rule meaningless.
func (c Config) Validate() error {
	switch {
	case c.TimeScale <= 0 || c.TimeScale > 1:
		return fmt.Errorf("time scale must be in (0, 1], got %v", c.TimeScale)
	case c.NilSessionsPerMinute <= 0:
		return fmt.Errorf("nil-session threshold must be > 0 per minute, got %v", c.NilSessionsPerMinute)
	case c.StacktraceFiles < 0:
		return fmt.Errorf("stacktrace file threshold must be >= 0, got %v", c.StacktraceFiles)
	case c.Goroutines <= 0:
		return fmt.Errorf("goroutine threshold must be > 0, got %v", c.Goroutines)
	case c.LeakSuspectGoroutines < 0:
		return fmt.Errorf("leak suspect threshold must be >= 0, got %v", c.LeakSuspectGoroutines)
	case c.MemoryLimitRatio <= 0 || c.MemoryLimitRatio > 1:
		return fmt.Errorf("memory ratio must be in (0, 1], got %v", c.MemoryLimitRatio)
	case c.ClientWriteFailuresPerMinute <= 0:
		return fmt.Errorf("client write failure threshold must be > 0 per minute, got %v", c.ClientWriteFailuresPerMinute)
	case c.BetSuccessRatio <= 0 || c.BetSuccessRatio >= 1:
		return fmt.Errorf("bet success ratio must be in (0, 1), got %v", c.BetSuccessRatio)
	case c.GameserverJob == "" || c.SidecarJob == "":
		return fmt.Errorf("gameserver and sidecar job regexes must be set")
	}
	return nil
}

// RunbookURL is where the runbook of alert lives.
func (c Config) RunbookURL(alert string) string {
	p := "docs/runbooks/" + alert + ".md"
	if c.RunbookBaseURL == "" {
		return p
	}
	return strings.TrimSuffix(c.RunbookBaseURL, "/") + "/" + p
}

// Group names.
const (
	GroupGameserver = "stackwatch.gameserver"
	GroupSidecar    = "stackwatch.sidecar"
	GroupMeta       = "stackwatch.meta"
)

// Without cluster, namespace, service: how every rule aggregates, so an
// alert names the service and, where the scrape sets them, its namespace and
// cluster.
var groupBy = metrics.LabelCluster + ", " + metrics.LabelNamespace + ", " + metrics.LabelService

// f formats a threshold the way PromQL reads it back.
func f(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// d scales a duration by TimeScale and formats it the way Prometheus does.
func (c Config) d(s string) string {
	v, err := model.ParseDuration(s)
	if err != nil {
		panic("alerts: bad duration " + s) // a literal in this file
	}
	return model.Duration(float64(v) * c.TimeScale).String()
}

func sum(expr string) string { return "sum by (" + groupBy + ") (" + expr + ")" }

func maxOf(expr string) string { return "max by (" + groupBy + ") (" + expr + ")" }

func group(expr string) string { return "group by (" + groupBy + ") (" + expr + ")" }

// sel is a selector on job regex job plus matchers.
func sel(m metrics.Metric, job string, matchers ...string) string {
	return m.Name + "{" + strings.Join(append([]string{fmt.Sprintf("job=~%q", job)}, matchers...), ",") + "}"
}

// Groups returns the rule groups. The Helm chart wraps them in a
// PrometheusRule; Render writes them as a plain Prometheus rule file.
func Groups(c Config) ([]monitoringv1.RuleGroup, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	svc := "{{ $labels." + metrics.LabelService + " }}"
	val := "{{ $value | humanize }}"
	gs := func(m metrics.Metric, matchers ...string) string { return sel(m, c.GameserverJob, matchers...) }
	sc := func(m metrics.Metric, matchers ...string) string { return sel(m, c.SidecarJob, matchers...) }
	rate := func(sel, window string) string { return "rate(" + sel + "[" + c.d(window) + "])" }
	increase := func(sel, window string) string { return "increase(" + sel + "[" + c.d(window) + "])" }
	notFatal := metrics.LabelKind + "!=\"" + metrics.KindFatal + "\""

	rule := func(name, severity, forDur, expr, summary, description string) monitoringv1.Rule {
		r := monitoringv1.Rule{
			Alert:  name,
			Expr:   intstr.FromString(expr),
			Labels: map[string]string{LabelSeverity: severity},
			Annotations: map[string]string{
				"summary":     summary,
				"description": description,
				"runbook_url": c.RunbookURL(name),
			},
		}
		if forDur != "" {
			d := monitoringv1.Duration(c.d(forDur))
			r.For = &d
		}
		return r
	}

	gameserver := []monitoringv1.Rule{
		rule(HighNilSessionRate, SeverityCritical, "5m",
			sum(rate(gs(metrics.NilSessionAttempts), "5m"))+" * 60 > "+f(c.NilSessionsPerMinute),
			"Game server is writing to nil client sessions at a high rate.",
			svc+" attempted "+val+" writes per minute to a nil client session over the last "+c.d("5m")+" (threshold "+
				f(c.NilSessionsPerMinute)+"/min). Bet results are not reaching players who disconnected mid-bet."),
		rule(ClientWriteFailuresHigh, SeverityWarning, "5m",
			sum(rate(gs(metrics.ClientWriteFailures), "5m"))+" * 60 > "+f(c.ClientWriteFailuresPerMinute),
			"Game server is failing many writes to clients.",
			svc+" failed "+val+" client writes per minute over the last "+c.d("5m")+" (threshold "+
				f(c.ClientWriteFailuresPerMinute)+"/min)."),
		rule(BetSuccessRateLow, SeverityCritical, "10m",
			fmt.Sprintf("1 - (%s / %s) < %s",
				sum(rate(gs(metrics.BetResults, metrics.LabelOutcome+"=\""+metrics.OutcomeFailed+"\""), "10m")),
				sum(rate(gs(metrics.BetResults), "10m")),
				f(c.BetSuccessRatio)),
			"Players are losing bet results.",
			svc+" delivered, queued or dead-lettered only "+"{{ $value | humanizePercentage }}"+
				" of settled bets over the last "+c.d("10m")+" (objective "+f(c.BetSuccessRatio*100)+"%)."),
		rule(MemoryNearLimit, SeverityWarning, "15m",
			maxOf(gs(metrics.MemoryInUse)+" / ("+gs(metrics.MemoryLimit)+" > 0)")+" > "+f(c.MemoryLimitRatio),
			"Game server memory is close to its limit.",
			svc+" uses "+"{{ $value | humanizePercentage }}"+" of its memory limit (threshold "+
				f(c.MemoryLimitRatio*100)+"%)."),
	}

	sidecar := []monitoringv1.Rule{
		rule(GameServerFatalCrash, SeverityCritical, "",
			sum(increase(sc(metrics.FatalCrashes), "10m"))+" > 0",
			"Game server died of a fatal runtime error.",
			svc+" died "+val+" times in the last "+c.d("10m")+" of a fatal runtime error (concurrent map writes, "+
				"stack overflow, out of memory, deadlock or a signal) that recover() cannot catch. "+
				"The trace is in its fatal-*.stacktrace.log; the container restarted."),
		rule(NewPanicDetected, SeverityWarning, "",
			sum(increase(sc(metrics.Panics, notFatal), "10m"))+" > 0",
			"Game server recovered from a panic.",
			svc+" wrote "+val+" new stacktrace files in the last "+c.d("10m")+". Every panic is a bet whose result the player never got."),
		rule(StacktraceFilesHigh, SeverityCritical, "1m",
			maxOf(sc(metrics.StacktraceFiles))+" > "+f(c.StacktraceFiles),
			"Too many stacktrace files on disk.",
			svc+" has "+val+" stacktrace files on disk (threshold "+f(c.StacktraceFiles)+"). Restart the service."),
		rule(GoroutineLeakDetected, SeverityWarning, "15m",
			maxOf(gs(metrics.GoGoroutines))+" > "+f(c.Goroutines)+
				"\nor\n"+sum(sc(metrics.GoroutinesLeaked))+" > 0"+
				"\nor\n"+sum(sc(metrics.LeakSuspects))+" > "+f(c.LeakSuspectGoroutines),
			"Goroutines are leaking.",
			svc+" has "+val+" goroutines counted as leaked (go_goroutines above "+f(c.Goroutines)+
				", proven leaked by the runtime, or parked at a leak suspect location)."),
	}

	// A target that vanished (pod deleted, StatefulSet scaled to zero, a
	// PodMonitor that no longer selects it) has no up series at all, so
	// up == 0 never fires. The absent-style rule compares the services
	// scraped within the lookback with those scraped now.
	absent := func(job string) string {
		up := sel(metrics.Up, job)
		return group("max_over_time("+up+"["+c.d("1h")+"])") + "\nunless on (" + groupBy + ")\n" + group(up)
	}
	meta := []monitoringv1.Rule{
		rule(GameServerDown, SeverityCritical, "2m",
			sel(metrics.Up, c.GameserverJob)+" == 0",
			"Prometheus cannot scrape a game server.",
			svc+" game server target {{ $labels.instance }} has been down for "+c.d("2m")+"."),
		rule(SidecarDown, SeverityWarning, "5m",
			sel(metrics.Up, c.SidecarJob)+" == 0",
			"Prometheus cannot scrape a stackwatch sidecar.",
			svc+" sidecar target {{ $labels.instance }} has been down for "+c.d("5m")+"; panics and leaks of this service go unseen."),
		rule(GameServerAbsent, SeverityCritical, "5m",
			absent(c.GameserverJob),
			"A game server vanished from Prometheus.",
			svc+" had a game server target within the last "+c.d("1h")+" and has none now: it was deleted, scaled to zero, or is no longer scraped."),
		rule(SidecarAbsent, SeverityWarning, "5m",
			absent(c.SidecarJob),
			"A stackwatch sidecar vanished from Prometheus.",
			svc+" had a sidecar target within the last "+c.d("1h")+" and has none now; panics and leaks of this service go unseen."),
	}

	return []monitoringv1.RuleGroup{
		{Name: GroupGameserver, Rules: gameserver},
		{Name: GroupSidecar, Rules: sidecar},
		{Name: GroupMeta, Rules: meta},
	}, nil
}

// RuleFile is the on-disk shape of a Prometheus rule file.
type RuleFile struct {
	Groups []monitoringv1.RuleGroup `json:"groups"`
}

// Header starts every generated file.
const Header = "# Code generated by go generate ./alerts; DO NOT EDIT.\n# Source: alerts/alerts.go. Thresholds: see docs/monitoring.md.\n"

// Render returns the Prometheus rule file for c.
func Render(c Config) ([]byte, error) {
	groups, err := Groups(c)
	if err != nil {
		return nil, err
	}
	b, err := yaml.Marshal(RuleFile{Groups: groups})
	if err != nil {
		return nil, fmt.Errorf("marshal rules: %w", err)
	}
	return append([]byte(Header), b...), nil
}

// Names lists every alert in file order.
func Names(c Config) []string {
	groups, err := Groups(c)
	if err != nil {
		return nil
	}
	var names []string
	for _, g := range groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
		}
	}
	return names
}

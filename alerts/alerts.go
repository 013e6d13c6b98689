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
// the value, and runbook_url points at docs/runbooks/<AlertName>.md.
package alerts

//go:generate go run ./gen -o stackwatch.rules.yml

import (
	"fmt"
	"strconv"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
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
	GameServerDown          = "GameServerDown"
	SidecarDown             = "SidecarDown"
)

// Label names and values the rules attach; Alertmanager routes on them.
const (
	LabelSeverity    = "severity"
	SeverityCritical = "critical" // pages on-call
	SeverityWarning  = "warning"  // goes to the ops channel
)

// Config holds the thresholds and the deployment-specific parts of the rules.
type Config struct {
	// RunbookBaseURL is prefixed to docs/runbooks/<alert>.md, e.g. the
	// repository's blob URL. Empty gives a repository-relative path.
	RunbookBaseURL string

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

	// GameserverJob and SidecarJob are regexes matched against the job label
	// of the up series. They must match the scrape config / PodMonitor.
	GameserverJob string
	SidecarJob    string
}

// Default returns the thresholds of the incident report's monitoring plan.
func Default() Config {
	return Config{
		RunbookBaseURL:               "https://github.com/stackwatch/stackwatch/blob/main",
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

// Validate rejects thresholds that would make a rule meaningless.
func (c Config) Validate() error {
	switch {
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

// f formats a threshold the way PromQL reads it back.
func f(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func by(expr string) string { return "sum by (" + metrics.LabelService + ") (" + expr + ")" }

func maxBy(expr string) string { return "max by (" + metrics.LabelService + ") (" + expr + ")" }

// Groups returns the rule groups. The Helm chart wraps them in a
// PrometheusRule; Render writes them as a plain Prometheus rule file.
func Groups(c Config) ([]monitoringv1.RuleGroup, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	svc := "{{ $labels." + metrics.LabelService + " }}"
	val := "{{ $value | humanize }}"

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
			d := monitoringv1.Duration(forDur)
			r.For = &d
		}
		return r
	}

	gameserver := []monitoringv1.Rule{
		rule(HighNilSessionRate, SeverityCritical, "5m",
			by("rate("+metrics.NilSessionAttempts.Name+"[5m])")+" * 60 > "+f(c.NilSessionsPerMinute),
			"Game server is writing to nil client sessions at a high rate.",
			svc+" attempted "+val+" writes per minute to a nil client session over the last 5m (threshold "+
				f(c.NilSessionsPerMinute)+"/min). Bet results are not reaching players who disconnected mid-bet."),
		rule(ClientWriteFailuresHigh, SeverityWarning, "5m",
			by("rate("+metrics.ClientWriteFailures.Name+"[5m])")+" * 60 > "+f(c.ClientWriteFailuresPerMinute),
			"Game server is failing many writes to clients.",
			svc+" failed "+val+" client writes per minute over the last 5m (threshold "+
				f(c.ClientWriteFailuresPerMinute)+"/min)."),
		rule(BetSuccessRateLow, SeverityCritical, "10m",
			fmt.Sprintf("1 - (%s / %s) < %s",
				by("rate("+metrics.BetResults.Name+"{"+metrics.LabelOutcome+"=\""+metrics.OutcomeFailed+"\"}[10m])"),
				by("rate("+metrics.BetResults.Name+"[10m])"),
				f(c.BetSuccessRatio)),
			"Players are losing bet results.",
			svc+" delivered, queued or dead-lettered only "+"{{ $value | humanizePercentage }}"+
				" of settled bets over the last 10m (objective "+f(c.BetSuccessRatio*100)+"%)."),
		rule(MemoryNearLimit, SeverityWarning, "15m",
			maxBy(metrics.MemoryInUse.Name+" / ("+metrics.MemoryLimit.Name+" > 0)")+" > "+f(c.MemoryLimitRatio),
			"Game server memory is close to its limit.",
			svc+" uses "+"{{ $value | humanizePercentage }}"+" of its memory limit (threshold "+
				f(c.MemoryLimitRatio*100)+"%)."),
	}

	sidecar := []monitoringv1.Rule{
		rule(NewPanicDetected, SeverityWarning, "",
			by("increase("+metrics.Panics.Name+"[10m])")+" > 0",
			"Game server recovered from a panic.",
			svc+" wrote "+val+" new stacktrace files in the last 10m. Every panic is a bet whose result the player never got."),
		rule(StacktraceFilesHigh, SeverityCritical, "1m",
			maxBy(metrics.StacktraceFiles.Name)+" > "+f(c.StacktraceFiles),
			"Too many stacktrace files on disk.",
			svc+" has "+val+" stacktrace files on disk (threshold "+f(c.StacktraceFiles)+"). Restart the service."),
		rule(GoroutineLeakDetected, SeverityWarning, "15m",
			maxBy(metrics.GoGoroutines.Name+"{"+metrics.LabelService+"!=\"\"}")+" > "+f(c.Goroutines)+
				"\nor\n"+by(metrics.GoroutinesLeaked.Name)+" > 0"+
				"\nor\n"+by(metrics.LeakSuspects.Name)+" > "+f(c.LeakSuspectGoroutines),
			"Goroutines are leaking.",
			svc+" has "+val+" goroutines counted as leaked (go_goroutines above "+f(c.Goroutines)+
				", proven leaked by the runtime, or parked at a leak suspect location)."),
	}

	up := metrics.Up.Name
	meta := []monitoringv1.Rule{
		rule(GameServerDown, SeverityCritical, "2m",
			fmt.Sprintf("%s{job=~%q} == 0", up, c.GameserverJob),
			"Prometheus cannot scrape a game server.",
			svc+" game server target {{ $labels.instance }} has been down for 2m."),
		rule(SidecarDown, SeverityWarning, "5m",
			fmt.Sprintf("%s{job=~%q} == 0", up, c.SidecarJob),
			"Prometheus cannot scrape a stackwatch sidecar.",
			svc+" sidecar target {{ $labels.instance }} has been down for 5m; panics and leaks of this service go unseen."),
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

// Package dashboards defines stackwatch's Grafana dashboards as Go code.
//
// The dashboards use the classic dashboard schema of
// github.com/grafana/grafana-foundation-sdk/go (Grafana's file provisioning
// does not take the v2 schema). Every query names its metrics through package
// metrics, and every threshold line comes from alerts.Default(), so a panel
// shows the same line its alert fires on. ./gen writes one JSON file per
// dashboard into this directory; a test fails when a file drifts from the code.
//
// Like the monitoring mixins, every selector carries the cluster, namespace
// and service variables (chained in that order) and every aggregation keeps
// those labels; every panel links its runbook; an annotation marks firing
// alerts from ALERTS. Panels about the Go runtime select the game server's
// job, so the sidecar's own goroutines never mix in.
//
// Queries returns every panel query so the end-to-end test can run each of
// them against a Prometheus scraping the real server and sidecar.
package dashboards

//lint:file-ignore SA1019 Grafana file provisioning rejects the v2 schema the SDK prefers; the classic one is deliberate.

//go:generate go run ./gen -dir .

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/stackwatch/stackwatch/alerts"
	"github.com/stackwatch/stackwatch/metrics"
)

// Variable names every dashboard defines.
const (
	VarDatasource = "datasource"
	VarCluster    = "cluster"
	VarNamespace  = "namespace"
	VarService    = "service"
)

// Grafana's built-in intervals: a rate() window, and the time picker's range.
const (
	rateInterval = "$__rate_interval"
	timeRange    = "$__range"
)

// by is what every aggregation keeps.
var by = metrics.LabelCluster + ", " + metrics.LabelNamespace + ", " + metrics.LabelService

// Tag put on every dashboard (folder search, links between them).
const Tag = "stackwatch"

// Spec is one dashboard: its file name and its built model.
type Spec struct {
	UID   string
	File  string // JSON file name in this directory
	Model dashboard.Dashboard
}

// All builds every dashboard with the default alert thresholds.
func All() ([]Spec, error) {
	return Build(alerts.Default())
}

// Build builds every dashboard, drawing thresholds from c.
func Build(c alerts.Config) ([]Spec, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	builders := []struct {
		uid string
		b   *dashboard.DashboardBuilder
	}{
		{"stackwatch-session-health", sessionHealth(c)},
		{"stackwatch-error-rates", errorRates(c)},
		{"stackwatch-performance", performance(c)},
		{"stackwatch-crashes-goroutines", crashes(c)},
	}
	specs := make([]Spec, 0, len(builders))
	for _, d := range builders {
		m, err := d.b.Uid(d.uid).Build()
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", d.uid, err)
		}
		if err := finish(&m, c); err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", d.uid, err)
		}
		specs = append(specs, Spec{UID: d.uid, File: d.uid + ".json", Model: m})
	}
	return specs, nil
}

// Runbooks maps each panel title to the alert whose runbook it links.
var Runbooks = map[string]string{
	"Active sessions":                       alerts.HighNilSessionRate,
	"Nil-session access rate":               alerts.HighNilSessionRate,
	"Session creation and destruction rate": alerts.HighNilSessionRate,
	"Closed-session warnings":               alerts.ClientWriteFailuresHigh,
	"Pending responses and dead letters":    alerts.BetSuccessRateLow,
	"Bet results by outcome":                alerts.BetSuccessRateLow,
	"Panics recovered":                      alerts.NewPanicDetected,
	"Client write failures by reason":       alerts.ClientWriteFailuresHigh,
	"Goroutines":                            alerts.GoroutineLeakDetected,
	"Goroutine leak detection":              alerts.GoroutineLeakDetected,
	"Bet latency p50 / p99":                 alerts.BetSuccessRateLow,
	"Response success rate":                 alerts.BetSuccessRateLow,
	"Memory usage":                          alerts.MemoryNearLimit,
	"Memory usage of limit":                 alerts.MemoryNearLimit,
	"GC pause":                              alerts.MemoryNearLimit,
	"Heap in use":                           alerts.MemoryNearLimit,
	"CPU":                                   alerts.MemoryNearLimit,
	"Top crash sites":                       alerts.NewPanicDetected,
	"Panics by service":                     alerts.NewPanicDetected,
	"Fatal crashes":                         alerts.GameServerFatalCrash,
	"Stacktrace files on disk":              alerts.StacktraceFilesHigh,
	"Stacktrace files trend":                alerts.StacktraceFilesHigh,
	"Leak suspects":                         alerts.GoroutineLeakDetected,
	"Goroutine trend":                       alerts.GoroutineLeakDetected,
	"Goroutine stack groups and dumps":      alerts.GoroutineLeakDetected,
}

// finish does what the SDK's builders cannot: a runbook link on every
// panel, and no fields the current Grafana schema rejects (the auto* fields
// of interval variables on every variable, a table footer).
func finish(d *dashboard.Dashboard, c alerts.Config) error {
	for _, p := range d.Panels {
		if p.Panel == nil {
			continue
		}
		title := deref(p.Panel.Title)
		alert, ok := Runbooks[title]
		if !ok {
			return fmt.Errorf("panel %q links no runbook; add it to Runbooks", title)
		}
		p.Panel.Links = append(p.Panel.Links, dashboard.DashboardLink{
			Title: "Runbook: " + alert, Type: dashboard.DashboardLinkTypeLink,
			Url: cog.ToPtr(c.RunbookURL(alert)), TargetBlank: true, Tags: []string{},
		})
		if o, ok := p.Panel.Options.(*table.Options); ok {
			o.Footer = nil
		}
	}
	if d.Templating.List != nil {
		for i := range d.Templating.List {
			v := &d.Templating.List[i]
			if v.Type != dashboard.VariableTypeInterval {
				v.Auto, v.AutoMin, v.AutoCount = nil, nil, nil
			}
		}
	}
	return nil
}

// JSON renders a dashboard the way it is committed.
func JSON(d dashboard.Dashboard) ([]byte, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Query is one panel query of one dashboard.
type Query struct {
	Dashboard string // UID
	PanelID   uint32
	Panel     string // title
	RefID     string
	Expr      string // with Grafana variables, as in the JSON
	Instant   bool
}

// Queries lists every Prometheus query of the dashboards, in panel order.
func Queries(specs []Spec) ([]Query, error) {
	var qs []Query
	for _, s := range specs {
		for _, p := range s.Model.Panels {
			if p.Panel == nil {
				continue
			}
			for _, t := range p.Panel.Targets {
				var pq prometheus.Dataquery
				switch v := t.(type) {
				case prometheus.Dataquery:
					pq = v
				case *prometheus.Dataquery:
					pq = *v
				default:
					return nil, fmt.Errorf("%s panel %q: target of type %T, want a Prometheus query", s.UID, deref(p.Panel.Title), t)
				}
				qs = append(qs, Query{
					Dashboard: s.UID,
					PanelID:   deref(p.Panel.Id),
					Panel:     deref(p.Panel.Title),
					RefID:     deref(pq.RefId),
					Expr:      pq.Expr,
					Instant:   deref(pq.Instant),
				})
			}
		}
	}
	return qs, nil
}

// Substitute replaces the dashboard variables in expr the way Grafana would
// for service (a regex, e.g. ".*" for All), every cluster and namespace, and
// the given window for both the rate interval and the time picker's range.
func Substitute(expr, service, window string) string {
	return strings.NewReplacer(
		"$"+VarCluster, ".*",
		"$"+VarNamespace, ".*",
		"$"+VarService, service,
		rateInterval, window,
		timeRange, window,
	).Replace(expr)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// --- building blocks ---

func datasource() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${" + VarDatasource + "}")}
}

// sel is the label selector every query carries: the cluster, namespace and
// service variables.
func sel(extra ...string) string {
	return "{" + strings.Join(append([]string{
		metrics.LabelCluster + `=~"$` + VarCluster + `"`,
		metrics.LabelNamespace + `=~"$` + VarNamespace + `"`,
		metrics.LabelService + `=~"$` + VarService + `"`,
	}, extra...), ",") + "}"
}

// job selects one scrape job (a regex from alerts.Config).
func job(re string) string { return `job=~"` + re + `"` }

func rate(m metrics.Metric, extra ...string) string {
	return "rate(" + m.Name + sel(extra...) + "[" + rateInterval + "])"
}

func bucketRate(m metrics.Metric) string {
	return "rate(" + m.Bucket() + sel() + "[" + rateInterval + "])"
}

// sumBy aggregates keeping cluster, namespace, service and labels.
func sumBy(labels, expr string) string {
	if labels != "" {
		labels = ", " + labels
	}
	return "sum by (" + by + labels + ") (" + expr + ")"
}

func maxBy(expr string) string { return "max by (" + by + ") (" + expr + ")" }

func query(ref, expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().RefId(ref).Expr(expr).LegendFormat(legend).Range().Datasource(datasource())
}

func legend() *common.VizLegendOptionsBuilder {
	return common.NewVizLegendOptionsBuilder().
		ShowLegend(true).
		DisplayMode(common.LegendDisplayModeTable).
		Placement(common.LegendPlacementBottom).
		Calcs([]string{"lastNotNull", "max"})
}

// thresholds colours values at or above each step; above=false flips it for
// "lower is worse" values such as a success ratio.
func thresholds(limit float64, above bool) *dashboard.ThresholdsConfigBuilder {
	steps := []dashboard.Threshold{{Value: nil, Color: "green"}, {Value: cog.ToPtr(limit), Color: "red"}}
	if !above {
		steps = []dashboard.Threshold{{Value: nil, Color: "red"}, {Value: cog.ToPtr(limit), Color: "green"}}
	}
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(steps)
}

func noThresholds() *dashboard.ThresholdsConfigBuilder {
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).
		Steps([]dashboard.Threshold{{Value: nil, Color: "green"}})
}

// series is a time-series panel. Queries get refIds A, B, ... in order.
func series(id uint32, title, desc, unit string, th *dashboard.ThresholdsConfigBuilder, qs ...*prometheus.DataqueryBuilder) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().
		Id(id).Title(title).Description(desc).Unit(unit).
		Datasource(datasource()).
		Height(8).Span(12).
		Legend(legend()).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending)).
		FillOpacity(10).Min(0)
	if th != nil {
		p = p.Thresholds(th).ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeLine))
	} else {
		p = p.Thresholds(noThresholds())
	}
	for _, q := range qs {
		p = p.WithTarget(q)
	}
	return p
}

// row starts a section. Rows get ids from 100 so panels keep 1..n.
func row(id uint32, title string) *dashboard.RowBuilder {
	return dashboard.NewRowBuilder(title).Id(id)
}

// labelVariable is a chained query variable over up of the game servers:
// multi-value with All as .*, which also matches series without the label.
func labelVariable(name, label, match string, hide dashboard.VariableHide) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(datasource()).
		Query(dashboard.StringOrMap{String: cog.ToPtr("label_values(" + metrics.Up.Name + "{" + match + "}, " + name + ")")}).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(true).IncludeAll(true).AllValue(".*").
		Hide(hide)
}

// alertAnnotation marks firing alerts of the selected services; the series'
// labels (alertname, severity, ...) become the annotation's text. Title and
// tag formats are Prometheus-plugin fields outside Grafana's schema.
func alertAnnotation() *dashboard.AnnotationQueryBuilder {
	return dashboard.NewAnnotationQueryBuilder().
		Name("Firing alerts").
		Datasource(datasource()).
		Enable(true).
		IconColor("red").
		Target(prometheus.NewDataqueryBuilder().RefId("Anno").
			Expr(`ALERTS{alertstate="firing",` + strings.TrimPrefix(sel(), "{")).
			Range().Interval("1m"))
}

func newDashboard(c alerts.Config, title, desc string) *dashboard.DashboardBuilder {
	gs := job(c.GameserverJob)
	return dashboard.NewDashboardBuilder(title).
		Description(desc).
		Tags([]string{Tag}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("30s").
		Time("now-6h", "now").
		Timezone("browser").
		Link(dashboard.NewDashboardLinkBuilder("stackwatch").Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{Tag}).AsDropdown(true).IncludeVars(true).KeepTime(true)).
		WithVariable(dashboard.NewDatasourceVariableBuilder(VarDatasource).
			Label("Data source").Type("prometheus")).
		// Grafana cannot hide a variable by its values, so cluster, which
		// single-cluster setups lack, is hidden; its All still matches.
		WithVariable(labelVariable(VarCluster, "Cluster", gs, dashboard.VariableHideHideVariable)).
		WithVariable(labelVariable(VarNamespace, "Namespace", gs+`,cluster=~"$`+VarCluster+`"`, dashboard.VariableHideDontHide)).
		WithVariable(labelVariable(VarService, "Service", gs+`,cluster=~"$`+VarCluster+`",namespace=~"$`+VarNamespace+`"`, dashboard.VariableHideDontHide)).
		Annotation(alertAnnotation())
}

// --- the dashboards ---

func sessionHealth(c alerts.Config) *dashboard.DashboardBuilder {
	return newDashboard(c, "stackwatch / Session Health",
		"Client sessions of the game servers: how many are open, how fast they come and go, and how often a bet result meets a session that is already gone.").
		WithRow(row(100, "Sessions")).
		WithPanel(series(1, "Active sessions", "Authenticated client sessions currently open.", "short", nil,
			query("A", sumBy("", metrics.SessionsActive.Name+sel()), "{{service}}"))).
		WithPanel(series(2, "Nil-session access rate",
			fmt.Sprintf("Writes attempted to a nil client session, per minute. HighNilSessionRate pages above %g/min.", c.NilSessionsPerMinute),
			"opm", thresholds(c.NilSessionsPerMinute, true),
			query("A", sumBy("", rate(metrics.NilSessionAttempts))+" * 60", "{{service}}"))).
		WithPanel(series(3, "Session creation and destruction rate",
			"Sessions authenticated (A) and closed (B) per second; closed includes stale sessions reaped by the session manager.",
			"ops", nil,
			query("A", sumBy("", rate(metrics.SessionsCreated)), "{{service}} created"),
			query("B", sumBy("", rate(metrics.SessionsClosed)), "{{service}} closed"))).
		WithPanel(series(4, "Closed-session warnings",
			"The graceful path: the server logged \"Gate session closed, message cannot be sent\" instead of panicking (read by the sidecar from the JSON log), per minute.",
			"opm", nil,
			query("A", sumBy("", rate(metrics.ClosedSessionWarnings))+" * 60", "{{service}}"))).
		WithRow(row(101, "Results waiting for their player")).
		WithPanel(series(5, "Pending responses and dead letters",
			"Results queued in memory for retry (A) and in the durable dead-letter store until the player reconnects (B).",
			"short", nil,
			query("A", sumBy("", metrics.PendingResponses.Name+sel()), "{{service}} pending"),
			query("B", sumBy("", metrics.DeadLetters.Name+sel()), "{{service}} dead letters"))).
		WithPanel(series(6, "Bet results by outcome",
			"Settled bets per second by where their result went first. failed is a lost bet.",
			"ops", nil,
			query("A", sumBy(metrics.LabelOutcome, rate(metrics.BetResults)), "{{service}} {{outcome}}")))
}

func errorRates(c alerts.Config) *dashboard.DashboardBuilder {
	gs := job(c.GameserverJob)
	return newDashboard(c, "stackwatch / Error Rates",
		"Panics recovered, client write failures and goroutine leak signals, with the alert thresholds drawn in.").
		WithRow(row(100, "Panics")).
		WithPanel(series(1, "Panics recovered",
			"Per minute: panics the server's recover helper caught (A) and panics the sidecar read from stacktrace files (B). The two agree unless files are lost.",
			"opm", nil,
			query("A", sumBy("", rate(metrics.PanicsRecovered))+" * 60", "{{service}} recovered (server)"),
			query("B", sumBy("", rate(metrics.Panics))+" * 60", "{{service}} stacktrace files (sidecar)"))).
		WithPanel(series(2, "Client write failures by reason",
			fmt.Sprintf("Failed writes to client sessions per minute, by reason. ClientWriteFailuresHigh warns above %g/min per service.", c.ClientWriteFailuresPerMinute),
			"opm", thresholds(c.ClientWriteFailuresPerMinute, true),
			query("A", sumBy(metrics.LabelReason, rate(metrics.ClientWriteFailures))+" * 60", "{{service}} {{reason}}"))).
		WithRow(row(101, "Goroutine leaks")).
		WithPanel(series(3, "Goroutines",
			fmt.Sprintf("go_goroutines of the game server (not its sidecar). GoroutineLeakDetected warns above %g.", c.Goroutines),
			"short", thresholds(c.Goroutines, true),
			query("A", sumBy("", metrics.GoGoroutines.Name+sel(gs)), "{{service}}"))).
		WithPanel(series(4, "Goroutine leak detection",
			"Goroutines at leak suspect locations by signal (A), and goroutines the runtime proved leaked (B). Anything above zero for 15m fires GoroutineLeakDetected.",
			"short", thresholds(c.LeakSuspectGoroutines+1, true),
			query("A", sumBy(metrics.LabelSignal, metrics.LeakSuspects.Name+sel()), "{{service}} suspects ({{signal}})"),
			query("B", sumBy("", metrics.GoroutinesLeaked.Name+sel()), "{{service}} proven leaked")))
}

func performance(c alerts.Config) *dashboard.DashboardBuilder {
	gs := job(c.GameserverJob)
	failed := rate(metrics.BetResults, metrics.LabelOutcome+`="`+metrics.OutcomeFailed+`"`)
	all := sumBy("", rate(metrics.BetResults))
	// A patched server has no failed series at all; count that as zero
	// failures instead of showing no data.
	success := "1 - ((" + sumBy("", failed) + " or " + all + " * 0) / " + all + ")"
	quantile := func(q float64) string {
		return fmt.Sprintf("histogram_quantile(%g, %s)", q, sumBy("le", bucketRate(metrics.BetDuration)))
	}
	return newDashboard(c, "stackwatch / Performance",
		"Bet latency, response success rate, memory against the limit, and the Go runtime of the game servers.").
		WithRow(row(100, "Bets")).
		WithPanel(series(1, "Bet latency p50 / p99",
			"Time from a bet request to its result leaving the server.",
			"s", nil,
			query("A", quantile(0.5), "{{service}} p50"),
			query("B", quantile(0.99), "{{service}} p99"))).
		WithPanel(series(2, "Response success rate",
			fmt.Sprintf("1 - failed/all settled bets. BetSuccessRateLow pages below %g%%.", c.BetSuccessRatio*100),
			"percentunit", thresholds(c.BetSuccessRatio, false),
			query("A", success, "{{service}}")).Max(1)).
		WithRow(row(101, "Memory")).
		WithPanel(series(3, "Memory usage",
			"Memory the server holds (A) against its limit (B): the cgroup limit, else GOMEMLIMIT, else -memory-limit.",
			"bytes", nil,
			query("A", sumBy("", metrics.MemoryInUse.Name+sel()), "{{service}} in use"),
			query("B", sumBy("", metrics.MemoryLimit.Name+sel()), "{{service}} limit"))).
		WithPanel(series(4, "Memory usage of limit",
			fmt.Sprintf("In use / limit. MemoryNearLimit warns above %g%%.", c.MemoryLimitRatio*100),
			"percentunit", thresholds(c.MemoryLimitRatio, true),
			query("A", maxBy(metrics.MemoryInUse.Name+sel()+" / ("+metrics.MemoryLimit.Name+sel()+" > 0)"), "{{service}}"))).
		WithRow(row(102, "Go runtime")).
		WithPanel(series(5, "Goroutines",
			fmt.Sprintf("go_goroutines of the game server (not its sidecar). GoroutineLeakDetected warns above %g.", c.Goroutines),
			"short", thresholds(c.Goroutines, true),
			query("A", sumBy("", metrics.GoGoroutines.Name+sel(gs)), "{{service}}"))).
		WithPanel(series(6, "GC pause",
			"Average GC pause (A) and GCs per second (B) of the game server.",
			"s", nil,
			query("A", sumBy("", "rate("+metrics.GoGCDuration.Sum()+sel(gs)+"["+rateInterval+"])")+
				" / "+sumBy("", "rate("+metrics.GoGCDuration.Count()+sel(gs)+"["+rateInterval+"])"), "{{service}} avg pause"),
			query("B", sumBy("", "rate("+metrics.GoGCDuration.Count()+sel(gs)+"["+rateInterval+"])"), "{{service}} GC/s"))).
		WithPanel(series(7, "Heap in use",
			"Heap bytes in use of the game server.",
			"bytes", nil,
			query("A", sumBy("", metrics.GoHeapInuse.Name+sel(gs)), "{{service}}"))).
		WithPanel(series(8, "CPU",
			"CPU seconds per second of the game server.",
			"percentunit", nil,
			query("A", sumBy("", "rate("+metrics.ProcessCPUSecondsTotal.Name+sel(gs)+"["+rateInterval+"])"), "{{service}}")))
}

func crashes(c alerts.Config) *dashboard.DashboardBuilder {
	// Over the time picker's range, not since the sidecar started.
	top := prometheus.NewDataqueryBuilder().RefId("A").
		Expr("topk(10, " + sumBy(metrics.LabelCrashSite+", "+metrics.LabelKind, "increase("+metrics.Panics.Name+sel()+"["+timeRange+"])") + ")").
		Format(prometheus.PromQueryFormatTable).Instant().Datasource(datasource())
	return newDashboard(c, "stackwatch / Crashes & Goroutines",
		"Where the game servers crash, how many stacktrace files pile up, and which code holds goroutines.").
		WithRow(row(100, "Crashes")).
		WithPanel(table.NewPanelBuilder().Id(1).Title("Top crash sites").
			Description("The ten crash sites with the most panics in the selected time range, across the selected services, from the sidecars' stacktrace parsing; kind fatal is a crash the process died of.").
			Datasource(datasource()).Height(8).Span(12).
			Thresholds(noThresholds()).
			CellOptions(common.TableCellOptions{TableAutoCellOptions: &common.TableAutoCellOptions{Type: common.TableCellDisplayModeAuto}}).
			WithTarget(top).
			WithTransformation(dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
				"excludeByName": map[string]any{"Time": true},
				"renameByName":  map[string]any{"Value": "panics", metrics.LabelCrashSite: "crash site"},
			}}).
			SortBy([]cog.Builder[common.TableSortByFieldState]{common.NewTableSortByFieldStateBuilder().DisplayName("panics").Desc(true)})).
		WithPanel(series(2, "Panics by service",
			"Panics read from stacktrace files, per minute. NewPanicDetected warns on any.",
			"opm", nil,
			query("A", sumBy("", rate(metrics.Panics))+" * 60", "{{service}}"))).
		WithPanel(series(8, "Fatal crashes",
			"Fatal runtime errors the game server died of (concurrent map writes, stack overflow, out of memory, deadlock, signal), per interval: each is a restart. GameServerFatalCrash pages on any.",
			"short", thresholds(1, true),
			query("A", sumBy("", "increase("+metrics.FatalCrashes.Name+sel()+"["+rateInterval+"])"), "{{service}}")).
			Span(24)).
		WithPanel(stat.NewPanelBuilder().Id(3).Title("Stacktrace files on disk").
			Description(fmt.Sprintf("StacktraceFilesHigh pages above %g: restart the service.", c.StacktraceFiles)).
			Datasource(datasource()).Height(8).Span(6).Unit("short").
			Thresholds(thresholds(c.StacktraceFiles, true)).
			ColorMode(common.BigValueColorModeBackground).GraphMode(common.BigValueGraphModeArea).
			Orientation(common.VizOrientationAuto).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
			WithTarget(query("A", maxBy(metrics.StacktraceFiles.Name+sel()), "{{service}}"))).
		WithPanel(series(4, "Stacktrace files trend",
			"Files (A) and bytes (B) of stacktrace files on disk.",
			"short", thresholds(c.StacktraceFiles, true),
			query("A", maxBy(metrics.StacktraceFiles.Name+sel()), "{{service}} files"),
			query("B", maxBy(metrics.StacktraceBytes.Name+sel()), "{{service}} bytes")).
			OverrideByQuery("B", []dashboard.DynamicConfigValue{{Id: "unit", Value: "bytes"}, {Id: "custom.axisPlacement", Value: "right"}}).Span(6)).
		WithRow(row(101, "Goroutines")).
		WithPanel(series(5, "Leak suspects",
			"Goroutines parked at each suspected leak location, by the signal that flagged it.",
			"short", thresholds(c.LeakSuspectGoroutines+1, true),
			query("A", sumBy(metrics.LabelLocation+", "+metrics.LabelSignal, metrics.LeakSuspects.Name+sel()), "{{service}} {{location}} ({{signal}})"))).
		WithPanel(series(6, "Goroutine trend",
			"Goroutines in the server's last goroutine profile as the sidecar read it (A), and the runtime's count (B).",
			"short", thresholds(c.Goroutines, true),
			query("A", sumBy("", metrics.Goroutines.Name+sel()), "{{service}} profile"),
			query("B", sumBy("", metrics.GoGoroutines.Name+sel(job(c.GameserverJob))), "{{service}} go_goroutines"))).
		WithPanel(series(7, "Goroutine stack groups and dumps",
			"Distinct goroutine stacks in the last profile (A) and goroutine dumps kept by the sidecar (B).",
			"short", nil,
			query("A", sumBy("", metrics.GoroutineStackGroups.Name+sel()), "{{service}} stack groups"),
			query("B", sumBy("", metrics.Dumps.Name+sel()), "{{service}} dumps")))
}

// Package dashboards defines stackwatch's Grafana dashboards as Go code.
//
// The dashboards use the classic dashboard schema of
// github.com/grafana/grafana-foundation-sdk/go (Grafana's file provisioning
// does not take the v2 schema). Every query names its metrics through package
// metrics, and every threshold line comes from alerts.Default(), so a panel
// shows the same line its alert fires on. ./gen writes one JSON file per
// dashboard into this directory; a test fails when a file drifts from the code.
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
	VarService    = "service"
)

// Grafana's built-in interval a rate() window should use.
const rateInterval = "$__rate_interval"

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
		specs = append(specs, Spec{UID: d.uid, File: d.uid + ".json", Model: m})
	}
	return specs, nil
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
// for service (a regex, e.g. ".*" for All) and the given rate interval.
func Substitute(expr, service, rateWindow string) string {
	return strings.NewReplacer(
		"$"+VarService, service,
		rateInterval, rateWindow,
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

// sel is the label selector every query carries: the service variable.
func sel(extra ...string) string {
	return "{" + strings.Join(append([]string{metrics.LabelService + `=~"$` + VarService + `"`}, extra...), ",") + "}"
}

func rate(m metrics.Metric, extra ...string) string {
	return "rate(" + m.Name + sel(extra...) + "[" + rateInterval + "])"
}

func bucketRate(m metrics.Metric) string {
	return "rate(" + m.Bucket() + sel() + "[" + rateInterval + "])"
}

func sumBy(labels, expr string) string { return "sum by (" + labels + ") (" + expr + ")" }

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

func newDashboard(title, desc string) *dashboard.DashboardBuilder {
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
		WithVariable(dashboard.NewQueryVariableBuilder(VarService).
			Label("Service").
			Datasource(datasource()).
			Query(dashboard.StringOrMap{String: cog.ToPtr("label_values(" + metrics.GoGoroutines.Name + ", " + metrics.LabelService + ")")}).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).IncludeAll(true).AllValue(".*"))
}

// --- the dashboards ---

func sessionHealth(c alerts.Config) *dashboard.DashboardBuilder {
	return newDashboard("stackwatch / Session Health",
		"Client sessions of the game servers: how many are open, how fast they come and go, and how often a bet result meets a session that is already gone.").
		WithRow(row(100, "Sessions")).
		WithPanel(series(1, "Active sessions", "Authenticated client sessions currently open.", "short", nil,
			query("A", sumBy(metrics.LabelService, metrics.SessionsActive.Name+sel()), "{{service}}"))).
		WithPanel(series(2, "Nil-session access rate",
			fmt.Sprintf("Writes attempted to a nil client session, per minute. HighNilSessionRate pages above %g/min.", c.NilSessionsPerMinute),
			"opm", thresholds(c.NilSessionsPerMinute, true),
			query("A", sumBy(metrics.LabelService, rate(metrics.NilSessionAttempts))+" * 60", "{{service}}"))).
		WithPanel(series(3, "Session creation and destruction rate",
			"Sessions authenticated (A) and closed (B) per second; closed includes stale sessions reaped by the session manager.",
			"ops", nil,
			query("A", sumBy(metrics.LabelService, rate(metrics.SessionsCreated)), "{{service}} created"),
			query("B", sumBy(metrics.LabelService, rate(metrics.SessionsClosed)), "{{service}} closed"))).
		WithPanel(series(4, "Closed-session warnings",
			"The graceful path: the server logged \"Gate session closed, message cannot be sent\" instead of panicking (read by the sidecar from the JSON log), per minute.",
			"opm", nil,
			query("A", sumBy(metrics.LabelService, rate(metrics.ClosedSessionWarnings))+" * 60", "{{service}}"))).
		WithRow(row(101, "Results waiting for their player")).
		WithPanel(series(5, "Pending responses and dead letters",
			"Results queued in memory for retry (A) and in the durable dead-letter store until the player reconnects (B).",
			"short", nil,
			query("A", sumBy(metrics.LabelService, metrics.PendingResponses.Name+sel()), "{{service}} pending"),
			query("B", sumBy(metrics.LabelService, metrics.DeadLetters.Name+sel()), "{{service}} dead letters"))).
		WithPanel(series(6, "Bet results by outcome",
			"Settled bets per second by where their result went first. failed is a lost bet.",
			"ops", nil,
			query("A", sumBy(metrics.LabelService+", "+metrics.LabelOutcome, rate(metrics.BetResults)), "{{service}} {{outcome}}")))
}

func errorRates(c alerts.Config) *dashboard.DashboardBuilder {
	return newDashboard("stackwatch / Error Rates",
		"Panics recovered, client write failures and goroutine leak signals, with the alert thresholds drawn in.").
		WithRow(row(100, "Panics")).
		WithPanel(series(1, "Panics recovered",
			"Per minute: panics the server's recover helper caught (A) and panics the sidecar read from stacktrace files (B). The two agree unless files are lost.",
			"opm", nil,
			query("A", sumBy(metrics.LabelService, rate(metrics.PanicsRecovered))+" * 60", "{{service}} recovered (server)"),
			query("B", sumBy(metrics.LabelService, rate(metrics.Panics))+" * 60", "{{service}} stacktrace files (sidecar)"))).
		WithPanel(series(2, "Client write failures by reason",
			fmt.Sprintf("Failed writes to client sessions per minute, by reason. ClientWriteFailuresHigh warns above %g/min per service.", c.ClientWriteFailuresPerMinute),
			"opm", thresholds(c.ClientWriteFailuresPerMinute, true),
			query("A", sumBy(metrics.LabelService+", "+metrics.LabelReason, rate(metrics.ClientWriteFailures))+" * 60", "{{service}} {{reason}}"))).
		WithRow(row(101, "Goroutine leaks")).
		WithPanel(series(3, "Goroutines",
			fmt.Sprintf("go_goroutines of the game server and sidecar. GoroutineLeakDetected warns above %g.", c.Goroutines),
			"short", thresholds(c.Goroutines, true),
			query("A", sumBy(metrics.LabelService+", job", metrics.GoGoroutines.Name+sel()), "{{service}} {{job}}"))).
		WithPanel(series(4, "Goroutine leak detection",
			"Goroutines at leak suspect locations by signal (A), and goroutines the runtime proved leaked (B). Anything above zero for 15m fires GoroutineLeakDetected.",
			"short", thresholds(c.LeakSuspectGoroutines+1, true),
			query("A", sumBy(metrics.LabelService+", "+metrics.LabelSignal, metrics.LeakSuspects.Name+sel()), "{{service}} suspects ({{signal}})"),
			query("B", sumBy(metrics.LabelService, metrics.GoroutinesLeaked.Name+sel()), "{{service}} proven leaked")))
}

func performance(c alerts.Config) *dashboard.DashboardBuilder {
	failed := rate(metrics.BetResults, metrics.LabelOutcome+`="`+metrics.OutcomeFailed+`"`)
	all := sumBy(metrics.LabelService, rate(metrics.BetResults))
	// A patched server has no failed series at all; count that as zero
	// failures instead of showing no data.
	success := "1 - ((" + sumBy(metrics.LabelService, failed) + " or " + all + " * 0) / " + all + ")"
	quantile := func(q float64) string {
		return fmt.Sprintf("histogram_quantile(%g, %s)", q, sumBy(metrics.LabelService+", le", bucketRate(metrics.BetDuration)))
	}
	return newDashboard("stackwatch / Performance",
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
			query("A", sumBy(metrics.LabelService, metrics.MemoryInUse.Name+sel()), "{{service}} in use"),
			query("B", sumBy(metrics.LabelService, metrics.MemoryLimit.Name+sel()), "{{service}} limit"))).
		WithPanel(series(4, "Memory usage of limit",
			fmt.Sprintf("In use / limit. MemoryNearLimit warns above %g%%.", c.MemoryLimitRatio*100),
			"percentunit", thresholds(c.MemoryLimitRatio, true),
			query("A", "max by ("+metrics.LabelService+") ("+metrics.MemoryInUse.Name+sel()+" / ("+metrics.MemoryLimit.Name+sel()+" > 0))", "{{service}}"))).
		WithRow(row(102, "Go runtime")).
		WithPanel(series(5, "Goroutines",
			fmt.Sprintf("go_goroutines per target. GoroutineLeakDetected warns above %g.", c.Goroutines),
			"short", thresholds(c.Goroutines, true),
			query("A", sumBy(metrics.LabelService+", job", metrics.GoGoroutines.Name+sel()), "{{service}} {{job}}"))).
		WithPanel(series(6, "GC pause",
			"Average GC pause (A) and GCs per second (B).",
			"s", nil,
			query("A", sumBy(metrics.LabelService+", job", "rate("+metrics.GoGCDuration.Sum()+sel()+"["+rateInterval+"])")+
				" / "+sumBy(metrics.LabelService+", job", "rate("+metrics.GoGCDuration.Count()+sel()+"["+rateInterval+"])"), "{{service}} {{job}} avg pause"),
			query("B", sumBy(metrics.LabelService+", job", "rate("+metrics.GoGCDuration.Count()+sel()+"["+rateInterval+"])"), "{{service}} {{job}} GC/s"))).
		WithPanel(series(7, "Heap in use",
			"Heap bytes in use per target.",
			"bytes", nil,
			query("A", sumBy(metrics.LabelService+", job", metrics.GoHeapInuse.Name+sel()), "{{service}} {{job}}"))).
		WithPanel(series(8, "CPU",
			"CPU seconds per second per target.",
			"percentunit", nil,
			query("A", sumBy(metrics.LabelService+", job", "rate("+metrics.ProcessCPUSecondsTotal.Name+sel()+"["+rateInterval+"])"), "{{service}} {{job}}")))
}

func crashes(c alerts.Config) *dashboard.DashboardBuilder {
	top := prometheus.NewDataqueryBuilder().RefId("A").
		Expr("topk(10, " + sumBy(metrics.LabelService+", "+metrics.LabelCrashSite+", "+metrics.LabelKind, metrics.Panics.Name+sel()) + ")").
		Format(prometheus.PromQueryFormatTable).Instant().Datasource(datasource())
	return newDashboard("stackwatch / Crashes & Goroutines",
		"Where the game servers crash, how many stacktrace files pile up, and which code holds goroutines.").
		WithRow(row(100, "Crashes")).
		WithPanel(table.NewPanelBuilder().Id(1).Title("Top crash sites").
			Description("The ten crash sites with the most panics across the selected services, from the sidecars' stacktrace parsing.").
			Datasource(datasource()).Height(8).Span(12).
			Thresholds(noThresholds()).
			Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"sum"})).
			WithTarget(top).
			WithTransformation(dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
				"excludeByName": map[string]any{"Time": true},
				"renameByName":  map[string]any{"Value": "panics", metrics.LabelCrashSite: "crash site"},
			}}).
			SortBy([]cog.Builder[common.TableSortByFieldState]{common.NewTableSortByFieldStateBuilder().DisplayName("panics").Desc(true)})).
		WithPanel(series(2, "Panics by service",
			"Panics read from stacktrace files, per minute. NewPanicDetected warns on any.",
			"opm", nil,
			query("A", sumBy(metrics.LabelService, rate(metrics.Panics))+" * 60", "{{service}}"))).
		WithPanel(stat.NewPanelBuilder().Id(3).Title("Stacktrace files on disk").
			Description(fmt.Sprintf("StacktraceFilesHigh pages above %g: restart the service.", c.StacktraceFiles)).
			Datasource(datasource()).Height(8).Span(6).Unit("short").
			Thresholds(thresholds(c.StacktraceFiles, true)).
			ColorMode(common.BigValueColorModeBackground).GraphMode(common.BigValueGraphModeArea).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
			WithTarget(query("A", "max by ("+metrics.LabelService+") ("+metrics.StacktraceFiles.Name+sel()+")", "{{service}}"))).
		WithPanel(series(4, "Stacktrace files trend",
			"Files (A) and bytes (B) of stacktrace files on disk.",
			"short", thresholds(c.StacktraceFiles, true),
			query("A", "max by ("+metrics.LabelService+") ("+metrics.StacktraceFiles.Name+sel()+")", "{{service}} files"),
			query("B", "max by ("+metrics.LabelService+") ("+metrics.StacktraceBytes.Name+sel()+")", "{{service}} bytes")).
			OverrideByQuery("B", []dashboard.DynamicConfigValue{{Id: "unit", Value: "bytes"}, {Id: "custom.axisPlacement", Value: "right"}}).Span(6)).
		WithRow(row(101, "Goroutines")).
		WithPanel(series(5, "Leak suspects",
			"Goroutines parked at each suspected leak location, by the signal that flagged it.",
			"short", thresholds(c.LeakSuspectGoroutines+1, true),
			query("A", sumBy(metrics.LabelService+", "+metrics.LabelLocation+", "+metrics.LabelSignal, metrics.LeakSuspects.Name+sel()), "{{service}} {{location}} ({{signal}})"))).
		WithPanel(series(6, "Goroutine trend",
			"Goroutines in the server's last goroutine profile as the sidecar read it (A), and the runtime's count (B).",
			"short", thresholds(c.Goroutines, true),
			query("A", sumBy(metrics.LabelService, metrics.Goroutines.Name+sel()), "{{service}} profile"),
			query("B", sumBy(metrics.LabelService, metrics.GoGoroutines.Name+sel("job=~\""+c.GameserverJob+"\"")), "{{service}} go_goroutines"))).
		WithPanel(series(7, "Goroutine stack groups and dumps",
			"Distinct goroutine stacks in the last profile (A) and goroutine dumps kept by the sidecar (B).",
			"short", nil,
			query("A", sumBy(metrics.LabelService, metrics.GoroutineStackGroups.Name+sel()), "{{service}} stack groups"),
			query("B", sumBy(metrics.LabelService, metrics.Dumps.Name+sel()), "{{service}} dumps")))
}

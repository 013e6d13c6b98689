package sidecar

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/ingest"
	"github.com/stackwatch/stackwatch/sidecar/retention"
	"github.com/stackwatch/stackwatch/sidecar/state"
	"github.com/stackwatch/stackwatch/sidecar/watch"
)

// exporter is the end of the pipeline: it turns what was counted into the
// sidecar's collectors, and keeps the persisted counters' values for the
// state file. Names, help and labels all come from the metrics catalog.
// Its counting methods run under Sidecar.mu.
type exporter struct {
	sites          *crash.SiteLabels
	panics         *prometheus.CounterVec
	fatal          prometheus.Counter
	filesGauge     prometheus.Gauge
	bytesGauge     prometheus.Gauge
	lastPanic      prometheus.Gauge
	closed         prometheus.Counter
	parseFailures  *prometheus.CounterVec
	rescans        *prometheus.CounterVec
	pollingGauge   prometheus.Gauge
	missingGauge   prometheus.Gauge
	retentionFiles *prometheus.CounterVec
	retentionBytes prometheus.Counter

	// persisted maps the counters saved in the state file to their
	// collectors; the others (rescans) restart at zero.
	persisted map[string]func(labels ...string) prometheus.Counter
	counts    map[seriesKey]float64 // persisted counter values
	lastNS    int64                 // newest counted panic's time

	modeMu  sync.Mutex // the watcher's mode and the log directory's presence
	polling bool
	missing bool
}

func newExporter(s *Sidecar, sites *crash.SiteLabels) (*exporter, error) {
	e := &exporter{
		sites:          sites,
		panics:         metrics.Panics.NewCounterVec(),
		fatal:          metrics.FatalCrashes.NewCounter(),
		filesGauge:     metrics.StacktraceFiles.NewGauge(),
		bytesGauge:     metrics.StacktraceBytes.NewGauge(),
		lastPanic:      metrics.LastPanicTimestamp.NewGauge(),
		closed:         metrics.ClosedSessionWarnings.NewCounter(),
		parseFailures:  metrics.ParseFailures.NewCounterVec(),
		rescans:        metrics.Rescans.NewCounterVec(),
		pollingGauge:   metrics.WatchPolling.NewGauge(),
		missingGauge:   metrics.LogDirMissing.NewGauge(),
		retentionFiles: metrics.RetentionDeletedFiles.NewCounterVec(),
		retentionBytes: metrics.RetentionDeletedBytes.NewCounter(),
		counts:         map[seriesKey]float64{},
	}
	e.persisted = map[string]func(...string) prometheus.Counter{
		metrics.Panics.Name:                func(l ...string) prometheus.Counter { return e.panics.WithLabelValues(l...) },
		metrics.FatalCrashes.Name:          func(...string) prometheus.Counter { return e.fatal },
		metrics.ClosedSessionWarnings.Name: func(...string) prometheus.Counter { return e.closed },
		metrics.ParseFailures.Name:         func(l ...string) prometheus.Counter { return e.parseFailures.WithLabelValues(l...) },
		metrics.RetentionDeletedFiles.Name: func(l ...string) prometheus.Counter { return e.retentionFiles.WithLabelValues(l...) },
		metrics.RetentionDeletedBytes.Name: func(...string) prometheus.Counter { return e.retentionBytes },
	}
	// Every counter's series that can be known in advance starts at 0, so
	// rate() sees its first increment.
	for _, r := range ingest.FailReasons {
		e.parseFailures.WithLabelValues(r)
	}
	for _, r := range []string{watch.ReasonOverflow, watch.ReasonTimer, watch.ReasonRecreated} {
		e.rescans.WithLabelValues(r)
	}
	for _, r := range []string{retention.ReasonAge, retention.ReasonCount, retention.ReasonSize} {
		e.retentionFiles.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{
		e.panics, e.fatal, e.filesGauge, e.bytesGauge, e.lastPanic, e.closed, e.parseFailures, e.rescans,
		e.pollingGauge, e.missingGauge, e.retentionFiles, e.retentionBytes,
		metrics.CrashGroups.NewGaugeFunc(func() float64 { return float64(s.groups.Len()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := s.reg.Register(c); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Panic counts one panic (ingest.Sink).
func (e *exporter) Panic(sig crash.Signature, at time.Time, fatal bool) {
	e.add(metrics.Panics, 1, sig.Kind, e.sites.Label(sig))
	if fatal {
		e.add(metrics.FatalCrashes, 1)
	}
	e.seen(at)
}

// Failure counts one parse failure (ingest.Sink).
func (e *exporter) Failure(reason string) { e.add(metrics.ParseFailures, 1, reason) }

func (e *exporter) seen(at time.Time) {
	if ns := at.UnixNano(); ns > e.lastNS {
		e.lastNS = ns
		e.lastPanic.Set(float64(ns) / 1e9)
	}
}

func (e *exporter) files(n int, bytes int64) {
	e.filesGauge.Set(float64(n))
	e.bytesGauge.Set(float64(bytes))
}

func (e *exporter) setPolling(on bool) {
	e.modeMu.Lock()
	defer e.modeMu.Unlock()
	e.polling = on
	e.pollingGauge.Set(b2f(on))
}

func (e *exporter) isPolling() bool {
	e.modeMu.Lock()
	defer e.modeMu.Unlock()
	return e.polling
}

// setLogDirMissing sets the gauge and returns the previous value.
func (e *exporter) setLogDirMissing(missing bool) (was bool) {
	e.modeMu.Lock()
	defer e.modeMu.Unlock()
	was, e.missing = e.missing, missing
	e.missingGauge.Set(b2f(missing))
	return was
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// seriesKey names one persisted counter series.
type seriesKey struct {
	metric string
	labels string // label values joined by "\xff"
}

// add adds v to a persisted counter and remembers its value for the state
// file.
func (e *exporter) add(m metrics.Metric, v float64, labels ...string) {
	if v <= 0 {
		return
	}
	e.persisted[m.Name](labels...).Add(v)
	e.counts[seriesKey{m.Name, strings.Join(labels, "\xff")}] += v
}

// series returns the persisted counters for the state file, sorted.
func (e *exporter) series() []state.Series {
	out := make([]state.Series, 0, len(e.counts))
	for k, v := range e.counts {
		var labels []string
		if k.labels != "" || len(metricByName(k.metric).Labels) > 0 {
			labels = strings.Split(k.labels, "\xff")
		}
		out = append(out, state.Series{Metric: k.metric, Labels: labels, Value: v})
	}
	slices.SortFunc(out, func(a, b state.Series) int {
		if c := strings.Compare(a.Metric, b.Metric); c != 0 {
			return c
		}
		return slices.Compare(a.Labels, b.Labels)
	})
	return out
}

func metricByName(name string) metrics.Metric {
	for _, m := range metrics.Sidecar() {
		if m.Name == name {
			return m
		}
	}
	return metrics.Metric{}
}

// restore brings back the saved counters and, from the saved groups, the
// crash_site label values and the last panic time.
func (e *exporter) restore(counters []state.Series, groups []crash.Group) {
	for _, c := range counters {
		m := metricByName(c.Metric)
		if _, ok := e.persisted[c.Metric]; !ok || len(c.Labels) != len(m.Labels) || c.Value <= 0 {
			continue
		}
		e.add(m, c.Value, c.Labels...)
	}
	// Give the restored sites their crash_site values first, oldest first,
	// so that the label budget goes the way it went before.
	groups = slices.Clone(groups)
	slices.SortFunc(groups, func(a, b crash.Group) int { return a.FirstSeen.Compare(b.FirstSeen) })
	for _, g := range groups {
		if g.Key != crash.OtherKey {
			e.sites.Label(crash.Signature{Site: g.CrashSite})
		}
		e.seen(g.LastSeen)
	}
}

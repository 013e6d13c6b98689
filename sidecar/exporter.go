package sidecar

import (
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/state"
)

// exporter holds the sidecar's collectors. Names, help and labels all come
// from the metrics catalog.
type exporter struct {
	panics         *prometheus.CounterVec
	files          prometheus.Gauge
	bytes          prometheus.Gauge
	lastPanic      prometheus.Gauge
	closed         prometheus.Counter
	parseFailures  *prometheus.CounterVec
	rescans        *prometheus.CounterVec
	pollingGauge   prometheus.Gauge
	retentionFiles *prometheus.CounterVec
	retentionBytes prometheus.Counter
	polling        atomic.Bool

	// persisted maps the counters saved in the state file to their
	// collectors; the others (rescans) restart at zero.
	persisted map[string]func(labels ...string) prometheus.Counter
}

func newExporter(s *Sidecar) (*exporter, error) {
	e := &exporter{
		panics:         metrics.Panics.NewCounterVec(),
		files:          metrics.StacktraceFiles.NewGauge(),
		bytes:          metrics.StacktraceBytes.NewGauge(),
		lastPanic:      metrics.LastPanicTimestamp.NewGauge(),
		closed:         metrics.ClosedSessionWarnings.NewCounter(),
		parseFailures:  metrics.ParseFailures.NewCounterVec(),
		rescans:        metrics.Rescans.NewCounterVec(),
		pollingGauge:   metrics.WatchPolling.NewGauge(),
		retentionFiles: metrics.RetentionDeletedFiles.NewCounterVec(),
		retentionBytes: metrics.RetentionDeletedBytes.NewCounter(),
	}
	e.persisted = map[string]func(...string) prometheus.Counter{
		metrics.Panics.Name:                func(l ...string) prometheus.Counter { return e.panics.WithLabelValues(l...) },
		metrics.ClosedSessionWarnings.Name: func(...string) prometheus.Counter { return e.closed },
		metrics.ParseFailures.Name:         func(l ...string) prometheus.Counter { return e.parseFailures.WithLabelValues(l...) },
		metrics.RetentionDeletedFiles.Name: func(l ...string) prometheus.Counter { return e.retentionFiles.WithLabelValues(l...) },
		metrics.RetentionDeletedBytes.Name: func(...string) prometheus.Counter { return e.retentionBytes },
	}
	s.wrapped = s.reg
	for _, c := range []prometheus.Collector{
		e.panics, e.files, e.bytes, e.lastPanic, e.closed, e.parseFailures, e.rescans, e.pollingGauge,
		e.retentionFiles, e.retentionBytes,
		metrics.CrashGroups.NewGaugeFunc(func() float64 { return float64(s.groups.Len()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := s.wrapped.Register(c); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// seriesKey names one persisted counter series.
type seriesKey struct {
	metric string
	labels string // label values joined by "\xff"
}

// addLocked adds v to a persisted counter and remembers its value for the
// state file.
func (s *Sidecar) addLocked(m metrics.Metric, v float64, labels ...string) {
	if v <= 0 {
		return
	}
	s.m.persisted[m.Name](labels...).Add(v)
	s.counts[seriesKey{m.Name, strings.Join(labels, "\xff")}] += v
	s.dirty = true
}

// snapshotLocked copies the state, counters and groups for saving.
func (s *Sidecar) snapshotLocked() *state.State {
	snap := s.st.Clone()
	snap.Counters = snap.Counters[:0]
	for k, v := range s.counts {
		var labels []string
		if k.labels != "" || len(metricByName(k.metric).Labels) > 0 {
			labels = strings.Split(k.labels, "\xff")
		}
		snap.Counters = append(snap.Counters, state.Series{Metric: k.metric, Labels: labels, Value: v})
	}
	slices.SortFunc(snap.Counters, func(a, b state.Series) int {
		if c := strings.Compare(a.Metric, b.Metric); c != 0 {
			return c
		}
		return slices.Compare(a.Labels, b.Labels)
	})
	if b, err := json.Marshal(s.groups.Snapshot()); err == nil {
		snap.Groups = b
	}
	return snap
}

func metricByName(name string) metrics.Metric {
	for _, m := range metrics.Sidecar() {
		if m.Name == name {
			return m
		}
	}
	return metrics.Metric{}
}

// restore brings back what the state file holds: counters, crash groups,
// the files gauges and the last panic time. It runs before Run.
func (s *Sidecar) restore() {
	for _, c := range s.st.Counters {
		m := metricByName(c.Metric)
		if _, ok := s.m.persisted[c.Metric]; !ok || len(c.Labels) != len(m.Labels) || c.Value <= 0 {
			s.log.Warn("ignoring unknown counter in state", "metric", c.Metric, "labels", c.Labels)
			continue
		}
		s.addLocked(m, c.Value, c.Labels...)
	}
	if len(s.st.Groups) > 0 {
		var saved []crash.Group
		if err := json.Unmarshal(s.st.Groups, &saved); err != nil {
			s.log.Warn("ignoring unreadable crash groups in state", "err", err)
		} else {
			s.groups.Restore(saved)
			// Give the restored sites their crash_site values first, oldest
			// first, so that the label budget goes the way it went before.
			slices.SortFunc(saved, func(a, b crash.Group) int { return a.FirstSeen.Compare(b.FirstSeen) })
			for _, g := range saved {
				s.groupKeys[g.Key] = struct{}{}
				s.sites.Label(crash.Signature{Site: g.CrashSite})
				s.lastPanic = max(s.lastPanic, g.LastSeen.UnixNano())
			}
		}
	}
	now := time.Now()
	for path, f := range s.st.Files {
		s.bytes += f.Size
		if f.Status == state.StatusEmpty || f.Status == state.StatusIncomplete {
			s.waiting[path] = now
		}
	}
	s.gaugesLocked()
	s.dirty = false
}

func (s *Sidecar) gaugesLocked() {
	s.m.files.Set(float64(len(s.st.Files)))
	s.m.bytes.Set(float64(s.bytes))
	if s.lastPanic > 0 {
		s.m.lastPanic.Set(float64(s.lastPanic) / 1e9)
	}
}

// Package metrics is the single catalog of stackwatch's metric names.
//
// The game server and the sidecar build their collectors from these
// definitions, and the alert rules and dashboards build their queries from
// them, so a rename here reaches every consumer at compile time and nothing
// can drift.
//
// Exported series carry no "service" label: like job and instance, it is a
// target label that Prometheus attaches at scrape time (static_configs labels,
// or a PodMonitor relabelling from a pod label), as Prometheus' "writing
// exporters" guide asks.
package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Type is the Prometheus metric type of a definition.
type Type int

// Metric types.
const (
	Counter Type = iota
	Gauge
	Histogram
)

func (t Type) String() string {
	switch t {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	case Histogram:
		return "histogram"
	}
	return fmt.Sprintf("Type(%d)", int(t))
}

// Metric defines one metric family.
type Metric struct {
	Name    string
	Help    string
	Type    Type
	Labels  []string  // variable labels, in order
	Buckets []float64 // histograms only; nil means prometheus.DefBuckets
}

// String returns the metric name, so a Metric can be used directly in
// fmt-built PromQL.
func (m Metric) String() string { return m.Name }

// Bucket, Sum and Count name a histogram's series.
func (m Metric) Bucket() string { return m.Name + "_bucket" }
func (m Metric) Sum() string    { return m.Name + "_sum" }
func (m Metric) Count() string  { return m.Name + "_count" }

func (m Metric) must(t Type, vec bool) {
	if m.Type != t {
		panic(fmt.Sprintf("metrics: %s is a %s, not a %s", m.Name, m.Type, t))
	}
	if vec != (len(m.Labels) > 0) {
		panic(fmt.Sprintf("metrics: %s has labels %v; use the matching constructor", m.Name, m.Labels))
	}
}

// NewCounter builds an unlabelled counter.
func (m Metric) NewCounter() prometheus.Counter {
	m.must(Counter, false)
	return prometheus.NewCounter(prometheus.CounterOpts{Name: m.Name, Help: m.Help})
}

// NewCounterVec builds a labelled counter.
func (m Metric) NewCounterVec() *prometheus.CounterVec {
	m.must(Counter, true)
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.Name, Help: m.Help}, m.Labels)
}

// NewCounterFunc builds an unlabelled counter read from f at scrape time.
func (m Metric) NewCounterFunc(f func() float64) prometheus.CounterFunc {
	m.must(Counter, false)
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.Name, Help: m.Help}, f)
}

// NewGauge builds an unlabelled gauge.
func (m Metric) NewGauge() prometheus.Gauge {
	m.must(Gauge, false)
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: m.Name, Help: m.Help})
}

// NewGaugeVec builds a labelled gauge.
func (m Metric) NewGaugeVec() *prometheus.GaugeVec {
	m.must(Gauge, true)
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: m.Name, Help: m.Help}, m.Labels)
}

// NewGaugeFunc builds an unlabelled gauge read from f at scrape time.
func (m Metric) NewGaugeFunc(f func() float64) prometheus.GaugeFunc {
	m.must(Gauge, false)
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: m.Name, Help: m.Help}, f)
}

// NewHistogram builds an unlabelled histogram.
func (m Metric) NewHistogram() prometheus.Histogram {
	m.must(Histogram, false)
	return prometheus.NewHistogram(prometheus.HistogramOpts{Name: m.Name, Help: m.Help, Buckets: m.Buckets})
}

// NewHistogramVec builds a labelled histogram.
func (m Metric) NewHistogramVec() *prometheus.HistogramVec {
	m.must(Histogram, true)
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: m.Name, Help: m.Help, Buckets: m.Buckets}, m.Labels)
}

// Desc builds a descriptor for hand-written collectors.
func (m Metric) Desc() *prometheus.Desc {
	return prometheus.NewDesc(m.Name, m.Help, m.Labels, nil)
}

package crash

import (
	"sync"

	"github.com/stackwatch/stackwatch/metrics"
)

// DefaultMaxSiteLabels is the default crash_site label budget.
const DefaultMaxSiteLabels = 20

// SiteLabels assigns bounded, stable values for the metrics.LabelCrashSite
// label. The first max distinct crash-site functions each get their own
// value (the short function name, e.g. "task.clientWrite"); every later one
// gets metrics.OtherCrashSite. A signature keeps its value for the life of
// the SiteLabels, so a counter never moves between series: values are only
// ever added, and once the budget is full no new one is. Memory is bounded
// by max. Safe for concurrent use.
type SiteLabels struct {
	mu     sync.Mutex
	max    int
	values map[string]bool
}

// NewSiteLabels returns a SiteLabels with room for max distinct values
// (DefaultMaxSiteLabels when max <= 0), not counting metrics.OtherCrashSite.
func NewSiteLabels(max int) *SiteLabels {
	if max <= 0 {
		max = DefaultMaxSiteLabels
	}
	return &SiteLabels{max: max, values: make(map[string]bool)}
}

// Label returns the crash_site label value for sig. Groups that share a
// crash-site function (one site, several callers) share its value.
func (s *SiteLabels) Label(sig Signature) string {
	if sig.Site.Function == "" {
		return metrics.OtherCrashSite
	}
	short := shortFunc(sig.Site.Function)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.values[short] {
		return short
	}
	if len(s.values) < s.max && short != metrics.OtherCrashSite {
		s.values[short] = true
		return short
	}
	return metrics.OtherCrashSite
}

func shortFunc(fn string) string {
	for i := len(fn) - 1; i >= 0; i-- {
		if fn[i] == '/' {
			return fn[i+1:]
		}
	}
	return fn
}

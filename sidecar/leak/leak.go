// Package leak flags goroutine leak suspects from a series of goroutine
// snapshots, combining three signals:
//
//   - blocked: LeakProf's rule (Uber, 2022) — many goroutines parked at the
//     same channel send, receive or select location are almost always a
//     leak, because only the program itself can release them;
//   - growth: a stack group whose count keeps rising, never falling, across
//     a window of scrapes;
//   - runtime: goroutines the runtime's goroutineleak profile (Go 1.26,
//     GOEXPERIMENT=goroutineleakprofile) proved unreachable by the GC.
//
// Suspects are reported per code location: the first non-runtime frame of
// the stack (function and file:line), with the current count and its trend.
package leak

import (
	"cmp"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/goroutines"
)

// Config tunes the detector. Zero fields take the defaults.
type Config struct {
	// BlockedThreshold is how many goroutines parked on channel operations
	// at one location make it a suspect (LeakProf's rule). Default 100.
	BlockedThreshold int `json:"blocked_threshold"`
	// GrowthWindow is how many consecutive scrapes a stack group must not
	// shrink across to count as growing. Default 5.
	GrowthWindow int `json:"growth_window"`
	// GrowthMin is the least net rise across the window. Default 10.
	GrowthMin int `json:"growth_min"`
	// MaxTracked bounds the groups whose history is kept; the smallest are
	// forgotten first. Default 10000.
	MaxTracked int `json:"max_tracked"`
}

func (c Config) withDefaults() Config {
	if c.BlockedThreshold <= 0 {
		c.BlockedThreshold = 100
	}
	if c.GrowthWindow < 2 {
		c.GrowthWindow = 5
	}
	if c.GrowthMin <= 0 {
		c.GrowthMin = 10
	}
	if c.MaxTracked <= 0 {
		c.MaxTracked = 10000
	}
	return c
}

// Suspect is one code location suspected of leaking goroutines.
type Suspect struct {
	Location goroutines.Frame `json:"location"`
	Wait     goroutines.Wait  `json:"wait,omitempty"`
	Signals  []string         `json:"signals"` // metrics.SignalBlocked, SignalGrowth, SignalRuntime
	Count    int              `json:"count"`   // goroutines at the location in the last scrape
	Leaked   int              `json:"leaked"`  // of those, proven leaked by the runtime
	Trend    []int            `json:"trend"`   // goroutines at the location per scrape, oldest first
	Delta    int              `json:"delta"`   // last minus first of Trend
	Groups   []string         `json:"groups"`  // stack group keys at the location
}

// Label is the suspect's value for the metrics.LabelLocation label:
// "function file.go:line", short enough for a dashboard, unique in practice.
func (s Suspect) Label() string { return LocationLabel(s.Location) }

// LocationLabel formats a frame for the location label.
func LocationLabel(f goroutines.Frame) string {
	return f.Function + " " + filepath.Base(f.File) + ":" + strconv.Itoa(f.Line)
}

// Has reports whether signal flagged the suspect.
func (s Suspect) Has(signal string) bool { return slices.Contains(s.Signals, signal) }

// Detector keeps the scrape history the growth signal needs. It is safe for
// concurrent use.
type Detector struct {
	cfg Config

	mu       sync.Mutex
	groups   map[string][]int // group key → counts over the window, oldest first
	places   map[string][]int // location label → counts over the window
	suspects []Suspect
}

// New returns a detector.
func New(cfg Config) *Detector {
	return &Detector{cfg: cfg.withDefaults(), groups: map[string][]int{}, places: map[string][]int{}}
}

// Config returns the detector's effective configuration.
func (d *Detector) Config() Config { return d.cfg }

// Observe takes one scrape — the goroutine snapshot and, when the target
// serves it, the goroutineleak snapshot (nil otherwise) — and returns the
// suspects, largest first.
func (d *Detector) Observe(s, leaked *goroutines.Snapshot) []Suspect {
	d.mu.Lock()
	defer d.mu.Unlock()

	type place struct {
		loc     goroutines.Frame
		wait    goroutines.Wait
		count   int
		blocked int // parked on channel operations
		leaked  int
		groups  []string
		growth  bool
	}
	places := map[string]*place{}
	at := func(f goroutines.Frame) *place {
		k := LocationLabel(f)
		p := places[k]
		if p == nil {
			p = &place{loc: f}
			places[k] = p
		}
		return p
	}

	seen := make(map[string]bool, len(s.Groups))
	for _, g := range s.Groups {
		p := at(g.Location)
		p.count += g.Count
		p.groups = append(p.groups, g.Key)
		if g.Wait.IsChannel() {
			p.blocked += g.Count
			p.wait = g.Wait
		} else if p.wait == "" {
			p.wait = g.Wait
		}
		seen[g.Key] = true
		h := push(d.groups[g.Key], g.Count, d.cfg.GrowthWindow)
		d.groups[g.Key] = h
		if rising(h, d.cfg.GrowthWindow, d.cfg.GrowthMin) {
			p.growth = true
		}
	}
	for k, h := range d.groups { // groups gone from this scrape record a zero
		if !seen[k] {
			if h = push(h, 0, d.cfg.GrowthWindow); allZero(h) {
				delete(d.groups, k)
			} else {
				d.groups[k] = h
			}
		}
	}
	d.trim()
	if leaked != nil {
		for _, g := range leaked.Groups {
			p := at(g.Location)
			p.leaked += g.Count
			if p.wait == "" {
				p.wait = g.Wait
			}
		}
	}

	for k, p := range places {
		d.places[k] = push(d.places[k], p.count, d.cfg.GrowthWindow)
	}
	for k, h := range d.places {
		if places[k] == nil {
			if h = push(h, 0, d.cfg.GrowthWindow); allZero(h) {
				delete(d.places, k)
			} else {
				d.places[k] = h
			}
		}
	}

	var out []Suspect
	for k, p := range places {
		var sig []string
		if p.blocked >= d.cfg.BlockedThreshold {
			sig = append(sig, metrics.SignalBlocked)
		}
		if p.growth {
			sig = append(sig, metrics.SignalGrowth)
		}
		if p.leaked > 0 {
			sig = append(sig, metrics.SignalRuntime)
		}
		if sig == nil {
			continue
		}
		trend := slices.Clone(d.places[k])
		slices.Sort(p.groups)
		out = append(out, Suspect{
			Location: p.loc, Wait: p.wait, Signals: sig, Count: p.count, Leaked: p.leaked,
			Trend: trend, Delta: trend[len(trend)-1] - trend[0], Groups: p.groups,
		})
	}
	slices.SortFunc(out, func(a, b Suspect) int {
		if c := cmp.Compare(max(b.Count, b.Leaked), max(a.Count, a.Leaked)); c != 0 {
			return c
		}
		return strings.Compare(a.Label(), b.Label())
	})
	d.suspects = out
	return slices.Clone(out)
}

// Suspects returns the suspects of the last Observe.
func (d *Detector) Suspects() []Suspect {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.suspects)
}

// trim forgets the groups with the smallest latest counts beyond MaxTracked,
// so a target with churning unique stacks cannot grow the history unbounded.
func (d *Detector) trim() {
	if len(d.groups) <= d.cfg.MaxTracked {
		return
	}
	type kv struct {
		k string
		n int
	}
	all := make([]kv, 0, len(d.groups))
	for k, h := range d.groups {
		all = append(all, kv{k, h[len(h)-1]})
	}
	slices.SortFunc(all, func(a, b kv) int { return cmp.Compare(a.n, b.n) })
	for _, e := range all[:len(all)-d.cfg.MaxTracked] {
		delete(d.groups, e.k)
	}
}

func push(h []int, n, window int) []int {
	h = append(h, n)
	if len(h) > window {
		h = append(h[:0], h[len(h)-window:]...)
	}
	return h
}

// rising: a full window that never falls and gains at least min.
func rising(h []int, window, min int) bool {
	if len(h) < window {
		return false
	}
	for i := 1; i < len(h); i++ {
		if h[i] < h[i-1] {
			return false
		}
	}
	return h[len(h)-1]-h[0] >= min
}

func allZero(h []int) bool {
	for _, n := range h {
		if n != 0 {
			return false
		}
	}
	return true
}

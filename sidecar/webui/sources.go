package webui

import (
	"context"
	"time"

	"github.com/stackwatch/stackwatch/sidecar"
	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/dumps"
	"github.com/stackwatch/stackwatch/sidecar/goroutines"
	"github.com/stackwatch/stackwatch/sidecar/leak"
	"github.com/stackwatch/stackwatch/sidecar/profiler"
)

// SidecarCrashes reads the crash groups of a running sidecar.
func SidecarCrashes(s *sidecar.Sidecar) Crashes { return sidecarCrashes{s} }

type sidecarCrashes struct{ s *sidecar.Sidecar }

func (c sidecarCrashes) CrashGroups(offset, limit int) ([]crash.Group, int) {
	all := c.s.Groups()
	offset = min(max(offset, 0), len(all))
	return all[offset:min(offset+max(limit, 0), len(all))], len(all)
}

func (c sidecarCrashes) CrashGroup(key string) (crash.Group, bool) {
	for _, g := range c.s.Groups() {
		if g.Key == key {
			return g, true
		}
	}
	return crash.Group{}, false
}

// Profiler reads the goroutine watch and the dump ring of p.
func Profiler(p *profiler.Profiler) interface {
	Goroutines
	Dumps
} {
	return profilerSource{p}
}

type profilerSource struct{ p *profiler.Profiler }

func (s profilerSource) Suspects() []leak.Suspect { return s.p.Status().Suspects }

func (s profilerSource) LeakProfile() (string, int) {
	st := s.p.Status()
	return st.LeakProfile, st.Leaked
}

// StackGroups shows the newest dump: the profiler keeps its last scrape to
// itself.
func (s profilerSource) StackGroups() (*goroutines.Snapshot, time.Time) {
	list := s.p.Store().List()
	if len(list) == 0 {
		return nil, time.Time{}
	}
	data, m, err := s.p.Store().Read(list[0].ID)
	if err != nil {
		return nil, time.Time{}
	}
	snap, err := goroutines.ParseAny(data)
	if err != nil {
		return nil, time.Time{}
	}
	return snap, m.Time
}

func (s profilerSource) List() []dumps.Meta { return s.p.Store().List() }

func (s profilerSource) Read(id string) ([]byte, dumps.Meta, error) { return s.p.Store().Read(id) }

func (s profilerSource) Capture(ctx context.Context, reason string) (dumps.Meta, error) {
	return s.p.Capture(ctx, profiler.TriggerManual, reason)
}

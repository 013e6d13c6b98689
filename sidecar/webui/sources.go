package webui

import (
	"github.com/stackwatch/stackwatch/sidecar"
	"github.com/stackwatch/stackwatch/sidecar/crash"
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

package sidecar

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"

	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/decide"
	"github.com/stackwatch/stackwatch/sidecar/logtail"
	"github.com/stackwatch/stackwatch/sidecar/retention"
	"github.com/stackwatch/stackwatch/sidecar/state"
	"github.com/stackwatch/stackwatch/sidecar/watch"
)

// handle is the watcher's event handler; it runs on the watcher goroutine
// and passes file events down the pipeline.
func (s *Sidecar) handle(ev watch.Event) {
	if ev.Op == watch.ModeChanged {
		s.m.setPolling(ev.Polling)
		return
	}
	s.mu.Lock()
	n := s.pipeline.Handle(ev)
	s.m.files(s.pipeline.Files())
	started := s.pipeline.Started()
	s.mu.Unlock()

	if ev.Op == watch.Synced {
		s.synced(ev)
	}
	if n > 0 && s.Ready() {
		for _, f := range s.hooks { // new panics only: not the backlog found at start
			f(n)
		}
	}
	if started && !s.ready.Load() {
		s.ready.Store(true)
		n, bytes := s.pipeline.Files()
		s.log.Info("backlog ingested", "dir", s.watcher.Dir(), "files", n, "bytes", bytes,
			"crash_groups", s.groups.Len(), "state_fresh", s.loaded.Fresh, "state_corrupt", s.loaded.Corrupt)
	}
}

// synced reports a full scan: rescans by reason, and a warning while the
// log directory is missing (on the change and at every timer rescan).
func (s *Sidecar) synced(ev watch.Event) {
	switch ev.Reason {
	case watch.ReasonOverflow, watch.ReasonTimer, watch.ReasonRecreated:
		s.m.rescans.WithLabelValues(ev.Reason).Inc()
	}
	was := s.m.setLogDirMissing(ev.Missing)
	if ev.Missing && (!was || ev.Reason == watch.ReasonTimer) {
		s.log.Warn("log directory does not exist; waiting for it", "dir", s.watcher.Dir())
	} else if was && !ev.Missing {
		s.log.Info("log directory is back", "dir", s.watcher.Dir())
	}
}

// onLogLines records closed-session warnings and the tailer's position in
// one step, so the state never holds one without the other.
func (s *Sidecar) onLogLines(n int, pos logtail.Position) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m.add(metrics.ClosedSessionWarnings, float64(n))
	s.logPos = state.Log{Path: s.cfg.ServerLog, Dev: pos.Dev, Ino: pos.Ino, Offset: pos.Offset, Head: pos.Head, HeadN: pos.HeadN}
	s.dirty = true
}

func (s *Sidecar) retentionLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.retain(time.Now())
		}
	}
}

// retain deletes stacktrace files under the retention policy. Only files
// already ingested (counted or failed) are candidates, so retention never
// deletes a panic before it was counted.
func (s *Sidecar) retain(now time.Time) {
	s.mu.Lock()
	var files []retention.File
	s.pipeline.Each(func(path string, r decide.Record) {
		if r.Status == decide.StatusCounted || r.Status == decide.StatusFailed {
			files = append(files, retention.File{Path: path, Size: r.Size, ModTime: time.Unix(0, r.MTime)})
		}
	})
	s.mu.Unlock()
	plan := retention.Plan(files, s.cfg.Retention, now)
	if len(plan) == 0 {
		return
	}
	// Persist first that these files were counted: deleted and then lost
	// from an unsaved state (SIGKILL), they could never be counted again.
	if err := s.save(); err != nil {
		s.log.Error("retention skipped: state not saved", "err", err)
		return
	}
	var n int
	var bytes int64
	for _, d := range plan {
		if err := os.Remove(d.Path); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				s.log.Warn("retention cannot delete file", "file", d.Path, "err", err)
			}
			continue
		}
		s.mu.Lock()
		s.m.add(metrics.RetentionDeletedFiles, 1, d.Reason)
		s.m.add(metrics.RetentionDeletedBytes, float64(d.Size))
		s.dirty = true
		s.mu.Unlock()
		n++
		bytes += d.Size
	}
	if n > 0 {
		s.log.Info("retention deleted stacktrace files", "files", n, "bytes", bytes)
	}
}

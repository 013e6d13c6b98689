package sidecar

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/logtail"
	"github.com/stackwatch/stackwatch/sidecar/retention"
	"github.com/stackwatch/stackwatch/sidecar/stacktrace"
	"github.com/stackwatch/stackwatch/sidecar/state"
	"github.com/stackwatch/stackwatch/sidecar/watch"
)

// Parse failure reasons (values of metrics.LabelReason on ParseFailures).
const (
	FailUnreadable = "unreadable" // could not be opened or read
	FailBinary     = "binary"     // NUL bytes or invalid UTF-8
	FailNotPanic   = "not_panic"  // text, but no goroutine traceback
	FailEmpty      = "empty"      // still empty after IncompleteAfter
	FailIncomplete = "incomplete" // still only a panic message after IncompleteAfter
)

// handle is the watcher's event handler; it runs on the watcher goroutine.
func (s *Sidecar) handle(ev watch.Event) {
	switch ev.Op {
	case watch.Ready:
		if n := s.ingest(ev.Path, ev.Info); n > 0 && s.Ready() {
			for _, f := range s.hooks { // new panics only: not the backlog found at start
				f(n)
			}
		}
	case watch.Removed:
		s.mu.Lock()
		s.removeLocked(ev.Path)
		s.mu.Unlock()
	case watch.Synced:
		s.mu.Lock()
		s.syncedLocked(ev)
		s.mu.Unlock()
	case watch.ModeChanged:
		s.m.polling.Store(ev.Polling)
		if ev.Polling {
			s.m.pollingGauge.Set(1)
		} else {
			s.m.pollingGauge.Set(0)
		}
	}
}

// ingest reads a complete (or grown) stacktrace file and counts it unless
// it is a file already counted. It returns the number of panics counted.
//
// A file is the same file as its record when device and inode match, it
// did not shrink, and its content still starts with the bytes hashed last
// time; then it only grew, and is counted at most once. Anything else at a
// known path (a reused inode, a rewrite) is a new file.
func (s *Sidecar) ingest(path string, fi fs.FileInfo) int {
	// Only this goroutine writes st.Files, so reading it unlocked is safe.
	rec, known := s.st.Files[path]
	unreadable := rec.Status == state.StatusFailed && rec.Hashed == 0 // retried: permissions may change
	if known && rec.Dev == devOf(fi) && rec.Ino == inoOf(fi) && rec.Size == fi.Size() &&
		rec.MTime == fi.ModTime().UnixNano() && !unreadable {
		return 0 // unchanged since read, e.g. the backlog after a restart
	}
	data, fi2, rerr := s.read(path)

	s.mu.Lock()
	defer s.mu.Unlock()
	// The corrupt state policy: files present at the start scan were most
	// likely counted before; group them, do not count them.
	_, backlog := s.backlog[path]
	delete(s.backlog, path)
	counting := !(s.loaded.Corrupt && (!s.started || backlog))
	if rerr != nil {
		if errors.Is(rerr, fs.ErrNotExist) {
			s.removeLocked(path)
			return 0
		}
		f := state.File{Dev: devOf(fi), Ino: inoOf(fi), Size: fi.Size(), MTime: fi.ModTime().UnixNano(), Status: state.StatusFailed}
		if counting && !(known && rec.Dev == f.Dev && rec.Ino == f.Ino && rec.Status == state.StatusFailed) {
			s.failLocked(path, FailUnreadable, rerr)
		}
		s.putLocked(path, f)
		return 0
	}
	f := state.File{
		Dev: devOf(fi2), Ino: inoOf(fi2), Size: fi2.Size(), MTime: fi2.ModTime().UnixNano(),
		Hash: xxhash.Sum64(data), Hashed: int64(len(data)),
	}
	same := known && rec.Dev == f.Dev && rec.Ino == f.Ino && f.Size >= rec.Size &&
		rec.Hashed <= f.Hashed && xxhash.Sum64(data[:rec.Hashed]) == rec.Hash
	if !same {
		// A file renamed within the directory keeps inode, size, time and content.
		id := devIno{f.Dev, f.Ino}
		if g, ok := s.graveyard[id]; ok && g.Size == f.Size && g.MTime == f.MTime && g.Hash == f.Hash {
			delete(s.graveyard, id)
			f.Status = g.Status
			s.putLocked(path, f)
			return 0
		}
	}
	if same && rec.Status == state.StatusCounted {
		f.Status = state.StatusCounted // grew after it was counted
		s.putLocked(path, f)
		return 0
	}

	p, perr := stacktrace.ParseBytes(data)
	switch {
	case perr == nil:
		f.Status = state.StatusCounted
		s.putLocked(path, f)
		delete(s.waiting, path)
		sig := crash.Classify(p)
		mod := fi2.ModTime()
		var example string // kept only by a new group: do not copy it for every file
		if _, ok := s.groupKeys[sig.Key]; !ok {
			example = string(data[:min(len(data), crash.MaxExampleBytes)])
			s.groupKeys[sig.Key] = struct{}{}
		}
		g := s.groups.Add(sig, crash.File{Path: path, Size: f.Size, ModTime: mod}, example)
		if g.Count == 1 {
			s.log.Info("new crash group", "kind", sig.Kind, "crash_site", sig.Site.Function,
				"line", sig.Site.Line, "caller", sig.Caller, "nil_receiver", sig.NilReceiver, "file", path)
		}
		if p.Truncated {
			s.log.Warn("stacktrace file larger than the read limit; parsed its head",
				"file", path, "size", f.Size, "limit", stacktrace.DefaultMaxBytes)
		}
		if !counting {
			return 0
		}
		s.addLocked(metrics.Panics, 1, sig.Kind, s.sites.Label(sig))
		if ns := mod.UnixNano(); ns > s.lastPanic {
			s.lastPanic = ns
			s.m.lastPanic.Set(float64(ns) / 1e9)
		}
		return 1
	case errors.Is(perr, stacktrace.ErrEmpty) || incomplete(data, perr):
		// Probably still being written: wait for it to grow.
		switch {
		case same && rec.Status == state.StatusFailed:
			f.Status = state.StatusFailed
		case errors.Is(perr, stacktrace.ErrEmpty):
			f.Status = state.StatusEmpty
		default:
			f.Status = state.StatusIncomplete
		}
		if _, ok := s.waiting[path]; !ok && f.Status != state.StatusFailed {
			s.waiting[path] = time.Now()
		}
		s.putLocked(path, f)
		return 0
	default:
		f.Status = state.StatusFailed
		already := same && rec.Status == state.StatusFailed
		s.putLocked(path, f)
		delete(s.waiting, path)
		if counting && !already {
			reason := FailNotPanic
			if errors.Is(perr, stacktrace.ErrBinary) {
				reason = FailBinary
			}
			s.failLocked(path, reason, perr)
		}
		return 0
	}
}

// incomplete reports whether data looks like a stacktrace file caught
// between its two writes: the panic value's line and no traceback yet.
func incomplete(data []byte, perr error) bool {
	if errors.Is(perr, stacktrace.ErrIncomplete) {
		return true
	}
	if !errors.Is(perr, stacktrace.ErrNotPanic) || errors.Is(perr, stacktrace.ErrBinary) {
		return false
	}
	i := bytes.IndexByte(data, '\n')
	return i < 0 || i == len(data)-1
}

// read reads at most stacktrace.DefaultMaxBytes+1 bytes of path (one past
// the limit tells the parser the file was cut) into the reused buffer, and
// closes the file at once.
func (s *Sidecar) read(path string) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	want := min(fi.Size(), stacktrace.DefaultMaxBytes+1)
	if int64(cap(s.buf)) < want {
		s.buf = make([]byte, want)
	}
	n, err := io.ReadFull(f, s.buf[:want])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	return s.buf[:n], fi, nil
}

func (s *Sidecar) failLocked(path, reason string, err error) {
	s.addLocked(metrics.ParseFailures, 1, reason)
	s.log.Warn("stacktrace file is not a readable Go panic", "file", path, "reason", reason, "err", err)
}

func (s *Sidecar) putLocked(path string, f state.File) {
	if old, ok := s.st.Files[path]; ok {
		s.bytes -= old.Size
	}
	s.st.Files[path] = f
	s.bytes += f.Size
	s.dirty = true
	s.gaugesLocked()
}

func (s *Sidecar) removeLocked(path string) {
	delete(s.waiting, path)
	f, ok := s.st.Files[path]
	if !ok {
		return
	}
	delete(s.st.Files, path)
	s.bytes -= f.Size
	s.graveyard[devIno{f.Dev, f.Ino}] = f
	s.dirty = true
	s.gaugesLocked()
}

func (s *Sidecar) syncedLocked(ev watch.Event) {
	present := make(map[string]struct{}, len(ev.Present))
	for _, p := range ev.Present {
		present[p] = struct{}{}
	}
	for path := range s.st.Files {
		if _, ok := present[path]; !ok {
			s.removeLocked(path) // deleted while we were not looking
		}
	}
	clear(s.graveyard)
	switch ev.Reason {
	case watch.ReasonOverflow, watch.ReasonTimer, watch.ReasonRecreated:
		s.m.rescans.WithLabelValues(ev.Reason).Inc()
	}
	if !s.started {
		if s.loaded.Corrupt {
			s.backlog = make(map[string]struct{}, len(ev.Present))
			for _, p := range ev.Present {
				if _, ok := s.st.Files[p]; !ok {
					s.backlog[p] = struct{}{} // found at start, still settling
				}
			}
		}
		s.started = true
		s.ready.Store(true)
		s.dirty = true
		s.log.Info("backlog ingested", "dir", s.watcher.Dir(), "files", len(s.st.Files),
			"crash_groups", s.groups.Len(), "state_fresh", s.loaded.Fresh, "state_corrupt", s.loaded.Corrupt)
	}
	now := time.Now()
	for path, since := range s.waiting {
		if now.Sub(since) < s.cfg.IncompleteAfter {
			continue
		}
		delete(s.waiting, path)
		f, ok := s.st.Files[path]
		if !ok {
			continue
		}
		reason := FailIncomplete
		if f.Status == state.StatusEmpty {
			reason = FailEmpty
		}
		f.Status = state.StatusFailed
		s.putLocked(path, f)
		s.failLocked(path, reason, fmt.Errorf("no complete panic after %s", s.cfg.IncompleteAfter))
	}
}

// onLogLines records closed-session warnings and the tailer's position in
// one step, so the state never holds one without the other.
func (s *Sidecar) onLogLines(n int, pos logtail.Position) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addLocked(metrics.ClosedSessionWarnings, float64(n))
	s.st.Log = state.Log{Path: s.cfg.ServerLog, Dev: pos.Dev, Ino: pos.Ino, Offset: pos.Offset, Head: pos.Head, HeadN: pos.HeadN}
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
	for path, f := range s.st.Files {
		if f.Status == state.StatusCounted || f.Status == state.StatusFailed {
			files = append(files, retention.File{Path: path, Size: f.Size, ModTime: time.Unix(0, f.MTime)})
		}
	}
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
		s.addLocked(metrics.RetentionDeletedFiles, 1, d.Reason)
		s.addLocked(metrics.RetentionDeletedBytes, float64(d.Size))
		s.mu.Unlock()
		n++
		bytes += d.Size
	}
	if n > 0 {
		s.log.Info("retention deleted stacktrace files", "files", n, "bytes", bytes)
	}
}

func devOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev)
	}
	return 0
}

func inoOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

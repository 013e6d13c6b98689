// Package ingest is the stacktrace-file pipeline, in data order: the
// watcher's events (watch) → is this file new, unchanged, grown or replaced
// (decide) → a bounded read that never follows a symlink nor blocks on a
// FIFO (readfile) → parse (stacktrace) → group (crash) → what to count, to
// a Sink (the exporter). It keeps the per-file records the state file
// persists, so a restart counts nothing twice.
//
// A panic is counted once per file, when the file first holds a complete
// traceback. A file caught mid-write (empty, the panic message only, or a
// traceback without its end) waits and is read again as it grows; if it is
// still cut after IncompleteAfter, what it holds is counted (or, with no
// traceback at all, it is a parse failure). A counted file that grows into
// another crash site moves to that group; its count is not repeated. A
// panic's time is the one logged with it, else the one in the file's name,
// else the file's modification time.
package ingest

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/stackwatch/stackwatch/internal/fsutil"
	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/decide"
	"github.com/stackwatch/stackwatch/sidecar/readfile"
	"github.com/stackwatch/stackwatch/sidecar/stacktrace"
	"github.com/stackwatch/stackwatch/sidecar/watch"
)

// Parse failure reasons, the values of the metrics.LabelReason label on
// stackwatch_parse_failures_total.
const (
	FailUnreadable = "unreadable" // could not be opened or read
	FailBinary     = "binary"     // NUL bytes or invalid UTF-8
	FailNotPanic   = "not_panic"  // text, but no goroutine traceback
	FailEmpty      = "empty"      // still empty after IncompleteAfter
	FailIncomplete = "incomplete" // still only a panic message after IncompleteAfter
)

// FailReasons lists every parse failure reason, so counters can start at 0.
var FailReasons = []string{FailUnreadable, FailBinary, FailNotPanic, FailEmpty, FailIncomplete}

// Defaults.
const (
	DefaultIncompleteAfter = time.Minute
	// DefaultMaxFiles is how many per-file records Records hands out for
	// the state file (see state's package documentation, Size).
	DefaultMaxFiles = 50_000
)

// Sink receives what the pipeline counts. It is called from Handle.
type Sink interface {
	// Panic is called once for each panic counted; fatal is set when the
	// process died of it (a "fatal error:" or a fatal-*.stacktrace.log file
	// written by runtime/debug.SetCrashOutput).
	Panic(sig crash.Signature, at time.Time, fatal bool)
	// Failure is called once for each file that is not a readable panic.
	Failure(reason string)
}

// Config configures a Pipeline. Zero values take the defaults.
type Config struct {
	// MaxBytes bounds how much of one file is read; default
	// stacktrace.DefaultMaxBytes.
	MaxBytes        int64
	IncompleteAfter time.Duration
	// Corrupt is set when the state was lost: files found at the start
	// scan were most likely counted before, so they are grouped, not
	// counted (the corrupt state policy in package state).
	Corrupt bool
	Now     func() time.Time
	Logger  *slog.Logger
}

// Pipeline ingests one directory's stacktrace files. It is not safe for
// concurrent use: the caller serialises Handle with its reads of Records
// and Files, so the state it saves is never half an event.
type Pipeline struct {
	cfg    Config
	log    *slog.Logger
	groups *crash.Groups
	sink   Sink
	reader *readfile.Reader

	files      map[string]decide.Record
	bytes      int64
	seenBefore int64                       // see state.State.SeenBefore
	waiting    map[string]time.Time        // empty or cut files: since when
	graveyard  map[fsutil.ID]decide.Record // removed since the last full scan, for moves
	backlog    map[string]struct{}         // corrupt state: found at start, not yet read
	started    bool                        // the start scan was handled
	changes    uint64                      // records put or removed
}

// New returns a pipeline that groups into groups and counts into sink.
func New(cfg Config, groups *crash.Groups, sink Sink) *Pipeline {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = stacktrace.DefaultMaxBytes
	}
	if cfg.IncompleteAfter <= 0 {
		cfg.IncompleteAfter = DefaultIncompleteAfter
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Pipeline{
		cfg: cfg, log: cfg.Logger, groups: groups, sink: sink, reader: readfile.New(cfg.MaxBytes),
		files: map[string]decide.Record{}, waiting: map[string]time.Time{},
		graveyard: map[fsutil.ID]decide.Record{},
	}
}

// Restore takes the records saved in the state file. Call it before the
// first Handle.
func (p *Pipeline) Restore(files map[string]decide.Record, seenBefore int64) {
	now := p.cfg.Now()
	p.seenBefore = seenBefore
	for path, r := range files {
		p.files[path] = r
		p.bytes += r.Size
		if r.Status == decide.StatusEmpty || r.Status == decide.StatusIncomplete {
			p.waiting[path] = now
		}
	}
}

// Changes counts the changes to the file records, so a caller can tell
// whether there is anything new to save.
func (p *Pipeline) Changes() uint64 { return p.changes }

// Started reports whether the start scan (the backlog) was handled.
func (p *Pipeline) Started() bool { return p.started }

// Files returns the number and total size of the stacktrace files on disk.
func (p *Pipeline) Files() (n int, bytes int64) { return len(p.files), p.bytes }

// Each calls f for every file record.
func (p *Pipeline) Each(f func(path string, r decide.Record)) {
	for path, r := range p.files {
		f(path, r)
	}
}

// Records returns a copy of at most limit records for the state file (all
// waiting and unreadable ones, then the newest) and the newest mtime of
// those left out, below which a file with no record counts as seen.
func (p *Pipeline) Records(limit int) (map[string]decide.Record, int64) {
	if limit <= 0 {
		limit = DefaultMaxFiles
	}
	out := make(map[string]decide.Record, min(len(p.files), limit))
	if len(p.files) <= limit {
		for path, r := range p.files {
			out[path] = r
		}
		return out, p.seenBefore
	}
	type rec struct {
		path string
		r    decide.Record
	}
	var done []rec
	for path, r := range p.files {
		if r.Status == decide.StatusCounted || r.Status == decide.StatusFailed {
			done = append(done, rec{path, r})
		} else {
			out[path] = r
		}
	}
	slices.SortFunc(done, func(a, b rec) int { return cmp.Compare(b.r.MTime, a.r.MTime) })
	seen := p.seenBefore
	for _, d := range done {
		if len(out) < limit {
			out[d.path] = d.r
		} else {
			seen = max(seen, d.r.MTime)
		}
	}
	return out, seen
}

// Handle takes one watcher event and returns the number of panics counted.
func (p *Pipeline) Handle(ev watch.Event) int {
	switch ev.Op {
	case watch.Ready:
		prev, known := p.files[ev.Path]
		st := decide.Stat{ID: fsutil.IDOf(ev.Info), Size: ev.Info.Size(), MTime: ev.Info.ModTime().UnixNano()}
		if decide.Skip(prev, known, st) {
			return 0 // unchanged since read, e.g. the backlog after a restart
		}
		return p.ingest(ev.Path, false)
	case watch.Removed:
		p.remove(ev.Path)
	case watch.Synced:
		return p.synced(ev)
	}
	return 0
}

// errCut marks a traceback that parses but stops before its end.
var errCut = errors.New("traceback cut short")

// ingest reads path and takes it through decide, parse and group. final
// is set when a waiting file's time is up: what it holds then is all
// there will be.
func (p *Pipeline) ingest(path string, final bool) int {
	prev, known := p.files[path]
	data, st, err := p.reader.Read(path)
	_, inBacklog := p.backlog[path]
	delete(p.backlog, path)
	counting := !(p.cfg.Corrupt && (!p.started || inBacklog))

	verdict, rec := decide.Decide(prev, known, st, data, err)
	switch verdict {
	case decide.Failed:
		switch {
		case errors.Is(err, fs.ErrNotExist):
			p.remove(path)
		case errors.Is(err, readfile.ErrNotRegular):
			// Swapped for a symlink, FIFO or device since it was listed:
			// not a stacktrace file, and never followed or waited on.
			p.log.Warn("stacktrace file replaced by something that is not a regular file; ignored", "file", path, "err", err)
			p.remove(path)
		default:
			// One failure per unreadable file, not per rescan; another
			// file (inode) put in its place is another failure.
			if counting && !(known && prev.Status == decide.StatusUnreadable && prev.ID() == rec.ID()) {
				p.fail(path, FailUnreadable, err)
			}
			p.put(path, rec)
		}
		return 0
	case decide.Unchanged:
		p.put(path, rec)
		if !final {
			return 0
		}
	case decide.Grown:
		final = false // it grew, so it is not stuck
		if _, ok := p.waiting[path]; ok {
			p.waiting[path] = p.cfg.Now() // still being written: quiet from now
		}
	case decide.New, decide.Replaced:
		if !known && rec.MTime <= p.seenBefore {
			rec.Status = decide.StatusCounted // its record was dropped from the state
			p.put(path, rec)
			return 0
		}
		// A file renamed within the directory keeps identity, size, time and content.
		if g, ok := p.graveyard[rec.ID()]; ok && !rec.ID().IsZero() && g.Size == rec.Size && g.MTime == rec.MTime && g.Hash == rec.Hash {
			delete(p.graveyard, rec.ID())
			rec.Status, rec.Group = g.Status, g.Group
			p.put(path, rec)
			if g.Status == decide.StatusEmpty || g.Status == decide.StatusIncomplete {
				p.waiting[path] = p.cfg.Now()
			}
			return 0
		}
		prev = decide.Record{} // another file: nothing carries over
	}
	return p.parse(path, prev, rec, data, counting, final)
}

// parse parses data, the head of path whose record is now rec (prev is its
// record if it is the same file, grown), and groups and counts it.
func (p *Pipeline) parse(path string, prev, rec decide.Record, data []byte, counting, final bool) int {
	pn, perr := stacktrace.ParseBytes(data)
	if perr == nil && !final && !pn.Truncated && cut(pn) {
		perr = errCut
	}
	if pn != nil && pn.Truncated && prev.Size <= p.cfg.MaxBytes { // once, when it outgrows the limit
		p.log.Warn("stacktrace file larger than the read limit; parsed its head",
			"file", path, "size", rec.Size, "limit", p.cfg.MaxBytes)
	}
	at := crash.TimeOf(path, time.Unix(0, rec.MTime))
	if fatalFile(path) {
		at = time.Unix(0, rec.MTime) // its name has the process's start time; it was written at the crash
	}
	if pn != nil && !pn.Time.IsZero() {
		at = pn.Time // logged with the trace: the panic's own time
	}
	file := crash.File{Path: path, Size: rec.Size, ModTime: at}

	if prev.Status == decide.StatusCounted {
		// Counted before and grown since: never counted again, but moved if
		// the whole traceback shows another crash site.
		if perr == nil {
			if sig := crash.Classify(pn); sig.Key != prev.Group {
				p.groups.Remove(prev.Group, crash.File{Path: path, Size: prev.Size})
				p.groups.Add(sig, file, p.example(sig, data))
				p.log.Info("stacktrace file grew into another crash site; regrouped", "file", path,
					"crash_site", sig.Site.Function, "from_group", prev.Group, "to_group", sig.Key)
				rec.Group = sig.Key
			}
		}
		p.put(path, rec)
		delete(p.waiting, path)
		return 0
	}

	switch {
	case perr == nil:
		sig := crash.Classify(pn)
		rec.Status, rec.Group = decide.StatusCounted, sig.Key
		p.put(path, rec)
		delete(p.waiting, path)
		g := p.groups.Add(sig, file, p.example(sig, data))
		if g.Count == 1 {
			p.log.Info("new crash group", "kind", sig.Kind, "crash_site", sig.Site.Function,
				"line", sig.Site.Line, "caller", sig.Caller, "nil_receiver", sig.NilReceiver, "file", path)
		}
		if !counting {
			return 0
		}
		p.sink.Panic(sig, at, fatal(path, pn))
		return 1
	case prev.Status == decide.StatusFailed:
		// A failure grown further is still the one failure.
		rec.Status = decide.StatusFailed
		p.put(path, rec)
		return 0
	case errors.Is(perr, stacktrace.ErrEmpty) || errors.Is(perr, errCut) || incomplete(data, perr):
		if final && errors.Is(perr, stacktrace.ErrEmpty) && fatalFile(path) {
			// The game server opens its crash output file empty when it
			// starts; it fills only if the process dies. Not a failure.
			p.waiting[path] = p.cfg.Now()
			final = false
		}
		if final {
			reason := FailIncomplete
			if errors.Is(perr, stacktrace.ErrEmpty) {
				reason = FailEmpty
			}
			rec.Status = decide.StatusFailed
			p.put(path, rec)
			if counting {
				p.fail(path, reason, fmt.Errorf("no complete panic after %s", p.cfg.IncompleteAfter))
			}
			return 0
		}
		// Probably still being written: wait for it to grow.
		rec.Status = decide.StatusIncomplete
		if errors.Is(perr, stacktrace.ErrEmpty) {
			rec.Status = decide.StatusEmpty
		}
		if _, ok := p.waiting[path]; !ok {
			p.waiting[path] = p.cfg.Now()
		}
		p.put(path, rec)
		return 0
	default:
		rec.Status = decide.StatusFailed
		p.put(path, rec)
		delete(p.waiting, path)
		if counting {
			reason := FailNotPanic
			if errors.Is(perr, stacktrace.ErrBinary) {
				reason = FailBinary
			}
			p.fail(path, reason, perr)
		}
		return 0
	}
}

// example is the text a new group keeps: the head of the file through the
// crashing goroutine's traceback, at most crash.MaxExampleBytes; the other
// goroutines of a full dump are noise there. Empty for a group that
// exists, so the trace is not copied for every file.
func (p *Pipeline) example(sig crash.Signature, data []byte) string {
	if p.groups.Has(sig.Key) {
		return ""
	}
	ex := data[:min(len(data), crash.MaxExampleBytes)]
	if i := bytes.Index(ex, []byte("goroutine ")); i >= 0 {
		if j := bytes.Index(ex[i:], []byte("\n\ngoroutine ")); j >= 0 {
			ex = ex[:i+j+1]
		}
	}
	return string(ex)
}

// cut reports whether the crashing goroutine's traceback stops before its
// end: the parser's Partial, or a last frame that is neither main.main,
// the runtime's goroutine start, nor followed by "created by" (a file cut
// right after runtime.sigpanic looks whole to the parser).
func cut(pn *stacktrace.Panic) bool {
	if pn.Partial {
		return true
	}
	g := pn.Goroutines[0]
	if g.CreatedBy != nil || g.FramesElided || len(g.Frames) == 0 {
		return false
	}
	switch g.Frames[len(g.Frames)-1].Function {
	case "main.main", "runtime.main", "runtime.goexit":
		return false
	}
	return true
}

// fatal reports whether the process died of pn: a throw, or a file the
// runtime wrote on its way out (runtime/debug.SetCrashOutput).
func fatal(path string, pn *stacktrace.Panic) bool {
	return pn.Fatal || fatalFile(path)
}

// fatalFile reports whether path is a game server's crash output file,
// fatal-<start time>-<pid>.stacktrace.log (gameserver.CaptureCrashes).
func fatalFile(path string) bool { return strings.HasPrefix(filepath.Base(path), "fatal-") }

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

func (p *Pipeline) fail(path, reason string, err error) {
	p.sink.Failure(reason)
	p.log.Warn("stacktrace file is not a readable Go panic", "file", path, "reason", reason, "err", err)
}

func (p *Pipeline) put(path string, r decide.Record) {
	if old, ok := p.files[path]; ok {
		p.bytes -= old.Size
	}
	p.files[path] = r
	p.bytes += r.Size
	p.changes++
}

func (p *Pipeline) remove(path string) {
	delete(p.waiting, path)
	r, ok := p.files[path]
	if !ok {
		return
	}
	delete(p.files, path)
	p.bytes -= r.Size
	p.changes++
	if !r.ID().IsZero() {
		p.graveyard[r.ID()] = r
	}
}

// synced closes a full scan: files not present are gone, unreadable files
// are tried again (permissions change without an event the watcher
// reports), and waiting files whose time is up are read a last time.
func (p *Pipeline) synced(ev watch.Event) int {
	present := make(map[string]struct{}, len(ev.Present))
	for _, path := range ev.Present {
		present[path] = struct{}{}
	}
	for path := range p.files {
		if _, ok := present[path]; !ok {
			p.remove(path) // deleted while we were not looking
		}
	}
	clear(p.graveyard)
	if !p.started {
		if p.cfg.Corrupt {
			p.backlog = make(map[string]struct{}, len(ev.Present))
			for _, path := range ev.Present {
				if _, ok := p.files[path]; !ok {
					p.backlog[path] = struct{}{} // found at start, still settling
				}
			}
		}
		p.started = true
	}
	n := 0
	for path, r := range p.files {
		if r.Status == decide.StatusUnreadable {
			n += p.ingest(path, false)
		}
	}
	now := p.cfg.Now()
	for path, since := range p.waiting {
		if now.Sub(since) < p.cfg.IncompleteAfter {
			continue
		}
		delete(p.waiting, path)
		n += p.ingest(path, true)
	}
	return n
}

// Package watch reports complete files matching a pattern in one directory,
// with fsnotify (inotify) and a polling fallback.
//
// A file that appears (created, or renamed in from anywhere) is reported at
// once: a file renamed into place is complete, and one created to be written
// in place is empty or cut short, which the consumer recognises and waits
// out. A file written to is reported again once it has been quiet for the
// settle period, because Linux gives fsnotify no close-write event; whenever
// it changes it is reported again and the consumer decides whether it is the
// same file. No rename source has to be paired with its target.
//
// The directory may be missing at start, or deleted and created again: while
// it is missing its parent is watched (or, if the parent is missing too, its
// existence is retried), and when it comes back it is watched again and
// rescanned. An inotify queue overflow and a periodic safety timer also
// trigger a full rescan. When inotify cannot be had at all (instance or watch
// limits, descriptor limits) the watcher polls the directory instead and says
// so with a ModeChanged event.
//
// The watcher never opens the files it reports; it only lists the directory
// and stats them.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/stackwatch/stackwatch/internal/fsutil"
)

// Op is the kind of an Event.
type Op uint8

// Event kinds.
const (
	// Ready: Path is complete (or changed since it was last reported).
	Ready Op = iota + 1
	// Removed: Path is gone (deleted, renamed away, or its directory went).
	Removed
	// Synced: a full scan finished; Present lists every matching file.
	Synced
	// ModeChanged: the watcher switched between inotify and polling.
	ModeChanged
)

func (o Op) String() string {
	switch o {
	case Ready:
		return "ready"
	case Removed:
		return "removed"
	case Synced:
		return "synced"
	case ModeChanged:
		return "mode_changed"
	}
	return fmt.Sprintf("Op(%d)", o)
}

// Rescan reasons carried by Synced events.
const (
	ReasonStart     = "start"     // initial scan (the backlog)
	ReasonOverflow  = "overflow"  // inotify queue overflowed
	ReasonTimer     = "timer"     // periodic safety rescan
	ReasonRecreated = "recreated" // the directory appeared again
	ReasonPoll      = "poll"      // a polling round
	ReasonRequest   = "request"   // Rescan was called
)

// Event is one observation delivered to the handler.
type Event struct {
	Op      Op
	Path    string      // Ready, Removed
	Info    fs.FileInfo // Ready: Lstat of Path when it was found complete
	Reason  string      // Synced: why the scan ran
	Present []string    // Synced: every matching path, sorted
	Missing bool        // Synced: the directory does not exist
	Polling bool        // ModeChanged: true when polling
}

// Config configures a Watcher. Zero durations take the defaults.
type Config struct {
	Dir            string
	Pattern        string        // filepath.Match pattern on base names; default "*.stacktrace.log"
	Settle         time.Duration // quiet period for files written in place; default DefaultSettle
	RescanInterval time.Duration // safety rescan period; default 1m
	PollInterval   time.Duration // polling period when inotify is unavailable; default 250ms
	ForcePoll      bool          // poll even if inotify works (tests, network file systems)
	Logger         *slog.Logger
}

// Defaults.
//
// DefaultSettle is short on purpose: the latency goal is 10× better than
// mtail, whose median is ~130-150 ms (it polls every 250 ms), and a file
// written in place is only reported after the settle period. A short settle
// is safe because the recover helper writes its file in two write calls
// microseconds apart, and a file caught between them (the panic value and no
// traceback) is held as incomplete by the sidecar and read again when it
// grows. Measured: p50 10.6 ms for in-place files, 0.08 ms renamed in.
const (
	DefaultPattern        = "*.stacktrace.log"
	DefaultSettle         = 10 * time.Millisecond
	DefaultRescanInterval = time.Minute
	DefaultPollInterval   = 250 * time.Millisecond
)

// Watcher watches one directory. Create it with New and run it with Run.
type Watcher struct {
	cfg    Config
	dir    string
	parent string
	log    *slog.Logger

	fsw      *fsnotify.Watcher // nil while polling
	polling  bool
	watching string // what fsw watches now: dir, parent or ""

	known   map[string]stamp // files reported Ready, as last reported
	pending map[string]time.Time
	queue   []due // settle deadlines in arrival order
	timer   *time.Timer
	armed   bool

	rescan chan chan struct{} // Rescan's requests
	emit   func(Event)
}

// stamp is what a rescan compares to decide whether a file changed.
type stamp struct {
	id    fsutil.ID
	size  int64
	mtime int64
}

type due struct {
	path string
	at   time.Time
}

// New validates cfg and sets up inotify, falling back to polling when
// inotify cannot be had.
func New(cfg Config) (*Watcher, error) {
	if cfg.Dir == "" {
		return nil, errors.New("watch: no directory")
	}
	if cfg.Pattern == "" {
		cfg.Pattern = DefaultPattern
	}
	if _, err := filepath.Match(cfg.Pattern, "x"); err != nil {
		return nil, fmt.Errorf("watch: bad pattern %q: %w", cfg.Pattern, err)
	}
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultSettle
	}
	if cfg.RescanInterval <= 0 {
		cfg.RescanInterval = DefaultRescanInterval
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	w := &Watcher{
		cfg: cfg, dir: dir, parent: filepath.Dir(dir), log: cfg.Logger,
		known: map[string]stamp{}, pending: map[string]time.Time{}, rescan: make(chan chan struct{}),
	}
	if cfg.ForcePoll {
		w.polling = true
		return w, nil
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		w.polling = true
		w.log.Warn("inotify unavailable; polling the log directory instead",
			"dir", dir, "err", err, "poll_interval", cfg.PollInterval)
		return w, nil
	}
	w.fsw = fsw
	return w, nil
}

// Dir is the absolute directory watched.
func (w *Watcher) Dir() string { return w.dir }

// Polling reports whether the watcher polls. Safe only before Run or from
// within the handler.
func (w *Watcher) Polling() bool { return w.polling }

// Run watches until ctx is done, calling emit from its own goroutine, one
// event at a time. The first events are the backlog: a Ready for each file
// present and a Synced with reason "start" (even if the directory is missing).
// If emit is slow, inotify events queue in the kernel and may overflow; the
// watcher then rescans, so nothing is lost.
func (w *Watcher) Run(ctx context.Context, emit func(Event)) error {
	w.emit = emit
	w.timer = time.NewTimer(time.Hour)
	w.timer.Stop()
	defer w.timer.Stop()
	defer func() {
		if w.fsw != nil {
			w.fsw.Close()
		}
	}()

	if w.polling {
		w.emit(Event{Op: ModeChanged, Polling: true})
		return w.poll(ctx, ReasonStart)
	}
	if err := w.attach(); err != nil {
		if !w.fallback(err) {
			return err
		}
		return w.poll(ctx, ReasonStart)
	}
	w.scan(ReasonStart)

	rescan := time.NewTicker(w.cfg.RescanInterval)
	defer rescan.Stop()
	// retry re-attaches while neither the directory nor its parent exists.
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return errors.New("watch: fsnotify closed its event channel")
			}
			if err := w.handle(ev); err != nil {
				if !w.fallback(err) {
					return err
				}
				return w.poll(ctx, ReasonPoll)
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return errors.New("watch: fsnotify closed its error channel")
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				w.log.Warn("inotify queue overflowed; rescanning", "dir", w.dir)
				w.scan(ReasonOverflow)
				continue
			}
			w.log.Error("inotify error", "dir", w.dir, "err", err)
		case <-w.timer.C:
			w.armed = false
			w.settled(time.Now())
		case <-rescan.C:
			w.scan(ReasonTimer)
		case done := <-w.rescan:
			w.scan(ReasonRequest)
			close(done)
		case <-retry.C:
			if w.watching == "" {
				if err := w.attach(); err != nil {
					if !w.fallback(err) {
						return err
					}
					return w.poll(ctx, ReasonPoll)
				}
				if w.watching == w.dir {
					w.scan(ReasonRecreated)
				}
			}
		}
	}
}

// attach watches the directory, or its parent while the directory is
// missing, or nothing while both are missing (the retry ticker tries again).
func (w *Watcher) attach() error {
	if w.watching != "" {
		_ = w.fsw.Remove(w.watching)
		w.watching = ""
	}
	err := w.fsw.Add(w.dir)
	if err == nil {
		w.watching = w.dir
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
		return err
	}
	err = w.fsw.Add(w.parent)
	if err == nil {
		w.watching = w.parent
		// The directory may have appeared between the two Adds.
		if fi, serr := os.Stat(w.dir); serr == nil && fi.IsDir() {
			return w.attach()
		}
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// fallback switches to polling when err means inotify resources ran out,
// and reports whether it did.
func (w *Watcher) fallback(err error) bool {
	if !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EMFILE) &&
		!errors.Is(err, syscall.ENFILE) && !errors.Is(err, syscall.ENOMEM) {
		return false
	}
	w.log.Warn("inotify limit reached; polling the log directory instead",
		"dir", w.dir, "err", err, "poll_interval", w.cfg.PollInterval)
	if w.fsw != nil {
		w.fsw.Close()
		w.fsw = nil
	}
	w.watching = ""
	w.polling = true
	w.emit(Event{Op: ModeChanged, Polling: true})
	return true
}

func (w *Watcher) match(path string) bool {
	if filepath.Dir(path) != w.dir {
		return false
	}
	ok, _ := filepath.Match(w.cfg.Pattern, filepath.Base(path))
	return ok
}

func (w *Watcher) handle(ev fsnotify.Event) error {
	if ev.Name == w.dir {
		switch {
		case ev.Has(fsnotify.Create) && w.watching == w.parent:
			if err := w.attach(); err != nil {
				return err
			}
			w.scan(ReasonRecreated)
		case ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename):
			w.log.Warn("log directory went away; waiting for it to come back", "dir", w.dir)
			if err := w.attach(); err != nil {
				return err
			}
			w.scan(ReasonRecreated)
		}
		return nil
	}
	if !w.match(ev.Name) {
		return nil
	}
	switch {
	case ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename):
		// Events queue up: by now another file may have the name, so ask
		// the directory rather than trust the event.
		w.check(ev.Name)
	case ev.Has(fsnotify.Create):
		// Complete if renamed into place; else empty, and its writes follow.
		w.check(ev.Name)
	case ev.Has(fsnotify.Write):
		w.defer_(ev.Name, time.Now())
	}
	return nil
}

// defer_ reports path once it has been quiet for the settle period.
func (w *Watcher) defer_(path string, now time.Time) {
	w.pending[path] = now
	w.queue = append(w.queue, due{path: path, at: now.Add(w.cfg.Settle)})
	if !w.armed {
		w.timer.Reset(w.cfg.Settle)
		w.armed = true
	}
}

func (w *Watcher) settled(now time.Time) {
	i := 0
	for ; i < len(w.queue); i++ {
		d := w.queue[i]
		if d.at.After(now) {
			break
		}
		last, ok := w.pending[d.path]
		if !ok || last.Add(w.cfg.Settle).After(d.at) {
			continue // a later event re-armed it
		}
		delete(w.pending, d.path)
		w.check(d.path)
	}
	w.queue = w.queue[i:]
	if len(w.queue) == 0 {
		w.queue = nil // let a flood's backing array go
		return
	}
	w.timer.Reset(time.Until(w.queue[0].at))
	w.armed = true
}

// check stats path and reports it Ready if it changed since last reported.
func (w *Watcher) check(path string) {
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			w.gone(path)
		} else {
			w.log.Warn("cannot stat file", "path", path, "err", err)
		}
		return
	}
	w.ready(path, fi)
}

func (w *Watcher) ready(path string, fi fs.FileInfo) {
	if !fi.Mode().IsRegular() {
		w.gone(path) // a symlink or FIFO now has the name: not a stacktrace file
		return
	}
	st := stampOf(fi)
	if old, ok := w.known[path]; ok && old == st {
		return
	}
	w.known[path] = st
	w.emit(Event{Op: Ready, Path: path, Info: fi})
}

func (w *Watcher) gone(path string) {
	delete(w.pending, path)
	if _, ok := w.known[path]; !ok {
		return
	}
	delete(w.known, path)
	w.emit(Event{Op: Removed, Path: path})
}

// scan lists the directory: files changed since last reported are reported
// (at once if quiet for the settle period, else after it), vanished ones are
// removed, and a Synced event closes the round.
func (w *Watcher) scan(reason string) {
	now := time.Now()
	ents, err := os.ReadDir(w.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		// Unreadable directory: report nothing rather than a false "all gone".
		w.log.Error("cannot list log directory", "dir", w.dir, "err", err)
		return
	}
	present := make([]string, 0, len(ents))
	seen := make(map[string]struct{}, len(ents))
	for _, e := range ents {
		if ok, _ := filepath.Match(w.cfg.Pattern, e.Name()); !ok || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(w.dir, e.Name())
		fi, err := e.Info()
		if err != nil {
			continue // removed since the listing
		}
		present = append(present, path)
		seen[path] = struct{}{}
		if old, ok := w.known[path]; ok && old == stampOf(fi) {
			continue
		}
		// A requested scan takes files as they are: the consumer waits out
		// any that are cut short.
		if reason != ReasonRequest && !w.polling && now.Sub(fi.ModTime()) < w.cfg.Settle {
			if _, ok := w.pending[path]; !ok {
				w.defer_(path, now)
			}
			continue
		}
		if reason != ReasonRequest && w.polling && now.Sub(fi.ModTime()) < w.cfg.Settle {
			continue // next round, once quiet
		}
		delete(w.pending, path)
		w.ready(path, fi)
	}
	for path := range w.known {
		if _, ok := seen[path]; !ok {
			w.gone(path)
		}
	}
	slices.Sort(present)
	w.emit(Event{Op: Synced, Reason: reason, Present: present, Missing: err != nil})
}

func (w *Watcher) poll(ctx context.Context, first string) error {
	w.scan(first)
	t := time.NewTicker(w.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			w.scan(ReasonPoll)
		case done := <-w.rescan:
			w.scan(ReasonRequest)
			close(done)
		}
	}
}

// Rescan asks the running watcher for a full scan and returns once its
// events, Synced last, have been handled: a sync point for tests and for
// anyone who changed the directory and wants the result now.
func (w *Watcher) Rescan(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case w.rescan <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func stampOf(fi fs.FileInfo) stamp {
	return stamp{id: fsutil.IDOf(fi), size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}

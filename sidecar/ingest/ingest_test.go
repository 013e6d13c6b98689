package ingest

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/decide"
	"github.com/stackwatch/stackwatch/sidecar/watch"
)

// sink records what the pipeline counts.
type sink struct {
	panics   []crash.Signature
	fatal    int
	failures []string
}

func (s *sink) Panic(sig crash.Signature, _ time.Time, fatal bool) {
	s.panics = append(s.panics, sig)
	if fatal {
		s.fatal++
	}
}
func (s *sink) Failure(reason string) { s.failures = append(s.failures, reason) }

// trace is a recovered panic as the game server's recover helper writes it:
// the crash site is main.writeTo, called by main.settleBet.
const trace = `runtime error: invalid memory address or nil pointer dereference
goroutine 42 [running]:
runtime/debug.Stack()
	/usr/local/go/src/runtime/debug/stack.go:26 +0x5e
main.recoverFunc()
	/app/stacktool.go:10 +0x3f
panic({0x6b2f40?, 0x9a8e40?})
	/usr/local/go/src/runtime/panic.go:792 +0x132
runtime.panicmem(...)
	/usr/local/go/src/runtime/panic.go:262
runtime.sigpanic()
	/usr/local/go/src/runtime/signal_unix.go:925 +0x359
main.writeTo({0x0, 0x0}, {0xc000012345, 0xa, 0x10}, 0xa)
	/app/main.go:20 +0x1d
main.settleBet(...)
	/app/main.go:30
main.handleBet.func1()
	/app/main.go:40 +0x2a
created by main.handleBet in goroutine 1
	/app/main.go:38 +0x85
`

type fixture struct {
	t      *testing.T
	dir    string
	sink   *sink
	groups *crash.Groups
	p      *Pipeline
	now    time.Time
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, dir: t.TempDir(), sink: &sink{}, groups: crash.NewGroups(), now: time.Unix(1e9, 0)}
	f.p = New(Config{IncompleteAfter: time.Minute, Now: func() time.Time { return f.now }}, f.groups, f.sink)
	f.p.Handle(watch.Event{Op: watch.Synced, Reason: watch.ReasonStart})
	return f
}

func (f *fixture) write(name, content string) string {
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// ready hands the pipeline a Ready event for path with a stat taken now
// (Lstat, as the watcher does).
func (f *fixture) ready(path string) int {
	fi, err := os.Lstat(path)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.p.Handle(watch.Event{Op: watch.Ready, Path: path, Info: fi})
}

func (f *fixture) synced() int {
	ents, _ := os.ReadDir(f.dir)
	var present []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			present = append(present, filepath.Join(f.dir, e.Name()))
		}
	}
	return f.p.Handle(watch.Event{Op: watch.Synced, Reason: watch.ReasonTimer, Present: present})
}

// TestSwapAfterStat is the race a hostile writer wins: the watcher stat'ed
// a regular file, then a symlink (to a panic outside the directory) or a
// FIFO (with no writer) is renamed over it before the read. Neither is
// followed or waited on, nor counted.
func TestSwapAfterStat(t *testing.T) {
	f := newFixture(t)
	outside := filepath.Join(t.TempDir(), "secret.stacktrace.log")
	if err := os.WriteFile(outside, []byte(strings.ReplaceAll(trace, "writeTo", "secretSite")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, swap := range []string{"symlink", "fifo"} {
		path := f.write(swap+".stacktrace.log", "panic: not yet\n")
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(f.dir, ".swap")
		switch swap {
		case "symlink":
			err = os.Symlink(outside, tmp)
		case "fifo":
			err = syscall.Mkfifo(tmp, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		done := make(chan int, 1)
		go func() { done <- f.p.Handle(watch.Event{Op: watch.Ready, Path: path, Info: fi}) }()
		select {
		case n := <-done:
			if n != 0 {
				t.Fatalf("%s: counted %d", swap, n)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the pipeline blocked", swap)
		}
		if n, _ := f.p.Files(); n != 0 {
			t.Fatalf("%s: kept a record of it", swap)
		}
	}
	if len(f.sink.panics) != 0 || len(f.sink.failures) != 0 || f.groups.Len() != 0 {
		t.Fatalf("counted %v, failures %v, %d groups", f.sink.panics, f.sink.failures, f.groups.Len())
	}
}

// TestSlowAppendCountedOnceComplete: a file growing a few bytes at a time
// is read at every step, and counted once, at its real crash site, when
// its traceback is whole, never at runtime/debug.Stack or a runtime frame.
func TestSlowAppendCountedOnceComplete(t *testing.T) {
	f := newFixture(t)
	path := f.write("slow.stacktrace.log", "")
	for i := 0; i <= len(trace); i += 20 {
		if err := os.WriteFile(path, []byte(trace[:i]), 0o644); err != nil {
			t.Fatal(err)
		}
		f.ready(path)
		if n := len(f.sink.panics); n != 0 && i+20 < len(trace) {
			t.Fatalf("counted after %d of %d bytes: %+v", i, len(trace), f.sink.panics[0])
		}
	}
	if err := os.WriteFile(path, []byte(trace), 0o644); err != nil {
		t.Fatal(err)
	}
	f.ready(path)
	f.synced()
	if len(f.sink.panics) != 1 || f.sink.panics[0].Site.Function != "main.writeTo" || f.sink.panics[0].Caller != "main.settleBet" ||
		f.sink.panics[0].CreatedBy != "main.handleBet" || len(f.sink.failures) != 0 {
		t.Fatalf("panics %+v, failures %v", f.sink.panics, f.sink.failures)
	}
}

// TestCutFileRegroupedWhenItGrows: a file cut right after runtime.sigpanic
// waits; when its time is up it is counted as it is, and when the rest
// arrives it moves to its real group, the count with it, never twice.
func TestCutFileRegroupedWhenItGrows(t *testing.T) {
	f := newFixture(t)
	cutAt := strings.Index(trace, "main.writeTo")
	path := f.write("cut.stacktrace.log", trace[:cutAt])
	f.ready(path)
	if len(f.sink.panics) != 0 {
		t.Fatal("a cut traceback was counted at once")
	}
	f.now = f.now.Add(2 * time.Minute) // quiet for longer than IncompleteAfter
	f.synced()
	if len(f.sink.panics) != 1 || len(f.sink.failures) != 0 {
		t.Fatalf("after the wait: panics %+v, failures %v", f.sink.panics, f.sink.failures)
	}
	first := f.sink.panics[0].Key
	appendFile(t, path, trace[cutAt:])
	f.ready(path)
	snap := f.groups.Snapshot()
	if len(f.sink.panics) != 1 || len(snap) != 1 || snap[0].Count != 1 || snap[0].CrashSite.Function != "main.writeTo" || snap[0].Key == first {
		t.Fatalf("after growing: %d panics counted, groups %+v", len(f.sink.panics), snap)
	}
	// Growing more (same site) changes nothing.
	appendFile(t, path, "\n")
	f.ready(path)
	if len(f.sink.panics) != 1 || f.groups.Snapshot()[0].Count != 1 {
		t.Fatal("counted again after growing")
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	fh, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// TestFatalAndTimes: a fatal-*.stacktrace.log counts as a fatal crash, and
// the panic's time is taken from the file name.
func TestFatalAndTimes(t *testing.T) {
	f := newFixture(t)
	// The game server's crash output: opened empty at its start (the name's
	// time), written when it dies. Empty, it is never a failure.
	fatalPath := f.write("fatal-20251030T111505.500Z-4242.stacktrace.log", "")
	f.ready(fatalPath)
	for range 3 {
		f.now = f.now.Add(time.Hour)
		f.synced()
	}
	if len(f.sink.failures) != 0 {
		t.Fatalf("an empty crash output file failed: %v", f.sink.failures)
	}
	died := time.Date(2025, 10, 31, 8, 0, 0, 0, time.UTC)
	os.WriteFile(fatalPath, []byte("panic: boom\n\n"+trace[strings.Index(trace, "goroutine"):]), 0o644)
	os.Chtimes(fatalPath, died, died)
	f.ready(fatalPath)
	f.ready(f.write("copied.stacktrace.log", trace))
	// A trace copied out of a log stream carries its time in each line's prefix.
	var logged strings.Builder
	for _, l := range strings.SplitAfter(strings.Replace(trace, "main.writeTo", "main.loggedSite", 1), "\n") {
		if l != "" {
			logged.WriteString("2026/02/03 19:00:16 " + l)
		}
	}
	f.ready(f.write("x-20251030T111505Z.stacktrace.log", logged.String()))
	f.ready(f.write("named-20251030T111505.5Z-7-1.stacktrace.log", strings.Replace(trace, "main.writeTo", "main.namedSite", 1)))
	if len(f.sink.panics) != 4 || f.sink.fatal != 1 {
		t.Fatalf("panics %d, fatal %d", len(f.sink.panics), f.sink.fatal)
	}
	for _, g := range f.groups.Snapshot() {
		var want time.Time
		switch {
		case g.Message == "boom":
			want = died // its mtime: the name has the process's start time
		case g.CrashSite.Function == "main.namedSite":
			want = time.Date(2025, 10, 30, 11, 15, 5, 5e8, time.UTC) // the recover helper's name: the panic's time
		case g.CrashSite.Function == "main.loggedSite":
			want = time.Date(2026, 2, 3, 19, 0, 16, 0, time.UTC) // logged with it, not the name's
		default: // the copy: its mtime, now
			if time.Since(g.FirstSeen) > time.Minute {
				t.Errorf("the copy's first seen %v, want its mtime", g.FirstSeen)
			}
			continue
		}
		if !g.FirstSeen.Equal(want) {
			t.Errorf("%s first seen %v, want %v", g.CrashSite.Function, g.FirstSeen, want)
		}
	}
}

// TestUnreadableRetried: a read error counts one failure, and the file is
// read again at every rescan until it can be.
func TestUnreadableRetried(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file; sidecar's TestChmodReadable covers this as an unprivileged process")
	}
	f := newFixture(t)
	path := f.write("locked.stacktrace.log", trace)
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	f.ready(path)
	f.synced()
	f.synced()
	if len(f.sink.panics) != 0 || len(f.sink.failures) != 1 || f.sink.failures[0] != FailUnreadable {
		t.Fatalf("unreadable: panics %v, failures %v", f.sink.panics, f.sink.failures)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	f.synced()
	if len(f.sink.panics) != 1 {
		t.Fatal("not counted once readable")
	}
}

// TestRecordsBounded: the state gets at most the cap of records, the
// newest, and a watermark that covers the rest after a restart.
func TestRecordsBounded(t *testing.T) {
	f := newFixture(t)
	var paths []string
	for i := range 10 {
		p := f.write(strings.Repeat("x", i+1)+".stacktrace.log", trace)
		at := time.Unix(int64(1000+i), 0)
		os.Chtimes(p, at, at)
		f.ready(p)
		paths = append(paths, p)
	}
	recs, seen := f.p.Records(4)
	if len(recs) != 4 || seen != time.Unix(1005, 0).UnixNano() {
		t.Fatalf("%d records, seen before %v", len(recs), time.Unix(0, seen))
	}
	// A restart from those: nothing is counted again.
	g := &fixture{t: t, dir: f.dir, sink: &sink{}, groups: crash.NewGroups(), now: f.now}
	g.p = New(Config{Now: func() time.Time { return g.now }}, g.groups, g.sink)
	g.p.Restore(recs, seen)
	for _, p := range paths {
		g.ready(p)
	}
	g.synced()
	if n, _ := g.p.Files(); len(g.sink.panics) != 0 || n != 10 {
		t.Fatalf("after restart: %d counted again, %d files", len(g.sink.panics), n)
	}
	if r := g.p.files[paths[0]]; r.Status != decide.StatusCounted {
		t.Fatalf("a file below the watermark is %q", r.Status)
	}
}

// TestIncompleteAfter: an empty file and one with the panic message only
// wait, failing nothing, until they have been quiet for IncompleteAfter;
// then each is one failure. Growing restarts the wait.
func TestIncompleteAfter(t *testing.T) {
	f := newFixture(t)
	empty := f.write("empty.stacktrace.log", "")
	half := f.write("half.stacktrace.log", "runtime error: invalid memory address or nil pointer dereference\n")
	f.ready(empty)
	f.ready(half)
	f.now = f.now.Add(59 * time.Second)
	f.synced()
	appendFile(t, half, "goroutine 7 [running]:\n") // still cut, but it grew
	f.ready(half)
	f.now = f.now.Add(2 * time.Second)
	f.synced()
	if len(f.sink.failures) != 1 || f.sink.failures[0] != FailEmpty {
		t.Fatalf("after 61 s: failures %v, want the empty file only", f.sink.failures)
	}
	f.now = f.now.Add(time.Minute)
	f.synced()
	if len(f.sink.failures) != 2 || f.sink.failures[1] != FailIncomplete || len(f.sink.panics) != 0 {
		t.Fatalf("after a quiet minute: failures %v, panics %d", f.sink.failures, len(f.sink.panics))
	}
	f.synced()
	if len(f.sink.failures) != 2 {
		t.Fatal("failed twice")
	}
}

package watch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const trace = "runtime error: invalid memory address or nil pointer dereference\ngoroutine 7 [running]:\nruntime/debug.Stack()\n\t/usr/local/go/src/runtime/debug/stack.go:26 +0x5e\n"

// run starts a watcher and returns its event stream and a stop function that
// waits for Run to return.
func run(t *testing.T, cfg Config) (<-chan Event, *Watcher) {
	t.Helper()
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan Event, 100000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func(e Event) { events <- e }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return events, w
}

// next returns the next event that satisfies keep, failing after a timeout.
func next(t *testing.T, events <-chan Event, keep func(Event) bool) Event {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e := <-events:
			if keep(e) {
				return e
			}
		case <-timeout:
			t.Fatal("timed out waiting for an event")
		}
	}
}

func isOp(op Op) func(Event) bool { return func(e Event) bool { return e.Op == op } }

// quiet asserts that no event passing keep arrives for d.
func quiet(t *testing.T, events <-chan Event, d time.Duration, keep func(Event) bool) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case e := <-events:
			if keep(e) {
				t.Fatalf("unexpected event %+v", e)
			}
		case <-timeout:
			return
		}
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// renameIn writes content to a temp name in dir and renames it into place,
// the way the patched server writes stacktrace files.
func renameIn(t *testing.T, path, s string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	write(t, tmp, s)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestBacklogThenRenameIn(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * time.Hour) // quiet for longer than the settle period
	for i := range 3 {
		p := filepath.Join(dir, fmt.Sprintf("old%d.stacktrace.log", i))
		write(t, p, trace)
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(dir, "gameserver.log"), "{}\n") // not matching
	events, _ := run(t, Config{Dir: dir, Settle: time.Hour})

	got := map[string]bool{}
	for range 3 {
		e := next(t, events, isOp(Ready))
		got[filepath.Base(e.Path)] = true
	}
	s := next(t, events, isOp(Synced))
	if s.Reason != ReasonStart || len(s.Present) != 3 || len(got) != 3 {
		t.Fatalf("backlog: ready %v, synced %+v", got, s)
	}

	// Settle is an hour: only the rename path can report this file.
	p := filepath.Join(dir, "new.stacktrace.log")
	renameIn(t, p, trace)
	e := next(t, events, isOp(Ready))
	if e.Path != p || e.Info.Size() != int64(len(trace)) {
		t.Fatalf("rename-in: %+v", e)
	}
}

func TestCreateEmptyThenChunkedWrites(t *testing.T) {
	dir := t.TempDir()
	events, _ := run(t, Config{Dir: dir, Settle: 100 * time.Millisecond})
	next(t, events, isOp(Synced))

	p := filepath.Join(dir, "a.stacktrace.log")
	f, err := os.Create(p) // the Create event arrives before any content
	if err != nil {
		t.Fatal(err)
	}
	// Reported at once, empty: the consumer waits for it to fill.
	if e := next(t, events, isOp(Ready)); e.Info.Size() != 0 {
		t.Fatalf("created file first reported with %d bytes", e.Info.Size())
	}
	for i := 0; i < len(trace); i += 16 {
		if _, err := f.WriteString(trace[i:min(i+16, len(trace))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // well inside the settle period
	}
	e := next(t, events, isOp(Ready))
	if e.Info.Size() != int64(len(trace)) {
		t.Fatalf("reported before quiet: size %d of %d", e.Info.Size(), len(trace))
	}
	quiet(t, events, 300*time.Millisecond, isOp(Ready))

	// It grows after a pause longer than the settle period: reported again.
	if _, err := f.WriteString("more\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	e = next(t, events, isOp(Ready))
	if e.Info.Size() != int64(len(trace)+5) {
		t.Fatalf("growth: size %d", e.Info.Size())
	}
}

func TestRemovedFile(t *testing.T) {
	dir := t.TempDir()
	events, _ := run(t, Config{Dir: dir})
	next(t, events, isOp(Synced))
	p := filepath.Join(dir, "a.stacktrace.log")
	renameIn(t, p, trace)
	next(t, events, isOp(Ready))
	os.Remove(p)
	if e := next(t, events, isOp(Removed)); e.Path != p {
		t.Fatalf("removed %+v", e)
	}
}

func TestDirectoryMissingCreatedDeletedRecreated(t *testing.T) {
	for _, poll := range []bool{false, true} {
		t.Run(fmt.Sprintf("poll=%v", poll), func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "logs")
			events, _ := run(t, Config{Dir: dir, ForcePoll: poll, PollInterval: 20 * time.Millisecond})
			if s := next(t, events, isOp(Synced)); len(s.Present) != 0 {
				t.Fatalf("missing dir: %+v", s)
			}
			for round := range 2 {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				p := filepath.Join(dir, fmt.Sprintf("r%d.stacktrace.log", round))
				renameIn(t, p, trace)
				if e := next(t, events, isOp(Ready)); e.Path != p {
					t.Fatalf("round %d: %+v", round, e)
				}
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				if e := next(t, events, isOp(Removed)); e.Path != p {
					t.Fatalf("round %d: removed %+v", round, e)
				}
			}
		})
	}
}

func TestForcedPolling(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.stacktrace.log")
	write(t, old, trace)
	then := time.Now().Add(-time.Hour)
	os.Chtimes(old, then, then)
	events, w := run(t, Config{Dir: dir, ForcePoll: true, PollInterval: 20 * time.Millisecond, Settle: 30 * time.Millisecond})
	if e := next(t, events, func(Event) bool { return true }); e.Op != ModeChanged || !e.Polling {
		t.Fatalf("first event %+v", e)
	}
	if s := next(t, events, isOp(Synced)); s.Reason != ReasonStart || len(s.Present) != 1 {
		t.Fatalf("start scan %+v", s)
	}
	if !w.Polling() {
		t.Fatal("not polling")
	}
	p := filepath.Join(dir, "new.stacktrace.log")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(trace[:10])
	time.Sleep(5 * time.Millisecond)
	f.WriteString(trace[10:])
	f.Close()
	e := next(t, events, isOp(Ready))
	if e.Path != p || e.Info.Size() != int64(len(trace)) {
		t.Fatalf("polled %+v", e)
	}
	os.Remove(p)
	if e := next(t, events, isOp(Removed)); e.Path != p {
		t.Fatalf("removed %+v", e)
	}
}

// TestInotifyUnavailableFallsBackToPolling takes inotify away for real: with
// the descriptor limit at zero, inotify_init1 fails
// with EMFILE, as it does when a node runs out of inotify instances.
func TestInotifyUnavailableFallsBackToPolling(t *testing.T) {
	dir := t.TempDir()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = 0 // no new descriptor can be had until the limit is restored
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{Dir: dir, PollInterval: 20 * time.Millisecond, Settle: 10 * time.Millisecond})
	if rerr := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !w.Polling() {
		t.Fatal("watcher did not fall back to polling with no descriptors left")
	}
	events := make(chan Event, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func(e Event) { events <- e }) }()
	defer func() { cancel(); <-done }()
	if e := next(t, events, func(Event) bool { return true }); e.Op != ModeChanged || !e.Polling {
		t.Fatalf("first event %+v", e)
	}
	p := filepath.Join(dir, "a.stacktrace.log")
	write(t, p, trace)
	if e := next(t, events, isOp(Ready)); e.Path != p {
		t.Fatalf("polled %+v", e)
	}
}

// TestOverflowRescan floods the directory while the handler is blocked, so
// the kernel's inotify queue (fs.inotify.max_queued_events) overflows for
// real; the watcher must rescan and still report every file exactly once.
func TestOverflowRescan(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 20,000+ files")
	}
	limit := 16384
	if b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events"); err == nil {
		fmt.Sscan(strings.TrimSpace(string(b)), &limit)
	}
	n := limit + limit/4 // each file makes four events (tmp create, write, rename out and in): 5× the queue
	dir := t.TempDir()
	w, err := New(Config{Dir: dir, Settle: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		ready    = map[string]int{}
		overflow int
	)
	gate := make(chan struct{})
	var once sync.Once
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- w.Run(ctx, func(e Event) {
			if e.Op == Synced && e.Reason == ReasonStart {
				close(started)
				return
			}
			once.Do(func() { <-gate }) // block on the first event of the flood
			mu.Lock()
			defer mu.Unlock()
			switch {
			case e.Op == Ready:
				ready[e.Path]++
			case e.Op == Synced && e.Reason == ReasonOverflow:
				overflow++
			}
		})
	}()
	defer func() { cancel(); <-done }()
	<-started
	// Renamed in, so each file has one content from the moment it appears:
	// reported once, however many events and rescans see it.
	for i := range n {
		renameIn(t, filepath.Join(dir, fmt.Sprintf("f%06d.stacktrace.log", i)), trace)
	}
	close(gate)
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		got, ov := len(ready), overflow
		mu.Unlock()
		if got == n && ov > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ready %d of %d files, %d overflow rescans", got, n, ov)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // late duplicates would show up here
	mu.Lock()
	defer mu.Unlock()
	for p, c := range ready {
		if c != 1 {
			t.Fatalf("%s reported %d times", p, c)
		}
	}
}

func TestBadConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("no dir accepted")
	}
	if _, err := New(Config{Dir: t.TempDir(), Pattern: "["}); err == nil {
		t.Fatal("bad pattern accepted")
	}
}

// TestRenameFromOutside: a file moved in from an unwatched directory gives
// no rename pairing, and needs none: it is reported at once, without
// waiting for the (hour-long) settle period.
func TestRenameFromOutside(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	events, _ := run(t, Config{Dir: dir, Settle: time.Hour})
	next(t, events, isOp(Synced))
	src := filepath.Join(outside, "x")
	write(t, src, trace)
	p := filepath.Join(dir, "moved.stacktrace.log")
	if err := os.Rename(src, p); err != nil {
		t.Fatal(err)
	}
	e := next(t, events, isOp(Ready))
	if e.Path != p || e.Info.Size() != int64(len(trace)) {
		t.Fatalf("moved in: %+v", e)
	}
}

// TestRescanIsASyncPoint: Rescan returns after the scan's events were
// handled, whatever the settle period.
func TestRescanIsASyncPoint(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var synced []Event
	w, err := New(Config{Dir: dir, Settle: time.Hour, ForcePoll: true, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- w.Run(ctx, func(e Event) {
			mu.Lock()
			defer mu.Unlock()
			if e.Op == Synced {
				synced = append(synced, e)
			}
		})
	}()
	defer func() { cancel(); <-done }()
	write(t, filepath.Join(dir, "a.stacktrace.log"), trace) // fresh: inside the settle period
	if err := w.Rescan(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	last := synced[len(synced)-1]
	if last.Reason != ReasonRequest || len(last.Present) != 1 {
		t.Fatalf("after Rescan: %+v", synced)
	}
}

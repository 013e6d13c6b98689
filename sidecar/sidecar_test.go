package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/stackwatch/stackwatch/internal/fsutil"
	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/ingest"
	"github.com/stackwatch/stackwatch/sidecar/retention"
	"github.com/stackwatch/stackwatch/sidecar/stacktrace"
	"github.com/stackwatch/stackwatch/sidecar/state"
)

func dirs(t *testing.T) (logDir, dataDir string) {
	root := t.TempDir()
	return filepath.Join(root, "logs"), filepath.Join(root, "data")
}

// TestIngestLegacyAndPatchedWriters writes panic files both ways the server
// does (legacy: create, then write in place; patched: temp file renamed in)
// and checks metrics, groups and the HTTP API.
func TestIngestLegacyAndPatchedWriters(t *testing.T) {
	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	h := start(t, Config{LogDir: logDir, DataDir: dataDir, Settle: 20 * time.Millisecond})
	legacy, patched := recorder(logDir, true), recorder(logDir, false)
	for i := range 6 {
		legacy.crash(t, 0)
		patched.crash(t, 0)
		if i%2 == 0 {
			patched.crash(t, 1)
		}
	}
	h.waitValue(metrics.Panics, 15)
	if got := h.value(metrics.Panics, metrics.LabelKind, stacktrace.KindNilDereference, metrics.LabelCrashSite, "sidecar.writeTo"); got != 12 {
		t.Errorf("nil dereference panics at sidecar.writeTo: %v", got)
	}
	if got := h.value(metrics.Panics, metrics.LabelKind, stacktrace.KindIndexOutOfRange, metrics.LabelCrashSite, "sidecar.settle"); got != 3 {
		t.Errorf("index panics at sidecar.settle: %v", got)
	}
	var size int64
	var newest time.Time
	for _, p := range files(t, logDir) {
		fi, _ := os.Stat(p)
		size += fi.Size()
		// The recorder's file names carry the panic's time.
		if at := crash.TimeOf(p, time.Time{}); at.After(newest) {
			newest = at
		}
	}
	if got := h.value(metrics.StacktraceFiles); got != 15 {
		t.Errorf("files gauge %v", got)
	}
	if got := h.value(metrics.StacktraceBytes); got != float64(size) {
		t.Errorf("bytes gauge %v, want %d", got, size)
	}
	if got := h.value(metrics.LastPanicTimestamp); got != float64(newest.UnixNano())/1e9 {
		t.Errorf("last panic %v, want %v", got, float64(newest.UnixNano())/1e9)
	}
	if got := h.value(metrics.CrashGroups); got != 2 {
		t.Errorf("crash groups %v", got)
	}
	if got := h.value(metrics.ParseFailures); got != 0 {
		t.Errorf("parse failures %v:\n%s", got, h.logs.String())
	}
	// The exposition itself, as Prometheus reads it.
	if err := testutil.GatherAndCompare(h.s.Gatherer(), strings.NewReader(`
# HELP stackwatch_crash_groups Distinct crash groups known.
# TYPE stackwatch_crash_groups gauge
stackwatch_crash_groups 2
# HELP stackwatch_stacktrace_files Stacktrace files on disk now.
# TYPE stackwatch_stacktrace_files gauge
stackwatch_stacktrace_files 15
# HELP stackwatch_watch_polling 1 while the watcher polls because inotify could not be had.
# TYPE stackwatch_watch_polling gauge
stackwatch_watch_polling 0
`), metrics.CrashGroups.Name, metrics.StacktraceFiles.Name, metrics.WatchPolling.Name); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(h.s.Gatherer()); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	// HTTP: the API, health, readiness and a lint-clean /metrics.
	srv := httptest.NewServer(h.s.Handler())
	defer srv.Close()
	var resp CrashesResponse
	getJSON(t, srv.URL+"/api/v1/crashes", &resp)
	if resp.Service != "wilddiggr" || !resp.Ready || resp.Files != 15 || len(resp.Groups) != 2 {
		t.Fatalf("crashes: %+v", resp)
	}
	g := resp.Groups[0]
	if g.Count != 12 || !g.NilReceiver || !strings.HasSuffix(g.CrashSite.Function, "sidecar.writeTo") ||
		g.CrashSite.Line == 0 || g.Kind != stacktrace.KindNilDereference || len(g.Files) != 12 {
		t.Fatalf("nil session group: %+v", g)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if r, err := http.Get(srv.URL + path); err != nil || r.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, r, err)
		} else {
			r.Body.Close()
		}
	}
	r, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	problems, err := promlint.New(r.Body).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "stackwatch_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
	// Go and process collectors carry the service label too.
	if v := value(t, h.s.Gatherer(), metrics.GoGoroutines); v <= 0 {
		t.Errorf("go_goroutines %v", v)
	}
	if v := value(t, h.s.Gatherer(), metrics.ProcessResidentMemory); v <= 0 {
		t.Errorf("process_resident_memory_bytes %v", v)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if r.StatusCode != 200 {
		t.Fatalf("%s: %s", url, r.Status)
	}
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestCreateBeforeContentAndChunkedWrites(t *testing.T) {
	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	h := start(t, Config{LogDir: logDir, DataDir: dataDir, Settle: 30 * time.Millisecond})
	// A real trace, written by hand in chunks with pauses both shorter and
	// longer than the settle period.
	src := recorder(t.TempDir(), false).crash(t, 0)
	content, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(logDir, "chunked.stacktrace.log")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h.sync() // read while empty: not a failure
	nl := bytes.IndexByte(content, '\n') + 1
	f.Write(content[:nl]) // the panic message only
	h.sync()
	for i := nl; i < len(content); i += 64 {
		f.Write(content[i:min(i+64, len(content))])
		if i%256 == 0 {
			h.sync() // read mid-write now and then, as a settle timer would
		}
	}
	f.Close()
	h.waitValue(metrics.Panics, 1)
	// It grows again later: still one panic, and no failure along the way.
	appendFile(t, p, "\n")
	h.sync()
	if got := h.value(metrics.Panics); got != 1 {
		t.Fatalf("counted %v panics for one growing file", got)
	}
	if got := h.value(metrics.ParseFailures); got != 0 {
		t.Fatalf("parse failures %v", got)
	}
	if g := h.groups(); len(g) != 1 || g[0].Count != 1 || !g[0].NilReceiver {
		t.Fatalf("groups %+v", g)
	}
}

func appendFile(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// TestIdenticalContent: files that share their first line, or even all of
// their content, are separate panics.
func TestIdenticalContent(t *testing.T) {
	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	h := start(t, Config{LogDir: logDir, DataDir: dataDir})
	content, _ := os.ReadFile(recorder(t.TempDir(), false).crash(t, 0))
	for i := range 5 {
		renameIn(t, filepath.Join(logDir, fmt.Sprintf("copy%d.stacktrace.log", i)), content)
	}
	h.waitValue(metrics.Panics, 5)
	h.sync()
	if got := h.value(metrics.Panics); got != 5 {
		t.Fatalf("counted %v", got)
	}
}

func renameIn(t testing.TB, path string, content []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func ino(t testing.TB, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fsutil.IDOf(fi).Ino
}

// TestInodeReuse deletes a counted file and writes a new one under the same
// name that the file system gives the same inode: a new panic, whether the
// sidecar saw the deletion or was down at the time.
func TestInodeReuse(t *testing.T) {
	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	cfg := Config{LogDir: logDir, DataDir: dataDir, Settle: 20 * time.Millisecond}
	h := start(t, cfg)
	w := recorder(t.TempDir(), false)
	a, _ := os.ReadFile(w.crash(t, 0))
	b, _ := os.ReadFile(w.crash(t, 0)) // same site and first line, other goroutine id
	p := filepath.Join(logDir, "same-name.stacktrace.log")
	want, tries := 0.0, 0
	for reused := false; !reused; tries++ {
		if tries == 20 {
			t.Skip("the file system never reused the inode; the identity check was not exercised")
		}
		os.WriteFile(p, a, 0o644)
		want++
		h.waitValue(metrics.Panics, want)
		first := ino(t, p)
		os.Remove(p)
		os.WriteFile(p, b, 0o644)
		want++
		h.waitValue(metrics.Panics, want)
		reused = ino(t, p) == first
		if !reused {
			os.Remove(p)
			h.waitValue(metrics.StacktraceFiles, 0)
		}
	}
	t.Logf("inode reused after %d tries", tries)

	// Now while the sidecar is down: same name, same inode, same size.
	h.stop()
	before := ino(t, p)
	// Another panic of exactly the same size: the goroutine id's first digit changes.
	c := bytes.Clone(b)
	i := bytes.Index(c, []byte("goroutine ")) + len("goroutine ")
	c[i] = '1' + (c[i]-'0')%9
	os.Remove(p)
	os.WriteFile(p, c, 0o644)
	if ino(t, p) != before {
		t.Logf("inode not reused while down (%d != %d); still a new file by content", ino(t, p), before)
	}
	h = start(t, cfg)
	h.waitValue(metrics.Panics, want+1)
}

// TestOverflowFlood blocks ingestion (OnPanics runs on the ingest
// goroutine) while more files arrive than the kernel's inotify queue holds:
// the real overflow forces a rescan and every file is counted exactly once.
func TestOverflowFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 20,000+ files")
	}
	limit := 16384
	if b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events"); err == nil {
		fmt.Sscan(strings.TrimSpace(string(b)), &limit)
	}
	n := limit + limit/4
	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	gate := make(chan struct{})
	var once sync.Once
	h := start(t, Config{LogDir: logDir, DataDir: dataDir, Settle: 20 * time.Millisecond,
		OnPanics: func(int) { once.Do(func() { <-gate }) }})
	h.timeout = 2 * time.Minute // 20,000 files through -race on a shared machine
	content, _ := os.ReadFile(recorder(t.TempDir(), false).crash(t, 0))
	for i := range n {
		renameIn(t, filepath.Join(logDir, fmt.Sprintf("flood%06d.stacktrace.log", i)), content)
	}
	close(gate)
	h.waitAtLeast(metrics.Rescans, 1, metrics.LabelReason, "overflow")
	h.waitValue(metrics.Panics, float64(n))
	h.waitValue(metrics.StacktraceFiles, float64(n))
	h.sync()
	if got := h.value(metrics.Panics); got != float64(n) {
		t.Fatalf("counted %v of %d", got, n)
	}
}

// TestRestartNoDoubleCount stops and restarts the sidecar over the same
// directories, with files written while it was down.
func TestRestartNoDoubleCount(t *testing.T) {
	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	w := recorder(logDir, true)
	cfg := Config{LogDir: logDir, DataDir: dataDir, Settle: 20 * time.Millisecond}
	h := start(t, cfg)
	for range 5 {
		w.crash(t, 0)
	}
	h.waitValue(metrics.Panics, 5)
	appendFile(t, filepath.Join(logDir, "gameserver.log"), closedLine("p1"))
	h.waitValue(metrics.ClosedSessionWarnings, 1)
	h.stop()

	for range 2 { // while the sidecar is down
		w.crash(t, 1)
	}
	appendFile(t, filepath.Join(logDir, "gameserver.log"), closedLine("p2"))
	h = start(t, cfg)
	h.waitValue(metrics.Panics, 7)
	h.waitValue(metrics.ClosedSessionWarnings, 2)
	w.crash(t, 0)
	h.waitValue(metrics.Panics, 8)
	h.sync()
	if got := h.value(metrics.Panics, metrics.LabelKind, stacktrace.KindNilDereference); got != 6 {
		t.Fatalf("nil dereference count %v after restart", got)
	}
	if got := h.value(metrics.ClosedSessionWarnings); got != 2 {
		t.Fatalf("closed-session warnings %v after restart", got)
	}
	groups := h.groups()
	total := 0
	for _, g := range groups {
		total += g.Count
	}
	if len(groups) != 2 || total != 8 {
		t.Fatalf("groups after restart: %d groups, %d panics", len(groups), total)
	}
	if l := h.s.Loaded(); l.Fresh || l.Corrupt {
		t.Fatalf("second start loaded %+v", l)
	}
}

// closedLine is the game server's closed-session warning as its slog JSON
// handler writes it.
func closedLine(player string) string {
	var b bytes.Buffer
	slog.New(slog.NewJSONHandler(&b, nil)).Warn(ClosedSessionMsg, "player", player)
	return b.String()
}

// TestCorruptState applies the documented policy: the file is moved aside,
// files already there are grouped but not counted again, new ones count.
func TestCorruptState(t *testing.T) {
	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	os.MkdirAll(dataDir, 0o755)
	w := recorder(logDir, false)
	for range 3 {
		w.crash(t, 0)
	}
	appendFile(t, filepath.Join(logDir, "gameserver.log"), closedLine("old"))
	os.WriteFile(filepath.Join(dataDir, state.FileName), []byte("{\"version\":1,\"files\":{\x00garbage"), 0o600)
	h := start(t, Config{LogDir: logDir, DataDir: dataDir, Settle: 20 * time.Millisecond})
	if !h.s.Loaded().Corrupt {
		t.Fatal("corrupt state not detected")
	}
	if m, _ := filepath.Glob(filepath.Join(dataDir, state.FileName+".corrupt-*")); len(m) != 1 {
		t.Fatalf("corrupt file not kept: %v", m)
	}
	if !strings.Contains(h.logs.String(), "moved aside") {
		t.Fatal("no log line about the corrupt state")
	}
	h.wait("backlog grouped", func() bool { g := h.groups(); return len(g) == 1 && g[0].Count == 3 })
	if got := h.value(metrics.Panics); got != 0 {
		t.Fatalf("backlog counted again: %v", got)
	}
	w.crash(t, 0)
	h.waitValue(metrics.Panics, 1)
	appendFile(t, filepath.Join(logDir, "gameserver.log"), closedLine("new"))
	h.waitValue(metrics.ClosedSessionWarnings, 1)
	h.stop()
	// The rebuilt state is good from now on.
	if _, l, err := mustStore(t, dataDir).Load(); err != nil || l.Corrupt {
		t.Fatalf("state after rebuild: %+v %v", l, err)
	}
}

func mustStore(t *testing.T, dir string) *state.Store {
	s, err := state.NewStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestGarbageBinaryAndHugeFiles: bad files are counted as parse failures
// with a log line, never stop the sidecar, and memory stays bounded even
// for 100 MB files.
func TestGarbageBinaryAndHugeFiles(t *testing.T) {
	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	h := start(t, Config{LogDir: logDir, DataDir: dataDir, Settle: 20 * time.Millisecond})
	renameIn(t, filepath.Join(logDir, "garbage.stacktrace.log"), []byte("this is not\na panic at all\n"))
	renameIn(t, filepath.Join(logDir, "binary.stacktrace.log"), []byte("\x7fELF\x00\x01\x02\xff\xfe"))
	h.waitValue(metrics.ParseFailures, 1, metrics.LabelReason, ingest.FailNotPanic)
	h.waitValue(metrics.ParseFailures, 1, metrics.LabelReason, ingest.FailBinary)

	trace, _ := os.ReadFile(recorder(t.TempDir(), false).crash(t, 0))
	const huge = 100 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	writeHuge(t, filepath.Join(logDir, "huge-panic.stacktrace.log"), trace, huge)
	writeHuge(t, filepath.Join(logDir, "huge-garbage.stacktrace.log"), []byte("garbage\n"), huge)
	h.waitValue(metrics.Panics, 1)
	h.waitValue(metrics.ParseFailures, 2, metrics.LabelReason, ingest.FailNotPanic)
	runtime.ReadMemStats(&after)
	// Two 100 MB files went through; the sidecar may allocate a few read
	// limits' worth, not the files.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8*stacktrace.DefaultMaxBytes+(8<<20) {
		t.Fatalf("allocated %d MB ingesting two 100 MB files", alloc>>20)
	}
	h.waitAtLeast(metrics.StacktraceBytes, 2*huge)
	if !strings.Contains(h.logs.String(), "larger than the read limit") {
		t.Fatal("no log line for the truncated file")
	}
	// Still working.
	recorder(logDir, false).crash(t, 0)
	h.waitValue(metrics.Panics, 2)
}

// writeHuge writes head then filler up to size bytes, in place, in 1 MB
// chunks, the way a runaway writer would.
func writeHuge(t *testing.T, path string, head []byte, size int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(head)
	chunk := bytes.Repeat([]byte("filler line that keeps going and going\n"), 1<<20/40)
	for n := len(head); n < size; n += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIncompleteFileBecomesFailure: a file that stays empty, or holds only a
// panic message, is a parse failure after IncompleteAfter (the wait itself
// is ingest's TestIncompleteAfter, on a fake clock), found by the timer's
// rescans.
func TestIncompleteFileBecomesFailure(t *testing.T) {
	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	h := start(t, Config{LogDir: logDir, DataDir: dataDir, Settle: 10 * time.Millisecond,
		RescanInterval: 50 * time.Millisecond, IncompleteAfter: 200 * time.Millisecond})
	os.WriteFile(filepath.Join(logDir, "empty.stacktrace.log"), nil, 0o644)
	os.WriteFile(filepath.Join(logDir, "half.stacktrace.log"), []byte("runtime error: invalid memory address or nil pointer dereference\n"), 0o644)
	h.waitValue(metrics.ParseFailures, 1, metrics.LabelReason, ingest.FailEmpty)
	h.waitValue(metrics.ParseFailures, 1, metrics.LabelReason, ingest.FailIncomplete)
	h.waitAtLeast(metrics.Rescans, 2, metrics.LabelReason, "timer")
}

func TestDirectoryLifecycle(t *testing.T) {
	logDir, dataDir := dirs(t)
	h := start(t, Config{LogDir: logDir, DataDir: dataDir, Settle: 20 * time.Millisecond})
	for round := 1; round <= 2; round++ {
		if err := os.Mkdir(logDir, 0o755); err != nil {
			t.Fatal(err)
		}
		w := recorder(logDir, round == 1)
		w.crash(t, 0)
		w.crash(t, 0)
		h.waitValue(metrics.Panics, float64(2*round))
		h.waitValue(metrics.StacktraceFiles, 2)
		os.RemoveAll(logDir)
		h.waitValue(metrics.StacktraceFiles, 0)
	}
	if got := h.value(metrics.Rescans, metrics.LabelReason, "recreated"); got < 2 {
		t.Fatalf("recreated rescans %v", got)
	}
}

func TestPollingMode(t *testing.T) {
	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	h := start(t, Config{LogDir: logDir, DataDir: dataDir, ForcePoll: true, PollInterval: 20 * time.Millisecond, Settle: 20 * time.Millisecond})
	h.waitValue(metrics.WatchPolling, 1)
	w := recorder(logDir, true)
	for range 4 {
		w.crash(t, 0)
	}
	h.waitValue(metrics.Panics, 4)
	os.Remove(files(t, logDir)[0])
	h.waitValue(metrics.StacktraceFiles, 3)
}

func TestRetention(t *testing.T) {
	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	w := recorder(logDir, false)
	var paths []string
	var deleted int64
	for i := range 6 {
		p := w.crash(t, 0)
		setOld(t, p, time.Duration(10-i)*24*time.Hour) // 10 days old down to 5
		paths = append(paths, p)
		if fi, err := os.Stat(p); err == nil && i < 4 {
			deleted += fi.Size()
		}
	}
	h := start(t, Config{LogDir: logDir, DataDir: dataDir, RetentionInterval: 20 * time.Millisecond,
		Retention: retention.Policy{MaxAge: 8*24*time.Hour + time.Hour, MaxFiles: 2}})
	h.waitValue(metrics.RetentionDeletedFiles, 2, metrics.LabelReason, retention.ReasonAge)
	h.waitValue(metrics.RetentionDeletedFiles, 2, metrics.LabelReason, retention.ReasonCount)
	h.waitValue(metrics.StacktraceFiles, 2)
	left := files(t, logDir)
	if len(left) != 2 || !slices.Contains(left, paths[4]) || !slices.Contains(left, paths[5]) {
		t.Fatalf("kept %v, want the two newest", left)
	}
	if got := h.value(metrics.RetentionDeletedBytes); got != float64(deleted) {
		t.Fatalf("deleted bytes %v, want %d", got, deleted)
	}
	if got := h.value(metrics.Panics); got != 6 {
		t.Fatalf("panics %v: retention must not change counts", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{LogDir: "l", DataDir: "d"},
		{Service: "s", DataDir: "d"},
		{Service: "s", LogDir: "l"},
		{Service: "s", LogDir: "l", DataDir: "d", Pattern: "["},
		{Service: "s", LogDir: "l", DataDir: "d", Retention: retention.Policy{MaxFiles: -1}},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestExtensionHooks covers what the goroutine profiler plugs into: extra
// routes, collectors with the service label, components and OnPanics.
func TestExtensionHooks(t *testing.T) {
	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	var panics, hooked atomic.Int64
	ran := make(chan struct{})
	stopped := make(chan struct{})
	cfg := Config{Service: "goldenclover", LogDir: logDir, DataDir: dataDir,
		OnPanics: func(n int) { panics.Add(int64(n)) },
		Components: []Component{ComponentFunc(func(ctx context.Context) error {
			close(ran)
			<-ctx.Done()
			close(stopped)
			return nil
		})},
	}
	cfg.Auth = func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer s3cret" {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	h := startWith(t, cfg, func(s *Sidecar) {
		s.AddPanicHook(func(n int) { hooked.Add(int64(n)) })
		s.AddComponent(ComponentFunc(func(ctx context.Context) error { <-ctx.Done(); return nil }))
	})
	<-ran
	h.s.Mux().HandleFunc("GET /api/v1/extra/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.PathValue("id")))
	})
	extra := metrics.Dumps.NewGauge()
	if err := h.s.Registerer().Register(extra); err != nil {
		t.Fatal(err)
	}
	extra.Set(3)
	if got := value(t, h.s.Gatherer(), metrics.Dumps); got != 3 {
		t.Fatalf("extra collector: %v", got)
	}
	srv := httptest.NewServer(h.s.Handler())
	defer srv.Close()
	r, err := http.Get(srv.URL + "/api/v1/extra/42")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if string(b) != "42" {
		t.Fatalf("extra route: %q", b)
	}
	w := recorder(logDir, false)
	for range 3 {
		w.crash(t, 2)
	}
	h.waitValue(metrics.Panics, 3, metrics.LabelKind, stacktrace.KindCustom)
	if got, got2 := panics.Load(), hooked.Load(); got != 3 || got2 != 3 {
		t.Fatalf("OnPanics saw %d, the added hook %d", got, got2)
	}
	// Auth guards the API, not /metrics.
	for path, want := range map[string]int{"/api/v1/crashes": 401, "/metrics": 200, "/readyz": 200} {
		r, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != want {
			t.Errorf("%s without token: %d, want %d", path, r.StatusCode, want)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/crashes", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 200 {
		t.Fatalf("with token: %v %v", r, err)
	} else {
		r.Body.Close()
	}
	h.stop()
	select {
	case <-stopped:
	default:
		t.Fatal("component not stopped with the sidecar")
	}
}

// TestServerLogRotation: closed-session warnings are counted exactly across
// logrotate's rename rotation and copytruncate, and across a restart.
func TestServerLogRotation(t *testing.T) {
	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	log := filepath.Join(logDir, "gameserver.log")
	cfg := Config{LogDir: logDir, DataDir: dataDir, TailInterval: 10 * time.Millisecond}
	h := start(t, cfg)
	appendFile(t, log, closedLine("a")+`{"msg":"bet settled"}`+"\n"+closedLine("b"))
	h.waitValue(metrics.ClosedSessionWarnings, 2)

	// Rename rotation with lines written just before it.
	appendFile(t, log, closedLine("c"))
	os.Rename(log, log+".1")
	appendFile(t, log, closedLine("d"))
	h.waitValue(metrics.ClosedSessionWarnings, 4)

	// copytruncate.
	b, _ := os.ReadFile(log)
	os.WriteFile(log+".2", b, 0o644)
	os.Truncate(log, 0)
	appendFile(t, log, closedLine("e")+closedLine("f"))
	h.waitValue(metrics.ClosedSessionWarnings, 6)

	h.stop()
	appendFile(t, log, closedLine("g"))
	h = start(t, cfg)
	h.waitValue(metrics.ClosedSessionWarnings, 7)
	// The log is read in order, so once a line written now is counted, any
	// double count of the earlier ones would show: a sync point by data.
	appendFile(t, log, `{"msg":"bet settled"}`+"\n"+closedLine("h"))
	h.waitValue(metrics.ClosedSessionWarnings, 8)
}

// TestLandingPageAndUI: / is a landing page linking the endpoints, or,
// with Config.UI, the UI at / and /ui/ behind the API's auth.
func TestLandingPageAndUI(t *testing.T) {
	logDir, dataDir := dirs(t)
	h := start(t, Config{LogDir: logDir, DataDir: dataDir})
	srv := httptest.NewServer(h.s.Handler())
	defer srv.Close()
	r, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || !strings.Contains(string(body), `href="/api/v1/crashes"`) {
		t.Fatalf("landing page: %d %s", r.StatusCode, body)
	}
	h.stop()

	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ui "+r.URL.Path) })
	deny := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") == "" {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	h = start(t, Config{LogDir: logDir, DataDir: t.TempDir(), UI: ui, Auth: deny})
	srv2 := httptest.NewServer(h.s.Handler())
	defer srv2.Close()
	for path, want := range map[string]string{"/": "ui /", "/ui/groups/x": "ui /ui/groups/x"} {
		req, _ := http.NewRequest("GET", srv2.URL+path, nil)
		if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 401 {
			t.Fatalf("%s without auth: %v %v", path, r, err)
		} else {
			r.Body.Close()
		}
		req.Header.Set("Authorization", "Bearer x")
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if string(b) != want {
			t.Fatalf("%s: %q, want %q", path, b, want)
		}
	}
	if r, err := http.Get(srv2.URL + "/metrics"); err != nil || r.StatusCode != 200 {
		t.Fatalf("/metrics behind the UI: %v %v", r, err)
	} else {
		r.Body.Close()
	}
}

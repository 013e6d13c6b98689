package gameserver

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

func TestCaptureCrashesNamesRemovesAndKeeps(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A pid no process has: past the kernel's limit.
	gone := write("fatal-20260101T000000.000Z-2147483647.stacktrace.log", "")
	// Our own pid: an earlier process that had it (pid 1 in a restarted container).
	mine := write("fatal-20260101T000001.000Z-"+strconv.Itoa(os.Getpid())+".stacktrace.log", "")
	// A live process (our parent) may still crash into its file.
	live := write("fatal-20260101T000002.000Z-"+strconv.Itoa(os.Getppid())+".stacktrace.log", "")
	crashed := write("fatal-20260101T000003.000Z-2147483647.stacktrace.log", "fatal error: concurrent map writes\n")
	other := write("wilddiggr-20260101T000004.000000000Z-g7-1.stacktrace.log", "")

	start := time.Date(2026, 2, 3, 19, 0, 16, 678e6, time.UTC)
	c, err := CaptureCrashes(dir, start)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "fatal-20260203T190016.678Z-"+strconv.Itoa(os.Getpid())+".stacktrace.log")
	if c.Path() != want {
		t.Errorf("path %s, want %s", c.Path(), want)
	}
	if !regexp.MustCompile(`^fatal-\d{8}T\d{6}\.\d{3}Z-\d+\.stacktrace\.log$`).MatchString(filepath.Base(c.Path())) {
		t.Errorf("name %s", filepath.Base(c.Path()))
	}
	for p, keep := range map[string]bool{gone: false, mine: false, live: true, crashed: true, other: true, c.Path(): true} {
		if _, err := os.Stat(p); (err == nil) != keep {
			t.Errorf("%s: exists=%v, want %v", filepath.Base(p), err == nil, keep)
		}
	}
	// Clean shutdown: the empty file goes; no crash output remains set.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Path()); !os.IsNotExist(err) {
		t.Errorf("after Close: %v", err)
	}
}

// A file that received a crash stays after Close.
func TestCrashOutputCloseKeepsWrittenFile(t *testing.T) {
	dir := t.TempDir()
	c, err := CaptureCrashes(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.Path(), []byte("fatal error: all goroutines are asleep - deadlock!\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Path()); err != nil {
		t.Errorf("a written crash file was removed: %v", err)
	}
}

// An earlier crash under the same name (same pid, same millisecond) is
// never truncated.
func TestCaptureCrashesKeepsEarlierCrash(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	name := "fatal-" + start.UTC().Format("20060102T150405.000Z") + "-" + strconv.Itoa(os.Getpid()) + ".stacktrace.log"
	const trace = "fatal error: concurrent map writes\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(trace), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := CaptureCrashes(dir, start); err == nil {
		c.Close()
		t.Fatal("opened a file over an earlier crash")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != trace {
		t.Errorf("earlier crash now holds %q", b)
	}
}

func TestCaptureCrashesUnwritableDir(t *testing.T) {
	if _, err := CaptureCrashes(filepath.Join(t.TempDir(), "missing"), time.Now()); err == nil {
		t.Fatal("no error for a missing directory")
	}
}

func TestFatalFilePID(t *testing.T) {
	for name, want := range map[string]int{
		"fatal-20260203T190016.678Z-42.stacktrace.log": 42,
		"fatal-20260203T190016.678Z-x.stacktrace.log":  0,
		"fatal-nodash.stacktrace.log":                  0,
		"fatal--0.stacktrace.log":                      0,
	} {
		if got, ok := fatalFilePID(name); got != want || ok != (want > 0) {
			t.Errorf("%s: %d %v, want %d", name, got, ok, want)
		}
	}
}

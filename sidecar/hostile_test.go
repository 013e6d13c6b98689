package sidecar

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/ingest"
)

// TestSymlinkAndFIFOSwaps renames symlinks (to a panic outside the log
// directory) and FIFOs over stacktrace files again and again while the
// sidecar runs: it never follows, never blocks, and never counts them.
func TestSymlinkAndFIFOSwaps(t *testing.T) {
	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	h := start(t, Config{LogDir: logDir, DataDir: dataDir, Settle: time.Millisecond})
	w := recorder(t.TempDir(), false)
	secret, _ := os.ReadFile(w.crash(t, 1)) // index out of range at sidecar.settle
	outside := filepath.Join(t.TempDir(), "secret.stacktrace.log")
	os.WriteFile(outside, secret, 0o600)
	trace, _ := os.ReadFile(w.crash(t, 0))

	for i := range 50 {
		p := filepath.Join(logDir, "swap.stacktrace.log")
		renameIn(t, p, trace)
		tmp := filepath.Join(logDir, ".swap.tmp")
		if i%2 == 0 {
			if err := os.Symlink(outside, tmp); err != nil {
				t.Fatal(err)
			}
		} else if err := syscall.Mkfifo(tmp, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			h.sync()
		}
	}
	h.sync()
	if got := h.value(metrics.Panics, metrics.LabelCrashSite, "sidecar.settle"); got != 0 {
		t.Fatalf("the file outside the log directory was counted %v times", got)
	}
	for _, g := range h.groups() {
		if strings.Contains(g.Example, "sidecar.settle") {
			t.Fatal("the outside file's text is served as an example")
		}
	}
	if got := h.value(metrics.ParseFailures); got != 0 {
		t.Fatalf("parse failures %v", got)
	}
	if got := h.value(metrics.StacktraceFiles); got != 0 {
		t.Fatalf("a swapped-in file is counted as a stacktrace file: %v", got)
	}
}

// TestFIFOServerLogDoesNotBlockShutdown: a FIFO with no writer as
// gameserver.log neither blocks the tailer nor the sidecar's shutdown.
func TestFIFOServerLogDoesNotBlockShutdown(t *testing.T) {
	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	if err := syscall.Mkfifo(filepath.Join(logDir, DefaultServerLog), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	h := start(t, Config{LogDir: logDir, DataDir: dataDir, TailInterval: time.Millisecond})
	recorder(logDir, false).crash(t, 0)
	h.waitValue(metrics.Panics, 1) // the rest of the sidecar works
	h.wait("the tailer's complaint", func() bool { return strings.Contains(h.logs.String(), "cannot read server log") })
	stopped := make(chan struct{})
	go func() { h.stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown blocked")
	}
}

// TestSlowAppend: a panic file appended 20 bytes at a time is read at every
// step (a sync point after each write stands in for the 50 ms pauses), and
// counted once, at its real crash site.
func TestSlowAppend(t *testing.T) {
	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	h := start(t, Config{LogDir: logDir, DataDir: dataDir, Settle: time.Millisecond})
	trace, _ := os.ReadFile(recorder(t.TempDir(), false).crash(t, 0))
	p := filepath.Join(logDir, "slow.stacktrace.log")
	for i := 0; i < len(trace); i += 20 {
		appendFile(t, p, string(trace[i:min(i+20, len(trace))]))
		h.sync()
		if got := h.value(metrics.Panics); got != 0 && i+20 < len(trace) {
			t.Fatalf("counted after %d of %d bytes: %+v", i+20, len(trace), h.groups())
		}
	}
	h.sync()
	g := h.groups()
	if got := h.value(metrics.Panics, metrics.LabelCrashSite, "sidecar.writeTo"); got != 1 || len(g) != 1 || g[0].Count != 1 {
		t.Fatalf("panics at sidecar.writeTo %v, groups %+v", got, g)
	}
	if got := h.value(metrics.ParseFailures); got != 0 {
		t.Fatalf("parse failures %v", got)
	}
}

// chmodChild names the environment variable that makes TestChmodReadable
// run its scenario in a child process with dropped privileges.
const chmodChild = "STACKWATCH_CHMOD_CHILD"

// TestChmodReadable: a file unreadable at first is one "unreadable"
// failure, and once chmod 644 makes it readable it is counted at the next
// rescan; another unreadable file put in an unreadable one's place is
// another failure. Root reads everything, so as root the scenario runs in a copy of
// this test binary as the user nobody.
func TestChmodReadable(t *testing.T) {
	base := os.Getenv(chmodChild)
	if base == "" && os.Geteuid() == 0 {
		runAsNobody(t, "TestChmodReadable")
		return
	}
	if base == "" {
		base = t.TempDir()
	}
	logDir, dataDir := filepath.Join(base, "logs"), filepath.Join(base, "data")
	os.MkdirAll(logDir, 0o755)
	h := start(t, Config{LogDir: logDir, DataDir: dataDir, Settle: time.Millisecond})
	trace, _ := os.ReadFile(recorder(t.TempDir(), false).crash(t, 0))
	p := filepath.Join(logDir, "locked.stacktrace.log")
	if err := os.WriteFile(p, trace, 0); err != nil {
		t.Fatal(err)
	}
	h.sync()
	h.sync()
	if f, n := h.value(metrics.ParseFailures, metrics.LabelReason, ingest.FailUnreadable), h.value(metrics.Panics); f != 1 || n != 0 {
		t.Fatalf("unreadable file: %v failures, %v panics", f, n)
	}
	if err := os.Chmod(p, 0o644); err != nil { // no event the watcher reports
		t.Fatal(err)
	}
	h.sync()
	if n := h.value(metrics.Panics); n != 1 {
		t.Fatalf("readable file: %v panics", n)
	}

	// Another unreadable file renamed over an unreadable one is a failure
	// of its own (a panic never counted), and each is counted once.
	q := filepath.Join(logDir, "replaced.stacktrace.log")
	for i := range 2 {
		tmp := filepath.Join(logDir, ".tmp")
		if err := os.WriteFile(tmp, trace, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, q); err != nil {
			t.Fatal(err)
		}
		h.sync()
		h.sync()
		if f := h.value(metrics.ParseFailures, metrics.LabelReason, ingest.FailUnreadable); f != float64(2+i) {
			t.Fatalf("unreadable file %d at one path: %v failures, want %d", i+1, f, 2+i)
		}
	}
}

// runAsNobody runs test in a copy of the test binary as uid 65534, in
// directories that user can write (named by $STACKWATCH_CHMOD_CHILD).
func runAsNobody(t *testing.T, test string, args ...string) {
	base, err := os.MkdirTemp("", "chmod-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	bin := filepath.Join(base, "sidecar.test")
	if err := copyFile(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(base, "work")
	for _, d := range []string{base, work} {
		os.MkdirAll(d, 0o777)
		os.Chmod(d, 0o777)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-test.run=^" + test + "$", "-test.v"}, args...)...)
	cmd.Env = append(os.Environ(), chmodChild+"="+work, "TMPDIR="+work, "HOME="+work)
	cmd.Dir = work
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "--- PASS: "+test) {
		t.Fatalf("as nobody: %v\n%s", err, out.String())
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

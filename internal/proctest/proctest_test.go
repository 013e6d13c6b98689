package proctest

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// helperArg makes the test binary, started by a test as a child, the
// helper process instead of running tests.
const helperArg = "proctest-helper"

func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == helperArg {
		os.Exit(helper(os.Args[2:]))
	}
	VerifyTestMain(m)
}

// helper plays a binary under test; mode says how it behaves.
func helper(mode []string) int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	text := slog.New(slog.NewTextHandler(os.Stderr, nil))
	switch mode[0] {
	case "logfmt": // the default -log.format, on stderr
		text.Info("fatal errors are copied to a file", "file", "/tmp/a dir/fatal.log")
		fmt.Fprintln(os.Stderr, "goroutine 1 [running]:")
		text.Info("listening", "addr", "127.0.0.1:1234", "admin", "127.0.0.1:5678", "pprof", "")
		<-term
		text.Info("stopped")
	case "json": // -log.format=json, on stdout
		slog.New(slog.NewJSONHandler(os.Stdout, nil)).Info("listening", "addr", "127.0.0.1:1234", "port", 8080, "tls", false)
		<-term
	case "exit": // a usage error: many lines, then exit 3
		for i := range 30 {
			fmt.Fprintf(os.Stderr, "error line %d\n", i)
		}
		return 3
	case "listen-exit":
		text.Info("listening", "addr", "127.0.0.1:1234")
	case "lines": // 40 lines, listening, wait
		for i := range 40 {
			text.Info("line", "n", i)
		}
		text.Info("listening", "addr", "127.0.0.1:1234")
		<-term
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		text.Info("listening", "addr", "127.0.0.1:1234")
		select {}
	case "alloc": // 64 MiB of heap, every page touched, then listening
		b := make([]byte, 64<<20)
		for i := range b {
			b[i] = 1
		}
		text.Info("listening", "addr", "127.0.0.1:1234")
		<-term
		runtime.KeepAlive(b)
	case "silent":
		signal.Reset(syscall.SIGTERM)
		select {}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", mode)
		return 2
	}
	return 0
}

func startHelper(t testing.TB, mode ...string) *Proc {
	t.Helper()
	return Start(t, os.Args[0], append([]string{helperArg}, mode...)...)
}

func TestParseLine(t *testing.T) {
	for in, want := range map[string]map[string]string{
		`{"msg":"listening","addr":"127.0.0.1:1"}`:                                 {"msg": "listening", "addr": "127.0.0.1:1"},
		`{"msg":"listening","port":8080,"tls":false,"n":null,"o":{"a":1}}`:         {"msg": "listening", "port": "8080", "tls": "false", "n": "", "o": `{"a":1}`},
		`time=2026-11-30T14:03:54Z level=INFO msg=listening addr=127.0.0.1:1 x=""`: {"time": "2026-11-30T14:03:54Z", "level": "INFO", "msg": "listening", "addr": "127.0.0.1:1", "x": ""},
		`level=INFO msg="fatal errors are copied to a file" file=/a`:               {"level": "INFO", "msg": "fatal errors are copied to a file", "file": "/a"},
		`msg="a \"quoted\" word\n" "odd key"=1 url=http://h/?a=b  end=`:            {"msg": "a \"quoted\" word\n", "odd key": "1", "url": "http://h/?a=b", "end": ""},
		"msg=listening addr=127.0.0.1:1\r":                                         {"msg": "listening", "addr": "127.0.0.1:1"},
	} {
		got := parseLine([]byte(in))
		if len(got) != len(want) {
			t.Errorf("%s: got %q, want %q", in, got, want)
			continue
		}
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s: %s = %q, want %q", in, k, g, v)
			}
		}
	}
	for _, bad := range []string{"", "goroutine 1 [running]:", `msg="unterminated`, "plain text", `msg="x"y=1`, `msg=a"b`,
		"=value", "{not json", `panic: msg=listening`, "fatal error: concurrent map writes"} {
		if m := parseLine([]byte(bad)); m != nil {
			t.Errorf("%q parsed as %q", bad, m)
		}
	}
}

// The line is found whichever way the writes split it, after a long line.
func TestOutputSplitsAndLongLines(t *testing.T) {
	o := &output{listened: make(chan struct{})}
	long := strings.Repeat("x", 2<<20)
	for _, w := range []string{"msg=starting\nmsg=", long, "\nmsg=list", "ening add", "r=127.0.0.1:9\n", "msg=listening addr=late\n"} {
		if n, err := o.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write: %d, %v", n, err)
		}
	}
	select {
	case <-o.listened:
	default:
		t.Fatal("no listening line")
	}
	if m := o.listeningLine(); m["addr"] != "127.0.0.1:9" {
		t.Fatalf("listening %q, want the first line's", m)
	}
	if !strings.HasSuffix(o.String(), "addr=late\n") {
		t.Fatal("output after the listening line is not kept")
	}
}

func TestListeningLogfmt(t *testing.T) {
	p := startHelper(t, "logfmt")
	m := p.Listening(t, time.Minute, "addr", "admin")
	if m["addr"] != "127.0.0.1:1234" || m["admin"] != "127.0.0.1:5678" || m["level"] != "INFO" || m["pprof"] != "" {
		t.Errorf("listening %q", m)
	}
	m["addr"] = "changed"
	if again := p.Listening(t, 0); again["addr"] != "127.0.0.1:1234" {
		t.Errorf("second Listening %q", again)
	}
	if p.Err() != nil || p.ProcessState() != nil {
		t.Errorf("running: Err %v, ProcessState %v", p.Err(), p.ProcessState())
	}
	if err := p.Stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("Stop: %v\n%s", err, p.Logs())
	}
	logs := p.Logs()
	for _, want := range []string{`msg="fatal errors are copied to a file" file="/tmp/a dir/fatal.log"`, "goroutine 1 [running]:\n", "msg=stopped"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if st := p.ProcessState(); st == nil || st.ExitCode() != 0 || p.Err() != nil {
		t.Errorf("after Stop: %v, %v", st, p.Err())
	}
	if err := p.Stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("Stop again: %v", err)
	}
}

func TestListeningJSONOnStdout(t *testing.T) {
	p := startHelper(t, "json")
	m := p.Listening(t, time.Minute, "addr", "port")
	if m["msg"] != "listening" || m["addr"] != "127.0.0.1:1234" || m["port"] != "8080" || m["tls"] != "false" {
		t.Errorf("listening %q", m)
	}
	if p.Pid() <= 0 || !strings.HasSuffix(p.String(), fmt.Sprintf("[%d]", p.Pid())) {
		t.Errorf("String %s, Pid %d", p, p.Pid())
	}
}

// An exit before listening is reported at once, with the log's tail.
func TestExitBeforeListening(t *testing.T) {
	p := startHelper(t, "exit")
	began := time.Now()
	_, err := p.WaitListening(time.Minute)
	if err == nil || !strings.Contains(err.Error(), "exited before listening (exit status 3)") ||
		!strings.HasSuffix(err.Error(), "error line 29") || !strings.Contains(err.Error(), "error line 5\n") || strings.Contains(err.Error(), "error line 4\n") {
		t.Errorf("WaitListening: %v; want the exit and the last %d lines", err, TailLines)
	}
	if d := time.Since(began); d > 30*time.Second {
		t.Errorf("took %v", d)
	}
	<-p.Exited()
	var ee *exec.ExitError
	if !errors.As(p.Err(), &ee) || ee.ExitCode() != 3 {
		t.Errorf("Err %v, want exit status 3", p.Err())
	}
	if err := p.Wait(t, 0); !errors.As(err, &ee) {
		t.Errorf("Wait: %v", err)
	}
}

// A listening line the process wrote before it exited counts.
func TestListenedThenExited(t *testing.T) {
	p := startHelper(t, "listen-exit")
	<-p.Exited()
	if m, err := p.WaitListening(time.Minute); err != nil || m["addr"] != "127.0.0.1:1234" {
		t.Fatalf("WaitListening: %q, %v", m, err)
	}
}

// fakeT records what a test would log and fail, and runs cleanups when
// told; the rest is the real test's.
type fakeT struct {
	testing.TB
	mu       sync.Mutex
	failed   bool
	logs     []string
	cleanups []func()
}

func (f *fakeT) Helper()           {}
func (f *fakeT) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeT) Failed() bool      { f.mu.Lock(); defer f.mu.Unlock(); return f.failed }
func (f *fakeT) Logf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}
func (f *fakeT) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }
func (f *fakeT) Fatalf(format string, args ...any) {
	f.Logf(format, args...)
	f.mu.Lock()
	f.failed = true
	f.mu.Unlock()
	runtime.Goexit()
}

// run calls fn as a test body: Fatal ends it.
func (f *fakeT) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// end runs the cleanups, last first, as a test's end does.
func (f *fakeT) end() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func TestSilentTimesOut(t *testing.T) {
	f := &fakeT{TB: t}
	defer f.end()
	p := startHelper(f, "silent")
	f.run(func() { p.Listening(f, 300*time.Millisecond) })
	if !f.failed || len(f.logs) != 1 || !strings.Contains(f.logs[0], "did not log msg=listening within 300ms") {
		t.Fatalf("failed %v, logs %q", f.failed, f.logs)
	}
	f.end()
	f.cleanups = nil
	select {
	case <-p.Exited():
	default:
		t.Fatal("running after the cleanup")
	}
}

func TestListeningNeedsKeys(t *testing.T) {
	f := &fakeT{TB: t}
	defer f.end()
	p := startHelper(f, "logfmt")
	f.run(func() { p.Listening(f, time.Minute, "addr", "pprof") })
	if !f.failed || len(f.logs) != 1 || !strings.Contains(f.logs[0], `the listening line has no "pprof"`) {
		t.Fatalf("failed %v, logs %q", f.failed, f.logs)
	}
}

// A process that ignores SIGTERM fails Stop, and the cleanup kills it.
func TestCleanupKillsWhatIgnoresSIGTERM(t *testing.T) {
	defer func(d time.Duration) { stopTimeout = d }(stopTimeout)
	stopTimeout = 300 * time.Millisecond
	f := &fakeT{TB: t}
	defer f.end()
	p := startHelper(f, "ignore-term")
	p.Listening(f, time.Minute)
	f.run(func() { p.Stop(f, syscall.SIGTERM) })
	if !f.failed || len(f.logs) != 1 || !strings.Contains(f.logs[0], "still running 300ms later") {
		t.Fatalf("failed %v, logs %q", f.failed, f.logs)
	}
	f.end()
	f.cleanups = nil
	ws, ok := p.ProcessState().Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("exit %v, want killed", p.ProcessState())
	}
}

// A failed test logs the log's last lines when the process is stopped.
func TestTailOnFailure(t *testing.T) {
	f := &fakeT{TB: t}
	defer f.end()
	p := startHelper(f, "lines")
	p.Listening(f, time.Minute)
	f.failed = true
	f.end()
	f.cleanups = nil
	if len(f.logs) != 1 {
		t.Fatalf("logs %q, want the tail", f.logs)
	}
	lines := strings.Split(f.logs[0], "\n")
	if len(lines) != 1+TailLines || lines[0] != "--- last lines of "+p.String()+" "+helperArg+" lines (running):" ||
		!strings.HasSuffix(lines[1], "msg=line n=16") || !strings.HasSuffix(lines[TailLines], "msg=listening addr=127.0.0.1:1234") {
		t.Fatalf("tail:\n%s", f.logs[0])
	}
	if !strings.Contains(p.Logs(), "msg=line n=0\n") {
		t.Fatalf("Logs lacks the first line")
	}
}

// A failure message that showed the tail is not followed by the same tail.
func TestTailNotRepeated(t *testing.T) {
	f := &fakeT{TB: t}
	defer f.end()
	p := startHelper(f, "exit")
	f.run(func() { p.Listening(f, time.Minute) })
	f.end()
	f.cleanups = nil
	if !f.failed || len(f.logs) != 1 || !strings.Contains(f.logs[0], "exited before listening") {
		t.Fatalf("logs %q, want the failure alone", f.logs)
	}
}

func TestBuild(t *testing.T) {
	bin := Build(t, "./testdata/hello")
	if again := Build(t, "./testdata/hello"); again != bin {
		t.Errorf("built again: %s, then %s", bin, again)
	}
	other := Build(t, "./testdata/hello", "PROCTEST_UNUSED=1")
	if other == bin || !strings.HasSuffix(bin, string(os.PathSeparator)+"hello") {
		t.Errorf("builds %s and %s, want two, named hello", bin, other)
	}
	if out, err := exec.Command(other).Output(); err != nil || string(out) != "hello\n" {
		t.Errorf("%s: %q, %v", other, out, err)
	}
	f := &fakeT{TB: t}
	f.run(func() { Build(f, "./testdata/missing") })
	if !f.failed || len(f.logs) != 1 || !strings.Contains(f.logs[0], "go build  ./testdata/missing") {
		t.Errorf("a failed build: %q", f.logs)
	}
}

func TestBinaryName(t *testing.T) {
	for pkg, want := range map[string]string{".": "proctest", "./testdata/hello": "hello", "../proctest": "proctest",
		"github.com/stackwatch/stackwatch/cmd/sidecar": "sidecar"} {
		if got := binaryName(pkg); got != want {
			t.Errorf("binaryName(%q) = %q, want %q", pkg, got, want)
		}
	}
}

// Memory is the child's own: its heap shows in RSS, the peak and the
// anonymous pages; the code of its binary in the file pages.
func TestMemory(t *testing.T) {
	p := startHelper(t, "alloc")
	p.Listening(t, time.Minute)
	m, err := p.Memory()
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS < 64<<20 || m.Peak < m.RSS || m.Anon < 64<<20 || m.File <= 0 || m.Anon+m.File > m.RSS+1<<20 {
		t.Errorf("a child holding 64 MiB: %+v", m)
	}
	if err := p.Stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Memory(); err == nil {
		t.Error("Memory of an exited process did not fail")
	}
}

// Package proctest runs this repository's binaries (cmd/gameserver,
// cmd/sidecar, cmd/loadgen, test targets) as child processes for a test:
// their output captured, the addresses they bound read from their
// "listening" log line (the tests pass port 0), stopped when the test ends,
// and the tail of their log in the test's output if it failed.
//
// Build compiles such a binary once per test binary; a package that uses it
// has TestMain call VerifyTestMain, which removes the builds.
//
// Prometheus and Alertmanager, which cannot report a port they bound, are
// promtest's; it starts them through this package.
package proctest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Test timings and sizes.
const (
	// StopTimeout is how long a process has to exit after a signal: Stop
	// waits this long, and the cleanup kills a process that is still
	// running this long after its SIGTERM.
	StopTimeout = 10 * time.Second
	// TailLines is how much of the log a failure shows.
	TailLines = 25
)

// stopTimeout is StopTimeout, shortened by this package's own tests.
var stopTimeout = StopTimeout

// Proc is a started process.
type Proc struct {
	name   string
	cmd    *exec.Cmd
	out    output
	exited chan struct{} // closed once Wait returned; then err is set
	err    error
}

// Start runs bin with args, its stdout and stderr captured together (see
// Logs). When the test ends the process gets SIGTERM, and SIGKILL if it is
// still running StopTimeout later; if the test failed, the last TailLines
// lines of its log are logged first (unless a failure message showed them
// already). A binary that cannot be started fails t.
func Start(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	p := &Proc{name: filepath.Base(bin), exited: make(chan struct{})}
	p.out.listened = make(chan struct{})
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.WaitDelay = stopTimeout // a grandchild holding the output open
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		// The log up to the failure, before the shutdown's lines.
		if t.Failed() {
			if tail, ok := p.out.unreported(); ok {
				state := "running"
				if p.hasExited() {
					state = fmt.Sprintf("exited: %v", p.err)
				}
				t.Logf("--- last lines of %s %s (%s):\n%s", p, strings.Join(args, " "), state, tail)
			}
		}
		p.terminate()
	})
	return p
}

// String names the process in messages: the binary and its pid.
func (p *Proc) String() string { return fmt.Sprintf("%s[%d]", p.name, p.cmd.Process.Pid) }

// Pid is the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Memory is a running process's resident memory in bytes, as Linux counts
// it in /proc/PID/status.
type Memory struct {
	RSS  int64 // VmRSS
	Peak int64 // VmHWM, the high-water mark since exec
	Anon int64 // RssAnon: heap and stacks, what the program holds
	File int64 // RssFile: touched pages of the binary, shared and reclaimable
}

// Memory reads the process's memory now. The peak is the process's own:
// the ru_maxrss of an exited child is not, since os/exec starts children
// with CLONE_VM and Linux carries the parent's high-water mark across exec.
func (p *Proc) Memory() (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	fields := map[string]*int64{"VmRSS": &m.RSS, "VmHWM": &m.Peak, "RssAnon": &m.Anon, "RssFile": &m.File}
	for line := range strings.Lines(string(b)) {
		name, v, _ := strings.Cut(line, ":")
		if f := fields[name]; f != nil {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return Memory{}, fmt.Errorf("%s: %s %q: %w", p.name, name, v, err)
			}
			*f = kb << 10
		}
	}
	if m.RSS == 0 {
		return Memory{}, fmt.Errorf("%s: no VmRSS in /proc/%d/status", p.name, p.Pid())
	}
	return m, nil
}

// Logs is everything the process wrote to stdout and stderr so far.
func (p *Proc) Logs() string { return p.out.String() }

// Tail is the last TailLines lines of Logs, for a failure message. The
// cleanup then leaves them out of the test's log unless more followed.
func (p *Proc) Tail() string { return p.out.tail(true) }

// Exited is closed once the process has exited and its output is in Logs.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Err is the exit status (nil for exit code 0, else an *exec.ExitError)
// once Exited is closed; nil before.
func (p *Proc) Err() error {
	if !p.hasExited() {
		return nil
	}
	return p.err
}

// ProcessState is the exited process's state (its rusage, say); nil while
// it runs.
func (p *Proc) ProcessState() *os.ProcessState {
	if !p.hasExited() {
		return nil
	}
	return p.cmd.ProcessState
}

// Signal sends sig and returns at once.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits for the process to exit and returns its exit status (see
// Err). A process still running after within fails t with its log's tail.
func (p *Proc) Wait(t testing.TB, within time.Duration) error {
	t.Helper()
	if p.hasExited() {
		return p.err
	}
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case <-p.exited:
		return p.err
	case <-timer.C:
		t.Fatalf("%s still running %v later:\n%s", p, within, p.Tail())
		return nil
	}
}

// Stop sends sig and waits up to StopTimeout for the exit, as Wait does.
// A process that has exited already is not signalled: its status is
// returned.
func (p *Proc) Stop(t testing.TB, sig os.Signal) error {
	t.Helper()
	if !p.hasExited() {
		_ = p.Signal(sig) // it may exit meanwhile: Wait says how
	}
	return p.Wait(t, stopTimeout)
}

// Listening waits up to timeout for the process's first log line whose
// msg is "listening", in logfmt or JSON (the two -log.format choices),
// and returns its attributes (msg, addr, admin...; a JSON value that is
// not a string as its JSON text). A process that exits first fails t at
// once, one that is silent for timeout fails it then, and so does a line
// without a non-empty value for each of keys; all with the log's tail.
// It may be called again: the line stays.
func (p *Proc) Listening(t testing.TB, timeout time.Duration, keys ...string) map[string]string {
	t.Helper()
	m, err := p.WaitListening(timeout)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if m[k] == "" {
			t.Fatalf("%s: the listening line has no %q: %v", p, k, m)
		}
	}
	return m
}

// WaitListening is Listening with an error instead of a failed test, for a
// test that starts again when a start fails.
func (p *Proc) WaitListening(timeout time.Duration) (map[string]string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.out.listened:
	case <-p.exited:
	case <-timer.C:
	}
	// The line first: Wait returns after the output is copied, so a line
	// the process wrote before it exited is in once exited is closed.
	select {
	case <-p.out.listened:
		return p.out.listeningLine(), nil
	default:
	}
	if p.hasExited() {
		return nil, fmt.Errorf("%s exited before listening (%v):\n%s", p, p.err, p.Tail())
	}
	return nil, fmt.Errorf("%s did not log msg=listening within %v:\n%s", p, timeout, p.Tail())
}

func (p *Proc) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// terminate sends SIGTERM, kills the process if it is still running after
// StopTimeout, and waits for it.
func (p *Proc) terminate() {
	if p.hasExited() {
		return
	}
	_ = p.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// output is a process's stdout and stderr, written by exec's copying
// goroutine and read by the test. It picks out the first "listening" line
// as it comes.
type output struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	lineStart int // where the line being written began
	searched  int // no newline in buf[lineStart:searched]
	listening map[string]string
	listened  chan struct{} // closed once listening is set
	reported  int           // 1 + buf.Len() when Tail last showed the log; 0 for never
}

func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(b)
	for o.listening == nil {
		all := o.buf.Bytes()
		i := bytes.IndexByte(all[o.searched:], '\n')
		if i < 0 {
			o.searched = len(all)
			break
		}
		line := all[o.lineStart : o.searched+i]
		o.lineStart = o.searched + i + 1
		o.searched = o.lineStart
		if m := parseLine(line); m["msg"] == "listening" {
			o.listening = m
			close(o.listened)
		}
	}
	return len(b), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func (o *output) listeningLine() map[string]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.listening)
}

// tail is the last TailLines lines; report marks them shown.
func (o *output) tail(report bool) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if report {
		o.reported = o.buf.Len() + 1 // +1: 0 is "never", and an empty log is shown too
	}
	return lastLines(o.buf.String(), TailLines)
}

// unreported is the tail, unless Tail showed it and nothing followed.
func (o *output) unreported() (string, bool) {
	o.mu.Lock()
	shown := o.reported == o.buf.Len()+1
	o.mu.Unlock()
	if shown {
		return "", false
	}
	return o.tail(false), true
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// parseLine reads a log/slog line: a JSON object, or logfmt (key=value
// pairs separated by spaces, keys and values quoted when they need it).
// Anything else (a panic's trace, a plain message) gives nil.
func parseLine(line []byte) map[string]string {
	line = bytes.TrimSpace(line)
	if len(line) > 0 && line[0] == '{' {
		var raw map[string]json.RawMessage
		if json.Unmarshal(line, &raw) != nil {
			return nil
		}
		m := make(map[string]string, len(raw))
		for k, v := range raw {
			var s string
			if json.Unmarshal(v, &s) != nil {
				s = string(v)
			}
			m[k] = s
		}
		return m
	}
	m := map[string]string{}
	for s := string(line); s != ""; {
		key, rest, ok := logfmtText(s, "=")
		if !ok || key == "" || !strings.HasPrefix(rest, "=") {
			return nil
		}
		val, rest, ok := logfmtText(rest[1:], " ")
		if !ok || (rest != "" && rest[0] != ' ') {
			return nil
		}
		m[key] = val
		s = strings.TrimLeft(rest, " ")
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// logfmtText reads a key or value at the start of s: a Go-quoted string,
// or bare text up to the first of stop, a space or a quote. It returns the
// rest of s after it.
func logfmtText(s, stop string) (text, rest string, ok bool) {
	if strings.HasPrefix(s, `"`) {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return "", "", false
		}
		text, err = strconv.Unquote(q)
		return text, s[len(q):], err == nil
	}
	i := strings.IndexAny(s, stop+` "`)
	if i < 0 {
		return s, "", true
	}
	if s[i] == '"' {
		return "", "", false
	}
	return s[:i], s[i:], true
}

// builds are the binaries Build made, in dir, by pkg and env.
var builds struct {
	mu   sync.Mutex
	on   bool // VerifyTestMain runs the tests
	dir  string
	done map[string]func() (string, error)
}

// Build compiles the main package pkg (a go build argument: relative to the
// test's package directory, or an import path) with env added to the
// environment (GOEXPERIMENT=..., say), once per test binary for each pkg
// and env, and returns the binary's path. A failed build fails t, and
// every later Build of the same pkg and env.
//
// The package's TestMain must call VerifyTestMain, which removes the
// binaries when the tests end.
func Build(t testing.TB, pkg string, env ...string) string {
	t.Helper()
	key := strings.Join(append([]string{pkg}, env...), "\x00")
	builds.mu.Lock()
	if !builds.on {
		builds.mu.Unlock()
		t.Fatal("proctest.Build: the package's TestMain must call proctest.VerifyTestMain, which removes the builds")
	}
	f := builds.done[key]
	if f == nil {
		out := filepath.Join(strconv.Itoa(len(builds.done)), binaryName(pkg))
		f = sync.OnceValues(func() (string, error) { return build(pkg, out, env) })
		builds.done[key] = f
	}
	builds.mu.Unlock()
	bin, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// build runs go build for pkg into out, below builds.dir.
func build(pkg, out string, env []string) (string, error) {
	builds.mu.Lock()
	if builds.dir == "" {
		dir, err := os.MkdirTemp("", "proctest-")
		if err != nil {
			builds.mu.Unlock()
			return "", err
		}
		builds.dir = dir
	}
	out = filepath.Join(builds.dir, out)
	builds.mu.Unlock()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s %s: %v\n%s", strings.Join(env, " "), pkg, err, b)
	}
	return out, nil
}

// binaryName is the name go build gives pkg's binary.
func binaryName(pkg string) string {
	if abs, err := filepath.Abs(pkg); err == nil && (pkg == "." || strings.HasPrefix(pkg, "./") || strings.HasPrefix(pkg, "../")) {
		pkg = abs
	}
	return filepath.Base(pkg)
}

// VerifyTestMain is goleak.VerifyTestMain for a package that uses Build:
// it runs the tests, removes the binaries Build made, then fails a
// successful run that leaked goroutines.
func VerifyTestMain(m *testing.M, opts ...goleak.Option) {
	builds.mu.Lock()
	builds.on, builds.done = true, map[string]func() (string, error){}
	builds.mu.Unlock()
	goleak.VerifyTestMain(removingBuilds{m}, opts...)
}

type removingBuilds struct{ m *testing.M }

func (r removingBuilds) Run() int {
	code := r.m.Run()
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		if err := os.RemoveAll(builds.dir); err != nil {
			fmt.Fprintln(os.Stderr, "proctest:", err)
		}
	}
	builds.on, builds.dir = false, ""
	return code
}

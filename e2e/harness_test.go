package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the module root, one level up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found above e2e/: %v", err)
	}
	return root
}

// errMissing reports a binary whose package does not exist (yet).
var errMissing = errors.New("package does not exist")

// build compiles ./cmd/<name> into dir and returns the binary's path.
func build(ctx context.Context, root, dir, name string, env ...string) (string, error) {
	pkg := "./cmd/" + name
	if _, err := os.Stat(filepath.Join(root, "cmd", name)); err != nil {
		return "", fmt.Errorf("%s: %w", pkg, errMissing)
	}
	out := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, for an address nothing needs to answer on (TestFatalCrashPages's
// Alertmanager). Daemons to start go through promtest, which retries a
// port taken in that moment.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// proc is a child process whose output goes to a log file, and whose JSON
// "listening" line is captured.
type proc struct {
	name    string
	cmd     *exec.Cmd
	log     string
	out     *lineWriter
	exited  chan struct{}
	waitErr error
}

// start runs bin with args; it is stopped (SIGTERM, then SIGKILL after 5s)
// when the test ends.
func start(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	w := &lineWriter{file: f, listening: make(chan map[string]any, 1)}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, out: w, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop()
		_ = f.Close()
		if t.Failed() {
			t.Logf("--- last lines of %s (%s):\n%s", name, logPath, tail(logPath, 8))
		}
	})
	return p
}

func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// listening waits for the process's {"msg":"listening",...} log line.
func (p *proc) listening(t *testing.T, timeout time.Duration) map[string]any {
	t.Helper()
	select {
	case m := <-p.out.listening:
		return m
	case <-p.exited:
		t.Fatalf("%s exited before listening (%v):\n%s", p.name, p.waitErr, tail(p.log, 25))
	case <-time.After(timeout):
		t.Fatalf("%s did not log \"listening\" within %v:\n%s", p.name, timeout, tail(p.log, 25))
	}
	return nil
}

// addr reads a string attribute of the listening line.
func addr(t *testing.T, m map[string]any, key string) string {
	t.Helper()
	s, ok := m[key].(string)
	if !ok || s == "" {
		t.Fatalf("listening line has no %q: %v", key, m)
	}
	return s
}

// lineWriter copies a process's output to a file and picks out the first
// log line (JSON or logfmt, the two -log.format choices) whose msg is
// "listening".
type lineWriter struct {
	mu        sync.Mutex
	file      *os.File
	partial   []byte
	seen      bool
	listening chan map[string]any
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.file.Write(b); err != nil {
		return 0, err
	}
	if w.seen {
		return len(b), nil
	}
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := w.partial[:i]
		w.partial = w.partial[i+1:]
		m := parseLogLine(line)
		if m["msg"] == "listening" {
			w.seen = true
			w.partial = nil
			w.listening <- m
			break
		}
	}
	if len(w.partial) > 1<<20 { // a binary that never ends a line
		w.partial = nil
	}
	return len(b), nil
}

// parseLogLine reads a slog line in JSON or logfmt (key=value, values quoted
// when they need it); anything else gives nil.
func parseLogLine(line []byte) map[string]any {
	var m map[string]any
	if json.Unmarshal(line, &m) == nil {
		return m
	}
	m = map[string]any{}
	s := strings.TrimSpace(string(line))
	for s != "" {
		key, rest, ok := strings.Cut(s, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \"") {
			return nil
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			val, rest, _ = strings.Cut(rest, " ")
			rest = " " + rest
		}
		m[key] = val
		s = strings.TrimLeft(rest, " ")
	}
	return m
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

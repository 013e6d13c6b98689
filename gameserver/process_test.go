package gameserver_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// builds caches the cmd/gameserver binaries built for this test run, by
// GOEXPERIMENT value.
var builds sync.Map // string → func() (string, error)

// buildServer builds cmd/gameserver with GOEXPERIMENT=experiment (as
// `make build` does with goroutineleakprofile), once per test run.
func buildServer(t *testing.T, experiment string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the game server as a process")
	}
	f, _ := builds.LoadOrStore(experiment, sync.OnceValues(func() (string, error) {
		dir, err := os.MkdirTemp("", "gameserver-bin")
		if err != nil {
			return "", err
		}
		bin := filepath.Join(dir, "gameserver")
		cmd := exec.Command("go", "build", "-o", bin, "../cmd/gameserver")
		cmd.Env = append(os.Environ(), "GOEXPERIMENT="+experiment)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", &buildError{err, out}
		}
		return bin, nil
	}))
	bin, err := f.(func() (string, error))()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + string(e.out) }

// proc is a game server process.
type proc struct {
	cmd                *exec.Cmd
	addr, admin, pprof string
	stderr             *logBuffer
	exited             chan struct{}
	err                error // exit status, once exited is closed
}

// startProc runs bin on loopback ports with its directories in t.TempDir and
// waits for its "listening" line.
func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(bin, append([]string{"-log.format", "json", "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0",
		"-log-dir", filepath.Join(dir, "log"), "-data-dir", filepath.Join(dir, "data")}, args...)...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: &logBuffer{}, exited: make(chan struct{})}
	listening := make(chan [3]string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.stderr.WriteString(line + "\n")
			var rec struct{ Msg, Addr, Admin, Pprof string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				listening <- [3]string{rec.Addr, rec.Admin, rec.Pprof}
			}
		}
		io.Copy(io.Discard, pipe)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	select {
	case l := <-listening:
		p.addr, p.admin, p.pprof = l[0], l[1], l[2]
	case <-p.exited:
		t.Fatalf("server exited before listening: %v\n%s", p.err, p.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("no listening line within 30s\n%s", p.stderr)
	}
	return p
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(within):
		t.Fatalf("no exit within %s\n%s", within, p.stderr)
		return nil
	}
}

// logBuffer collects a process's stderr while the test reads it.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) WriteString(s string) {
	l.mu.Lock()
	l.b.WriteString(s)
	l.mu.Unlock()
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fetchURL fetches url with a timeout and returns the status and body.
func fetchURL(url string, timeout time.Duration) (int, string, error) {
	c := http.Client{Timeout: timeout}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

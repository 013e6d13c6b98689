package gameserver_test

import (
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/internal/proctest"
)

// buildServer builds cmd/gameserver with GOEXPERIMENT=experiment (as
// `make build` does with goroutineleakprofile), once per test run.
func buildServer(t *testing.T, experiment string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the game server as a process")
	}
	return proctest.Build(t, "../cmd/gameserver", "GOEXPERIMENT="+experiment)
}

// proc is a game server process and the addresses it listens on.
type proc struct {
	*proctest.Proc
	addr, admin, pprof string
}

// startProc runs bin on loopback ports with its directories in t.TempDir and
// waits for its "listening" line.
func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	p := proctest.Start(t, bin, append([]string{"-log.format", "json", "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0",
		"-log-dir", filepath.Join(dir, "log"), "-data-dir", filepath.Join(dir, "data")}, args...)...)
	m := p.Listening(t, 30*time.Second)
	return &proc{Proc: p, addr: m["addr"], admin: m["admin"], pprof: m["pprof"]}
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

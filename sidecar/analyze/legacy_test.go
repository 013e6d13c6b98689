package analyze

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/internal/proctest"
)

// runLegacy runs the real game server for game in -legacy mode under the
// load generator with disconnects, stops it, and returns its log folder.
func runLegacy(t *testing.T, game string) string {
	t.Helper()
	logDir, dataDir := t.TempDir(), t.TempDir()
	srv := proctest.Start(t, proctest.Build(t, "../../cmd/gameserver"), "-game", game, "-legacy",
		"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-log-dir", logDir, "-data-dir", dataDir)

	// No keep-alive: an idle connection's goroutines would outlive the test.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	m := srv.Listening(t, 15*time.Second)
	addr, admin := m["addr"], m["admin"]
	ready := false
	for ; time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := client.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ready = true
				break
			}
		}
	}
	if !ready {
		t.Fatalf("%s server not ready:\n%s", game, srv.Logs())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	lg := exec.CommandContext(ctx, proctest.Build(t, "../../cmd/loadgen"), "-addr", addr, "-clients", "10", "-duration", "2s",
		"-disconnect", "0.3", "-drain", "5s", "-progress", "0", "-json")
	var out, lgErr bytes.Buffer
	lg.Stdout, lg.Stderr = &out, &lgErr
	_ = lg.Run() // legacy loses bets, so loadgen exits non-zero by design
	var sum struct {
		Disconnects int64 `json:"disconnects"`
	}
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil || sum.Disconnects == 0 {
		t.Fatalf("loadgen against %s: %v, summary %s\n%s", game, err, out.String(), lgErr.String())
	}
	srv.Signal(syscall.SIGTERM)
	select {
	case <-srv.Exited():
	case <-time.After(20 * time.Second):
		t.Errorf("%s server did not stop on SIGTERM", game)
	}
	return logDir
}

// The developer's path through the incident: run the legacy servers under
// load, copy the log folders out, analyze. Every stacktrace file is counted
// once and the groups are the clientWrite nil-session sites, one per game.
func TestAnalyzeLegacyServers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the game server and load generator")
	}
	wildDir := runLegacy(t, "wilddig")
	goldDir := runLegacy(t, "goldenclover")

	files := 0
	for _, dir := range []string{wildDir, goldDir} {
		m, err := filepath.Glob(filepath.Join(dir, "*.stacktrace.log"))
		if err != nil {
			t.Fatal(err)
		}
		if len(m) == 0 {
			t.Fatalf("the legacy server wrote no stacktrace files in %s", dir)
		}
		files += len(m)
	}
	rep, err := runJSON(t, wildDir, goldDir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != files || len(rep.Failures) != 0 {
		t.Fatalf("read %d of %d files, failures %v", rep.Files, files, rep.Failures)
	}
	counted := 0
	for _, g := range rep.Groups {
		counted += int(g["count"].(float64))
		site := g["crash_site"].(map[string]any)
		if !strings.HasPrefix(site["function"].(string), "github.com/stackwatch/stackwatch/gameserver/task.") {
			t.Errorf("crash site outside the game server's task package: %v", g)
		}
	}
	if counted != files {
		t.Errorf("groups count %d panics, %d files on disk", counted, files)
	}
	const task = "github.com/stackwatch/stackwatch/gameserver/task."
	for game, c := range map[string]struct{ dir, caller string }{
		"wilddiggr":    {wildDir, task + "onWildDigBetClientResp"},
		"goldenclover": {goldDir, task + "onGoldenCloverBetClientResp"},
	} {
		g := group(t, rep, task+"clientWrite", c.caller)
		if g["nil_receiver"] != true || g["kind"] != "nil_dereference" {
			t.Errorf("%s: %v", game, g)
		}
		for _, f := range g["files"].([]any) {
			if filepath.Dir(f.(string)) != c.dir || !strings.HasPrefix(filepath.Base(f.(string)), game+"-") {
				t.Errorf("%s group holds %s", game, f)
			}
		}
	}
	if t.Failed() || testing.Verbose() {
		var text bytes.Buffer
		_ = Run(context.Background(), []string{wildDir, goldDir}, nil, &text, os.Stderr)
		t.Logf("analyze output:\n%s", text.String())
	}
}

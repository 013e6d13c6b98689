package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/stackwatch/stackwatch/alerts"
	"github.com/stackwatch/stackwatch/internal/proctest"
	"github.com/stackwatch/stackwatch/internal/promtest"
	"github.com/stackwatch/stackwatch/metrics"
)

// TestFatalCrashPages follows a fatal runtime error end to end (issue 13): a
// game server started with -fault-injection is told to do a real concurrent
// map write; it dies; the runtime's trace lands in fatal-*.stacktrace.log in
// its log directory; the sidecar groups it as kind "fatal"; and the shipped
// GameServerFatalCrash rule fires in a real Prometheus. Every step has a
// deadline and names what is missing instead of hanging.
func TestFatalCrashPages(t *testing.T) {
	t.Parallel()
	promtest.Binary(t, "prometheus") // skip (in CI, fail) before the builds
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	root := repoRoot(t)
	cfg := alerts.Default()
	client := &http.Client{Timeout: 10 * time.Second}

	gsBin := proctest.Build(t, "../cmd/gameserver", "GOEXPERIMENT=goroutineleakprofile")
	scBin := proctest.Build(t, "../cmd/sidecar")
	// Fault injection and the sidecar's fatal counter are issue 13's work on
	// other branches; until they land, say which is missing (in CI, fail).
	waitsFor := func(msg string) {
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg + "; in CI this fails")
	}
	if help, _ := exec.CommandContext(ctx, gsBin, "-h").CombinedOutput(); !strings.Contains(string(help), "-fault-injection") {
		waitsFor("the game server has no -fault-injection flag yet (issue 13 item 2)")
	}
	dir := t.TempDir()
	logDir := filepath.Join(dir, "log")
	gs := proctest.Start(t, gsBin, "-log.format=json", "-game", "wilddig", "-service", "wilddiggr", "-fault-injection",
		"-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-pprof", "127.0.0.1:0",
		"-log-dir", logDir, "-data-dir", filepath.Join(dir, "data"))
	// Without -fault-injection (issue 13 item 2) the server exits at once
	// and listening fails with its usage error.
	m := gs.Listening(t, 30*time.Second, "admin", "pprof")
	admin, pprof := m["admin"], m["pprof"]
	svc := &service{name: "wilddiggr", admin: admin}
	m = proctest.Start(t, scBin, "-log.format=json", "-service", "wilddiggr", "-log-dir", logDir,
		"-data-dir", filepath.Join(dir, "sidecar"), "-listen", "127.0.0.1:0", "-target", "http://"+pprof).
		Listening(t, 30*time.Second, "addr")
	svc.sidecar = m["addr"]
	if r, err := client.Get("http://" + svc.sidecar + "/metrics"); err == nil {
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if !strings.Contains(string(b), "\n"+metrics.FatalCrashes.Name+" ") {
			waitsFor("the sidecar exports no " + metrics.FatalCrashes.Name + " at 0 yet (issue 13 item 1)")
		}
	}

	promCfg := writePrometheusConfig(t, cfg, overlayRules(t, filepath.Join(root, "alerts", "stackwatch.rules.yml")), freeAddr(t), []*service{svc})
	prom := promtest.StartPrometheus(t, promCfg)
	pc, err := api.NewClient(api.Config{Address: prom.URL, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	papi := promv1.NewAPI(pc)
	// The counter must be scraped at 0 before the crash, or increase()
	// cannot see the first one.
	poll(t, 30*time.Second, "the sidecar's stackwatch_fatal_crashes_total at 0 in Prometheus (initialised before the first crash)", func() bool {
		v, _, _, err := papi.Query(ctx, `stackwatch_fatal_crashes_total{service="wilddiggr"}`, time.Now())
		return err == nil && len(v.(model.Vector)) == 1
	})

	resp, err := client.Post("http://"+pprof+"/debug/fault?kind=fatal", "", nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			t.Fatalf("POST /debug/fault?kind=fatal: %s: no fault injection on the pprof listener (issue 13 item 2)", resp.Status)
		}
	} // an error is fine: the server may die before it answers
	select {
	case <-gs.Exited():
		if gs.Err() == nil {
			t.Errorf("the game server exited 0 after a fatal error")
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the game server did not die within 20s of kind=fatal (POST error %v)", err)
	}

	var fatal string
	poll(t, 10*time.Second, "a non-empty fatal-*.stacktrace.log in -log-dir (debug.SetCrashOutput)", func() bool {
		files, _ := filepath.Glob(filepath.Join(logDir, "fatal-*.stacktrace.log"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && len(b) > 0 {
				fatal = string(b)
				return true
			}
		}
		return false
	})
	// The runtime writes the crashing goroutine's stack (Go 1.26 leaves the
	// "fatal error: ..." line itself out of the crash output for throws);
	// the crash site is in game server code.
	if !strings.Contains(fatal, "goroutine ") || !strings.Contains(fatal, "stackwatch/gameserver") {
		t.Errorf("the fatal file holds no goroutine stack in game server code:\n%.400s", fatal)
	}

	poll(t, 30*time.Second, `a crash group of kind "fatal" at the sidecar's /api/v1/crashes`, func() bool {
		r, err := client.Get("http://" + svc.sidecar + "/api/v1/crashes")
		if err != nil {
			return false
		}
		defer r.Body.Close()
		var body struct {
			Groups []struct {
				Kind    string `json:"kind"`
				Message string `json:"message"`
			} `json:"groups"`
		}
		if json.NewDecoder(r.Body).Decode(&body) != nil {
			return false
		}
		for _, g := range body.Groups {
			if g.Kind == "fatal" {
				if !strings.Contains(g.Message, "concurrent map") {
					t.Errorf("fatal group message %q, want the runtime's (concurrent map writes)", g.Message)
				}
				return true
			}
		}
		return false
	})

	q := fmt.Sprintf(`ALERTS{alertname=%q,service="wilddiggr",alertstate="firing",severity="critical"}`, alerts.GameServerFatalCrash)
	poll(t, 60*time.Second, "GameServerFatalCrash firing for wilddiggr in Prometheus", func() bool {
		v, _, _, err := papi.Query(ctx, q, time.Now())
		return err == nil && len(v.(model.Vector)) > 0
	})
}

// poll calls ok every half second until it holds, or fails the test naming
// what never happened.
func poll(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

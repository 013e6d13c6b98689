package profiler_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/gameservertest"
	"github.com/stackwatch/stackwatch/internal/proctest"
	"github.com/stackwatch/stackwatch/loadgen"
	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/dumps"
	"github.com/stackwatch/stackwatch/sidecar/goroutines"
	"github.com/stackwatch/stackwatch/sidecar/leak"
	"github.com/stackwatch/stackwatch/sidecar/profiler"
)

// reckonLeakLine finds the line where the legacy reckon goroutine parks for
// good, by its comment in the game server's source.
func reckonLeakLine(t *testing.T) (string, int) {
	t.Helper()
	file, err := filepath.Abs("../../gameserver/task/task_client_reckon_wilddig.go")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if strings.Contains(sc.Text(), "<-w.ch") && strings.Contains(sc.Text(), "the incident's leak") {
			return file, n
		}
	}
	t.Fatalf("no `<-w.ch // the incident's leak` line in %s", file)
	return "", 0
}

// startGameServer runs the real game server in-process.
func startGameServer(t *testing.T, legacy bool) *gameservertest.Server {
	t.Helper()
	return gameservertest.Start(t, gameserver.Config{Legacy: legacy, WalletLatency: 20 * time.Millisecond})
}

func runLoad(t *testing.T, addr string, d time.Duration) loadgen.Summary {
	t.Helper()
	sum, err := loadgen.Run(t.Context(), loadgen.Config{Addr: addr, Clients: 40, Duration: d, Disconnect: 0.3,
		Drain: 2 * time.Second, DisconnectJitter: 30 * time.Millisecond})
	if err != nil {
		t.Fatalf("loadgen: %v", err)
	}
	return sum
}

func postDump(t *testing.T, url, reason string) dumps.Meta {
	t.Helper()
	code, body := do(t, http.MethodPost, url+"/api/v1/dumps", "", strings.NewReader(`{"reason":"`+reason+`"}`))
	if code != http.StatusCreated {
		t.Fatalf("POST dumps: %d %s", code, body)
	}
	var m dumps.Meta
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLegacyGameServerLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the game server under load")
	}
	file, line := reckonLeakLine(t)
	srv := startGameServer(t, true)
	sc := newSidecar(t, profiler.Config{Target: "http://" + srv.AdminAddr().String(), Interval: 300 * time.Millisecond,
		KeepEvery: -1, Leak: leak.Config{BlockedThreshold: 10, GrowthWindow: 4, GrowthMin: 2}}, true)
	waitFor(t, 15*time.Second, func() bool { return !sc.Status().LastScrape.IsZero() })
	early := postDump(t, sc.URL, "before load")

	// While the load runs, watch for the growth signal at the reckon site.
	grew := make(chan bool, 1)
	watchCtx, stopWatch := context.WithCancel(t.Context())
	go func() {
		seen := false
		defer func() { grew <- seen }()
		for watchCtx.Err() == nil && !seen {
			for _, s := range sc.Status().Suspects {
				if strings.HasSuffix(s.Location.Function, "ClientGetWilddigReckonBetRes.func1") && s.Has(metrics.SignalGrowth) && s.Delta >= 2 {
					seen = true
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	sum := runLoad(t, srv.Addr().String(), 4*time.Second)
	// On a loaded machine the scrapes that see the rise may come after
	// the load ends; the growth window still holds it for a few scrapes.
	var sawGrowth bool
	select {
	case sawGrowth = <-grew:
	case <-time.After(3 * time.Second):
		stopWatch()
		sawGrowth = <-grew
	}
	stopWatch()
	if !sawGrowth {
		t.Error("the growth signal never flagged the reckon goroutines while they piled up")
	}
	t.Logf("load: %d bets, %d lost, %d disconnects", sum.BetsPlaced, sum.Lost, sum.Disconnects)
	leaked := srv.Task().LeakedGoroutines()
	if leaked < 10 {
		t.Fatalf("legacy server leaked only %d reckon goroutines; the load did not reproduce the incident", leaked)
	}

	// The suspects name the reckon goroutine waiting for the bet response.
	var st profiler.Status
	waitFor(t, 30*time.Second, func() bool {
		getJSON(t, sc.URL+"/api/v1/leaks", &st)
		return len(st.Suspects) > 0 && st.Suspects[0].Count == leaked
	})
	s := st.Suspects[0]
	if !strings.HasSuffix(s.Location.Function, "gameserver/task.ClientGetWilddigReckonBetRes.func1") ||
		s.Location.File != file || s.Location.Line != line || s.Wait != goroutines.WaitChanReceive || !s.Has(metrics.SignalBlocked) {
		t.Errorf("top suspect %+v, want ClientGetWilddigReckonBetRes's closure at %s:%d", s, filepath.Base(file), line)
	}
	// The growth signal saw it rise during the load (any scrape's suspects).
	if s.Trend[len(s.Trend)-1] != leaked {
		t.Errorf("trend %v does not end at %d", s.Trend, leaked)
	}
	// This test binary lacks GOEXPERIMENT=goroutineleakprofile: the absence is
	// reported, not an error (TestLegacyGameServerLeakProfile builds it in).
	if st.LeakProfile != "not available" || st.LastError != "" {
		t.Errorf("leak profile %q, last error %q", st.LeakProfile, st.LastError)
	}
	if v := gauge(t, sc, metrics.LeakSuspects, metrics.LabelLocation, s.Label(), metrics.LabelSignal, metrics.SignalBlocked); v != float64(leaked) {
		t.Errorf("leak suspects gauge %v, want %d", v, leaked)
	}

	// A late dump, pulled over HTTP, opens in go tool pprof and diffs
	// against the early one with the leaking group on top.
	late := postDump(t, sc.URL, "after load")
	code, raw := do(t, http.MethodGet, sc.URL+"/api/v1/dumps/"+late.ID, "", nil)
	if code != 200 {
		t.Fatalf("pull: %d", code)
	}
	pb := filepath.Join(t.TempDir(), "late.pb.gz")
	os.WriteFile(pb, raw, 0o600)
	out, err := exec.Command("go", "tool", "pprof", "-top", pb).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ClientGetWilddigReckonBetRes.func1") {
		t.Errorf("go tool pprof -top: %v\n%s", err, out)
	}
	var diff profiler.DiffResponse
	if code := getJSON(t, sc.URL+"/api/v1/dumps/"+late.ID+"/diff?base="+early.ID, &diff); code != 200 || len(diff.Changes) == 0 {
		t.Fatalf("diff: %d", code)
	}
	top := diff.Changes[0]
	if !strings.HasSuffix(top.Location.Function, "ClientGetWilddigReckonBetRes.func1") || top.Base != 0 || top.Delta != leaked {
		t.Errorf("top change %+v, want the reckon group 0 → %d", top, leaked)
	}
}

func TestPatchedGameServerNoSuspects(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the game server under load")
	}
	srv := startGameServer(t, false)
	sc := newSidecar(t, profiler.Config{Target: "http://" + srv.AdminAddr().String(), Interval: 200 * time.Millisecond,
		KeepEvery: -1, Leak: leak.Config{BlockedThreshold: 10, GrowthWindow: 4, GrowthMin: 3}}, true)
	sum := runLoad(t, srv.Addr().String(), 4*time.Second)
	if !sum.OK() {
		t.Errorf("patched server lost bets: %s", sum)
	}
	// Once the players are gone, a full growth window later: no suspects.
	var st profiler.Status
	waitFor(t, 30*time.Second, func() bool {
		getJSON(t, sc.URL+"/api/v1/leaks", &st)
		return st.LastScrape.After(time.Now().Add(-300*time.Millisecond)) && len(st.Suspects) == 0
	})
	// And it stays so for the next five scrapes, each checked.
	n := len(sc.History())
	waitFor(t, 10*time.Second, func() bool { return len(sc.History()) >= n+5 })
	for _, s := range sc.History()[n:] {
		if len(s.Suspects) != 0 {
			t.Fatalf("patched server has suspects at %s: %v", s.Time, s.Suspects)
		}
	}
	if n := srv.Task().LeakedGoroutines(); n != 0 {
		t.Errorf("patched server leaked %d goroutines", n)
	}
}

// TestLegacyGameServerLeakProfile runs cmd/gameserver built with
// GOEXPERIMENT=goroutineleakprofile as a process: the runtime's
// goroutineleak profile then proves the reckon goroutines leaked.
func TestLegacyGameServerLeakProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the game server under load")
	}
	file, line := reckonLeakLine(t)
	bin := proctest.Build(t, "../../cmd/gameserver", "GOEXPERIMENT=goroutineleakprofile")
	addrs := proctest.Start(t, bin, "-game", "wilddig", "-legacy", "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0",
		"-log-dir", t.TempDir(), "-data-dir", t.TempDir(), "-wallet-latency", "20ms", "-log.format", "json").
		Listening(t, 30*time.Second, "admin")

	sc := newSidecar(t, profiler.Config{Target: "http://" + addrs["admin"], Interval: 200 * time.Millisecond,
		KeepEvery: -1, Leak: leak.Config{BlockedThreshold: 10}}, true)
	runLoad(t, addrs["addr"], 3*time.Second)

	var st profiler.Status
	waitFor(t, 30*time.Second, func() bool {
		getJSON(t, sc.URL+"/api/v1/leaks", &st)
		return st.LeakProfile == "available" && len(st.Suspects) > 0 && st.Suspects[0].Leaked > 0 &&
			st.Suspects[0].Leaked == st.Suspects[0].Count
	})
	s := st.Suspects[0]
	if !strings.HasSuffix(s.Location.Function, "ClientGetWilddigReckonBetRes.func1") || s.Location.Line != line ||
		filepath.Base(s.Location.File) != filepath.Base(file) || !s.Has(metrics.SignalRuntime) || !s.Has(metrics.SignalBlocked) || s.Leaked < 10 {
		t.Errorf("top suspect %+v", s)
	}
	if v := gauge(t, sc, metrics.GoroutinesLeaked); v != float64(st.Leaked) || v < float64(s.Leaked) {
		t.Errorf("goroutines leaked gauge %v, status %d", v, st.Leaked)
	}
	if v := gauge(t, sc, metrics.GoroutineLeakProfileAvailable); v != 1 {
		t.Errorf("available gauge %v", v)
	}
	t.Logf("runtime proved %d goroutines leaked; top suspect %s ×%d %v", st.Leaked, s.Label(), s.Count, s.Signals)
}

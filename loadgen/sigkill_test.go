package loadgen_test

import (
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/stackwatch/stackwatch/internal/proctest"
	"github.com/stackwatch/stackwatch/loadgen"
	"github.com/stackwatch/stackwatch/metrics"
)

// proc is a game server running as a child process.
type proc struct {
	*proctest.Proc
	addr, admin string
}

// startProc runs the gameserver binary and waits for its "listening" line.
func startProc(t *testing.T, bin, listen, logDir, dataDir string) (*proc, error) {
	t.Helper()
	p := proctest.Start(t, bin, "-game", "wilddig", "-listen", listen, "-admin", "127.0.0.1:0",
		"-log-dir", logDir, "-data-dir", dataDir, "-log.format", "json", "-bet-history", "1s")
	m, err := p.WaitListening(30 * time.Second)
	if err != nil {
		p.Stop(t, syscall.SIGKILL)
		return nil, err
	}
	return &proc{Proc: p, addr: m["addr"], admin: m["admin"]}, nil
}

func scrape(t *testing.T, admin string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// TestSIGKILLUnderLoad kills the patched server with SIGKILL while players
// bet, restarts it on the same data directory, and requires that the run
// still ends with no bet lost and every wallet matching its results.
func TestSIGKILLUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a server process; skipped with -short")
	}
	bin := proctest.Build(t, "../cmd/gameserver")
	logDir, dataDir := t.TempDir(), t.TempDir()
	first, err := startProc(t, bin, "127.0.0.1:0", logDir, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	var target atomic.Pointer[string]
	target.Store(&first.addr)

	type outcome struct {
		sum loadgen.Summary
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		s, err := loadgen.Run(testCtx(t, 2*time.Minute), loadgen.Config{Target: func() string { return *target.Load() },
			Clients: 50, Duration: 8 * time.Second, Disconnect: 0.2, Drain: 30 * time.Second})
		done <- outcome{s, err}
	}()

	// Kill once the run is well under way: a few hundred bets settled.
	waitFor(t, 20*time.Second, "bets settling before the kill", func() bool {
		var settled float64
		if mf := scrape(t, first.admin)[metrics.BetResults.Name]; mf != nil {
			for _, m := range mf.GetMetric() {
				settled += m.GetCounter().GetValue()
			}
		}
		return settled >= 300
	})
	first.Stop(t, syscall.SIGKILL)

	// Same port if the kernel lets us have it back; else a new one, which
	// the players follow.
	second, err := startProc(t, bin, first.addr, logDir, dataDir)
	if err != nil {
		t.Logf("restart on %s failed (%v); restarting on a new port", first.addr, err)
		if second, err = startProc(t, bin, "127.0.0.1:0", logDir, dataDir); err != nil {
			t.Fatal(err)
		}
	}
	target.Store(&second.addr)
	t.Logf("killed the server on %s mid-run; restarted it on %s", first.addr, second.addr)

	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	sum := res.sum
	t.Logf("loadgen: %s", sum)
	if !sum.OK() || sum.Lost != 0 || sum.DuplicateSettlements != 0 || sum.BalanceMismatches != 0 || sum.BalanceChecks != 50 {
		t.Fatalf("run across SIGKILL failed: %s", sum)
	}
	after := scrape(t, second.admin)
	var settledAfter float64
	if mf := after[metrics.BetResults.Name]; mf != nil {
		for _, m := range mf.GetMetric() {
			settledAfter += m.GetCounter().GetValue()
		}
	}
	if settledAfter == 0 {
		t.Fatal("the restarted server settled no bets: the kill did not land mid-run")
	}
	if mf := after[metrics.BetsPruned.Name]; mf == nil || mf.GetMetric()[0].GetCounter().GetValue() == 0 {
		t.Fatal("the restarted server pruned no bets: -bet-history 1s did not run beside the kill")
	}
	if sum.DialFailures == 0 && sum.Reconnects <= sum.Disconnects {
		t.Fatalf("no player noticed the kill: %s", sum)
	}
	second.Stop(t, syscall.SIGTERM)
	if files := stacktraceFiles(t, logDir); len(files) != 0 {
		t.Fatalf("stacktrace files after the crash: %v", files)
	}
}

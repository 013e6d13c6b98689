package gameserver_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/metrics"
)

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func stacktraceFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.stacktrace.log"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLegacyDisconnectMidBetPanics(t *testing.T) {
	for _, tc := range []struct{ game, service, handler, api string }{
		{"wilddig", "wilddiggr", "onWildDigBetClientResp", "ClientWildDigGetAPIBetResponse"},
		{"goldenclover", "goldenclover", "onGoldenCloverBetClientResp", "ClientGoldenCloverGetAPIBetResponse"},
	} {
		t.Run(tc.game, func(t *testing.T) {
			srv := startServer(t, gameserver.Config{Game: tc.game, Legacy: true, WalletLatency: 100 * time.Millisecond})
			c, _ := login(t, srv.Addr(), "bob")
			c.send(protocol.TypeBet, protocol.Bet{BetID: "b1", Amount: 10})
			c.conn.Close() // gone before the wallet answers

			dir := srv.Config().LogDir
			waitFor(t, "a stacktrace file", 10*time.Second, func() bool { return len(stacktraceFiles(t, dir)) == 1 })
			path := stacktraceFiles(t, dir)[0]
			if !regexp.MustCompile(`^` + tc.service + `-\d{8}T\d{6}\.\d{9}Z-g\d+-\d+\.stacktrace\.log$`).MatchString(filepath.Base(path)) {
				t.Errorf("file name %s", filepath.Base(path))
			}
			var body string
			waitFor(t, "the file written", 5*time.Second, func() bool {
				b, _ := os.ReadFile(path)
				body = string(b)
				return strings.Contains(body, "created by")
			})
			t.Logf("%s:\n%s", path, body)
			// The report's frames, arguments printed exactly (no "?").
			for _, want := range []string{
				"runtime error: invalid memory address or nil pointer dereference\ngoroutine ",
				"runtime/debug.Stack()",
				"stacktool.(*Recorder).RecoverFunc(",
				"task.clientWrite({0x0, 0x0}, {0x",
				"task." + tc.handler + "({0x0, 0x0}, ",
				"task." + tc.api + "(",
				"task.ClientCashDeductRes.func1(",
				"created by github.com/stackwatch/stackwatch/gameserver/task.ClientCashDeductRes",
			} {
				if !strings.Contains(body, want) {
					t.Errorf("stacktrace lacks %q", want)
				}
			}
			reg := srv.Registry()
			if got := metricValue(t, reg, metrics.NilSessionAttempts.Name, nil); got != 1 {
				t.Errorf("nil_session_attempts_total = %v, want 1", got)
			}
		})
	}
}

// legacyDisconnects has n players each place a bet and leave before it is
// answered.
func legacyDisconnects(t *testing.T, srv *testServer, n int) {
	t.Helper()
	for i := range n {
		player := fmt.Sprintf("leaver%d", i)
		c, _ := login(t, srv.Addr(), player)
		c.send(protocol.TypeBet, protocol.Bet{BetID: "b", Amount: 10})
		c.conn.Close() // the server still reads the bet: TCP delivers it before the FIN
	}
}

func TestLegacyLeaksGoroutines(t *testing.T) {
	const n = 12
	srv := startServer(t, gameserver.Config{Game: "goldenclover", Legacy: true, WalletLatency: 100 * time.Millisecond})
	warm, _ := login(t, srv.Addr(), "stayer")
	warm.send(protocol.TypePing, protocol.Ping{})
	warm.expect(protocol.TypePong, nil)
	profile := func() string { return httpGet(t, "http://"+srv.AdminAddr().String()+"/debug/pprof/goroutine?debug=1") }
	total := func(prof string) int {
		m := regexp.MustCompile(`goroutine profile: total (\d+)`).FindStringSubmatch(prof)
		if m == nil {
			t.Fatalf("no total in goroutine profile:\n%s", prof)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	// Baselines: the least of a few samples, as a goroutine that is just
	// exiting still counts.
	base, baseTotal := 1e9, 1<<30
	for range 5 {
		base = min(base, metricValue(t, srv.Registry(), metrics.GoGoroutines.Name, nil))
		baseTotal = min(baseTotal, total(profile()))
		time.Sleep(20 * time.Millisecond)
	}
	legacyDisconnects(t, srv, n)
	dir := srv.Config().LogDir
	waitFor(t, "one stacktrace per bet", 10*time.Second, func() bool { return len(stacktraceFiles(t, dir)) == n })
	waitFor(t, "sessions gone", 5*time.Second, func() bool {
		return metricValue(t, srv.Registry(), metrics.SessionsActive.Name, nil) == 1
	})
	reg := srv.Registry()
	// A bet is counted failed last, after its panic was recorded.
	waitFor(t, "every bet counted failed", 5*time.Second, func() bool {
		return metricValue(t, reg, metrics.BetResults.Name, map[string]string{metrics.LabelOutcome: metrics.OutcomeFailed}) == n
	})
	// The profile counts user goroutines exactly; go_goroutines, which the
	// alert uses, also sees the runtime's own, which come and go.
	body := profile()
	if a := total(body); a < baseTotal+n {
		t.Errorf("goroutines %d → %d: want growth ≥ %d\n%s", baseTotal, a, n, body)
	}
	if got := metricValue(t, reg, metrics.GoGoroutines.Name, nil); got < base+n/2 {
		t.Errorf("go_goroutines %v → %v: want it to grow with the %d leaks", base, got, n)
	}
	for name, want := range map[string]float64{
		metrics.NilSessionAttempts.Name: n,
		metrics.PanicsRecovered.Name:    n,
	} {
		if got := metricValue(t, reg, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := metricValue(t, reg, metrics.GameserverModeInfo.Name, map[string]string{"mode": "legacy"}); got != 1 {
		t.Errorf("mode info = %v", got)
	}

	// The goroutine profile names where the leaked goroutines park.
	m := regexp.MustCompile(`(?m)^(\d+) @[^\n]*\n(?:#[^\n]*\n)*?#\s+0x[0-9a-f]+\s+github.com/stackwatch/stackwatch/gameserver/task.ClientGetWilddigReckonBetRes.func1\+`).FindStringSubmatch(body)
	if m == nil || m[1] != strconv.Itoa(n) {
		t.Errorf("goroutine profile: want %d goroutines parked in ClientGetWilddigReckonBetRes.func1, got %v\n%s", n, m, body)
	}
}

func TestLegacyForestTeaPartyLogsInsteadOfPanicking(t *testing.T) {
	srv := startServer(t, gameserver.Config{Game: "forestteaparty", Legacy: true, WalletLatency: 100 * time.Millisecond})
	legacyDisconnects(t, srv, 3)
	reg := srv.Registry()
	waitFor(t, "three lost bets", 10*time.Second, func() bool {
		return metricValue(t, reg, metrics.BetResults.Name, map[string]string{metrics.LabelOutcome: metrics.OutcomeFailed}) == 3
	})
	if files := stacktraceFiles(t, srv.Config().LogDir); len(files) != 0 {
		t.Fatalf("forestteaparty wrote stacktraces: %v", files)
	}
	if n := metricValue(t, reg, metrics.NilSessionAttempts.Name, nil); n != 0 {
		t.Errorf("nil attempts = %v", n)
	}
	// Counted as the log line says: a closed session, not a nil one.
	for reason, want := range map[string]float64{metrics.ReasonClosedSession: 3, metrics.ReasonNilSession: 0} {
		if n := metricValue(t, reg, metrics.ClientWriteFailures.Name, map[string]string{metrics.LabelReason: reason}); n != want {
			t.Errorf("client_write_failures_total{reason=%q} = %v, want %v", reason, n, want)
		}
	}
	log, err := os.ReadFile(filepath.Join(srv.Config().LogDir, gameserver.LogFileName))
	if err != nil {
		t.Fatal(err)
	}
	var warnings int
	for line := range strings.Lines(string(log)) {
		var rec struct{ Level, Msg, Player string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("gameserver.log line is not JSON: %q", line)
		}
		if rec.Msg == "[Client] Gate session closed, message cannot be sent" {
			if rec.Level != "WARN" || !strings.HasPrefix(rec.Player, "leaver") {
				t.Errorf("warning %q", line)
			}
			warnings++
		}
	}
	if warnings != 3 {
		t.Errorf("%d closed-session warnings, want 3", warnings)
	}
}

package sidecar

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/gameservertest"
	"github.com/stackwatch/stackwatch/gameserver/task"
	"github.com/stackwatch/stackwatch/loadgen"
	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/stacktrace"
)

func TestClosedSessionMsgMatchesServer(t *testing.T) {
	if ClosedSessionMsg != task.ClosedSessionMsg {
		t.Fatalf("sidecar counts %q, the server logs %q", ClosedSessionMsg, task.ClosedSessionMsg)
	}
}

// runLegacyServer runs the real game server in legacy mode in-process under
// the load generator, with players dropping mid-bet, and returns its log dir
// after the server has stopped.
func runLegacyServer(t *testing.T, game, logDir string) {
	t.Helper()
	srv := gameservertest.Start(t, gameserver.Config{
		Game: game, Legacy: true, LogDir: logDir, WalletLatency: 20 * time.Millisecond,
	})
	sum, err := loadgen.Run(context.Background(), loadgen.Config{
		Addr: srv.Addr().String(), Clients: 16, Duration: 2 * time.Second, Disconnect: 0.3,
		DisconnectJitter: 40 * time.Millisecond, Drain: 3 * time.Second, Seed: 7,
	})
	if err != nil {
		t.Fatalf("loadgen: %v", err)
	}
	t.Logf("%s: %d bets, %d lost, %d disconnects", game, sum.BetsPlaced, sum.Lost, sum.Disconnects)
	srv.Stop()
}

// TestLegacyServerUnderLoad is the acceptance test of part 1: the sidecar
// reports exactly as many panics as the legacy server wrote files, grouped
// into the nil-session crash sites, and forestteaparty's closed-session
// warnings.
func TestLegacyServerUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the game server under load")
	}
	for _, c := range []struct{ game, service, caller string }{
		{"wilddig", "wilddiggr", "task.onWildDigBetClientResp"},
		{"goldenclover", "goldenclover", "task.onGoldenCloverBetClientResp"},
		{"forestteaparty", "forestteaparty", ""},
	} {
		t.Run(c.game, func(t *testing.T) {
			logDir, dataDir := dirs(t)
			// The sidecar starts first, before the directory exists.
			h := start(t, Config{Service: c.service, LogDir: logDir, DataDir: dataDir, Settle: 20 * time.Millisecond})
			runLegacyServer(t, c.game, logDir)

			n := len(files(t, logDir))
			warnings := countWarnings(t, filepath.Join(logDir, gameserver.LogFileName))
			t.Logf("%s: %d stacktrace files, %d closed-session warnings in the log", c.game, n, warnings)
			h.waitValue(metrics.Panics, float64(n))
			h.waitValue(metrics.ClosedSessionWarnings, float64(warnings))
			h.waitValue(metrics.StacktraceFiles, float64(n))
			if got := h.value(metrics.ParseFailures); got != 0 {
				t.Fatalf("parse failures: %v", got)
			}
			groups := h.groups()
			if c.caller == "" {
				if n != 0 || len(groups) != 0 || warnings == 0 {
					t.Fatalf("forestteaparty: %d files, %d groups, %d warnings", n, len(groups), warnings)
				}
				return
			}
			if n == 0 {
				t.Fatal("the legacy server wrote no stacktrace files under disconnects")
			}
			total := 0
			for _, g := range groups {
				total += g.Count
				t.Logf("group %s at %s:%d caller %s nil_receiver=%v count=%d",
					g.Kind, g.CrashSite.Function, g.CrashSite.Line, g.Caller, g.NilReceiver, g.Count)
				if g.Kind != stacktrace.KindNilDereference {
					t.Errorf("group kind %s", g.Kind)
				}
			}
			if total != n {
				t.Fatalf("groups hold %d panics, %d files", total, n)
			}
			// The report's bug: clientWrite called with a nil session from the
			// game's bet response handler.
			main := groups[0]
			if !strings.HasSuffix(main.CrashSite.Function, "/task.clientWrite") || !main.NilReceiver ||
				!strings.HasSuffix(main.Caller, c.caller) {
				t.Fatalf("largest group is %s called by %s (nil receiver %v)",
					main.CrashSite.Function, main.Caller, main.NilReceiver)
			}
			if got := h.value(metrics.Panics, metrics.LabelCrashSite, "task.clientWrite",
				metrics.LabelKind, stacktrace.KindNilDereference); got != float64(main.Count) {
				t.Fatalf("clientWrite series %v, group count %d", got, main.Count)
			}
		})
	}
}

// countWarnings counts the closed-session warnings in the server's log by
// decoding every line, independently of the tailer.
func countWarnings(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct{ Msg string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == task.ClosedSessionMsg {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

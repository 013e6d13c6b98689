package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver/protocol"
)

// With GOEXPERIMENT=goroutineleakprofile the runtime itself proves the
// legacy goroutines leaked: they wait on channels nothing else can reach.
// The admin listener serves that profile as /debug/pprof/goroutineleak.
func TestRuntimeProvesLegacyLeak(t *testing.T) {
	bin := buildServer(t)
	for _, legacy := range []bool{true, false} {
		t.Run(map[bool]string{true: "legacy", false: "patched"}[legacy], func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"-game", "wilddig", "-log-dir", filepath.Join(dir, "log"), "-data-dir", filepath.Join(dir, "data"), "-wallet-latency", "50ms"}
			if legacy {
				args = append(args, "-legacy")
			}
			p := start(t, bin, args...)
			const n = 8
			for i := range n {
				c, _ := connect(t, p.addr, fmt.Sprint("leaver", i))
				protocol.WriteMessage(c.conn, protocol.TypeBet, protocol.Bet{BetID: "b", Amount: 10})
				c.conn.Close()
			}
			// A balance answer waits for the player's bets in flight: once
			// every leaver has one, every bet has settled (or aborted) and,
			// in legacy, panicked.
			for i := range n {
				c, _ := connect(t, p.addr, fmt.Sprint("leaver", i))
				protocol.WriteMessage(c.conn, protocol.TypeBalanceRequest, protocol.BalanceRequest{})
				for c.next().Type != protocol.TypeBalance {
				}
				c.conn.Close()
			}
			// A leaked reckon goroutine parks a moment after its bet ends;
			// each profile request runs the leak-detecting GC afresh. The
			// runtime's detection is conservative — a stale pointer anywhere
			// (a conservatively scanned frame, say) keeps a channel
			// "reachable" — so in practice it proves most, not all, of the
			// legacy leaks; those it proves must all be ours.
			want := 0
			if legacy {
				want = n / 2
			}
			total := regexp.MustCompile(`goroutineleak profile: total (\d+)`)
			var body string
			var got int
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				body = get(t, "http://"+p.admin+"/debug/pprof/goroutineleak?debug=1")
				m := total.FindStringSubmatch(body)
				if m == nil {
					t.Fatalf("not a goroutineleak profile:\n%s", body)
				}
				got, _ = strconv.Atoi(m[1])
				if (legacy && got >= want) || (!legacy && got == 0) || time.Now().After(deadline) {
					break
				}
			}
			t.Logf("the runtime proved %d of %d goroutines leaked", got, n)
			if (legacy && (got < want || got > n)) || (!legacy && got != 0) {
				t.Errorf("leaked goroutines %d, want %d..%d", got, want, n)
			}
			// Every goroutine it proves leaked waits in the reckon closure.
			if legacy && !regexp.MustCompile(fmt.Sprintf(`(?m)^%d @[^\n]*\n(#[^\n]*\n)*#\s+0x[0-9a-f]+\s+\S+/task\.ClientGetWilddigReckonBetRes\.func1\+`, got)).MatchString(body) {
				t.Errorf("the leak profile does not put all %d at the reckon closure:\n%s", got, body)
			}
			// Patched: stays at zero a while later too.
			if !legacy {
				time.Sleep(200 * time.Millisecond)
				if m := total.FindStringSubmatch(get(t, "http://"+p.admin+"/debug/pprof/goroutineleak?debug=1")); m == nil || m[1] != "0" {
					t.Errorf("patched server leaked: %v", m)
				}
			}
		})
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

package loadgen_test

// End-to-end proofs of issue 2 against the real game server over real TCP.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/client"
	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/gameserver/task"
	"github.com/stackwatch/stackwatch/loadgen"
	"github.com/stackwatch/stackwatch/metrics"
)

// await reads results from c until betID's arrives, checking that every
// result read belongs to player and agrees with any earlier delivery.
func await(t *testing.T, c *client.Client, player, betID string, seen map[string]client.Result, d time.Duration) (client.Result, bool) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case r, ok := <-c.Results():
			if !ok {
				t.Fatalf("connection ended: %v", c.Err())
			}
			if r.Err != nil {
				t.Fatalf("bet %s refused: %v", r.BetID, r.Err)
			}
			if r.PlayerID != player {
				t.Fatalf("%s received %s's result %+v", player, r.PlayerID, r.BetResult)
			}
			if prev, dup := seen[r.BetID]; dup {
				if prev.Win != r.Win || prev.Amount != r.Amount {
					t.Fatalf("bet %s settled twice: %+v then %+v", r.BetID, prev.BetResult, r.BetResult)
				}
			} else {
				seen[r.BetID] = r
			}
			if r.BetID == betID {
				return r, true
			}
		case <-deadline:
			return client.Result{}, false
		}
	}
}

// TestDisconnectMidBet is the incident report's integration test: a client
// places a bet and disconnects before the response; nothing panics, the
// result is retrievable after reconnecting, and the balance is consistent.
func TestDisconnectMidBet(t *testing.T) {
	for _, g := range []string{"wilddig", "goldenclover", "forestteaparty"} {
		t.Run(g, func(t *testing.T) {
			s := startServer(t, gameserver.Config{Game: g, WalletLatency: 20 * time.Millisecond})
			const player = "alice"
			c := dial(t, s.addr(), player)
			start := c.Welcome().Balance
			c.Close()
			seen := map[string]client.Result{}

			// The result is written to a socket the player never reads.
			betUnread(t, s, player, "unread-1", 100)
			c = dial(t, s.addr(), player)
			r, ok := await(t, c, player, "unread-1", seen, 5*time.Second)
			if !ok {
				t.Fatal("result of the unread bet not redelivered after reconnect")
			}
			if !r.Redelivered || r.Amount != 100 || len(r.Symbols) == 0 {
				t.Fatalf("redelivered result = %+v", r.BetResult)
			}
			c.Close()

			// Close right after sending: the server runs the bet anyway
			// and its result follows the player to the next connection,
			// without a resend.
			for i := range 10 {
				id := fmt.Sprintf("race-%d", i)
				c := dial(t, s.addr(), player)
				// Everything the server pushed on connecting is read first:
				// closing with unread input resets the connection, and the
				// kernel then drops the bet the server has not read yet.
				if _, err := c.Ping(testCtx(t, 5*time.Second)); err != nil {
					t.Fatal(err)
				}
				if err := c.Bet(testCtx(t, 5*time.Second), id, 10); err != nil {
					t.Fatal(err)
				}
				c.Close()
				c = dial(t, s.addr(), player)
				if _, ok := await(t, c, player, id, seen, 5*time.Second); !ok {
					t.Fatalf("bet %s: no result on the next connection", id)
				}
				c.Close()
			}

			c = dial(t, s.addr(), player)
			bal, err := c.Balance(testCtx(t, 10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			want := start
			for _, r := range seen {
				want += r.Win - r.Amount
			}
			if bal != want || len(seen) != 11 {
				t.Fatalf("balance %d, want %d from %d results", bal, want, len(seen))
			}
			if files := stacktraceFiles(t, s.cfg.LogDir); len(files) != 0 {
				t.Fatalf("patched server wrote stacktrace files: %v", files)
			}
			for _, m := range []string{metrics.NilSessionAttempts.Name, metrics.PanicsRecovered.Name} {
				if v := s.metric(t, m); v != 0 {
					t.Fatalf("%s = %v", m, v)
				}
			}
		})
	}
}

// TestPatchedUnderLoad: 200 players, 20% of bets followed by a disconnect,
// 20 s: nothing lost or settled twice, no stacktrace files, and the server's
// goroutine count back where it started.
func TestPatchedUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("20 s load run; skipped with -short")
	}
	s := startServer(t, gameserver.Config{Game: "wilddig"})
	before := s.metric(t, metrics.GoGoroutines.Name)
	// Drops spread over the first 30 ms after a bet hit both sides of the
	// deduction: bets that abort, and results that must wait for the
	// player's return.
	sum := runLoad(t, loadgen.Config{Addr: s.addr(), Clients: 200, Duration: 20 * time.Second, Disconnect: 0.2,
		DisconnectJitter: 30 * time.Millisecond, Drain: 30 * time.Second,
		Progress: testWriter{t}, ProgressInterval: 5 * time.Second})
	if !sum.OK() || sum.Lost != 0 || sum.DuplicateSettlements != 0 || sum.Misdelivered != 0 || sum.BalanceMismatches != 0 {
		t.Fatalf("patched server failed the run: %s", sum)
	}
	if sum.BalanceChecks != 200 || sum.Disconnects == 0 || sum.Redelivered == 0 || sum.Results < sum.Disconnects ||
		sum.Results != sum.BetsPlaced-sum.Rejected {
		t.Fatalf("run too thin to prove anything: %s", sum)
	}
	if files := stacktraceFiles(t, s.cfg.LogDir); len(files) != 0 {
		t.Fatalf("%d stacktrace files, first %s", len(files), files[0])
	}
	// Sessions close as the server sees each EOF; give it a moment.
	var after float64
	waitFor(t, 10*time.Second, "goroutines back to the baseline", func() bool {
		goroutines()
		after = s.metric(t, metrics.GoGoroutines.Name)
		return after <= before+10
	})
	t.Logf("server goroutines: %v before, %v after %d bets", before, after, sum.BetsPlaced)
	if v := s.metric(t, metrics.BetResults.Name, metrics.LabelOutcome, metrics.OutcomeFailed); v != 0 {
		t.Fatalf("%v bets failed on the server", v)
	}
}

// TestLegacyUnderLoad replays the incident: with -legacy, players that leave
// mid-bet make the response handler write to a nil session; each panic
// leaves a stacktrace file naming clientWrite and the handler, a goroutine
// stays behind, and the player's bet is lost.
func TestLegacyUnderLoad(t *testing.T) {
	handlers := map[string]string{"wilddig": "task.onWildDigBetClientResp", "goldenclover": "task.onGoldenCloverBetClientResp"}
	for g, handler := range handlers {
		t.Run(g, func(t *testing.T) {
			s := startServer(t, gameserver.Config{Game: g, Legacy: true})
			before := s.metric(t, metrics.GoGoroutines.Name)
			// Players stay away longer than a response takes even on a
			// loaded machine, so the response meets no session at all.
			sum := runLoad(t, loadgen.Config{Addr: s.addr(), Clients: 200, Duration: 5 * time.Second, Disconnect: 0.2,
				Away: time.Second, Drain: 15 * time.Second, RedeliveryWait: 300 * time.Millisecond})
			files := stacktraceFiles(t, s.cfg.LogDir)
			goroutines()
			after := s.metric(t, metrics.GoGoroutines.Name)
			t.Logf("%d stacktrace files; server goroutines %v before, %v after", len(files), before, after)

			if sum.OK() || sum.Lost == 0 {
				t.Fatalf("loadgen did not report the incident's lost bets: %s", sum)
			}
			if len(files) == 0 {
				t.Fatal("no stacktrace files")
			}
			if panics := s.metric(t, metrics.PanicsRecovered.Name); int(panics) != len(files) {
				t.Fatalf("%v panics recovered, %d files", panics, len(files))
			}
			if grown := int(after - before); grown < len(files)/2 || grown < 5 {
				t.Fatalf("goroutines grew by %d for %d panics; want a leak", grown, len(files))
			}
			checkStacktrace(t, files[0], handler)
		})
	}
}

func checkStacktrace(t *testing.T, path, handler string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	if first != "runtime error: invalid memory address or nil pointer dereference" {
		t.Fatalf("%s: first line %q", path, first)
	}
	var frames []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, "\t") && strings.Contains(line, "(") {
			frames = append(frames, line)
		}
	}
	var write, resp = -1, -1
	for i, fr := range frames {
		if write < 0 && strings.Contains(fr, "/task.clientWrite(") {
			write = i
		}
		if resp < 0 && strings.Contains(fr, "/task."+strings.TrimPrefix(handler, "task.")+"(") {
			resp = i
		}
	}
	if write < 0 || resp < 0 || resp < write {
		t.Fatalf("%s: want clientWrite called from %s; frames:\n%s", path, handler, strings.Join(frames, "\n"))
	}
}

// TestPlayersNeverSeeOthersResults: one player's results reach only that
// player — not another player reconnecting, not a forged or borrowed ticket,
// not a player reusing the same bet id — while the owner still gets them.
func TestPlayersNeverSeeOthersResults(t *testing.T) {
	s := startServer(t, gameserver.Config{Game: "wilddig", WalletLatency: 20 * time.Millisecond})

	// Alice's result waits on the server (she never read it); Bob uses the
	// same bet id with a different amount.
	alice0 := dial(t, s.addr(), "alice")
	aliceStart := alice0.Welcome().Balance
	alice0.Close()
	betUnread(t, s, "alice", "shared-1", 100)

	bob := dial(t, s.addr(), "bob")
	if err := bob.Bet(testCtx(t, 5*time.Second), "shared-1", 20); err != nil {
		t.Fatal(err)
	}
	r := next(t, bob, 5*time.Second)
	if r.Err != nil || r.PlayerID != "bob" || r.BetID != "shared-1" || r.Amount != 20 || r.Redelivered {
		t.Fatalf("bob got %+v (err %v)", r.BetResult, r.Err)
	}
	// Bob's own bet left, and a disconnect-reconnect cycle brings him
	// nothing of Alice's.
	bob.Close()
	bob = dial(t, s.addr(), "bob")
	if _, err := bob.Ping(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	onlyOwn(t, bob, "bob", 300*time.Millisecond)

	// Tickets that are not Alice's own get an error and nothing else.
	expired, _ := tokenFor("alice", []byte(devSecret), time.Now().Add(-time.Minute))
	wrongSecret, _ := tokenFor("alice", []byte("not-the-secret"), time.Now().Add(time.Hour))
	for name, tc := range map[string]struct{ player, token, code string }{
		"bob's ticket":    {"alice", token(t, "bob"), protocol.CodeBadToken},
		"wrong secret":    {"alice", wrongSecret, protocol.CodeBadToken},
		"expired":         {"alice", expired, protocol.CodeTokenExpired},
		"garbage":         {"alice", "garbage", protocol.CodeBadToken},
		"empty":           {"alice", "", protocol.CodeBadToken},
		"alice's, as bob": {"bob", token(t, "alice"), protocol.CodeBadToken},
		"bad player id":   {"alice/../bob", token(t, "alice"), protocol.CodeBadToken},
		"alice's, as eve": {"eve", token(t, "alice"), protocol.CodeBadToken},
	} {
		t.Run(name, func(t *testing.T) { forged(t, s.addr(), tc.player, tc.token, tc.code) })
	}

	// Alice gets her own result, redelivered, once she reconnects.
	alice := dial(t, s.addr(), "alice")
	r = next(t, alice, 5*time.Second)
	if r.Err != nil || r.PlayerID != "alice" || r.BetID != "shared-1" || r.Amount != 100 || !r.Redelivered {
		t.Fatalf("alice got %+v (err %v)", r.BetResult, r.Err)
	}
	bal, err := alice.Balance(testCtx(t, 5*time.Second))
	if err != nil || bal != aliceStart-100+r.Win {
		t.Fatalf("alice balance %d (%v), want %d", bal, err, aliceStart-100+r.Win)
	}

	// Both reuse one bet id and leave mid-bet at the same moment: each
	// gets back only their own settlement.
	for _, p := range []string{"carol", "dave"} {
		betUnread(t, s, p, "collide", 10)
	}
	for _, p := range []string{"carol", "dave"} {
		c := dial(t, s.addr(), p)
		r := next(t, c, 5*time.Second)
		if r.PlayerID != p || r.BetID != "collide" || !r.Redelivered {
			t.Fatalf("%s got %+v", p, r.BetResult)
		}
		onlyOwn(t, c, p, 200*time.Millisecond)
	}
}

// forged tries to log in with a ticket that is not player's own and checks
// the server answers with code and then closes without sending anything.
func forged(t *testing.T, addr, player, tok, code string) {
	t.Helper()
	c, err := client.Dial(testCtx(t, 5*time.Second), addr, player, tok)
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != code {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dial with forged ticket: %v, want %s", err, code)
	}
	// On the raw wire, the Error is the last frame.
	raw := rawHello(t, addr, player, tok)
	f, err := protocol.ReadFrame(raw, 0)
	if err != nil || f.Type != protocol.TypeError {
		t.Fatalf("first frame: %v %v", f.Type, err)
	}
	if f, err := protocol.ReadFrame(raw, 0); err != io.EOF {
		t.Fatalf("after the error: frame %s, err %v; want EOF", f.Type, err)
	}
}

// TestLegacyForestTeaParty: the legacy forestteaparty kept its session check,
// as in the report: no panics and no stacktrace files, a closed-session
// warning naming the player in the JSON log instead — but the result is
// still lost to the player.
func TestLegacyForestTeaParty(t *testing.T) {
	s := startServer(t, gameserver.Config{Game: "forestteaparty", Legacy: true})
	sum := runLoad(t, loadgen.Config{Addr: s.addr(), Clients: 50, Duration: 3 * time.Second, Disconnect: 0.3,
		Away: time.Second, Drain: 10 * time.Second, PlayerPrefix: "ftp-", RedeliveryWait: 300 * time.Millisecond})
	if files := stacktraceFiles(t, s.cfg.LogDir); len(files) != 0 {
		t.Fatalf("forestteaparty panicked: %v", files)
	}
	if sum.OK() || sum.Lost == 0 {
		t.Fatalf("legacy forestteaparty lost nothing: %s", sum)
	}
	s.Stop() // flush and close the log
	b, err := os.ReadFile(filepath.Join(s.cfg.LogDir, gameserver.LogFileName))
	if err != nil {
		t.Fatal(err)
	}
	var warnings int
	for line := range strings.Lines(string(b)) {
		var rec struct{ Level, Msg, Player string }
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != task.ClosedSessionMsg {
			continue
		}
		if rec.Level != "WARN" || !strings.HasPrefix(rec.Player, "ftp-") {
			t.Fatalf("closed-session warning without the player: %s", line)
		}
		warnings++
	}
	if int64(warnings) < sum.Lost {
		t.Fatalf("%d closed-session warnings for %d lost bets", warnings, sum.Lost)
	}
}

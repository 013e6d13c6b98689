package gameserver_test

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/gameserver/task"
	"github.com/stackwatch/stackwatch/gameserver/wallet"
	"github.com/stackwatch/stackwatch/metrics"
)

// fastRetry gives up on live delivery within milliseconds, so results go to
// the dead-letter store deterministically.
var fastRetry = task.RetryPolicy{Base: time.Millisecond, Max: 2 * time.Millisecond, Tries: 3, MaxQueue: 100}

// waitDeadLetters waits for the dead-letter gauge to read n.
func waitDeadLetters(t *testing.T, srv *testServer, n float64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%v dead letters", n), 10*time.Second, func() bool {
		return metricValue(t, srv.Registry(), metrics.DeadLetters.Name, nil) == n
	})
}

// waitDeducted waits until the ledger holds the bet as deducted or settled.
func waitDeducted(t *testing.T, srv *testServer, player, betID string) {
	t.Helper()
	waitFor(t, "the deduction of "+betID, 10*time.Second, func() bool {
		_, ok, err := srv.Wallet().Lookup(player, betID)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	})
}

// The report's integration test: the client disconnects midway, nothing
// panics, and the result is retrievable — here, delivered on reconnect.
func TestDisconnectAfterDeductionRedeliversOnReconnect(t *testing.T) {
	for _, g := range []string{"goldenclover", "wilddig", "forestteaparty"} {
		t.Run(g, func(t *testing.T) {
			srv := startServer(t, gameserver.Config{Game: g, WalletLatency: 300 * time.Millisecond, Retry: fastRetry})
			c, _ := login(t, srv.Addr(), "carol")
			c.send(protocol.TypeBet, protocol.Bet{BetID: "b1", Amount: 500})
			waitDeducted(t, srv, "carol", "b1")
			c.conn.Close() // mid-settlement: the stake is taken, the win not yet credited

			// The bet settles without the client; the handler finds the
			// session closed and queues the result; the retries find no
			// session either and dead-letter it.
			waitDeadLetters(t, srv, 1)
			if b, _, _ := srv.Wallet().Lookup("carol", "b1"); b.State != wallet.Settled {
				t.Fatalf("dead-lettered but not settled: %+v", b)
			}
			c2, w := login(t, srv.Addr(), "carol")
			var r protocol.BetResult
			c2.expect(protocol.TypeBetResult, &r) // right after Welcome
			if r.BetID != "b1" || r.PlayerID != "carol" || !r.Redelivered {
				t.Fatalf("redelivered %+v", r)
			}
			if w.Balance != r.Balance || r.Balance != 1_000_000-500+r.Win {
				t.Fatalf("welcome balance %d, result %+v", w.Balance, r)
			}
			c2.send(protocol.TypeAck, protocol.Ack{BetID: "b1"})
			waitFor(t, "the ack", 5*time.Second, func() bool {
				out, err := srv.Wallet().Outbox("carol")
				// The length counter follows the commit a moment later.
				return err == nil && len(out) == 0 && srv.Wallet().OutboxLen() == 0
			})
			waitDeadLetters(t, srv, 0)

			// Acked: a later reconnect gets nothing more.
			c3, _ := login(t, srv.Addr(), "carol")
			c3.send(protocol.TypePing, protocol.Ping{})
			c3.expect(protocol.TypePong, nil)

			if files := stacktraceFiles(t, srv.Config().LogDir); len(files) != 0 {
				t.Fatalf("patched server wrote stacktraces: %v", files)
			}
			reg := srv.Registry()
			if n := metricValue(t, reg, metrics.NilSessionAttempts.Name, nil); n != 0 {
				t.Errorf("nil_session_attempts_total = %v, want 0", n)
			}
			if n := metricValue(t, reg, metrics.PanicsRecovered.Name, nil); n != 0 {
				t.Errorf("panics = %v", n)
			}
			queued := metricValue(t, reg, metrics.BetResults.Name, map[string]string{metrics.LabelOutcome: metrics.OutcomeQueued})
			if queued != 1 {
				t.Errorf("bet results queued = %v, want 1 (where the result went first)", queued)
			}
		})
	}
}

// A bet the server has read runs even if the player leaves before the
// deduction; its result follows the player to the next session without a
// resend.
func TestBetOutlivesItsConnection(t *testing.T) {
	srv := startServer(t, gameserver.Config{WalletLatency: 300 * time.Millisecond})
	c, _ := login(t, srv.Addr(), "dave")
	c.send(protocol.TypeBet, protocol.Bet{BetID: "b1", Amount: 500})
	// Frames are served in order: the pong proves the bet was taken.
	c.send(protocol.TypePing, protocol.Ping{})
	c.expect(protocol.TypePong, nil)
	c.conn.Close() // before the deduction's 300ms are over

	c2, _ := login(t, srv.Addr(), "dave")
	var r protocol.BetResult
	c2.expect(protocol.TypeBetResult, &r) // no resend
	if r.BetID != "b1" || r.Balance != 1_000_000-500+r.Win {
		t.Fatalf("result %+v", r)
	}
	if b, _, _ := srv.Wallet().Lookup("dave", "b1"); b.State != wallet.Settled {
		t.Fatalf("ledger %+v", b)
	}
}

// A returning player's backlog goes out in bet order (not bet id order), a
// page at a time as the player acks, and a new bet's result comes after it.
func TestBacklogInBetOrderBeforeNewResults(t *testing.T) {
	srv := startServer(t, gameserver.Config{RedeliveryPage: 2, Retry: fastRetry})
	c, _ := login(t, srv.Addr(), "fay")
	ids := []string{"b9", "b10", "b11"} // bet id order would be b10, b11, b9
	for _, id := range ids {
		c.send(protocol.TypeBet, protocol.Bet{BetID: id, Amount: 10})
	}
	c.send(protocol.TypePing, protocol.Ping{})
	c.expect(protocol.TypePong, nil)
	c.conn.Close()
	waitDeadLetters(t, srv, 3) // all settled, none delivered

	c2, _ := login(t, srv.Addr(), "fay")
	next := func() string {
		t.Helper()
		var r protocol.BetResult
		c2.expect(protocol.TypeBetResult, &r)
		if !r.Redelivered && r.BetID != "n1" {
			t.Errorf("%s not flagged redelivered", r.BetID)
		}
		return r.BetID
	}
	got := []string{next(), next()} // the first page
	c2.send(protocol.TypeBet, protocol.Bet{BetID: "n1", Amount: 10})
	c2.send(protocol.TypePing, protocol.Ping{})
	c2.expect(protocol.TypePong, nil) // nothing more before an ack
	for len(got) < 4 {
		c2.send(protocol.TypeAck, protocol.Ack{BetID: got[len(got)-2]})
		got = append(got, next())
	}
	if want := []string{"b9", "b10", "b11", "n1"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

func TestResentBetIsIdempotent(t *testing.T) {
	srv := startServer(t, gameserver.Config{})
	c, _ := login(t, srv.Addr(), "erin")
	c.send(protocol.TypeBet, protocol.Bet{BetID: "same", Amount: 1000})
	var r1, r2 protocol.BetResult
	c.expect(protocol.TypeBetResult, &r1)
	c.send(protocol.TypeBet, protocol.Bet{BetID: "same", Amount: 1000})
	c.expect(protocol.TypeBetResult, &r2)
	if !r2.Redelivered || r2.Balance != r1.Balance || r2.Win != r1.Win {
		t.Fatalf("resend: first %+v, second %+v", r1, r2)
	}
	c.send(protocol.TypeBalanceRequest, protocol.BalanceRequest{})
	var b protocol.Balance
	c.expect(protocol.TypeBalance, &b)
	if b.Balance != 1_000_000-1000+r1.Win {
		t.Fatalf("balance %d after one bet of 1000 winning %d: deducted twice?", b.Balance, r1.Win)
	}
}

// One player never receives another's results: not live, not on
// reconnect, not by reusing their bet id, not by acking them.
func TestResultsOnlyReachTheirOwner(t *testing.T) {
	srv := startServer(t, gameserver.Config{WalletLatency: 200 * time.Millisecond, Retry: fastRetry})
	// frank bets and leaves mid-settlement: his result is dead-lettered.
	f, _ := login(t, srv.Addr(), "frank")
	f.send(protocol.TypeBet, protocol.Bet{BetID: "shared-id", Amount: 100})
	waitDeducted(t, srv, "frank", "shared-id")
	f.conn.Close()
	waitDeadLetters(t, srv, 1)

	// grace logs in, acks frank's bet id and bets with the same id.
	g, _ := login(t, srv.Addr(), "grace")
	g.send(protocol.TypeAck, protocol.Ack{BetID: "shared-id"})
	g.send(protocol.TypeBet, protocol.Bet{BetID: "shared-id", Amount: 7})
	var r protocol.BetResult
	g.expect(protocol.TypeBetResult, &r)
	if r.PlayerID != "grace" || r.Amount != 7 || r.Redelivered {
		t.Fatalf("grace got %+v", r)
	}
	g.send(protocol.TypeAck, protocol.Ack{BetID: "shared-id"})
	g.send(protocol.TypePing, protocol.Ping{})
	g.expect(protocol.TypePong, nil) // nothing of frank's arrived before

	// frank still gets his own result, once.
	f2, _ := login(t, srv.Addr(), "frank")
	var fr protocol.BetResult
	f2.expect(protocol.TypeBetResult, &fr)
	if fr.PlayerID != "frank" || fr.Amount != 100 || !fr.Redelivered {
		t.Fatalf("frank got %+v", fr)
	}
	f2.send(protocol.TypePing, protocol.Ping{})
	f2.expect(protocol.TypePong, nil)
}

func TestReconnectReplacesSession(t *testing.T) {
	srv := startServer(t, gameserver.Config{})
	old, w1 := login(t, srv.Addr(), "heidi")
	_, w2 := login(t, srv.Addr(), "heidi")
	if w1.SessionID == w2.SessionID {
		t.Fatal("same session id")
	}
	old.expectClosed()
	waitFor(t, "one active session", 5*time.Second, func() bool {
		return metricValue(t, srv.Registry(), metrics.SessionsActive.Name, nil) == 1
	})
}

func TestStaleSessionsAreReaped(t *testing.T) {
	srv := startServer(t, gameserver.Config{StaleAfter: 300 * time.Millisecond, ReapInterval: 50 * time.Millisecond})
	quiet, _ := login(t, srv.Addr(), "ivan")
	chatty, _ := login(t, srv.Addr(), "judy")
	quietGone := make(chan error, 1)
	go func() {
		quiet.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := protocol.ReadFrame(quiet.conn, 0)
		quietGone <- err
	}()
	// judy keeps talking until the reaper has closed ivan's session.
	for pings := 0; ; pings++ {
		select {
		case err := <-quietGone:
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("the silent session was not reaped within 10s")
			}
			t.Logf("reaped after %d of judy's pings", pings)
		default:
			chatty.send(protocol.TypePing, protocol.Ping{})
			chatty.expect(protocol.TypePong, nil)
			continue
		}
		break
	}
	chatty.send(protocol.TypePing, protocol.Ping{})
	chatty.expect(protocol.TypePong, nil)
	if n := metricValue(t, srv.Registry(), metrics.SessionsClosed.Name, nil); n != 1 {
		t.Errorf("sessions closed = %v, want 1", n)
	}
}

func TestInsufficientFunds(t *testing.T) {
	srv := startServer(t, gameserver.Config{InitialBalance: 50})
	c, _ := login(t, srv.Addr(), "kim")
	c.send(protocol.TypeBet, protocol.Bet{BetID: "big", Amount: 51})
	var e protocol.Error
	c.expect(protocol.TypeError, &e)
	if e.Code != protocol.CodeInsufficientFunds || e.BetID != "big" {
		t.Fatalf("error %+v", e)
	}
}

func TestManyBetsManyPlayers(t *testing.T) {
	srv := startServer(t, gameserver.Config{WalletLatency: -1})
	const players, bets = 8, 25
	errs := make(chan error, players)
	for p := range players {
		go func() {
			// login and send may t.Fatal, which ends this goroutine with
			// runtime.Goexit; the deferred send still reports it.
			err := errors.New("player goroutine ended early (see the failure above)")
			defer func() { errs <- err }()
			err = func() error {
				player := fmt.Sprintf("p%d", p)
				c, _ := login(t, srv.Addr(), player)
				for i := range bets {
					c.send(protocol.TypeBet, protocol.Bet{BetID: fmt.Sprint(i), Amount: 10})
				}
				seen := map[string]bool{}
				for range bets {
					f, err := c.read()
					if err != nil {
						return err
					}
					var r protocol.BetResult
					if f.Type != protocol.TypeBetResult || f.Decode(&r) != nil || r.PlayerID != player || seen[r.BetID] {
						return fmt.Errorf("%s: bad result %s %s", player, f.Type, f.Payload)
					}
					seen[r.BetID] = true
					c.send(protocol.TypeAck, protocol.Ack{BetID: r.BetID})
				}
				return nil
			}()
		}()
	}
	for range players {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := metricValue(t, srv.Registry(), metrics.BetResults.Name, map[string]string{metrics.LabelOutcome: metrics.OutcomeDelivered}); n != players*bets {
		t.Fatalf("delivered = %v, want %d", n, players*bets)
	}
}

// TestFloodIsBounded: one client flooding Bet and BalanceRequest frames gets
// "unavailable" errors past the limits instead of growing the server's
// goroutines without bound.
func TestFloodIsBounded(t *testing.T) {
	// Settling takes 1 s, so every refusal arrives before any result.
	srv := startServer(t, gameserver.Config{WalletLatency: time.Second})
	c, _ := login(t, srv.Addr(), "flooder")
	const bets, balances = task.MaxBetsInFlight + 36, 50
	for i := range bets {
		c.send(protocol.TypeBet, protocol.Bet{BetID: fmt.Sprint(i), Amount: 1})
	}
	for range balances {
		c.send(protocol.TypeBalanceRequest, protocol.BalanceRequest{})
	}
	var refusedBets, refusedBalances int
	for range bets - task.MaxBetsInFlight + balances - 4 {
		f, err := c.read()
		if err != nil {
			t.Fatal(err)
		}
		var e protocol.Error
		if f.Type != protocol.TypeError || f.Decode(&e) != nil || e.Code != protocol.CodeUnavailable {
			t.Fatalf("want only unavailable errors first, got %s %s", f.Type, f.Payload)
		}
		if e.BetID != "" {
			refusedBets++
		} else {
			refusedBalances++
		}
	}
	if refusedBets != bets-task.MaxBetsInFlight || refusedBalances != balances-4 {
		t.Fatalf("refused %d bets and %d balance requests, want %d and %d",
			refusedBets, refusedBalances, bets-task.MaxBetsInFlight, balances-4)
	}
}

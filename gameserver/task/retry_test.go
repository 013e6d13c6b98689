package task

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stackwatch/stackwatch/gameserver/game"
	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/gameserver/session"
	"github.com/stackwatch/stackwatch/gameserver/stacktool"
	"github.com/stackwatch/stackwatch/gameserver/wallet"
)

func newTestTask(t *testing.T, p RetryPolicy) *Task {
	t.Helper()
	w, err := wallet.Open(t.TempDir(), wallet.Options{Outbox: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	g, _ := game.Lookup(game.WildDig)
	quiet := slog.New(slog.NewJSONHandler(io.Discard, nil))
	tk, err := New(Config{Game: g, Wallet: w, Sessions: session.NewManager(nil), Logger: quiet, Retry: p,
		Recorder: &stacktool.Recorder{Dir: t.TempDir(), Logger: quiet}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { tk.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait(); tk.Close() })
	return tk
}

// settled makes a settled bet and its encoded result.
func settled(t *testing.T, tk *Task, player, id string) (*bet, []byte) {
	t.Helper()
	if _, _, err := tk.wallet.Deduct(context.Background(), tk.game.Name, player, id, 10); err != nil {
		t.Fatal(err)
	}
	res, err := tk.wallet.Settle(player, id, tk.game.Draw(player, id, 10))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := protocol.Marshal(protocol.TypeBetResult, res)
	return &bet{player: player, id: id, amount: 10, start: time.Now()}, data
}

// A queued result reaches the player's session once one appears, by retry
// alone (no reconnect redelivery involved). In a synctest bubble the
// backoff runs on the fake clock.
func TestRetryDeliversToTheCurrentSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tk := newTestTask(t, RetryPolicy{Base: 20 * time.Millisecond, Max: 50 * time.Millisecond, Tries: 100, MaxQueue: 10})
		b, data := settled(t, tk, "p", "b1")
		tk.queue(b, data)
		if tk.Pending() != 1 {
			t.Fatalf("pending %d", tk.Pending())
		}
		time.Sleep(100 * time.Millisecond) // a few tries find no session
		synctest.Wait()
		if tk.Pending() != 1 {
			t.Fatalf("pending %d after tries without a session", tk.Pending())
		}

		c, peer := net.Pipe()
		defer c.Close()
		defer peer.Close()
		tk.sessions.Add(session.New(1, "p", c, time.Second))
		f, err := protocol.ReadFrame(peer, 0) // the next try finds it
		if err != nil {
			t.Fatal(err)
		}
		var r protocol.BetResult
		if f.Type != protocol.TypeBetResult || f.Decode(&r) != nil || r.BetID != "b1" || r.PlayerID != "p" {
			t.Fatalf("got %s %s", f.Type, f.Payload)
		}
		synctest.Wait()
		if tk.Pending() != 0 || tk.wallet.DeadLetters() != 0 {
			t.Fatalf("pending %d dead %d", tk.Pending(), tk.wallet.DeadLetters())
		}
	})
}

func TestRetryDeadLettersAfterTries(t *testing.T) {
	synctest.Test(t, testRetryDeadLettersAfterTries)
}

func testRetryDeadLettersAfterTries(t *testing.T) {
	tk := newTestTask(t, RetryPolicy{Base: time.Millisecond, Max: 4 * time.Millisecond, Tries: 5, MaxQueue: 1})
	b1, d1 := settled(t, tk, "p", "b1")
	b2, d2 := settled(t, tk, "p", "b2")
	tk.queue(b1, d1)
	tk.queue(b2, d2) // the queue holds one: straight to the dead-letter store
	if tk.wallet.DeadLetters() != 1 {
		t.Fatalf("dead letters %d, want 1 right away", tk.wallet.DeadLetters())
	}
	// Five tries of at most 4ms each: well within 100ms of fake time.
	time.Sleep(100 * time.Millisecond)
	synctest.Wait()
	if tk.wallet.DeadLetters() != 2 || tk.Pending() != 0 {
		t.Fatalf("not dead-lettered after its tries: pending %d dead %d", tk.Pending(), tk.wallet.DeadLetters())
	}
	// An acked result is not retried.
	b3, d3 := settled(t, tk, "p", "b3")
	tk.queue(b3, d3)
	tk.Ack(session.New(1, "p", nil, 0), "b3")
	if tk.Pending() != 0 {
		t.Fatal("ack left the result queued")
	}
}

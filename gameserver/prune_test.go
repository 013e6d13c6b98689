package gameserver_test

import (
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/metrics"
)

// A resend of a pruned bet reaches the player as a bad_request error, is
// counted, and takes nothing from the balance; the next bet goes through.
func TestResendOfPrunedBetIsRefused(t *testing.T) {
	srv := startServer(t, gameserver.Config{BetHistory: time.Hour, WalletLatency: -1})
	c, _ := login(t, srv.Addr(), "alice")
	c.send(protocol.TypeBet, protocol.Bet{BetID: "b1", Amount: 100})
	var r protocol.BetResult
	c.expect(protocol.TypeBetResult, &r)
	c.send(protocol.TypeAck, protocol.Ack{BetID: "b1"})
	c.send(protocol.TypeBalanceRequest, protocol.BalanceRequest{}) // answered after the ack is queued
	c.expect(protocol.TypeBalance, nil)
	w := srv.Wallet()
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	// The pruner's clock, an hour on: b1 is older than the history.
	if n, err := w.Prune(time.Now().Add(time.Hour + time.Minute)); err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want b1 pruned", n, err)
	}

	c.send(protocol.TypeBet, protocol.Bet{BetID: "b1", Amount: 100})
	var e protocol.Error
	c.expect(protocol.TypeError, &e)
	if e.Code != protocol.CodeBadRequest || e.BetID != "b1" {
		t.Errorf("resend of pruned b1: %+v, want %s", e, protocol.CodeBadRequest)
	}
	c.send(protocol.TypeBalanceRequest, protocol.BalanceRequest{})
	var b protocol.Balance
	c.expect(protocol.TypeBalance, &b)
	if b.Balance != r.Balance {
		t.Errorf("balance %d after the refused resend, was %d", b.Balance, r.Balance)
	}
	for m, want := range map[string]float64{metrics.BetsPruned.Name: 1, metrics.BetsForgotten.Name: 1} {
		if v := metricValue(t, srv.Registry(), m, nil); v != want {
			t.Errorf("%s = %v, want %v", m, v, want)
		}
	}
	c.send(protocol.TypeBet, protocol.Bet{BetID: "b2", Amount: 100})
	c.expect(protocol.TypeBetResult, &r)
}

package gameserver_test

import (
	"testing"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/internal/proctest"
)

func TestMain(m *testing.M) { proctest.VerifyTestMain(m) }

func TestBetRoundTrip(t *testing.T) {
	for _, g := range []string{"goldenclover", "wilddig", "forestteaparty"} {
		t.Run(g, func(t *testing.T) {
			srv := startServer(t, gameserver.Config{Game: g})
			c, w := login(t, srv.Addr(), "alice")
			if w.Balance != 1_000_000 || w.Game != g {
				t.Fatalf("welcome = %+v", w)
			}
			c.send(protocol.TypeBet, protocol.Bet{BetID: "b1", Amount: 100})
			var r protocol.BetResult
			c.expect(protocol.TypeBetResult, &r)
			if r.BetID != "b1" || r.PlayerID != "alice" || r.Amount != 100 || len(r.Symbols) != 9 || r.Balance != 1_000_000-100+r.Win || r.Redelivered {
				t.Fatalf("result = %+v", r)
			}
			c.send(protocol.TypeAck, protocol.Ack{BetID: "b1"})
			c.send(protocol.TypeBalanceRequest, protocol.BalanceRequest{})
			var b protocol.Balance
			c.expect(protocol.TypeBalance, &b)
			if b.Balance != r.Balance {
				t.Fatalf("balance %d, result said %d", b.Balance, r.Balance)
			}
		})
	}
}

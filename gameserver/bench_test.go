package gameserver_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/protocol"
)

// BenchmarkBetRoundTrip measures whole bets over TCP — frame, deduct,
// draw, settle, result, ack — from 32 concurrent players, patched against
// legacy, without wallet latency, so the figures are the server's own cost
// (dominated by the ledger's fsyncs).
func BenchmarkBetRoundTrip(b *testing.B) {
	for _, legacy := range []bool{false, true} {
		b.Run(map[bool]string{false: "patched", true: "legacy"}[legacy], func(b *testing.B) {
			srv := startServer(b, gameserver.Config{Game: "wilddig", Legacy: legacy, WalletLatency: -1})
			const players = 32
			clients := make([]*rawClient, players)
			for i := range clients {
				clients[i], _ = login(b, srv.Addr(), fmt.Sprint("bench", i))
			}
			var next atomic.Int64
			var mu sync.Mutex
			var lat []time.Duration
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for _, c := range clients {
				wg.Go(func() {
					var mine []time.Duration
					for next.Add(1) <= int64(b.N) {
						id := fmt.Sprint(next.Load(), "-", time.Now().UnixNano())
						t0 := time.Now()
						c.send(protocol.TypeBet, protocol.Bet{BetID: id, Amount: 1})
						var r protocol.BetResult
						c.expect(protocol.TypeBetResult, &r)
						mine = append(mine, time.Since(t0))
						if !legacy {
							c.send(protocol.TypeAck, protocol.Ack{BetID: id})
						}
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "bets/s")
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}

package loadgen_test

import (
	"flag"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/loadgen"
)

var benchDuration = flag.Duration("loadgen.bench-duration", 10*time.Second, "betting phase of each BenchmarkLoad run")

// BenchmarkLoad measures throughput and tail latency of the patched server
// against the legacy one, in process, at 500 players with 20% of bets
// followed by a disconnect and 250ms away. Each iteration is one full run
// against a fresh server; run it with -benchtime=1x. redelivered-% is the
// share of dropped bets the server answered without a resend.
//
//	go test -run '^$' -bench BenchmarkLoad -benchtime 1x ./loadgen/
func BenchmarkLoad(b *testing.B) {
	for _, mode := range []struct {
		name   string
		legacy bool
	}{{"patched", false}, {"legacy", true}} {
		b.Run(mode.name, func(b *testing.B) {
			var betsPerSec, p99, p99Conn, p99Drop, redelivered, lost float64
			for range b.N {
				b.StopTimer()
				s := startServer(b, gameserver.Config{Game: "wilddig", Legacy: mode.legacy})
				b.StartTimer()
				sum := runLoad(b, loadgen.Config{Addr: s.addr(), Clients: 500, Duration: *benchDuration,
					Disconnect: 0.2, Away: 250 * time.Millisecond, Drain: 30 * time.Second})
				b.StopTimer()
				s.Stop()
				b.StartTimer()
				betsPerSec += sum.BetsPerSecond
				p99 += sum.P99ms
				p99Conn += sum.P99ConnectedMs
				p99Drop += sum.P99DroppedMs
				if sum.Disconnects > 0 {
					redelivered += 100 * float64(sum.Redelivered) / float64(sum.Disconnects)
				}
				lost += float64(sum.Lost)
				if !mode.legacy && !sum.OK() {
					b.Fatalf("patched run not clean: %s", sum)
				}
			}
			n := float64(b.N)
			b.ReportMetric(betsPerSec/n, "bets/s")
			b.ReportMetric(p99/n, "p99-ms")
			b.ReportMetric(p99Conn/n, "p99-connected-ms")
			b.ReportMetric(p99Drop/n, "p99-dropped-ms")
			b.ReportMetric(redelivered/n, "redelivered-%")
			b.ReportMetric(lost/n, "lost/run")
		})
	}
}

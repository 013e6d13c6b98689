package profiler_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	rpprof "runtime/pprof"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/loadgen"
	"github.com/stackwatch/stackwatch/sidecar/profiler"
)

// BenchmarkBetLatency measures the game server's bet latency (loadgen's
// p99, bet sent → result) while its process holds n extra parked
// goroutines, with and without the sidecar scraping it.
//
// The machine is shared, so the two conditions are interleaved on one
// server: each iteration is a pair of load windows (20 players, no
// disconnects), one without scraping and one scraping at the interval, in
// alternating order. The metrics are the medians over the iterations:
// p99-off-ms, p99-on-ms and their ratio as p99-overhead-% (goal ≤ 2). The
// sidecar runs inside the server's process here (in production it is its own
// container), so the figure is pessimistic. Run with -benchtime=5x or more.
//
// interval=15s is production (one scrape per 15 s window); interval=2s is a
// stress case, 7.5× the production rate.
func BenchmarkBetLatency(b *testing.B) {
	for _, n := range benchSizes {
		for _, iv := range []time.Duration{15 * time.Second, 2 * time.Second} {
			b.Run(fmt.Sprintf("goroutines=%d/interval=%s", n, iv), func(b *testing.B) { benchBetLatency(b, n, iv) })
		}
	}
}

//go:noinline
func idleParked(ch chan struct{}) { <-ch }

func benchBetLatency(b *testing.B, n int, interval time.Duration) {
	windowLen := max(interval, 6*time.Second)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { idleParked(release) })
	}
	defer func() { close(release); wg.Wait() }()

	srv, err := gameserver.New(gameserver.Config{Game: "wilddig", LogDir: b.TempDir(), DataDir: b.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel()
	bg.Go(func() {
		if err := srv.Run(ctx); err != nil {
			b.Error(err)
		}
	})
	p, err := profiler.New(profiler.Config{Target: "http://" + srv.AdminAddr().String(), Service: "wilddiggr",
		DataDir: b.TempDir(), KeepEvery: -1}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	window := func(scrape bool) float64 {
		wctx, stop := context.WithCancel(ctx)
		var sw sync.WaitGroup
		if scrape {
			sw.Go(func() {
				t := time.NewTicker(interval)
				defer t.Stop()
				// Start at a random phase, as a real scrape lands anywhere.
				select {
				case <-wctx.Done():
					return
				case <-time.After(time.Duration(rand.Int64N(int64(interval)))):
				}
				for {
					if err := p.Scrape(wctx); err != nil && wctx.Err() == nil {
						b.Error(err)
					}
					select {
					case <-wctx.Done():
						return
					case <-t.C:
					}
				}
			})
		}
		sum, err := loadgen.Run(ctx, loadgen.Config{Addr: srv.Addr().String(), Clients: 20, Duration: windowLen})
		stop()
		sw.Wait()
		if err != nil {
			b.Fatal(err)
		}
		if !sum.OK() {
			b.Fatalf("load run not clean: %s", sum)
		}
		return sum.P99ms
	}
	var off, on []float64
	i := 0
	for b.Loop() {
		first := i%2 == 1 // alternate which condition goes first
		a := window(first)
		c := window(!first)
		if first {
			a, c = c, a
		}
		off, on = append(off, a), append(on, c)
		i++
	}
	mOff, mOn := median(off), median(on)
	b.ReportMetric(mOff, "p99-off-ms")
	b.ReportMetric(mOn, "p99-on-ms")
	b.ReportMetric(100*(mOn-mOff)/mOff, "p99-overhead-%")
	if st := p.Status(); st.Goroutines < n || st.LastError != "" {
		b.Fatalf("sidecar saw %d goroutines (last error %q), want ≥ %d", st.Goroutines, st.LastError, n)
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkTargetProfileCost is what one scrape costs the game server: the
// runtime writing its debug=0 goroutine profile with n parked goroutines
// (CPU time and garbage in the server's process, whatever the sidecar does
// with the result). With the interval this gives the server's duty cycle:
// cost/interval.
func BenchmarkTargetProfileCost(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("goroutines=%d", n), func(b *testing.B) {
			release := make(chan struct{})
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() { idleParked(release) })
			}
			defer func() { close(release); wg.Wait() }()
			prof := rpprof.Lookup("goroutine")
			b.ReportAllocs()
			for b.Loop() {
				if err := prof.WriteTo(io.Discard, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(100*float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(15*time.Second), "duty-%@15s")
		})
	}
}

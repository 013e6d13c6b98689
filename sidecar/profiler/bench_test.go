package profiler_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/maruel/panicparse/v2/stack"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stackwatch/stackwatch/sidecar/goroutines"
	"github.com/stackwatch/stackwatch/sidecar/profiler"
)

// The benchmarks run testdata/leaktarget as a separate process holding n
// parked goroutines — 90% blocked on a channel send like the incident's
// lost responses, 5% in a select, 5% on a receive, at stack depths 0..1, so
// 6 stack groups — so that only the sidecar's work is counted in allocations.
// The scrape side GETs the debug=0 profile, parses, groups, runs leak
// detection and updates metrics; the panicparse side parses and aggregates
// the debug=2 dump of the same state.

type benchState struct {
	target string
	debug2 []byte
	prof   []byte
}

func get(b *testing.B, url string) []byte {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func startBenchTarget(b *testing.B, n int) *benchState {
	b.Helper()
	st := &benchState{target: startLeakTarget(b, buildTarget(b, ""), "-park", fmt.Sprint(n))}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		st.prof = get(b, st.target+"/debug/pprof/goroutine")
		s, err := goroutines.ParseProfile(st.prof)
		if err != nil {
			b.Fatal(err)
		}
		if s.Total >= n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("target holds %d of %d goroutines", s.Total, n)
		}
	}
	st.debug2 = get(b, st.target+"/debug/pprof/goroutine?debug=2")
	if s, err := goroutines.ParseDebug2(st.debug2); err != nil || s.Truncated || s.Total < n {
		b.Fatalf("debug=2 dump of %d bytes is not whole: %v", len(st.debug2), err)
	}
	return st
}

var benchSizes = []int{10_000, 100_000}

// BenchmarkScrapeAnalyze is one scheduled scrape as the sidecar runs it:
// GET the debug=0 goroutine profile (the target builds it: that time is
// included) and the goroutineleak profile (a 404 here), parse, group,
// detect leaks, update metrics.
func BenchmarkScrapeAnalyze(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("goroutines=%d", n), func(b *testing.B) {
			st := startBenchTarget(b, n)
			p, err := profiler.New(profiler.Config{Target: st.target, Service: "bench", DataDir: b.TempDir(), KeepEvery: -1},
				prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Scrape(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if got := p.Status().Goroutines; got < n {
				b.Fatalf("scrape saw %d goroutines, want ≥ %d", got, n)
			}
			b.ReportMetric(float64(len(st.prof)), "profile-bytes")
			b.ReportMetric(float64(len(st.debug2)), "debug2-bytes")
		})
	}
}

// BenchmarkAnalyzeProfile is the sidecar's CPU share alone: parse and group
// a debug=0 profile already fetched.
func BenchmarkAnalyzeProfile(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("goroutines=%d", n), func(b *testing.B) {
			st := startBenchTarget(b, n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := goroutines.ParseProfile(st.prof); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// panicparseOpts is panicparse at its fastest: no disk scans for GOROOT or
// GOPATH, no source analysis, no argument naming.
func panicparseOpts() *stack.Opts { return &stack.Opts{} }

// BenchmarkPanicparse parses and aggregates the debug=2 dump of the same
// state with panicparse v2 (ScanSnapshot + Aggregate), the dump already in
// memory: its fetch is not even counted.
func BenchmarkPanicparse(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("goroutines=%d", n), func(b *testing.B) {
			st := startBenchTarget(b, n)
			b.ReportAllocs()
			b.SetBytes(int64(len(st.debug2)))
			for b.Loop() {
				snap, _, err := stack.ScanSnapshot(bytes.NewReader(st.debug2), io.Discard, panicparseOpts())
				if err != nil && err != io.EOF {
					b.Fatal(err)
				}
				if agg := snap.Aggregate(stack.AnyPointer); len(agg.Buckets) == 0 {
					b.Fatal("no buckets")
				}
			}
		})
	}
}

// BenchmarkPanicparseFetch is the panicparse way end to end: GET debug=2
// (which stops the target's world while it prints) and aggregate it.
func BenchmarkPanicparseFetch(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("goroutines=%d", n), func(b *testing.B) {
			st := startBenchTarget(b, n)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := http.Get(st.target + "/debug/pprof/goroutine?debug=2")
				if err != nil {
					b.Fatal(err)
				}
				snap, _, err := stack.ScanSnapshot(resp.Body, io.Discard, panicparseOpts())
				resp.Body.Close()
				if err != nil && err != io.EOF {
					b.Fatal(err)
				}
				snap.Aggregate(stack.AnyPointer)
			}
		})
	}
}

// BenchmarkParseDebug2 is this project's debug=2 parser on the same dump
// (what `sidecar analyze` and GET /api/v1/stacks users get).
func BenchmarkParseDebug2(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("goroutines=%d", n), func(b *testing.B) {
			st := startBenchTarget(b, n)
			b.ReportAllocs()
			b.SetBytes(int64(len(st.debug2)))
			for b.Loop() {
				if _, err := goroutines.ParseDebug2(st.debug2); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

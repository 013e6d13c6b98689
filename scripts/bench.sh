#!/usr/bin/env bash
# make bench: every benchmark, each beside its peer in the same run (panicparse,
# mtail, the legacy server, no scraping), written to bench.txt and summarised
# with benchstat. docs/benchmarks.md records the figures.
#
# BENCHCOUNT (default 5) repeats the cheap benchmarks; the long ones (whole
# load runs, mtail side by side, bet latency under scraping) run once or a few
# times with a fixed iteration count.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"
out=${BENCH_OUT:-bench.txt}
count=${BENCHCOUNT:-5}

run() {
	echo "# go test -run '^\$' -benchmem $*" | tee -a "$out"
	go test -run '^$' -benchmem "$@" | tee -a "$out"
}

: >"$out"
{
	echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
	echo "# $(go version); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee -a "$out"

# Parsing and grouping panics (ours vs panicparse), analyze, game maths, chart.
run -bench . -count "$count" ./sidecar/stacktrace ./sidecar/crash ./sidecar/analyze ./gameserver/wallet ./charts
# Traceback scanner: traces out of a 100 MB mixed log on one core, beside
# panicparse v2 on the same bytes; a 100 MB Docker json-file log; hostile
# long lines in small reads; the debug=2 parser on a fixed dump.
run -bench 'MixedLog|DockerLog|SmallReads|EscapedRecord|LongChain' -benchtime 3x -count "$count" -cpu 1 ./sidecar/traceback
run -bench 'ParseDebug2' -benchtime 20x -count "$count" -cpu 1 ./sidecar/goroutines
# Sidecar: ingest rate on one core; file-written → metric-updated latency at
# 1,000 files/s, side by side with mtail; RSS and CPU idle and under load.
run -bench 'Ingest' -benchtime 20000x -count "$count" ./sidecar
run -bench 'Latency|SidecarVsMtail' -benchtime 2000x -count 1 ./sidecar
# Sidecar bounds: 15,000 distinct crash sites in 16 KB files (peak RSS, state size).
go test -count=1 -run '^TestBoundedManySites$' -v ./cmd/sidecar | grep -E 'sites:|^(ok|FAIL|---)' | tee -a "$out"
# Goroutine profiles at 10k and 100k goroutines: scrape + analyze against
# panicparse on the debug=2 dump of the same state; the server's cost.
run -bench 'ScrapeAnalyze|AnalyzeProfile|Panicparse|ParseDebug2|TargetProfileCost' -benchtime 5x -count 1 ./sidecar/profiler
# The server's p99 bet latency with and without the sidecar scraping it.
run -bench BetLatency -benchtime 4x -count 1 -timeout 40m ./sidecar/profiler
# Game server, patched against legacy: round trips, then 500 players with 20%
# disconnects and 250ms away, the modes interleaved (bets/s, p99 overall, of
# connected and of dropped players, and the share of dropped bets the
# server answered without a resend).
run -bench BetRoundTrip -count "$count" ./gameserver
run -bench Load -benchtime 1x -count 3 -timeout 30m ./loadgen

if command -v benchstat >/dev/null; then
	benchstat "$out"
else
	echo "benchstat not installed (go install golang.org/x/perf/cmd/benchstat@latest): raw figures in $out"
fi

package traceback_test

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/maruel/panicparse/v2/stack"

	"github.com/stackwatch/stackwatch/sidecar/traceback"
)

var (
	mixedOnce  sync.Once
	mixedLog   []byte
	mixedCount int
)

// mixedLog100MB is 100 MB of ordinary log lines (JSON, logfmt, CRI
// prefixed) with a trace of every base and shape embedded every ~64 KB.
func mixedLog100MB(b *testing.B) ([]byte, int) {
	mixedOnce.Do(func() {
		bases := baseTraces(b)
		var traces [][]byte
		for _, name := range slices.Sorted(mapsKeys(bases)) {
			for _, sh := range shapes {
				traces = append(traces, sh.fn(bases[name]))
			}
		}
		var buf bytes.Buffer
		buf.Grow(101 << 20)
		for i := 0; buf.Len() < 100<<20; i++ {
			switch i % 3 {
			case 0:
				fmt.Fprintf(&buf, `{"time":"2026-02-03T19:00:16.%03dZ","level":"INFO","msg":"bet settled","player":%d,"amount":%d}`+"\n", i%1000, i, i%500)
			case 1:
				fmt.Fprintf(&buf, "time=2026-02-03T19:00:16.%03dZ level=info msg=\"session closed\" remote=10.0.%d.%d:443 bytes=%d\n", i%1000, i%256, i%200, i*7)
			default:
				fmt.Fprintf(&buf, "2026-02-03T19:00:16.%03dZ stdout F GET /api/v1/prize?id=%d 200 %dus\n", i%1000, i, i%9000)
			}
			if i%640 == 639 {
				buf.Write(traces[mixedCount%len(traces)])
				mixedCount++
			}
		}
		mixedLog = buf.Bytes()
	})
	return mixedLog, mixedCount
}

// BenchmarkScanMixedLog: traces out of a 100 MB log on one core.
func BenchmarkScanMixedLog(b *testing.B) {
	data, want := mixedLog100MB(b)
	benchScan(b, data, want)
}

// benchScan scans data, which embeds want traces, and reports how many
// were found.
func benchScan(b *testing.B, data []byte, want int) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = 0
		sc := traceback.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			n++
		}
	}
	if n != want {
		b.Errorf("found %d traces, embedded %d", n, want)
	}
	b.ReportMetric(float64(n), "traces")
	b.ReportMetric(float64(want), "embedded")
}

var (
	dockerJSONOnce  sync.Once
	dockerJSONLog   []byte
	dockerJSONCount int
)

// dockerJSONLog100MB is 100 MB of a container's json-file log, stdout and
// stderr, with a trace of every base in every Docker shape embedded every
// ~64 KB.
func dockerJSONLog100MB(b *testing.B) ([]byte, int) {
	dockerJSONOnce.Do(func() {
		bases := baseTraces(b)
		var traces [][]byte
		for _, name := range slices.Sorted(mapsKeys(bases)) {
			for _, sh := range dockerShapes {
				traces = append(traces, sh.fn(bases[name]))
			}
		}
		var buf bytes.Buffer
		buf.Grow(101 << 20)
		for i := 0; buf.Len() < 100<<20; i++ {
			switch i % 3 {
			case 0:
				buf.WriteString(dockerRecord(fmt.Sprintf(`{"time":"2026-02-03T19:00:16.%03dZ","level":"INFO","msg":"bet settled","player":%d,"amount":%d}`+"\n", i%1000, i, i%500), "stdout", i))
			case 1:
				buf.WriteString(dockerRecord(fmt.Sprintf("time=2026-02-03T19:00:16.%03dZ level=info msg=\"session closed\" remote=10.0.%d.%d:443 bytes=%d\n", i%1000, i%256, i%200, i*7), "stderr", i))
			default:
				buf.WriteString(dockerRecord(fmt.Sprintf("GET /api/v1/prize?id=%d 200 %dus\n", i, i%9000), "stdout", i))
			}
			if i%400 == 399 {
				buf.Write(traces[dockerJSONCount%len(traces)])
				dockerJSONCount++
			}
		}
		dockerJSONLog = buf.Bytes()
	})
	return dockerJSONLog, dockerJSONCount
}

// BenchmarkScanDockerLog: traces out of a 100 MB json-file log on one core.
func BenchmarkScanDockerLog(b *testing.B) {
	data, want := dockerJSONLog100MB(b)
	benchScan(b, data, want)
}

// BenchmarkPanicparseMixedLog is panicparse v2 on the same input: its
// ScanSnapshot, called until the input is used up, as panicparse's own
// command does for a stream with several traces.
func BenchmarkPanicparseMixedLog(b *testing.B) {
	data, want := mixedLog100MB(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = 0
		r := bytes.NewReader(data)
		for {
			s, _, err := stack.ScanSnapshot(r, io.Discard, &stack.Opts{})
			if s != nil && len(s.Goroutines) > 0 {
				n++
			}
			if err != nil {
				break
			}
		}
	}
	b.ReportMetric(float64(n), "traces")
	b.ReportMetric(float64(want), "embedded")
}

// BenchmarkLongLineSmallReads: one line of n bytes read 4 KB at a time,
// as from a pipe; ns/op grows linearly with n.
func BenchmarkLongLineSmallReads(b *testing.B) {
	for _, n := range []int{1 << 20, 4 << 20, 16 << 20} {
		in := append(bytes.Repeat([]byte("goroutine "), n/10), '\n')
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				sc := traceback.NewScanner(&chunked{bytes.NewReader(in), 4 << 10})
				for sc.Scan() {
				}
			}
		})
	}
}

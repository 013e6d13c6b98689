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

// mixedLog100MB is 100 MB of ordinary log lines (JSON, logfmt, CRI
// prefixed) with a trace of every base and shape embedded every ~64 KB.
var mixedLog100MB = bigLog(shapes, 640, func(buf *bytes.Buffer, i int) {
	switch i % 3 {
	case 0:
		fmt.Fprintf(buf, `{"time":"2026-02-03T19:00:16.%03dZ","level":"INFO","msg":"bet settled","player":%d,"amount":%d}`+"\n", i%1000, i, i%500)
	case 1:
		fmt.Fprintf(buf, "time=2026-02-03T19:00:16.%03dZ level=info msg=\"session closed\" remote=10.0.%d.%d:443 bytes=%d\n", i%1000, i%256, i%200, i*7)
	default:
		fmt.Fprintf(buf, "2026-02-03T19:00:16.%03dZ stdout F GET /api/v1/prize?id=%d 200 %dus\n", i%1000, i, i%9000)
	}
})

// bigLog returns a builder, run once, of 100 MB of the lines line writes,
// with the traces of every base in every one of shapes embedded in turn
// after each every-th line; it also returns how many traces it embedded.
func bigLog(shapes []shape, every int, line func(buf *bytes.Buffer, i int)) func(testing.TB) ([]byte, int) {
	var (
		once  sync.Once
		log   []byte
		count int
	)
	return func(tb testing.TB) ([]byte, int) {
		once.Do(func() {
			bases := baseTraces(tb)
			var traces [][]byte
			for _, name := range slices.Sorted(mapsKeys(bases)) {
				for _, sh := range shapes {
					traces = append(traces, sh.fn(bases[name]))
				}
			}
			var buf bytes.Buffer
			buf.Grow(101 << 20)
			for i := 0; buf.Len() < 100<<20; i++ {
				line(&buf, i)
				if i%every == every-1 {
					buf.Write(traces[count%len(traces)])
					count++
				}
			}
			log = buf.Bytes()
		})
		return log, count
	}
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

// dockerJSONLog100MB is 100 MB of a container's json-file log, stdout and
// stderr, with a trace of every base in every Docker shape embedded every
// ~64 KB.
var dockerJSONLog100MB = bigLog(dockerShapes, 400, func(buf *bytes.Buffer, i int) {
	switch i % 3 {
	case 0:
		buf.WriteString(dockerRecord(fmt.Sprintf(`{"time":"2026-02-03T19:00:16.%03dZ","level":"INFO","msg":"bet settled","player":%d,"amount":%d}`+"\n", i%1000, i, i%500), "stdout", i))
	case 1:
		buf.WriteString(dockerRecord(fmt.Sprintf("time=2026-02-03T19:00:16.%03dZ level=info msg=\"session closed\" remote=10.0.%d.%d:443 bytes=%d\n", i%1000, i%256, i%200, i*7), "stderr", i))
	default:
		buf.WriteString(dockerRecord(fmt.Sprintf("GET /api/v1/prize?id=%d 200 %dus\n", i, i%9000), "stdout", i))
	}
})

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

package stacktrace

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/maruel/panicparse/v2/stack"
)

// benchTrace is a real ~1.4 KB file of the game server's shape, like the
// incident's, produced by this Go's runtime.
func benchTrace(b *testing.B) []byte {
	b.Helper()
	return realTrace(b, "server_shape", nil)
}

func BenchmarkParse(b *testing.B) {
	data := benchTrace(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(data), 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
}

func BenchmarkParseBytes(b *testing.B) {
	data := benchTrace(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseBytes(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
}

// BenchmarkParseReportExample parses the incident report's first example verbatim.
func BenchmarkParseReportExample(b *testing.B) {
	data, err := os.ReadFile("testdata/report_example1.stacktrace.log")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseBytes(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
}

// BenchmarkParseTruncated100MB: a 100 MB file costs one bounded read.
func BenchmarkParseTruncated100MB(b *testing.B) {
	one := benchTrace(b)
	filler := bytes.Repeat([]byte("goroutine 7 [chan receive]:\nmain.worker(0xc000010000)\n\t/app/worker.go:12 +0x45\n\n"), 1<<20)
	b.ReportAllocs()
	for b.Loop() {
		r := io.MultiReader(bytes.NewReader(one), bytes.NewReader([]byte("\n")), bytes.NewReader(filler))
		p, err := Parse(r, 0)
		if err != nil || !p.Truncated {
			b.Fatal(err)
		}
	}
}

// BenchmarkPanicparse is the alternative measured for the ingest path
// (package comment): panicparse's ScanSnapshot on the same file.
func BenchmarkPanicparse(b *testing.B) {
	data := benchTrace(b)
	opts := stack.DefaultOpts()
	opts.GuessPaths, opts.AnalyzeSources = false, false
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		s, _, err := stack.ScanSnapshot(bytes.NewReader(data), io.Discard, opts)
		if s == nil || err != nil && err != io.EOF {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
}

package crash

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/sidecar/stacktrace"
)

// BenchmarkParseAndGroup is the sidecar's per-file work after the read:
// parse a real ~1.3 KB game-server stacktrace file, classify it, count it
// in its group (and take its metric label).
func BenchmarkParseAndGroup(b *testing.B) {
	data := trace(b, "wilddig")
	g := NewGroups()
	labels := NewSiteLabels(0)
	paths := make([]string, 1024)
	for i := range paths {
		paths[i] = fmt.Sprintf("/app/log/%d.stacktrace.log", i)
	}
	t0 := time.Now()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p, err := stacktrace.Parse(bytes.NewReader(data), 0)
		if err != nil {
			b.Fatal(err)
		}
		sig := Classify(p)
		_ = labels.Label(sig)
		g.Add(sig, File{Path: paths[i%len(paths)], Size: int64(len(data)), ModTime: t0.Add(time.Duration(i))}, string(data))
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
	if g.Len() != 1 {
		b.Fatalf("%d groups", g.Len())
	}
}

func BenchmarkClassify(b *testing.B) {
	p, err := stacktrace.ParseBytes(trace(b, "wilddig"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		Classify(p)
	}
}

func FuzzClassify(f *testing.F) {
	for _, shape := range []string{"wilddig", "nil_method", "http_serving", "stdlib_panics"} {
		f.Add(trace(f, shape))
	}
	for n := 1; n <= 3; n++ {
		f.Add(reportExample(f, n))
	}
	f.Add([]byte("panic: x\n\ngoroutine 1 [running]:\npanic(...)\n\t/a.go:1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := stacktrace.ParseBytes(data)
		if err != nil {
			return
		}
		sig := Classify(p)
		if len(sig.Key) != 16 || sig.Kind != p.Kind {
			t.Fatalf("%+v", sig)
		}
		if len(p.Goroutines[0].Frames) > 0 && sig.Site.Function == "" {
			t.Fatalf("frames but no site: %+v", p.Goroutines[0].Frames)
		}
		g := NewGroups()
		got := g.Add(sig, File{Path: "x", ModTime: time.Unix(1, 0)}, string(data))
		if got.Count != 1 || len(got.Example) > MaxExampleBytes {
			t.Fatalf("%+v", got)
		}
	})
}

package traceback_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stackwatch/stackwatch/sidecar/stacktrace"
	"github.com/stackwatch/stackwatch/sidecar/traceback"
)

func scanAll(t testing.TB, in []byte) []traceback.Trace {
	t.Helper()
	var out []traceback.Trace
	sc := traceback.NewScanner(bytes.NewReader(in))
	for sc.Scan() {
		tr := sc.Trace()
		tr.Text = bytes.Clone(tr.Text)
		out = append(out, tr)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// baseTraces are plain traces of several Go versions and shapes.
func baseTraces(t testing.TB) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob("../stacktrace/testdata/*.*")
	if err != nil || len(names) == 0 {
		t.Fatal("no base traces", err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		if strings.Contains(n, "stacktrace.log") {
			continue // the recover helper's files: no runtime panic header
		}
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(n)] = b
	}
	return out
}

type summary struct {
	Message string
	Kind    string
	Frames  []string
	N       int
}

func summarize(p *stacktrace.Panic) summary {
	s := summary{Message: p.Message, Kind: p.Kind, N: len(p.Goroutines)}
	for _, f := range p.Goroutines[0].Frames {
		s.Frames = append(s.Frames, f.String())
	}
	return s
}

// TestShapes: every base trace, in every shape a log system gives it,
// reads back as the same panic, and so does a stream of all of them.
func TestShapes(t *testing.T) {
	bases := baseTraces(t)
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			var stream bytes.Buffer
			var want []summary
			for _, name := range slices.Sorted(mapsKeys(bases)) {
				base := bases[name]
				p0, err := stacktrace.ParseBytes(base)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				in := sh.fn(base)
				got := scanAll(t, in)
				if len(got) != 1 {
					t.Errorf("%s: %d traces, want 1\n%s", name, len(got), in)
					continue
				}
				p, err := stacktrace.ParseBytes(got[0].Text)
				if err != nil {
					t.Errorf("%s: %v\n%s", name, err, got[0].Text)
					continue
				}
				if g, w := summarize(p), summarize(p0); !equal(g, w) {
					t.Errorf("%s:\n got %+v\nwant %+v\ntext:\n%s", name, g, w, got[0].Text)
				}
				want = append(want, summarize(p0))
				stream.WriteString("2026-02-03T19:00:15.000Z stdout F {\"level\":\"info\",\"msg\":\"server started\"}\n")
				stream.Write(in)
			}
			got := scanAll(t, stream.Bytes())
			if len(got) != len(want) {
				t.Fatalf("stream of %d traces: found %d", len(want), len(got))
			}
			for i, tr := range got {
				p, err := stacktrace.ParseBytes(tr.Text)
				if err != nil || !equal(summarize(p), want[i]) {
					t.Errorf("stream trace %d: %v %+v, want %+v", i, err, p, want[i])
				}
			}
		})
	}
}

func equal(a, b summary) bool {
	return a.Message == b.Message && a.Kind == b.Kind && a.N == b.N && slices.Equal(a.Frames, b.Frames)
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

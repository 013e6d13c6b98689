package traceback_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stackwatch/stackwatch/sidecar/traceback"
)

// FuzzScanner seeds with every base trace in every shape (prefixes,
// escapes, wraps, interleaving) and checks that any input scans without
// panicking, in bounded output, and the same however it is read.
func FuzzScanner(f *testing.F) {
	for _, b := range baseTraces(f) {
		for _, sh := range allShapes() {
			f.Add(sh.fn(b))
		}
	}
	corpus, _ := filepath.Glob("testdata/corpus/*.log")
	for _, name := range corpus {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("Exception 0xc0000005 0x0 0x0 0x0\nPC=0x0\n\nmain.f()\n        C:/a.go:1 +0x1\n"))
	f.Add([]byte(`{"stack":"goroutine 1 [running]:\\nmain.main()\\n\\t/a.go:1 +0x1\\n"}` + "\n"))
	f.Add([]byte("goroutine 1 [running]:\n"))
	// Docker json-file records: partial ones (one at the end), the other
	// stream between them, a record cut short, one holding a whole trace.
	f.Add([]byte(`{"log":"panic: bo","stream":"stderr","time":"2026-11-30T10:00:01Z"}
{"log":"x\n","stream":"stdout","time":"2026-11-30T10:00:01.1Z"}
{"log":"om\n","stream":"stderr","time":"2026-11-30T10:00:01.2Z"}
{"log":"\n","stream":"stderr","time":"2026-11-30T10:00:01.2Z"}
{"log":"goroutine 1 [running]:\n","stream":"stderr","time":"2026-11-30T10:00:01.3Z"}
{"log":"main.main()\n","stream":"stdout","time":"2026-11-30T10:00:01.3Z"}
{"log":"main.f(\u003cnil\u003e)\n","stream":"stderr","time":"2026-11-30T10:00:01.3Z"}
{"log":"\t/a.go:1 +0x1\n","stream":"stderr","ti
{"log":"main.main()\n","attrs":{"tag":"x"},"stream":"stderr","time":"2026-11-30T10:00:01.4Z"}
{"log":"\t/a.go:2","stream":"stderr","time":"2026-11-30T10:00:01.5Z"}`))
	f.Add([]byte(`{"log":"goroutine 1 [running]:\nmain.main()\n\t/a.go:1 +0x1\n","stream":"stderr"}` + "\n"))
	f.Add([]byte(`{"time": "2026-11-30T10:00:01Z", "log": "goroutine 1 [running]:\r\n"}` + "\n" +
		`{"time": "2026-11-30T10:00:02Z", "log": "main.main()\r\n"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var first []traceback.Trace
		sc := traceback.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			tr := sc.Trace()
			if len(tr.Text) == 0 || len(tr.Text) > traceback.MaxTraceBytes || tr.Line < 1 {
				t.Fatalf("trace %+v", tr)
			}
			first = append(first, tr)
		}
		// One byte at a time gives the same traces.
		sc = traceback.NewScanner(&oneByte{data})
		n := 0
		for sc.Scan() {
			if n >= len(first) || !bytes.Equal(sc.Trace().Text, first[n].Text) || sc.Trace().Line != first[n].Line {
				t.Fatalf("trace %d differs when read byte by byte", n)
			}
			n++
		}
		if n != len(first) {
			t.Fatalf("%d traces read byte by byte, %d at once", n, len(first))
		}
	})
}

type oneByte struct{ b []byte }

func (r *oneByte) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}

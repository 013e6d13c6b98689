package traceback_test

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// A shape turns a trace as the runtime printed it into what a log system
// or a viewer makes of it.
type shape struct {
	name string
	fn   func(trace []byte) []byte
}

func lines(b []byte) []string { return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") }

func prefixEach(p func(i int) string) func([]byte) []byte {
	return func(b []byte) []byte {
		var out strings.Builder
		for i, l := range lines(b) {
			out.WriteString(p(i) + l + "\n")
		}
		return []byte(out.String())
	}
}

func escapeJSON(b []byte) string {
	q := strconv.Quote(string(b))
	return q[1 : len(q)-1]
}

var shapes = []shape{
	{"bare", func(b []byte) []byte { return b }},
	{"cri", prefixEach(func(i int) string {
		return fmt.Sprintf("2026-02-03T19:00:%02d.%03dZ stderr F ", 16+i/50, i%1000)
	})},
	{"journald", prefixEach(func(i int) string { return fmt.Sprintf("Aug 24 16:14:%02d host gameserver[741]: ", 49+i/100) })},
	{"compose", func(b []byte) []byte {
		var out strings.Builder
		for i, l := range lines(b) {
			if i%4 == 2 {
				out.WriteString("db-1      | 2026-02-03 19:00:16.678 UTC [1] LOG:  checkpoint starting: time\n")
			}
			out.WriteString("worker-1  | " + l + "\n")
		}
		return []byte(out.String())
	}},
	{"gutter", prefixEach(func(i int) string { return fmt.Sprintf("%3d | ", 98+i) })},
	{"golog", func(b []byte) []byte { return append([]byte("2026/02/03 19:00:16 "), b...) }},
	{"interleaved", func(b []byte) []byte {
		var out strings.Builder
		for i, l := range lines(b) {
			out.WriteString("2026-02-03T19:00:16.678Z stderr F " + l + "\n")
			if i%3 == 1 {
				out.WriteString(`2026-02-03T19:00:16.679Z stderr F {"level":"info","msg":"bet settled","id":42}` + "\n")
			}
		}
		return []byte(out.String())
	}},
	{"json", func(b []byte) []byte {
		return []byte(`{"time":"2026-02-03T19:00:16.678Z","level":"ERROR","msg":"crash","stack":"` + escapeJSON(b) + `"}` + "\n")
	}},
	{"logfmt", func(b []byte) []byte {
		return []byte(`time=2026-02-03T19:00:16.678Z level=ERROR msg=crash stack="` + escapeJSON(b) + `"` + "\n")
	}},
	{"wrapped", func(b []byte) []byte {
		var out strings.Builder
		for _, l := range lines(b) {
			l = "2026-02-03T19:00:16.678Z stderr F " + l
			for len(l) > 96 {
				out.WriteString(l[:96] + "\n")
				l = l[96:]
			}
			out.WriteString(l + "\n")
		}
		return []byte(out.String())
	}},
	{"spaces", func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n\t"), []byte("\n        ")) }},
}

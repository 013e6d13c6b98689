package traceback_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
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

// allShapes are shapes and dockerShapes. The mixed-log benchmark embeds
// only shapes, so that its figures compare with those before Docker's.
func allShapes() []shape { return append(slices.Clip(shapes), dockerShapes...) }

// dockerRecord encodes one json-file record as Docker's log driver does
// (encoding/json: "<" as \u003c), time in RFC 3339 with trailing zeros cut.
func dockerRecord(text, stream string, i int) string {
	b, err := json.Marshal(struct {
		Log    string `json:"log"`
		Stream string `json:"stream"`
		Time   string `json:"time"`
	}{text, stream, dockerTime(i)})
	if err != nil {
		panic(err)
	}
	return string(b) + "\n"
}

// dockerTime is the i-th line's time; the first is on a whole second.
func dockerTime(i int) string {
	return time.Date(2026, 11, 30, 10, 0, 1, i*1000, time.UTC).Format(time.RFC3339Nano)
}

// pyRecord encodes a record as Python's json.dumps would with ensure_ascii
// (", " and ": " separators, every control and non-ASCII character as \uXXXX),
// keys in another order and Docker's "attrs".
func pyRecord(text, stream string, i int) string {
	var esc strings.Builder
	for _, r := range text {
		switch {
		case r == '"' || r == '\\':
			esc.WriteString(`\` + string(r))
		case r == '\n':
			esc.WriteString(`\n`)
		case r < 0x20 || r > 0x7e:
			for _, u := range utf16.Encode([]rune{r}) {
				fmt.Fprintf(&esc, `\u%04x`, u)
			}
		default:
			esc.WriteRune(r)
		}
	}
	return fmt.Sprintf(`{"time": %q, "attrs": {"tag": "wilddig/gs", "env": "a,b}"}, "stream": %q, "log": "%s"}`+"\n",
		dockerTime(i), stream, esc.String())
}

// dockerShapes are the traces as Docker's json-file log driver keeps them.
var dockerShapes = []shape{
	{"docker", func(b []byte) []byte {
		var out strings.Builder
		for i, l := range lines(b) {
			out.WriteString(dockerRecord(l+"\n", "stderr", i))
		}
		return []byte(out.String())
	}},
	{"docker-interleaved", func(b []byte) []byte {
		// The same container's stdout between the lines, some of it
		// looking like trace lines.
		stdout := []string{
			`{"level":"info","msg":"bet settled","id":42}`, "main.main()", "\t/app/main.go:12 +0x1d",
			"", "goroutine 99 [select]:", "GET /api/v1/prize?id=7 200 13µs",
		}
		var out strings.Builder
		for i, l := range lines(b) {
			out.WriteString(pyRecord(l+"\n", "stderr", 2*i))
			if i%2 == 1 {
				out.WriteString(pyRecord(stdout[i/2%len(stdout)]+"\n", "stdout", 2*i+1))
			}
		}
		return []byte(out.String())
	}},
	{"docker-partial", func(b []byte) []byte {
		// Docker cuts a line at 16 KB into records without the line
		// break; here at 24 bytes, so that most lines are cut.
		var out strings.Builder
		for i, l := range lines(b) {
			for len(l) > 24 {
				out.WriteString(dockerRecord(l[:24], "stderr", i))
				l = l[24:]
			}
			out.WriteString(dockerRecord(l+"\n", "stderr", i))
		}
		return []byte(out.String())
	}},
}

package traceback_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/stacktrace"
	"github.com/stackwatch/stackwatch/sidecar/traceback"
)

// Traces in Docker's json-file log format (docker.go).

func readBase(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../stacktrace/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dockerLog is trace as a container's json-file log holds it: a stdout
// line first, then the trace on stderr, a record per line.
func dockerLog(trace []byte) []byte {
	out := dockerRecord("starting up\n", "stdout", 0)
	for i, l := range lines(trace) {
		out += dockerRecord(l+"\n", "stderr", i+1)
	}
	return []byte(out)
}

// scanOne scans in and wants one trace.
func scanOne(t *testing.T, in []byte) traceback.Trace {
	t.Helper()
	got := scanAll(t, in)
	if len(got) != 1 {
		t.Fatalf("%d traces, want 1\n%s", len(got), in)
	}
	return got[0]
}

// sameTrace wants got to read as the same panic as the plain text base,
// the same text included.
func sameTrace(t *testing.T, got traceback.Trace, base []byte) {
	t.Helper()
	want := scanOne(t, base)
	if !bytes.Equal(got.Text, want.Text) {
		t.Errorf("text differs from the plain trace's\n got:\n%s\nwant:\n%s", got.Text, want.Text)
	}
	p, err := stacktrace.ParseBytes(got.Text)
	if err != nil {
		t.Fatalf("%v\n%s", err, got.Text)
	}
	p0, err := stacktrace.ParseBytes(base)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := summarize(p), summarize(p0); !equal(g, w) {
		t.Errorf("\n got %+v\nwant %+v", g, w)
	}
}

func TestDockerRoundTrip(t *testing.T) {
	for _, tc := range []struct{ file, kind, msg, site string }{
		{"go1.16_nil_method.txt", "nil_dereference", "runtime error: invalid memory address or nil pointer dereference",
			"trevi/arcade-wilddig-gameserver/task.(*GateSession).Write"},
		{"go1.18_concurrent_map_writes.txt", "fatal", "concurrent map writes",
			"trevi/arcade-wilddig-gameserver/task.(*ClientManager).Add"},
		{"go1.12_deadlock.txt", "fatal", "all goroutines are asleep - deadlock!", "main.main"},
		{"go1.20_runtime_stack.txt", "", "", ""},
	} {
		t.Run(tc.file, func(t *testing.T) {
			base := readBase(t, tc.file)
			got := scanOne(t, dockerLog(base))
			sameTrace(t, got, base)
			if got.Line != 2 || got.Prefix != "2026-11-30T10:00:01.000001000Z stderr " ||
				!got.Time.Equal(time.Date(2026, 11, 30, 10, 0, 1, 1000, time.UTC)) {
				t.Errorf("line %d, prefix %q, time %v", got.Line, got.Prefix, got.Time)
			}
			if tc.kind == "" {
				return
			}
			p, _ := stacktrace.ParseBytes(got.Text)
			if sig := crash.Classify(p); p.Kind != tc.kind || p.Message != tc.msg || sig.Site.Function != tc.site {
				t.Errorf("kind %q, message %q, site %q; want %q, %q, %q", p.Kind, p.Message, sig.Site.Function, tc.kind, tc.msg, tc.site)
			}
		})
	}
}

// TestDockerCorpus: the real traces of testdata/corpus, each line a
// record, read as they do bare.
func TestDockerCorpus(t *testing.T) {
	for _, name := range []string{
		"windows-exception-jnigi73.log", "windows-exception-go11710.log", "journald-interleaved-systemd3277.log",
		"klog-observed-panic-starboard627.log", "terminal-indented-k8s32206.log", "cgo-fatal-signal-postfix16.log",
		"spaces-indented-harbor40.log", "bare-errgroup-compose8506.log",
	} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile("testdata/corpus/" + name)
			if err != nil {
				t.Fatal(err)
			}
			got := scanOne(t, dockerLog(b))
			if want := scanOne(t, b); !bytes.Equal(got.Text, want.Text) {
				t.Errorf("text differs from the plain trace's\n got:\n%s\nwant:\n%s", got.Text, want.Text)
			}
		})
	}
}

// TestDockerPartial: Docker cuts a line longer than 16 KB into records
// without its line break; the scanner joins them, across the other
// stream's records in between.
func TestDockerPartial(t *testing.T) {
	base := readBase(t, "go1.16_nil_method.txt")
	value := "main.BetError{" + strings.Repeat("reel 7 stuck; ", 3000) + "}" // 42 KB
	big := bytes.Replace(base, []byte("runtime error: invalid memory address or nil pointer dereference"), []byte(value), 1)
	big = bytes.Replace(big, []byte("\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x4a0f8a]"), nil, 1)

	var in strings.Builder
	in.WriteString(dockerRecord("starting up\n", "stdout", 0))
	for i, l := range lines(big) {
		l += "\n"
		for k := 0; len(l) > 16<<10; k++ {
			in.WriteString(dockerRecord(l[:16<<10], "stderr", i))
			if k == 1 {
				in.WriteString(dockerRecord("GET /api/v1/prize?id=7 200 13us\n", "stdout", i))
			}
			l = l[16<<10:]
		}
		in.WriteString(dockerRecord(l, "stderr", i))
	}
	got := scanOne(t, []byte(in.String()))
	sameTrace(t, got, big)
	if !bytes.HasPrefix(got.Text, []byte("panic: "+value+"\n")) {
		t.Errorf("the panic value of %d bytes is not whole", len(value))
	}
	if got.Line != 2 {
		t.Errorf("line %d, want 2", got.Line)
	}

	// The last line cut off: a record without its line break ends the log.
	cut := dockerLog(base)
	cut = cut[:bytes.LastIndex(cut, []byte(`\n","stream"`))]
	cut = append(cut, `","stream":"stderr","time":"2026-11-30T10:00:02Z"}`...)
	got = scanOne(t, cut)
	sameTrace(t, got, base)
}

// TestDockerStreams: the trace is followed along the stream it started
// on. The other stream's records in between, however many and however
// much they look like trace lines, are no part of it.
func TestDockerStreams(t *testing.T) {
	base := readBase(t, "go1.16_nil_method.txt")
	noise := []string{
		"panic: not this one", "main.main()", "\t/app/main.go:12 +0x1d", "", "goroutine 99 [select]:",
		`{"level":"info","msg":"bet settled","id":42}`,
	}
	for _, tc := range []struct {
		name          string
		stream, other string
		burst         int // the other stream's records after the panic line
	}{
		{"stderr", "stderr", "stdout", 0},
		{"stdout", "stdout", "stderr", 0}, // a server started with 2>&1
		{"burst", "stderr", "stdout", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in strings.Builder
			n := 0
			rec := func(text, stream string) { in.WriteString(dockerRecord(text+"\n", stream, n)); n++ }
			rec("panic: recovered and logged, not a crash", tc.other)
			for i, l := range lines(base) {
				rec(l, tc.stream)
				rec(noise[i%len(noise)], tc.other)
				if i == 0 {
					for k := range tc.burst {
						rec(fmt.Sprintf("GET /api/v1/prize?id=%d 200 13us", k), tc.other)
					}
				}
			}
			got := scanOne(t, []byte(in.String()))
			sameTrace(t, got, base)
			if got.Line != 2 || !strings.HasSuffix(got.Prefix, " "+tc.stream+" ") {
				t.Errorf("line %d, prefix %q", got.Line, got.Prefix)
			}
		})
	}
}

// TestDockerInvalid: a record cut in the middle of a trace is a foreign
// line, as another program's line in a CRI log is: the trace reads on
// without it, and the traces after it are whole.
func TestDockerInvalid(t *testing.T) {
	names := []string{"go1.16_nil_method.txt", "go1.18_concurrent_map_writes.txt", "go1.12_deadlock.txt"}
	var in []byte
	for _, name := range names {
		d := dockerLog(readBase(t, name))
		if name == names[1] {
			// The first goroutine's last line, cut mid-record.
			i := bytes.Index(d, []byte(`task_clientmanager.go:40`))
			d = append(d[:i:i], d[bytes.IndexByte(d[i:], '\n')+i:]...)
		}
		in = append(in, d...)
	}
	got := scanAll(t, in)
	if len(got) != len(names) {
		t.Fatalf("%d traces, want %d", len(got), len(names))
	}
	for i, name := range names {
		base := readBase(t, name)
		if i == 1 {
			base = bytes.Replace(base, []byte("\t/tmp/build/arcade-wilddig-gameserver/task/task_clientmanager.go:40 +0x4f\n"), nil, 1)
		}
		sameTrace(t, got[i], base)
	}
	if got[1].Line != 1+len(lines(readBase(t, names[0])))+1+1 {
		t.Errorf("second trace on line %d", got[1].Line)
	}
}

// TestDockerRecords: the shapes of record that read as one.
func TestDockerRecords(t *testing.T) {
	const trace = "goroutine 1 [running]:\nmain.main()\n\t/app/main.go:9 +0x1d\n"
	for _, tc := range []struct {
		name, in, want string
	}{
		{"keys in any order", `{ "time" : "2026-11-30T10:00:01Z" , "stream":"stderr", "log" : "goroutine 1 [running]:\n" }
{"stream":"stderr","log":"main.main()\n","time":"2026-11-30T10:00:01.5Z"}
{"log":"\t/app/main.go:9 +0x1d\n","time":"2026-11-30T10:00:02.25Z","stream":"stderr"}`, trace},
		{"time only", `{"log":"goroutine 1 [running]:\n","time":"2026-11-30T10:00:01Z"}
{"log":"main.main()\n","time":"2026-11-30T10:00:01.5Z"}
{"log":"\t/app/main.go:9 +0x1d\n","time":"2026-11-30T10:00:01.000000001Z"}`, trace},
		{"stream only, attrs", `{"log":"goroutine 1 [running]:\n","attrs":{"tag":"gs","x":["}",{"y":1}]},"stream":"stderr"}
{"log":"main.main()\n","attrs":{"tag":"gs"},"stream":"stderr"}
{"log":"\u0009/app/main.go:9 +0x1d\n","stream":"stderr","attrs":{}}`, trace},
		{"escapes", `{"log":"goroutine 1 [running]:\n","stream":"stderr"}
{"log":"main.(*T).f(\u003cnil\u003e, \"\\\ud83c\udfb0\/\")\n","stream":"stderr"}
{"log":"\t/app/main.go:9 +0x1d\r\n","stream":"stderr"}`,
			"goroutine 1 [running]:\nmain.(*T).f(<nil>, \"\\\U0001F3B0/\")\n\t/app/main.go:9 +0x1d\n"},
		// A record whose text is many lines is a trace escaped in one field.
		{"escaped field", `{"log":"goroutine 1 [running]:\nmain.main()\n\t/app/main.go:9 +0x1d\n","stream":"stderr","time":"2026-11-30T10:00:01Z"}`, trace},
		// A JSON logger's record in the container's output.
		{"json in a record", `{"log":"{\"level\":\"error\",\"stack\":\"goroutine 1 [running]:\\nmain.main()\\n\\t/app/main.go:9 +0x1d\\n\"}\n","stream":"stderr","time":"2026-11-30T10:00:01Z"}`, trace},
		// Another key: a JSON logger's line, whose "stack" is read as before.
		{"other key", `{"log":"handler failed\n","stream":"stderr","time":"2026-11-30T10:00:01Z","stack":"goroutine 1 [running]:\nmain.main()\n\t/app/main.go:9 +0x1d\n"}`,
			trace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := scanAll(t, []byte(tc.in+"\n"))
			if len(got) != 1 || string(got[0].Text) != tc.want {
				t.Fatalf("got %d traces %+v, want %q", len(got), got, tc.want)
			}
			if strings.Contains(tc.in, `"time"`) && !got[0].Time.Equal(time.Date(2026, 11, 30, 10, 0, 1, 0, time.UTC)) {
				t.Errorf("time %v", got[0].Time)
			}
		})
	}
}

// escapedRecord is one json-file record whose "log" is a goroutine header
// followed by n escaped tabs: a line no trace has, but a valid record.
func escapedRecord(n int) string {
	return `{"log":"goroutine 1 [running]:` + strings.Repeat(`\t`, n) + `\n","stream":"stderr","time":"2026-11-30T10:00:01Z"}` + "\n"
}

// TestDockerHugeEscapedRecord: a record of 8 MB of escapes, as a candidate
// line and right above a trace, is read in time linear in its length (the
// closing quote was searched for again after every escape: hours for
// this one) and is no part of the trace.
func TestDockerHugeEscapedRecord(t *testing.T) {
	base := readBase(t, "go1.16_nil_method.txt")
	hostile := escapedRecord(4 << 20)
	got := scanOne(t, []byte(hostile+string(dockerLog(base))+hostile))
	sameTrace(t, got, base)
}

// BenchmarkDockerEscapedRecord: one record of n escapes; ns/op grows
// linearly with n.
func BenchmarkDockerEscapedRecord(b *testing.B) {
	for _, n := range []int{16 << 10, 256 << 10, 4 << 20} {
		in := []byte(escapedRecord(n))
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				sc := traceback.NewScanner(bytes.NewReader(in))
				for sc.Scan() {
				}
			}
		})
	}
}

// partialChain is n partial stderr records, each holding a goroutine
// header so that the scanner reads them as a line, never ended.
func partialChain(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(dockerRecord("goroutine 1 [running]: and more", "stderr", i))
	}
	return b.String()
}

// TestDockerLongChainByteByByte: a line of 10,000 partial records (0.8 MB)
// read a byte at a time, as a pipe may deliver it, is joined as the input
// comes: each read used to join the records from the first again (10^12
// bytes parsed for this one). The trace after it is whole.
func TestDockerLongChainByteByByte(t *testing.T) {
	base := readBase(t, "go1.16_nil_method.txt")
	in := []byte(partialChain(10000) + string(dockerLog(base)))
	var got []traceback.Trace
	sc := traceback.NewScanner(&oneByte{in})
	for sc.Scan() {
		got = append(got, sc.Trace())
	}
	if len(got) != 1 {
		t.Fatalf("%d traces, want 1", len(got))
	}
	sameTrace(t, got[0], base)
}

// BenchmarkDockerLongChain: a line of n partial records read 4 KB at a
// time; ns/op grows linearly with n.
func BenchmarkDockerLongChain(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		in := []byte(partialChain(n) + dockerRecord("\n", "stderr", 0))
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

// chunked reads at most n bytes at a time.
type chunked struct {
	r io.Reader
	n int
}

func (c *chunked) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// TestDockerOtherStreamLongLine: the other stream writes a line longer
// than 16 KB while the trace is written, and Docker's records of the two
// interleave: the other line's records are passed over one by one. Joined
// as one line, they passed over the trace's own records between them, the
// panic header or the goroutine header with them, and the trace was lost
// or lost frames.
func TestDockerOtherStreamLongLine(t *testing.T) {
	base := readBase(t, "go1.16_nil_method.txt")
	long := strings.Repeat("x", 16<<10)
	ls := lines(base)
	// The other line starts before line `from` of the trace and ends after
	// line `to`.
	for _, span := range [][2]int{{0, 0}, {1, 3}, {2, 2}, {3, 4}, {5, 7}, {1, len(ls) - 1}} {
		t.Run(fmt.Sprint(span), func(t *testing.T) {
			var in strings.Builder
			in.WriteString(dockerRecord("starting up\n", "stdout", 0))
			for i, l := range ls {
				if i == span[0] {
					in.WriteString(dockerRecord(long, "stdout", i))
					in.WriteString(dockerRecord(long, "stdout", i))
				}
				in.WriteString(dockerRecord(l+"\n", "stderr", i))
				if i == span[1] {
					in.WriteString(dockerRecord("the end of a long line\n", "stdout", i))
				}
			}
			got := scanOne(t, []byte(in.String()))
			sameTrace(t, got, base)
			want := 2 // the panic line, after "starting up"
			if span[0] == 0 {
				want += 2 // and the other line's first two records
			}
			if got.Line != want {
				t.Errorf("line %d, want %d", got.Line, want)
			}
		})
	}
}

// TestDockerLongLineAroundTrace: a long line of one stream that mentions
// a goroutine, no trace itself, passes over a whole trace on the other
// stream between its records: the trace is read, and the long line's
// records are not read again as lines of their own (each of them would
// be joined with the rest of the line again).
func TestDockerLongLineAroundTrace(t *testing.T) {
	base := readBase(t, "go1.16_nil_method.txt")
	part := "goroutine 7 is slow; " + strings.Repeat("x", 16<<10)
	var in strings.Builder
	in.WriteString(dockerRecord(part, "stdout", 0))
	for i, l := range lines(base) {
		in.WriteString(dockerRecord(l+"\n", "stderr", i))
		in.WriteString(dockerRecord(part, "stdout", i))
	}
	in.WriteString(dockerRecord("the end of the report\n", "stdout", 0))
	got := scanOne(t, []byte(in.String()))
	sameTrace(t, got, base)
	if got.Line != 2 {
		t.Errorf("line %d, want 2", got.Line)
	}
}

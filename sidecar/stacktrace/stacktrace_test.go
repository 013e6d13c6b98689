package stacktrace

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maruel/panicparse/v2/stack"

	"github.com/stackwatch/stackwatch/sidecar/traceback"
)

// want describes what a parse must yield. Zero fields are not checked,
// except the booleans, which always are.
type want struct {
	msg                   string
	msgPrefix             string
	nested                []string
	kind                  string
	fatal                 bool
	recovered, repanicked bool
	signalPrefix          string
	http                  string
	minGoroutines         int
	g0ID                  int
	state                 string
	funcs                 []string // leading Goroutines[0] frames, ShortFunc
	lines                 []int    // their line numbers (static fixtures only)
	firstArgs             []string // their first argument ("" = none)
	inlined               []int    // indexes of frames printed "(...)"
	createdBy             string   // ShortFunc
	createdByG            int
	elided                int
	framesElided          bool
	ancestors             []int
	partial               bool
	real                  bool // a trace from this build: -race may not inline
}

// realShapes are produced by the installed Go runtime (see crasher_test.go).
var realShapes = []struct {
	shape string
	env   []string
	want  want
}{
	{"nil_goroutine", nil, want{
		msg: "runtime error: invalid memory address or nil pointer dereference", kind: KindNilDereference,
		signalPrefix: "SIGSEGV: segmentation violation", state: "running",
		funcs:     []string{"stacktrace.(*Session).Write", "stacktrace.clientWrite", "stacktrace.onWildDigBetClientResp"},
		createdBy: "stacktrace.inGoroutine", createdByG: 1,
	}},
	{"nil_iface", nil, want{
		kind: KindNilDereference, signalPrefix: "SIGSEGV",
		funcs:     []string{"stacktrace.clientWriteIface", "stacktrace.onBetIface"},
		firstArgs: []string{"nil", "{0x0, 0x0}"},
		createdBy: "stacktrace.inGoroutine",
	}},
	{"server_shape", nil, want{
		msg: "runtime error: invalid memory address or nil pointer dereference", kind: KindNilDereference,
		state: "running",
		funcs: []string{"debug.Stack", "stacktrace.stacktoolRecoverFunc", "panic", "stacktrace.(*Session).Write",
			"stacktrace.clientWrite", "stacktrace.onWildDigBetClientResp"},
		createdBy: "stacktrace.inGoroutine",
	}},
	{"server_shape_iface", nil, want{
		kind:      KindNilDereference,
		funcs:     []string{"debug.Stack", "stacktrace.stacktoolRecoverFunc", "panic", "stacktrace.clientWriteIface", "stacktrace.onBetIface"},
		firstArgs: []string{"", "", "*", "nil", "{0x0, 0x0}"},
	}},
	{"repanicked", nil, want{
		msg: "runtime error: invalid memory address or nil pointer dereference", kind: KindNilDereference,
		recovered: true, repanicked: true, signalPrefix: "SIGSEGV", g0ID: 1,
		funcs: []string{"stacktrace.crash.func5.1", "panic", "stacktrace.(*Session).Write", "stacktrace.clientWrite"},
	}},
	{"recovered_new_value", nil, want{
		msg: "first", nested: []string{"wrapped: first"}, kind: KindCustom, recovered: true,
		funcs: []string{"stacktrace.crash.func6.1", "panic", "stacktrace.crash.func6"},
	}},
	{"nested_multiline", nil, want{
		msg: "line1\nline2", nested: []string{"outer\nmore"}, kind: KindCustom, recovered: true,
	}},
	{"index", nil, want{
		msg: "runtime error: index out of range [12] with length 3", kind: KindIndexOutOfRange,
		funcs: []string{"stacktrace.inlinedIndex", "stacktrace.crash"}, inlined: []int{0},
	}},
	{"slice_bounds", nil, want{msgPrefix: "runtime error: slice bounds out of range", kind: KindIndexOutOfRange}},
	{"closed_channel", nil, want{msg: "send on closed channel", kind: KindClosedChannel}},
	{"close_closed", nil, want{msg: "close of closed channel", kind: KindClosedChannel}},
	{"nil_map", nil, want{msg: "assignment to entry in nil map", kind: KindNilMapWrite}},
	{"divide", nil, want{msg: "runtime error: integer divide by zero", kind: KindDivideByZero}},
	{"type_assertion", nil, want{msg: "interface conversion: interface {} is string, not int", kind: KindTypeAssertion}},
	{"custom_error", nil, want{msg: "bet store unavailable", kind: KindCustom}},
	{"custom_multiline", nil, want{msg: "first line\nsecond line\nthird line", kind: KindCustom}},
	{"deep", nil, want{msg: "deep", kind: KindCustom, framesElided: true, elided: -1,
		funcs: []string{"stacktrace.recurse", "stacktrace.recurse"}}},
	{"concurrent_map_writes", nil, want{
		msg: "concurrent map writes", kind: KindFatal, fatal: true,
		funcs: []string{"maps.fatal", "stacktrace.crash.func7"}, createdBy: "stacktrace.crash",
	}},
	{"stack_overflow", nil, want{
		msg: "stack overflow", kind: KindFatal, fatal: true, framesElided: true, elided: -1,
		funcs: []string{"stacktrace.overflow", "stacktrace.overflow"},
	}},
	{"unlock_unlocked", nil, want{
		msg: "sync: unlock of unlocked mutex", kind: KindFatal, fatal: true,
		funcs:   []string{"sync.fatal", "sync.(*Mutex).unlockSlow", "sync.(*Mutex).Unlock", "sync.(*Mutex).Unlock", "stacktrace.crash"},
		inlined: []int{2, 3},
	}},
	{"http_serving", nil, want{
		msg: "runtime error: invalid memory address or nil pointer dereference", kind: KindNilDereference,
		http:  "127.0.0.1:*",
		funcs: []string{"http.(*conn).serve.func1", "panic", "stacktrace.(*Session).Write"},
	}},
	{"ancestors", []string{"GODEBUG=tracebackancestors=5"}, want{
		kind: KindNilDereference, signalPrefix: "SIGSEGV", funcs: []string{"stacktrace.(*Session).Write"},
		createdBy: "stacktrace.inGoroutine", createdByG: -1, ancestors: []int{-1, 1},
	}},
	{"sigquit", nil, want{
		msg: "SIGQUIT: quit", signalPrefix: "SIGQUIT: quit", kind: KindFatal, fatal: true, minGoroutines: 2,
		g0ID: 1, state: "running", funcs: []string{"linux.Syscall6", "syscall.RawSyscall6"},
	}},
	{"nil_goroutine", []string{"GOTRACEBACK=system"}, want{
		kind: KindNilDereference, signalPrefix: "SIGSEGV", minGoroutines: 2, state: "running",
		funcs:     []string{"panic", "runtime.panicmem", "runtime.sigpanic", "stacktrace.(*Session).Write"},
		inlined:   []int{1},
		createdBy: "stacktrace.inGoroutine",
	}},
}

// staticShapes are older Go versions' shapes and the incident report's
// examples, verbatim.
var staticShapes = []struct {
	file string
	want want
}{
	{"report_example1.stacktrace.log", want{
		partial: true,
		msg:     "runtime error: invalid memory address or nil pointer dereference", kind: KindNilDereference,
		g0ID: 8906150, state: "running",
		funcs:     []string{"debug.Stack", "stacktool.RecoverFunc", "panic", "task.clientWrite", "task.onWildDigBetClientResp"},
		lines:     []int{26, 28, 783, 19, 354},
		firstArgs: []string{"", "", "{0xf89020?, 0x1ba4440?}", "{0x0, 0x0}", "{0x0, 0x0}"},
	}},
	{"report_example2.stacktrace.log", want{
		partial: true,
		kind:    KindNilDereference, g0ID: 496613,
		funcs: []string{"task.clientWrite", "task.onGoldenCloverBetClientResp"}, lines: []int{19, 352},
	}},
	{"report_example3.stacktrace.log", want{
		partial: true,
		kind:    KindNilDereference, g0ID: 5234866,
		funcs: []string{"task.ClientGetWilddigReckonBetRes.func1"}, lines: []int{208}, firstArgs: []string{""},
	}},
	{"go1.11_nested_recovered.txt", want{
		msg: "runtime error: index out of range", nested: []string{"bet settlement failed"},
		kind: KindIndexOutOfRange, recovered: true, g0ID: 19,
		funcs:     []string{"main.settle.func1", "panic", "main.reckon", "main.settle"},
		lines:     []int{31, 513, 12, 35},
		firstArgs: []string{"0xc00008e000", "0x4b6d00", "0xc00008e000"},
		createdBy: "main.main",
	}},
	{"go1.16_nil_method.txt", want{
		kind: KindNilDereference, signalPrefix: "SIGSEGV: segmentation violation code=0x1 addr=0x18",
		funcs:     []string{"task.(*GateSession).Write", "task.clientWrite", "task.onWildDigBetClientResp"},
		lines:     []int{41, 19, 354},
		firstArgs: []string{"0x0", "", "0x0"},
		inlined:   []int{1},
		createdBy: "task.ClientCashDeductRes",
	}},
	{"go1.14_additional_elided.txt", want{msg: "deep", kind: KindCustom, framesElided: true,
		funcs: []string{"main.recurse", "main.recurse", "main.recurse"}, lines: []int{5, 7, 7}}},
	{"go1.18_concurrent_map_writes.txt", want{
		msg: "concurrent map writes", kind: KindFatal, fatal: true, minGoroutines: 2, g0ID: 18,
		funcs: []string{"runtime.throw", "runtime.mapassign_fast64", "task.(*ClientManager).Add"},
		lines: []int{992, 102, 57}, createdBy: "task.StartClients",
	}},
	{"go1.20_runtime_stack.txt", want{
		msg: "unexpected signal during runtime execution", kind: KindFatal, fatal: true,
		signalPrefix: "SIGSEGV", g0ID: 7, state: "syscall",
		funcs: []string{"runtime.cgocall", "codec._Cfunc_decode", "codec.Decode", "main.main.func1"},
		lines: []int{157, 61, 20, 14}, inlined: []int{2},
		createdBy: "main.main", createdByG: 1,
	}},
	{"go1.12_deadlock.txt", want{
		msg: "all goroutines are asleep - deadlock!", kind: KindFatal, fatal: true, state: "semacquire",
		funcs: []string{"sync.runtime_Semacquire", "sync.(*WaitGroup).Wait", "main.main"},
	}},
	{"go1.19_http_serving.txt", want{
		msg: "runtime error: index out of range [3] with length 3", kind: KindIndexOutOfRange, http: "10.0.3.7:51234",
		funcs:     []string{"http.(*conn).serve.func1", "panic", "api.(*Handler).prize", "http.HandlerFunc.ServeHTTP"},
		lines:     []int{1850, 890, 88, 2109},
		createdBy: "http.(*Server).Serve",
	}},
}

// realTraces caches the crasher outputs: each child process costs ~50 ms.
var realTraces sync.Map // shape+env → []byte

func realTrace(t testing.TB, shape string, env []string) []byte {
	t.Helper()
	k := shape + strings.Join(env, ",")
	if b, ok := realTraces.Load(k); ok {
		return b.([]byte)
	}
	b := crasherOutput(t, shape, env...)
	realTraces.Store(k, b)
	return b
}

func TestParseRealShapes(t *testing.T) {
	for _, tc := range realShapes {
		name := tc.shape + strings.Join(tc.env, ",")
		t.Run(name, func(t *testing.T) {
			b := realTrace(t, tc.shape, tc.env)
			p, err := ParseBytes(b)
			if err != nil {
				t.Fatalf("ParseBytes: %v\n%s", err, b)
			}
			w := tc.want
			w.real = raceEnabled
			check(t, p, w, b)
			for _, f := range p.Goroutines[0].Frames {
				if f.Function != "panic" && !strings.HasPrefix(f.File, "/") && !strings.HasPrefix(f.File, "_testmain") {
					t.Errorf("frame %s: file %q is not a path", f.Function, f.File)
				}
				if f.Line <= 0 {
					t.Errorf("frame %s: line %d", f.Function, f.Line)
				}
			}
			crossCheck(t, p, b)
		})
	}
}

func TestParseStaticShapes(t *testing.T) {
	for _, tc := range staticShapes {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			p, err := ParseBytes(b)
			if err != nil {
				t.Fatalf("ParseBytes: %v", err)
			}
			check(t, p, tc.want, b)
			// Windows line endings give the same result.
			crlf, err := ParseBytes(bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")))
			if err != nil {
				t.Fatalf("CRLF: %v", err)
			}
			check(t, crlf, tc.want, b)
		})
	}
}

func check(t *testing.T, p *Panic, w want, raw []byte) {
	t.Helper()
	defer func() {
		if t.Failed() {
			t.Logf("input:\n%s", raw)
		}
	}()
	if w.msg != "" && p.Message != w.msg {
		t.Errorf("Message = %q, want %q", p.Message, w.msg)
	}
	if w.msgPrefix != "" && !strings.HasPrefix(p.Message, w.msgPrefix) {
		t.Errorf("Message = %q, want prefix %q", p.Message, w.msgPrefix)
	}
	if !slices.Equal(p.Nested, w.nested) {
		t.Errorf("Nested = %q, want %q", p.Nested, w.nested)
	}
	if p.Kind != w.kind {
		t.Errorf("Kind = %q, want %q", p.Kind, w.kind)
	}
	if p.Fatal != w.fatal || p.Recovered != w.recovered || p.Repanicked != w.repanicked {
		t.Errorf("Fatal, Recovered, Repanicked = %v, %v, %v; want %v, %v, %v",
			p.Fatal, p.Recovered, p.Repanicked, w.fatal, w.recovered, w.repanicked)
	}
	if !strings.HasPrefix(p.Signal, w.signalPrefix) || (w.signalPrefix == "") != (p.Signal == "") {
		t.Errorf("Signal = %q, want prefix %q", p.Signal, w.signalPrefix)
	}
	if ok, _ := filepath.Match(w.http, p.HTTPServing); !ok {
		t.Errorf("HTTPServing = %q, want %q", p.HTTPServing, w.http)
	}
	if p.Truncated {
		t.Error("Truncated")
	}
	if p.Partial != w.partial {
		t.Errorf("Partial = %v, want %v", p.Partial, w.partial)
	}
	if len(p.Goroutines) < max(w.minGoroutines, 1) {
		t.Fatalf("%d goroutines, want at least %d", len(p.Goroutines), max(w.minGoroutines, 1))
	}
	g := p.Goroutines[0]
	if w.g0ID != 0 && g.ID != w.g0ID {
		t.Errorf("ID = %d, want %d", g.ID, w.g0ID)
	}
	if g.ID <= 0 {
		t.Errorf("ID = %d", g.ID)
	}
	if w.state != "" && g.State != w.state {
		t.Errorf("State = %q, want %q", g.State, w.state)
	}
	if len(g.Frames) < len(w.funcs) {
		t.Fatalf("%d frames, want at least %d: %+v", len(g.Frames), len(w.funcs), g.Frames)
	}
	for i, fn := range w.funcs {
		f := g.Frames[i]
		if f.ShortFunc() != fn {
			t.Errorf("frame %d: ShortFunc = %q, want %q", i, f.ShortFunc(), fn)
		}
		if !strings.HasSuffix(f.Function, f.ShortFunc()) || !strings.HasPrefix(f.Function, f.Pkg) && f.Function != "panic" {
			t.Errorf("frame %d: Func %q Pkg %q", i, f.Function, f.Pkg)
		}
		if i < len(w.lines) && f.Line != w.lines[i] {
			t.Errorf("frame %d: Line = %d, want %d", i, f.Line, w.lines[i])
		}
		if i < len(w.firstArgs) {
			got := ""
			if len(f.Args) > 0 {
				got = f.Args[0]
			}
			ok := got == w.firstArgs[i]
			switch w.firstArgs[i] {
			case "*": // any
				ok = got != ""
			case "nil": // the register ABI may mark it uncertain; -race builds do not
				ok = got == "{0x0, 0x0}" || got == "{0x0?, 0x0?}"
			}
			if !ok {
				t.Errorf("frame %d: first arg = %q, want %q (args %q)", i, got, w.firstArgs[i], f.Args)
			}
		}
		if inl := slices.Contains(w.inlined, i); (f.Inlined != inl && !w.real || f.Inlined && !inl) || f.Inlined != (f.Offset == "") {
			t.Errorf("frame %d: Inlined = %v, Offset %q; want inlined %v", i, f.Inlined, f.Offset, inl)
		}
	}
	switch {
	case w.createdBy == "" && g.CreatedBy != nil && len(w.funcs) > 0 && w.lines != nil:
		t.Errorf("CreatedBy = %+v, want none", g.CreatedBy)
	case w.createdBy != "":
		if g.CreatedBy == nil {
			t.Fatalf("CreatedBy = nil, want %s", w.createdBy)
		}
		if g.CreatedBy.ShortFunc() != w.createdBy || g.CreatedBy.Line <= 0 || g.CreatedBy.File == "" {
			t.Errorf("CreatedBy = %+v, want %s", *g.CreatedBy, w.createdBy)
		}
		if w.createdByG > 0 && g.CreatedByGoroutine != w.createdByG ||
			w.createdByG < 0 && g.CreatedByGoroutine <= 0 {
			t.Errorf("CreatedByGoroutine = %d, want %d", g.CreatedByGoroutine, w.createdByG)
		}
	}
	if g.FramesElided != w.framesElided || w.elided > 0 && g.Elided != w.elided || w.elided < 0 && g.Elided <= 0 {
		t.Errorf("FramesElided, Elided = %v, %d; want %v, %d", g.FramesElided, g.Elided, w.framesElided, w.elided)
	}
	if len(g.Ancestors) != len(w.ancestors) {
		t.Fatalf("%d ancestors, want %d", len(g.Ancestors), len(w.ancestors))
	}
	for i, id := range w.ancestors {
		a := g.Ancestors[i]
		if id > 0 && a.ID != id || a.ID <= 0 || len(a.Frames) == 0 {
			t.Errorf("ancestor %d: ID %d with %d frames, want ID %d", i, a.ID, len(a.Frames), id)
		}
	}
}

// crossCheck compares the frames of every goroutine with panicparse's
// reading of the same bytes: an independent parser must agree on what we
// both read.
func crossCheck(t *testing.T, p *Panic, raw []byte) {
	t.Helper()
	opts := stack.DefaultOpts()
	opts.GuessPaths, opts.AnalyzeSources = false, false
	snap, _, err := stack.ScanSnapshot(bytes.NewReader(raw), &bytes.Buffer{}, opts)
	if err != nil && !errors.Is(err, io.EOF) || snap == nil {
		t.Fatalf("panicparse: %v", err)
	}
	if snap.IsRace() {
		// A -race build printed a race report first; panicparse reads
		// only that.
		t.Log("race report: not cross-checked")
		return
	}
	byID := map[int]*stack.Goroutine{}
	for _, g := range snap.Goroutines {
		byID[g.ID] = g
	}
	compared := 0
	for _, g := range p.Goroutines {
		pg, ok := byID[g.ID]
		if !ok {
			continue
		}
		compared++
		calls := pg.Stack.Calls
		if len(calls) != len(g.Frames) {
			t.Errorf("goroutine %d: %d frames, panicparse %d", g.ID, len(g.Frames), len(calls))
			continue
		}
		for i, c := range calls {
			f := g.Frames[i]
			if c.Func.Complete != f.Function || c.Line != f.Line || c.RemoteSrcPath != f.File {
				t.Errorf("goroutine %d frame %d: %s %s:%d, panicparse %s %s:%d",
					g.ID, i, f.Function, f.File, f.Line, c.Func.Complete, c.RemoteSrcPath, c.Line)
			}
		}
	}
	if compared == 0 {
		t.Errorf("panicparse found none of our goroutines")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		err  error
	}{
		{"empty", "", ErrEmpty},
		{"whitespace", " \n\t\r\n", ErrEmpty},
		{"binary NUL", "panic: x\x00\x01\x02goroutine 1 [running]:\n", ErrBinary},
		{"invalid utf8", "panic: \xff\xfe\n\ngoroutine 1 [running]:\nmain.main()\n\t/x.go:1 +0x1\n", ErrBinary},
		{"text", "hello world\nthis is not a panic\n", ErrNotPanic},
		{"json log", `{"level":"warn","msg":"[Client] Gate session closed, message cannot be sent"}` + "\n" + `{"level":"info"}` + "\n", ErrNotPanic},
		{"one line", "hello\n", ErrIncomplete},
		{"header without goroutine", "panic: boom\n\n", ErrIncomplete},
		{"server first line only", "runtime error: invalid memory address or nil pointer dereference\n", ErrIncomplete},
		{"server first line and half a header", "runtime error: x\ngorout", ErrIncomplete},
		{"header only", "runtime error: x\ngoroutine 7 [running]:\n", ErrIncomplete},
		{"panic and header only", "panic: x\n\ngoroutine 1 [running]:\n", ErrIncomplete},
		{"fatal without goroutine", "fatal error: out of memory\n", ErrIncomplete},
		{"goroutine word but no header", "goroutine 12 is fine\nand so am I\n", ErrNotPanic},
		{"header without bracket", "x\ny\ngoroutine 1 running]:\n", ErrNotPanic},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseBytes([]byte(tc.in))
			if err != tc.err || p != nil {
				t.Fatalf("ParseBytes = %v, %v; want error %v", p, err, tc.err)
			}
			if tc.err != ErrEmpty && !errors.Is(err, ErrNotPanic) {
				t.Errorf("%v is not an ErrNotPanic", err)
			}
		})
	}
}

// A file being written in place is read at every stage: each prefix must
// give a clean error or a consistent partial result, never a panic, and the
// whole file the full result.
func TestParsePrefixes(t *testing.T) {
	b, err := os.ReadFile("testdata/report_example1.stacktrace.log")
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n <= len(b); n++ {
		p, err := ParseBytes(b[:n])
		if err != nil {
			// Never "not a panic": the watcher must wait, not give up.
			if p != nil || err != ErrEmpty && err != ErrIncomplete {
				t.Fatalf("prefix %d: %v, %v", n, p, err)
			}
			continue
		}
		if !p.Partial {
			t.Fatalf("prefix %d of an excerpt not Partial", n)
		}
		// A cut header ("goroutine 89061") is not a header at all.
		if p.Goroutines[0].ID != 8906150 || p.Message != "runtime error: invalid memory address or nil pointer dereference" {
			t.Fatalf("prefix %d: goroutine %d, message %q", n, p.Goroutines[0].ID, p.Message)
		}
	}
}

func TestParseTruncated(t *testing.T) {
	one, err := os.ReadFile("testdata/report_example1.stacktrace.log")
	if err != nil {
		t.Fatal(err)
	}
	// A 100 MB file: the trace, then a flood of other goroutines.
	var big bytes.Buffer
	big.Write(one)
	big.WriteString("\n")
	filler := "goroutine 7 [chan receive, 3 minutes]:\nmain.worker(0xc000010000)\n\t/app/worker.go:12 +0x45\ncreated by main.main in goroutine 1\n\t/app/main.go:9 +0x2f\n\n"
	for big.Len() < 100<<20 {
		big.WriteString(filler)
	}
	p, err := Parse(bytes.NewReader(big.Bytes()), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Truncated {
		t.Error("not Truncated")
	}
	if p.Goroutines[0].ID != 8906150 || p.Goroutines[0].Frames[3].ShortFunc() != "task.clientWrite" {
		t.Errorf("head not parsed: %+v", p.Goroutines[0])
	}
	read := 0
	for _, g := range p.Goroutines {
		read += len(g.Frames)
	}
	if n := len(p.Goroutines); n < 1000 || n > DefaultMaxBytes/len(filler)+2 {
		t.Errorf("%d goroutines read from the first MB", n)
	}
	// The last goroutine read must be whole: the cut line was dropped.
	last := p.Goroutines[len(p.Goroutines)-1]
	for _, f := range last.Frames {
		if f.Line == 0 && f.File != "" {
			t.Errorf("cut frame kept: %+v", f)
		}
	}

	// Exactly at the limit is not truncated; one byte more is.
	p, err = Parse(bytes.NewReader(one), int64(len(one)))
	if err != nil || p.Truncated {
		t.Fatalf("at limit: %v, truncated %v", err, p != nil && p.Truncated)
	}
	p, err = Parse(bytes.NewReader(one), int64(len(one)-1))
	if err != nil || !p.Truncated {
		t.Fatalf("one over: %v, truncated %v", err, p != nil && p.Truncated)
	}
	// The cut file line is dropped, not read as a wrong location; its
	// function line stays.
	if fr := p.Goroutines[0].Frames; len(fr) != 5 || fr[4].Line != 0 || fr[4].File != "" || fr[3].Line != 19 {
		t.Errorf("cut last frame: %+v", fr)
	}
}

// A reader that fails is an error, not a panic parse of what came before.
func TestParseReadError(t *testing.T) {
	_, err := Parse(&failingReader{}, 0)
	if err == nil || errors.Is(err, ErrNotPanic) {
		t.Fatalf("err = %v", err)
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(b []byte) (int, error) {
	if r.n > 0 {
		return 0, errors.New("disk on fire")
	}
	r.n++
	return copy(b, "panic: x\n\ngoroutine 1 [running]:\n"), nil
}

// Results must not alias the caller's buffer (the watcher reuses buffers).
func TestParseBytesCopies(t *testing.T) {
	b, err := os.ReadFile("testdata/report_example2.stacktrace.log")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'X'
	}
	if p.Message != "runtime error: invalid memory address or nil pointer dereference" ||
		p.Goroutines[0].Frames[0].Function != "trevi/arcade-wilddig-gameserver/task.clientWrite" {
		t.Errorf("result changed with the input buffer: %q", p.Message)
	}
}

func TestShortFuncAndPkg(t *testing.T) {
	tests := []struct{ fn, pkg, short string }{
		{"trevi/arcade-wilddig-gameserver/task.clientWrite", "trevi/arcade-wilddig-gameserver/task", "task.clientWrite"},
		{"trevi/arcade-wilddig-gameserver/task.ClientGetWilddigReckonBetRes.func1", "trevi/arcade-wilddig-gameserver/task", "task.ClientGetWilddigReckonBetRes.func1"},
		{"main.(*T).M", "main", "main.(*T).M"},
		{"gopkg.in/yaml%2ev2.(*parser).parse", "gopkg.in/yaml%2ev2", "yaml%2ev2.(*parser).parse"},
		{"net/http.(*conn).serve.func1", "net/http", "http.(*conn).serve.func1"},
		{"example.com/m.Map[...]", "example.com/m", "m.Map[...]"},
		{"panic", "runtime", "panic"},
		{"crosscall2", "", "crosscall2"},
	}
	for _, tc := range tests {
		l := traceback.Classify(tc.fn + "(0x1)")
		f, ok := callFrame(l), l.Kind == traceback.Call
		if !ok || f.Pkg != tc.pkg || f.ShortFunc() != tc.short || f.Function != tc.fn {
			t.Errorf("%s: ok %v, Func %q, Pkg %q, ShortFunc %q", tc.fn, ok, f.Function, f.Pkg, f.ShortFunc())
		}
	}
}

func TestHeaders(t *testing.T) {
	tests := []struct {
		line  string
		id    int
		state string
		ok    bool
	}{
		{"goroutine 1 [running]:", 1, "running", true},
		{"goroutine 8906150 [running]:", 8906150, "running", true},
		{"goroutine 1 gp=0xc000002380 m=0 mp=0x5a1b2c0 [running]:", 1, "running", true},
		{"goroutine 9 gp=0xc000003340 m=nil [chan receive (leaked), 3 minutes]:", 9, "chan receive (leaked), 3 minutes", true},
		{`goroutine 5 [select, locked to thread, synctest bubble 2 labels:{"a": "]"}]:`, 5, `select, locked to thread, synctest bubble 2 labels:{"a": "]"}`, true},
		{"goroutine x [running]:", 0, "", false},
		{"goroutine 1 [running]", 0, "", false},
		{"goroutine  [running]:", 0, "", false},
		{"goroutine 99999999999999999999999 [running]:", 0, "", false},
	}
	for _, tc := range tests {
		id, state, ok := traceback.ParseHeader(tc.line)
		if id != tc.id || state != tc.state || ok != tc.ok {
			t.Errorf("%q: %d %q %v; want %d %q %v", tc.line, id, state, ok, tc.id, tc.state, tc.ok)
		}
	}
}

// endless yields a panic head and then goroutines forever, without holding
// them: a 100 MB (or endless) file costs what the byte limit allows.
type endless struct {
	head []byte
	line []byte
	off  int
}

func (e *endless) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		src := e.line
		if len(e.head) > 0 {
			src = e.head
		}
		c := copy(b[n:], src[e.off:])
		n += c
		e.off += c
		if e.off == len(src) {
			e.off = 0
			e.head = nil
		}
	}
	return n, nil
}

func TestParseMemoryBounded(t *testing.T) {
	head, err := os.ReadFile("testdata/report_example1.stacktrace.log")
	if err != nil {
		t.Fatal(err)
	}
	r := &endless{head: append(head, '\n'), line: []byte("goroutine 7 [select]:\nmain.worker(0xc000010000)\n\t/app/worker.go:12 +0x45\n\n")}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p, err := Parse(r, 0)
	runtime.ReadMemStats(&after)
	if err != nil || !p.Truncated || p.Goroutines[0].ID != 8906150 {
		t.Fatalf("err %v", err)
	}
	// The 1 MB read plus the parsed goroutines; measured ~14 MB.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Errorf("parsing an endless input allocated %d MB", alloc>>20)
	}
}

// A trace behind a log prefix parses as the bare trace does, with the time
// the prefix carries: the sidecar reads such files too.
func TestParseLogPrefixed(t *testing.T) {
	b, err := os.ReadFile("testdata/go1.16_nil_method.txt")
	if err != nil {
		t.Fatal(err)
	}
	bare, err := ParseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		prefix string
		time   time.Time
	}{
		"cri":      {"2026-02-03T19:00:16.678Z stderr F ", time.Date(2026, 2, 3, 19, 0, 16, 678e6, time.UTC)},
		"golog":    {"2026/02/03 19:00:16 ", time.Date(2026, 2, 3, 19, 0, 16, 0, time.UTC)},
		"iso zone": {"2026-02-03 19:00:16.5+01:00 gameserver: ", time.Date(2026, 2, 3, 18, 0, 16, 5e8, time.UTC)},
		"gutter":   {"  7 | ", time.Time{}},
	} {
		t.Run(name, func(t *testing.T) {
			var in strings.Builder
			for _, l := range strings.SplitAfter(string(b), "\n") {
				if l != "" {
					in.WriteString(tc.prefix + l)
				}
			}
			p, err := ParseBytes([]byte(in.String()))
			if err != nil {
				t.Fatalf("%v\n%s", err, in.String())
			}
			if !p.Time.Equal(tc.time) || p.Message != bare.Message || p.Kind != bare.Kind ||
				len(p.Goroutines[0].Frames) != len(bare.Goroutines[0].Frames) {
				t.Errorf("time %v, message %q, kind %s, %d frames; want %v and the bare trace's",
					p.Time, p.Message, p.Kind, len(p.Goroutines[0].Frames), tc.time)
			}
		})
	}
}

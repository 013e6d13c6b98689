// Package stacktrace parses Go panic output: what the runtime prints to stderr
// when a program dies (Go 1.11 through 1.26), net/http's "http: panic serving"
// log lines, and the files a recover helper writes (the panic value on the
// first line, then runtime/debug.Stack()).
//
// The parser is a single pass over the lines. github.com/maruel/panicparse/v2
// was measured against it (see BenchmarkPanicparse): panicparse does not
// extract the panic message, splits its buckets on "in goroutine N", stops at
// "[originating from goroutine N]" and costs several times more per file, so
// it is used only as a cross-check in the tests, never on the ingest path.
package stacktrace

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/stackwatch/stackwatch/sidecar/traceback"
)

// DefaultMaxBytes bounds how much of one input is read. The panic value and
// the crashing goroutine come first, so a 100 MB file is parsed from its head
// and marked Truncated; memory stays bounded.
const DefaultMaxBytes = 1 << 20

// maxMessageBytes caps Panic.Message: a panic value can be arbitrarily long.
const maxMessageBytes = 4 << 10

// Errors returned for inputs that are not a Go panic. ErrBinary and
// ErrIncomplete wrap ErrNotPanic, so errors.Is(err, ErrNotPanic) holds for
// every rejected non-empty input.
var (
	// ErrEmpty: nothing but white space (e.g. a file created but not yet written).
	ErrEmpty = errors.New("stacktrace: empty input")
	// ErrNotPanic: the input holds no goroutine traceback.
	ErrNotPanic = errors.New("stacktrace: not a Go panic")
	// ErrBinary: the input is binary (NUL bytes or invalid UTF-8).
	ErrBinary = fmt.Errorf("%w: binary data", ErrNotPanic)
	// ErrIncomplete: a panic message but no goroutine yet, as a file being
	// written in place looks between its first and second write.
	ErrIncomplete = fmt.Errorf("%w: panic message without a goroutine traceback", ErrNotPanic)
)

// Kinds of panic, the values of Panic.Kind.
const (
	KindNilDereference  = "nil_dereference"
	KindIndexOutOfRange = "index_out_of_range"
	KindClosedChannel   = "closed_channel"
	KindNilMapWrite     = "nil_map_write"
	KindDivideByZero    = "divide_by_zero"
	KindTypeAssertion   = "type_assertion"
	// KindFatal is a crash recover cannot stop: a "fatal error:" throw
	// (concurrent map writes, stack overflow, out of memory, deadlock), a
	// fatal signal ("SIGSEGV: segmentation violation" in cgo, "SIGABRT:
	// abort") or a Windows exception. Message keeps the runtime's words.
	KindFatal  = "fatal"
	KindCustom = "custom"
)

// Panic is one parsed panic.
type Panic struct {
	// Message is the panic value of the first (original) panic, e.g.
	// "runtime error: invalid memory address or nil pointer dereference",
	// or the throw of a "fatal error:". Multi-line values keep their "\n".
	Message string
	// Nested holds the values of later panics printed under the first one
	// ("panic: X [recovered]\n\tpanic: Y"), in order.
	Nested []string
	// Kind is one of the Kind* constants, derived from Message.
	Kind string
	// Fatal is set for the crashes of KindFatal, which cannot be recovered.
	Fatal bool
	// Time is when the crash was logged, when the trace carries a
	// timestamp: the log prefix of a trace read out of a log stream.
	// Zero otherwise.
	Time time.Time
	// Recovered and Repanicked mirror the runtime's " [recovered]" and
	// " [recovered, repanicked]" suffixes.
	Recovered, Repanicked bool
	// Signal is the text of the "[signal ...]" line, e.g.
	// "SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c".
	Signal string
	// HTTPServing is the remote address of "http: panic serving ADDR: ...".
	HTTPServing string
	// Goroutines in printed order; Goroutines[0] is the one that panicked.
	// A Windows exception prints the crashing goroutine's frames without a
	// header: that goroutine has ID 0 and State "exception".
	Goroutines []Goroutine
	// Truncated is set when the input was longer than the byte limit and
	// only its head was parsed.
	Truncated bool
	// Partial is set when the input looks cut short, as a file being
	// written in place does: it does not end in a newline, or the crashing
	// goroutine's traceback lacks its end ("created by ..." or main.main).
	// A watcher should read such a file again once it is quiet; excerpts
	// pasted by hand, like the incident report's, are Partial too.
	Partial bool
}

// Goroutine is one goroutine's traceback.
type Goroutine struct {
	ID int
	// State is the bracketed header text, e.g. "running" or
	// "chan receive, 2 minutes, locked to thread".
	State  string
	Frames []Frame
	// CreatedBy is the "created by" frame; nil for the main goroutine.
	CreatedBy *Frame
	// CreatedByGoroutine is N of "created by X in goroutine N" (Go 1.21+), else 0.
	CreatedByGoroutine int
	// Elided is N of "...N frames elided..." (Go 1.21+).
	Elided int
	// FramesElided is set by either elision line, including the older
	// "...additional frames elided...".
	FramesElided bool
	// Ancestors are the "[originating from goroutine N]:" blocks printed
	// with GODEBUG=tracebackancestors=N, nearest first.
	Ancestors []Goroutine
}

// Frame is one stack frame; Function, File, Line, Args, Inlined and Offset
// are as printed.
type Frame = traceback.Frame

// Parse reads at most maxBytes of r (DefaultMaxBytes when maxBytes <= 0) and
// parses them. Longer input is cut at its last complete line within the limit
// and the result is marked Truncated.
func Parse(r io.Reader, maxBytes int64) (*Panic, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	// Read one byte past the limit to learn whether there is more. parse
	// copies what it keeps, so the read buffer is recycled.
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBuffer {
			buf.Reset()
			bufPool.Put(buf)
		}
	}()
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(r, maxBytes+1)); err != nil {
		return nil, fmt.Errorf("stacktrace: read: %w", err)
	}
	b := buf.Bytes()
	truncated := int64(len(b)) > maxBytes
	if truncated {
		b = b[:maxBytes]
	}
	return parse(b, truncated)
}

// maxPooledBuffer keeps the odd huge file's buffer out of the pool, so the
// pool holds a few small buffers rather than several megabytes.
const maxPooledBuffer = 64 << 10

var bufPool = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 8<<10)) }}

// ParseBytes parses b, of which at most DefaultMaxBytes are looked at. The
// result shares no memory with b.
func ParseBytes(b []byte) (*Panic, error) {
	truncated := len(b) > DefaultMaxBytes
	if truncated {
		b = b[:DefaultMaxBytes]
	}
	return parse(b, truncated)
}

func parse(b []byte, truncated bool) (*Panic, error) {
	if truncated {
		// Drop the partial last line: a cut frame would give a wrong line number.
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			b = b[:i+1]
		}
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, ErrEmpty
	}
	if bytes.IndexByte(b, 0) >= 0 || !utf8.Valid(b) {
		return nil, ErrBinary
	}
	p, err := parseText(b, truncated)
	if err == nil || err == ErrBinary {
		return p, err
	}
	// Not a bare trace: perhaps one inside log text (a prefix on every
	// line, an escaped field). The first one found is the panic.
	sc := traceback.NewScanner(bytes.NewReader(b))
	if !sc.Scan() {
		return nil, err
	}
	t := sc.Trace()
	q, qerr := parseText(t.Text, truncated || t.Truncated)
	if qerr != nil {
		return nil, err
	}
	q.Time = t.Time
	return q, nil
}

func parseText(b []byte, truncated bool) (*Panic, error) {
	// One copy; every string in the result is a substring of it.
	p := &parser{s: string(b), out: &Panic{Truncated: truncated}}
	return p.run()
}

type section int

const (
	secHeader    section = iota // before the first goroutine: panic value, signal
	secGoroutine                // frames of a goroutine
	secSkip                     // "runtime stack:" and other blocks we do not keep
)

type parser struct {
	s   string
	out *Panic

	sec section
	// Header state.
	msg     strings.Builder
	msgFrom msgSource
	cont    continuation // where a tab-indented line continues a panic value
	// Goroutine state.
	g          *Goroutine // current goroutine or ancestor block
	pending    Frame      // function line seen, waiting for its file line
	hasPending bool
	created    bool // pending is the CreatedBy frame
	sawPanic   bool // a "panic:" or "fatal error:" or "http: panic serving" line was seen
	exception  bool // an "Exception 0x..." line was seen: frames may come without a header
	newstack   bool // a "runtime stack:" block ran through runtime.newstack: a stack overflow
	// plainLines counts header lines taken as the panic value without a
	// "panic:" prefix, otherLines the header lines ignored.
	plainLines, otherLines int
}

type continuation int

const (
	contNone    continuation = iota
	contMessage              // the last panic value was Message
	contNested               // the last panic value was the last of Nested
)

type msgSource int

const (
	msgNone  msgSource = iota
	msgPlain           // first line of a recover-helper file; replaced by a later "panic:" line
	msgPanic           // "panic:", "fatal error:" or "http: panic serving"
)

func (p *parser) run() (*Panic, error) {
	s := p.s
	if i := strings.LastIndexByte(s, '\n'); !strings.HasSuffix(s, "\n") {
		// A goroutine header still being written is not the panic value.
		if last := s[i+1:]; strings.HasPrefix("goroutine ", last) || strings.HasPrefix(last, "goroutine ") {
			s = s[:i+1]
		}
	}
	for len(s) > 0 {
		var line string
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line, s = s[:i], s[i+1:]
		} else {
			line, s = s, ""
		}
		line = strings.TrimSuffix(line, "\r")
		p.line(line)
	}
	p.flush()
	out := p.out
	out.Message = p.message()
	switch {
	case len(out.Goroutines) == 0 && (p.sawPanic || p.plainLines <= 1 && p.otherLines == 0):
		// A panic line, or a lone first line (the recover helper's value)
		// and perhaps the start of a header: the rest may still be coming.
		return nil, ErrIncomplete
	case len(out.Goroutines) == 0:
		return nil, ErrNotPanic
	case len(out.Goroutines[0].Frames) == 0 && out.Goroutines[0].CreatedBy == nil:
		// "goroutine N [running]:" and nothing after it.
		return nil, ErrIncomplete
	}
	if p.msgFrom != msgPanic {
		p.inferFatal()
		out.Message = p.message()
	}
	out.Kind = kindOf(out.Message, out.Fatal)
	out.Partial = !strings.HasSuffix(p.s, "\n") || looksCut(out.Goroutines[0])
	return out, nil
}

// inferFatal recognises a fatal error whose "fatal error:" line is
// missing. The runtime prints that line before it starts dying, and only
// what it prints while dying is copied to runtime/debug.SetCrashOutput's
// file (runtime.writeErrData, Go 1.23 to 1.26): a crash file holds the
// goroutines but not the message. The message is then inferred from where
// the runtime threw.
func (p *parser) inferFatal() {
	frames := p.out.Goroutines[0].Frames
	top, next := "", ""
	if len(frames) > 0 {
		top = frames[0].Function
	}
	if len(frames) > 1 {
		next = frames[1].Function
	}
	thrown := top == "runtime.throw" || top == "runtime.fatal" || top == "runtime.fatalthrow" || top == "sync.fatal"
	var msg string
	switch {
	case p.newstack:
		msg = "stack overflow"
	case top == "internal/runtime/maps.fatal" || thrown && strings.HasPrefix(next, "runtime.map"):
		// The map code's throws are all "concurrent map ...": writes
		// (25 of the 42 in Go 1.26), reads or iteration during a write.
		// The frames cannot tell them apart.
		msg = "concurrent map writes"
	case thrown:
		msg = "unknown fatal error (the crash output lacks the runtime's message)"
	default:
		return
	}
	p.out.Fatal = true
	p.setMessage(msg, msgPanic)
}

// looksCut reports whether g's traceback stops before its end. Go ends
// every goroutine's traceback with "created by" and its file line, except
// the main goroutine's, which ends at main.main (or at runtime.main and
// runtime.goexit with GOTRACEBACK=system).
func looksCut(g Goroutine) bool {
	switch {
	case g.CreatedBy != nil:
		return g.CreatedBy.File == ""
	case g.FramesElided:
		return false
	case len(g.Frames) == 0:
		return true
	}
	last := g.Frames[len(g.Frames)-1]
	return last.File == "" || last.Function != "main.main" && !strings.HasPrefix(last.Function, "runtime.")
}

func (p *parser) message() string {
	m := p.msg.String()
	if len(m) > maxMessageBytes {
		m = m[:maxMessageBytes]
		for !utf8.ValidString(m) { // do not split a rune
			m = m[:len(m)-1]
		}
		m = strings.Clone(m) // do not pin the long original
	}
	return m
}

func (p *parser) setMessage(m string, from msgSource) {
	p.msg.Reset()
	p.msg.WriteString(m)
	p.msgFrom = from
}

func (p *parser) line(line string) {
	// A goroutine header ends any section.
	if id, state, ok := traceback.ParseHeader(line); ok {
		p.flush()
		p.out.Goroutines = append(p.out.Goroutines, Goroutine{ID: id, State: state})
		p.g = &p.out.Goroutines[len(p.out.Goroutines)-1]
		p.sec = secGoroutine
		return
	}
	switch p.sec {
	case secHeader:
		p.headerLine(line)
	case secGoroutine:
		p.frameLine(line)
	case secSkip:
		if line == "" {
			p.sec = secHeader
		} else if strings.HasPrefix(line, "runtime.newstack(") {
			p.newstack = true
		}
	}
}

func (p *parser) headerLine(line string) {
	if len(p.out.Goroutines) > 0 {
		// After the first traceback only "runtime stack:" blocks matter;
		// "exit status 2" or a second concatenated panic must not leak
		// into this one's message.
		if line == "runtime stack:" {
			p.sec = secSkip
		}
		return
	}
	switch {
	case line == "":
		p.cont = contNone
		return
	case strings.HasPrefix(line, "panic: "):
		p.panicLine(line[len("panic: "):])
		return
	case strings.HasPrefix(line, "\tpanic: "):
		p.panicLine(line[len("\tpanic: "):])
		return
	case strings.HasPrefix(line, "fatal error: "):
		p.out.Fatal = true
		p.sawPanic = true
		if p.msgFrom != msgPanic {
			p.setMessage(line[len("fatal error: "):], msgPanic)
		}
		p.cont = contNone
		return
	case strings.HasPrefix(line, "[signal ") && strings.HasSuffix(line, "]"):
		p.out.Signal = line[len("[signal ") : len(line)-1]
		return
	case line == "runtime stack:":
		p.sec = secSkip
		return
	case line[0] == '\t' && p.cont == contMessage:
		// printindented: later lines of a multi-line panic value; the
		// " [recovered]" suffix ends the last of them.
		if p.msg.Len() < maxMessageBytes {
			p.msg.WriteByte('\n')
			p.msg.WriteString(p.cutRecovered(line[1:]))
		}
		return
	case line[0] == '\t' && p.cont == contNested:
		if n := &p.out.Nested[len(p.out.Nested)-1]; len(*n) < maxMessageBytes {
			*n += "\n" + p.cutRecovered(line[1:])
		}
		return
	}
	if strings.HasPrefix(line, "Exception 0x") && p.msgFrom != msgPanic {
		// A Windows exception (runtime/signal_windows.go winthrow): the
		// crashing goroutine's frames follow with no goroutine header.
		p.out.Fatal = true
		p.exception = true
		p.sawPanic = true
		p.setMessage(line, msgPanic)
		p.cont = contNone
		return
	}
	if p.exception && len(p.out.Goroutines) == 0 {
		if l := traceback.Classify(line); l.Kind == traceback.Call {
			p.out.Goroutines = append(p.out.Goroutines, Goroutine{State: "exception"})
			p.g = &p.out.Goroutines[0]
			p.sec = secGoroutine
			p.pending, p.hasPending = callFrame(l), true
			return
		}
	}
	if isSignalDeath(line) && p.msgFrom != msgPanic {
		// "SIGQUIT: quit", "SIGABRT: abort": a signal the runtime does not
		// turn into a panic; every goroutine is dumped after it.
		p.out.Fatal = true
		p.out.Signal = line
		p.sawPanic = true
		p.setMessage(line, msgPanic)
		p.cont = contNone
		return
	}
	if i := strings.Index(line, "http: panic serving "); i >= 0 {
		rest := line[i+len("http: panic serving "):]
		if j := strings.Index(rest, ": "); j >= 0 {
			p.out.HTTPServing = rest[:j]
			p.setMessage(rest[j+2:], msgPanic)
			p.sawPanic = true
			p.cont = contMessage
			return
		}
	}
	switch p.msgFrom {
	case msgNone:
		// The recover helper's shape: the panic value on the first line.
		p.setMessage(line, msgPlain)
		p.plainLines++
	case msgPlain:
		// A recovered value with newlines is written without indentation.
		if p.msg.Len() < maxMessageBytes {
			p.msg.WriteByte('\n')
			p.msg.WriteString(line)
		}
		p.plainLines++
	default:
		p.otherLines++
	}
}

// cutRecovered removes the runtime's " [recovered]" or
// " [recovered, repanicked]" suffix from a panic value line, noting it.
func (p *parser) cutRecovered(v string) string {
	if r, ok := strings.CutSuffix(v, " [recovered, repanicked]"); ok {
		p.out.Recovered, p.out.Repanicked = true, true
		return r
	}
	if r, ok := strings.CutSuffix(v, " [recovered]"); ok {
		p.out.Recovered = true
		return r
	}
	return v
}

// panicLine handles "panic: V" and the tab-indented later panics under it.
func (p *parser) panicLine(v string) {
	p.sawPanic = true
	v = p.cutRecovered(v)
	if p.msgFrom == msgPanic {
		// A later panic; the first one is the cause.
		p.out.Nested = append(p.out.Nested, v)
		p.cont = contNested
		return
	}
	p.setMessage(v, msgPanic)
	p.cont = contMessage
}

func (p *parser) frameLine(line string) {
	g := p.g
	l := traceback.Classify(line)
	switch l.Kind {
	case traceback.Blank:
		p.flush()
		p.sec = secHeader
		return
	case traceback.File:
		if p.hasPending {
			p.pending.File, p.pending.Line, p.pending.Offset = l.Name, l.N, l.Rest
			p.flushPending()
		}
		return
	case traceback.Other:
		// Register dumps, "goroutine running on other thread", "exit
		// status 2", a cut file line: not part of a frame.
		if line[0] != '\t' {
			p.flushPending()
		}
		return
	}
	p.flushPending()
	switch l.Kind {
	case traceback.CreatedBy:
		g.CreatedByGoroutine = l.N
		p.pending, p.hasPending, p.created = Frame{Function: l.Name, Pkg: traceback.PackageOf(l.Name)}, true, true
	case traceback.Elided:
		g.FramesElided = true
		g.Elided = l.N
	case traceback.Ancestor:
		owner := &p.out.Goroutines[len(p.out.Goroutines)-1]
		owner.Ancestors = append(owner.Ancestors, Goroutine{ID: l.N, State: "originating"})
		p.g = &owner.Ancestors[len(owner.Ancestors)-1]
	case traceback.Call:
		p.pending, p.hasPending = callFrame(l), true
	}
}

func callFrame(l traceback.Line[string]) Frame {
	f := Frame{Function: l.Name, Pkg: traceback.PackageOf(l.Name), Inlined: l.Inlined}
	if l.Rest != "" {
		f.Args = traceback.SplitArgs(l.Rest)
	}
	return f
}

// flushPending stores the pending frame, with its file line or, in a cut
// file, without.
func (p *parser) flushPending() {
	if !p.hasPending {
		return
	}
	if p.created {
		f := p.pending
		p.g.CreatedBy = &f
	} else {
		p.g.Frames = append(p.g.Frames, p.pending)
	}
	p.pending, p.hasPending, p.created = Frame{}, false, false
}

func (p *parser) flush() {
	if p.g != nil {
		p.flushPending()
	}
	p.g = nil
}

// isSignalDeath matches the runtime's first line for a fatal signal,
// "SIGQUIT: quit" (runtime/signal_unix.go sighandler).
func isSignalDeath(line string) bool {
	name, desc, ok := strings.Cut(line, ": ")
	if !ok || len(name) < 4 || !strings.HasPrefix(name, "SIG") || desc == "" {
		return false
	}
	for _, c := range name[3:] {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// kindOf classifies a panic by its value. Runtime panics have fixed texts
// (runtime/error.go, runtime/panic.go); everything else is custom.
func kindOf(msg string, fatal bool) string {
	if fatal {
		return KindFatal
	}
	m := strings.TrimPrefix(msg, "runtime error: ")
	switch {
	case strings.HasPrefix(m, "invalid memory address or nil pointer dereference"):
		return KindNilDereference
	case strings.HasPrefix(m, "index out of range"), strings.HasPrefix(m, "slice bounds out of range"):
		return KindIndexOutOfRange
	case m == "send on closed channel", m == "close of closed channel", m == "close of nil channel":
		return KindClosedChannel
	case m == "assignment to entry in nil map":
		return KindNilMapWrite
	case m == "integer divide by zero":
		return KindDivideByZero
	case strings.HasPrefix(m, "interface conversion: "):
		return KindTypeAssertion
	}
	return KindCustom
}

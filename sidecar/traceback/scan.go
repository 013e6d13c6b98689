package traceback

import (
	"bytes"
	"io"
	"time"
)

// Trace is one Go traceback found in a log stream, cleaned back into what
// the runtime printed.
type Trace struct {
	// Text is the trace with the log's per-line prefixes stripped, an
	// escaped field unescaped and lines a viewer wrapped joined back.
	Text []byte
	// Line is the line of the stream the trace starts on, from 1.
	Line int
	// Prefix is the log prefix of that line, e.g.
	// "2026-02-03T19:00:16.678Z stderr F "; empty for a bare trace. A
	// Docker json-file record's is its time and stream,
	// "2026-02-03T19:00:16.678000000Z stderr ".
	Prefix string
	// Time is the timestamp the prefix or the log record carries; zero
	// when there is none.
	Time time.Time
	// Truncated is set when the trace ran past MaxTraceBytes; Text holds
	// its head.
	Truncated bool
}

// MaxTraceBytes bounds one trace's Text. The crashing goroutine comes
// first, so the head is what matters.
const MaxTraceBytes = 1 << 20

const (
	readSize  = 1 << 20
	maxLine   = 16 << 20 // a longer line is cut: it is no trace line
	histBytes = 64 << 10 // text kept before the read position to look back for a panic header
	maxBack   = 48       // lines looked back from a goroutine header for its panic header
	maxNoise  = 24       // foreign lines tolerated inside a trace before it is taken as ended
	maxOther  = 256      // Docker records of the other stream passed over in a row (docker.go)
)

var (
	anchorHeader    = []byte("goroutine ")
	anchorException = []byte("Exception 0x")
)

// Scanner finds Go tracebacks in arbitrary log text: panics, fatal errors,
// goroutine dumps and Windows exceptions, whether bare, behind a per-line
// log prefix (CRI, journald, docker compose, timestamps, line-number
// gutters), one line to a Docker json-file record, interleaved with other
// log lines, hard-wrapped by a viewer or escaped inside one JSON or logfmt
// field. Use it like bufio.Scanner:
//
//	sc := traceback.NewScanner(r)
//	for sc.Scan() {
//		t := sc.Trace()
//	}
//	err := sc.Err()
//
// It reads ordinary log text at memory speed: it looks only for goroutine
// headers and exception lines, and reads lines one by one only around them.
type Scanner struct {
	r   io.Reader
	now time.Time // for timestamps without a year

	buf      []byte
	pos, end int  // buf[pos:end] is unread; buf[:pos] is kept history
	eof      bool // r is exhausted: buf[pos:end] is the rest
	err      error
	line     int // lines before buf[pos]
	excAt    int // cached position of the next anchorException at or after pos, -1 none up to excLimit
	excLimit int
	floor    int // the end of the last trace read: looking back stops there
	// Offsets in buf move as fill drops history: dropped counts the
	// bytes dropped so far, and fill keeps buf[pin:] (pin >= 0), the
	// line join may give back.
	dropped int
	pin     int
	// buf[nlFrom:nlTo] holds no line break: a line that comes in many
	// reads is searched for its end once (breakFrom).
	nlFrom, nlTo int

	// The line at vpos (-1: none) as peek reads it, kept until buf moves:
	// its text, the end of its raw line(s), their number, and whether it
	// is a Docker json-file record (docker.go), whose text is in view
	// after a prefix of vplen bytes.
	vpos    int
	vline   []byte
	vend    int
	vlines  int
	vdocker bool
	vover   bool // the Docker record's line passes over another stream's records
	vplen   int
	view    []byte
	back    []byte // lineBefore's scratch
	// While follow, the trace read is on only's stream (followStream).
	follow bool
	only   dockerRecord
	// Up to passEnd, the records of passed's stream continue a line that
	// holds no trace and passed over another stream's records (passLine).
	passEnd int
	passed  dockerRecord

	queue []Trace
	cur   Trace
}

// NewScanner returns a Scanner reading r.
func NewScanner(r io.Reader) *Scanner {
	return &Scanner{r: r, now: time.Now(), excAt: -1, vpos: -1, pin: -1}
}

// Trace returns the trace found by the last Scan.
func (s *Scanner) Trace() Trace { return s.cur }

// Err returns the first read error, other than io.EOF.
func (s *Scanner) Err() error { return s.err }

// Scan finds the next trace. It returns false at the end of the input or on
// a read error.
func (s *Scanner) Scan() bool {
	for len(s.queue) == 0 {
		if !s.find() {
			return false
		}
	}
	s.cur = s.queue[0]
	s.queue = s.queue[1:]
	return true
}

// fill reads more input, keeping histBytes of history before pos. It
// returns false when nothing more can be read.
func (s *Scanner) fill() bool {
	if s.eof {
		return false
	}
	s.vpos = -1
	keep := max(0, s.pos-histBytes)
	if s.pin >= 0 {
		keep = min(keep, s.pin)
	}
	if keep > 0 {
		copy(s.buf, s.buf[keep:s.end])
		s.pos -= keep
		s.end -= keep
		s.excAt, s.excLimit = -1, 0
		s.floor = max(0, s.floor-keep)
		s.dropped += keep
		s.nlFrom, s.nlTo = s.nlFrom-keep, s.nlTo-keep
		s.passEnd -= keep
		if s.pin >= 0 {
			s.pin -= keep
		}
	}
	if len(s.buf)-s.end < readSize/2 {
		size := max(2*len(s.buf), s.end+readSize)
		if l, ok := s.r.(interface{ Len() int }); ok {
			size = min(size, s.end+l.Len()+1) // an escaped field: small, and known
		}
		nb := make([]byte, size)
		copy(nb, s.buf[:s.end])
		s.buf = nb
	}
	n, err := io.ReadAtLeast(s.r, s.buf[s.end:], 1)
	s.end += n
	if err != nil {
		s.eof = true
		if err != io.EOF && err != io.ErrUnexpectedEOF {
			s.err = err
		}
	}
	return n > 0 || !s.eof
}

// complete returns the end of the complete lines in buf[pos:end]: the
// index after the last line break, or end once the input is exhausted.
func (s *Scanner) complete() int {
	if s.eof {
		return s.end
	}
	from := s.breakFrom()
	if i := bytes.LastIndexByte(s.buf[from:s.end], '\n'); i >= 0 {
		return from + i + 1
	}
	s.nlFrom, s.nlTo = s.pos, s.end
	if s.end-s.pos >= maxLine {
		return s.end // a line too long to be a trace line: cut it
	}
	return s.pos
}

// find scans ordinary text up to the next anchor and reads the trace there,
// queueing what it finds. It returns false at the end of the input.
func (s *Scanner) find() bool {
	for {
		lim := s.complete()
		if lim == s.pos {
			if !s.fill() {
				return false
			}
			continue
		}
		region := s.buf[s.pos:lim]
		a := bytes.Index(region, anchorHeader)
		if e := s.nextException(lim); e >= 0 && (a < 0 || e < a) {
			a = e
		}
		if a < 0 {
			s.line += bytes.Count(region, nl)
			s.pos = lim
			continue
		}
		ls := bytes.LastIndexByte(region[:a], '\n') + 1
		s.line += bytes.Count(region[:ls], nl)
		s.pos += ls
		if s.pos < s.passEnd {
			if r, ok := s.recordAt(s.pos); ok && r.sameStream(&s.passed) {
				s.skipRaw() // a part of a line read already
				continue
			}
		}
		if s.candidate(a - ls) {
			return true
		}
		s.passLine()
	}
}

var nl = []byte{'\n'}

// nextException returns the offset from pos of the next anchorException
// before lim, or -1. The position is cached: most logs have none, and
// searching for it anew after every goroutine header would read them
// again and again.
func (s *Scanner) nextException(lim int) int {
	if s.excAt >= s.pos {
		if s.excAt < lim {
			return s.excAt - s.pos
		}
		return -1
	}
	if from := max(s.pos, s.excLimit); from < lim {
		if i := bytes.Index(s.buf[from:lim], anchorException); i >= 0 {
			s.excAt = from + i
			return s.excAt - s.pos
		}
	}
	s.excAt, s.excLimit = -1, lim
	return -1
}

// peek returns the line at pos without its line break, and whether there
// is one. A Docker json-file record reads as its time and stream followed
// by the text of its "log", joined with the partial records that continue
// it (docker.go). It may read more input, which moves buf: slices from
// earlier calls are invalid after it.
func (s *Scanner) peek() ([]byte, bool) {
	for s.vpos != s.pos {
		next := s.end
		from := s.breakFrom()
		if i := bytes.IndexByte(s.buf[from:s.end], '\n'); i >= 0 {
			next = from + i + 1
		} else if s.nlFrom, s.nlTo = s.pos, s.end; !s.eof && s.end-s.pos < maxLine {
			if !s.fill() && s.pos == s.end {
				return nil, false
			}
			continue
		} else if s.pos == s.end {
			return nil, false
		}
		s.vdocker = false
		if s.buf[s.pos] == '{' {
			rel := next - s.pos
			line, plen, end, n, over, ok := s.dockerLine(s.view[:0], s.pos, next, s.end, true) // may move buf
			next = s.pos + rel
			if ok {
				s.view = line[:0]
				s.vline, s.vend, s.vlines, s.vdocker, s.vplen, s.vover = line, end, n, true, plen, over
			}
		}
		if !s.vdocker {
			s.vline, s.vend, s.vlines = trimCR(s.buf[s.pos:trimNL(s.buf, s.pos, next)]), next, 1
		}
		s.vpos = s.pos
	}
	return s.vline, true
}

// skipLine moves past the line at pos, as peek read it.
func (s *Scanner) skipLine() {
	if s.vpos == s.pos {
		s.pos, s.line = s.vend, s.line+s.vlines
		return
	}
	s.skipRaw()
}

// breakFrom returns where the line break that ends the line at pos may
// be: after what is known to hold none.
func (s *Scanner) breakFrom() int {
	if s.nlFrom <= s.pos && s.pos <= s.nlTo {
		return s.nlTo
	}
	return s.pos
}

// skipRaw moves past the raw line at pos.
func (s *Scanner) skipRaw() {
	if i := bytes.IndexByte(s.buf[s.pos:s.end], '\n'); i >= 0 {
		s.pos += i + 1
	} else {
		s.pos = s.end
	}
	s.line++
}

// passLine moves past the line at pos, which holds no trace. A Docker
// line that passes over another stream's records is passed one record at
// a time, so that those are read: find passes over its own stream's
// records that continue it.
func (s *Scanner) passLine() {
	s.peek() // candidate may have read on from pos
	if s.vpos == s.pos && s.vdocker && s.vover {
		if r, ok := s.recordAt(s.pos); ok {
			s.passed = dockerRecord{stream: append(s.passed.stream[:0], r.stream...), hasStream: r.hasStream}
			s.passEnd = s.vend
			s.skipRaw()
			return
		}
	}
	s.skipLine()
}

// lineBefore returns the line that ends at end (after its line break) as
// peek would read it, where it starts, the raw lines it spans and whether
// it is a Docker record.
func (s *Scanner) lineBefore(end int) (start int, line []byte, n int, docker bool) {
	start = bytes.LastIndexByte(s.buf[:end-1], '\n') + 1
	line = trimCR(s.buf[start : end-1])
	if len(line) == 0 || line[0] != '{' {
		return start, line, 1, false
	}
	r, ok := parseDocker(line)
	if !ok {
		return start, line, 1, false
	}
	first := start
	if !s.follow || r.sameStream(&s.only) {
		first = s.partialBefore(&r, start)
	}
	next := bytes.IndexByte(s.buf[first:end], '\n') + first + 1
	v, _, e, n, _, ok := s.dockerLine(s.back[:0], first, next, end, false)
	if !ok || e != end {
		return start, line, 1, false
	}
	s.back = v[:0]
	return first, v, n, true
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// candidate reads the trace whose anchor is at offset a of the line at
// pos, queueing it. It returns false, leaving pos, when there is none.
func (s *Scanner) candidate(a int) bool {
	line, _ := s.peek()
	if s.vdocker { // a is the anchor's offset in the raw record
		if a = anchorIn(line); a < 0 {
			return false
		}
	}
	rest := line[a:]
	if bytes.HasPrefix(rest, anchorException) {
		return s.plain(a, true)
	}
	if _, _, ok := ParseHeader(rest); ok {
		return s.plain(a, false)
	}
	// "goroutine 7 [running]:\nmain.f()..." inside one field.
	if i := bytes.Index(rest[:min(len(rest), 512)], []byte(`]:\n`)); i > 0 {
		if _, _, ok := ParseHeader(rest[:i+2]); ok {
			return s.escapedField(line, a)
		}
	}
	return false
}

// plain reads a trace whose lines are lines of the stream: it looks back
// from the goroutine header at pos (or exception line) for the panic
// header, then reads on from there.
func (s *Scanner) plain(a int, exception bool) bool {
	header, headerLine, dropped := s.pos, s.line, s.dropped
	start, startLine, prefixLen := s.pos, s.line, a
	s.followStream(true)
	defer s.followStream(false)
	if !exception {
		start, startLine, prefixLen = s.lookBack(a)
	}
	// The start line's prefix, and the header's when they differ: Go's
	// log package prefixes only the first line of "http: panic serving".
	var pats [2]prefix
	np := 1
	if header != start {
		h, _ := s.peek()
		pats[1], np = learnPrefix(bytes.Clone(h[:a])), 2
	}
	// Back up to the start; what lies between is history still in buf.
	s.pos, s.line = start, startLine
	first, _ := s.peek()
	t := Trace{Line: startLine + 1, Prefix: string(first[:prefixLen])}
	t.Time = timeOf(first[:prefixLen], s.now)
	pats[0] = learnPrefix([]byte(t.Prefix))
	t.Text, t.Truncated = s.readTrace(pats[:np], prefixLen)
	if len(t.Text) == 0 {
		if h := header - (s.dropped - dropped); h >= 0 { // header moved with buf
			s.pos, s.line = h, headerLine
			return false
		}
		// Read so far past the header that buf no longer holds it:
		// what was read is no trace, and reading goes on from here.
		return true
	}
	s.floor = s.pos
	s.queue = append(s.queue, t)
	return true
}

// stream returns the shape of the prefix of the line peek read last when
// it is a Docker record, its time and stream, or nil: the lines of a trace
// in a container's log are records of the stream it started on.
func (s *Scanner) stream() *prefix {
	if !s.vdocker {
		return nil
	}
	p := learnPrefix(bytes.Clone(s.vline[:s.vplen]))
	return &p
}

// lookBack finds where the trace whose goroutine header is the line at pos
// starts: the earliest panic header line ("panic:", "fatal error:", a
// fatal signal, "http: panic serving") above it, over the lines the
// runtime prints between the two (blank lines, "[signal ...]", the
// "runtime stack:" block). It returns that line's position, line count
// and prefix length; the header itself when there is none.
func (s *Scanner) lookBack(a int) (start, startLine, prefixLen int) {
	start, startLine, prefixLen = s.pos, s.line, a
	header, _ := s.peek()
	pat := learnPrefix(header[:a])
	stream := s.stream()
	cur, n := s.pos, s.line
	found, foreign, other := false, 0, 0
	for k := 0; k < maxBack && other <= maxOther && cur > s.floor; {
		ps, prev, nraw, record := s.lineBefore(cur)
		if stream != nil || record {
			own := false
			if stream != nil && record {
				_, own = stream.strip(prev)
			}
			if !own {
				// The container's other stream, or a line that is no
				// record among records, or a record above a plain
				// header: no line of this trace.
				if stream == nil || !record {
					if foreign++; foreign > 4 {
						break
					}
				}
				cur, n, other = ps, n-nraw, other+1
				continue
			}
		}
		c, matched := pat.strip(prev)
		m := startMarker(prev, len(prev)-len(c))
		if m < 0 && found && !bytes.HasPrefix(c, []byte("runtime: ")) {
			break
		}
		if m >= 0 {
			start, startLine, prefixLen, found = ps, n-nraw, m, true
		} else if !found {
			l := Classify(c)
			if l.Kind == Header {
				break // the end of an earlier trace
			}
			if !headLike(c, l.Kind) {
				if k == 0 && len(c) > 0 {
					// The recover helper's shape: the panic value on
					// the line right before the goroutine.
					start, startLine, prefixLen = ps, n-nraw, len(prev)-len(c)
				}
				// Another program's line, or this one's logging in
				// between: look a little further.
				if foreign++; foreign > 4 || matched && len(pat.tok) == 0 && k == 0 {
					break
				}
			}
		}
		cur, n, k, other = ps, n-nraw, k+1, 0
	}
	return start, startLine, prefixLen
}

// startMarker returns the offset in line of the text that starts a trace,
// or -1: "panic: ", "fatal error: " and "http: panic serving " anywhere
// (a logger may have put anything before them), a fatal signal
// ("SIGSEGV: segmentation violation") or "runtime: " right after the
// prefix, which ends at offset p.
func startMarker(line []byte, p int) int {
	c := line[p:]
	if len(c) > 3 && c[0] == 'S' && bytes.HasPrefix(c, []byte("SIG")) && isSignalLine(c) ||
		bytes.HasPrefix(c, []byte("runtime: ")) {
		return p
	}
	for _, m := range startMarkers {
		if i := bytes.Index(line, m); i >= 0 {
			if i > 0 && line[i-1] == '\t' { // a nested "\tpanic: " continues the one above
				return -1
			}
			return i
		}
	}
	return -1
}

var startMarkers = [][]byte{[]byte("panic: "), []byte("fatal error: "), []byte("http: panic serving "), anchorException}

// isSignalLine matches the runtime's first line for a fatal signal,
// "SIGQUIT: quit" or "SIGSEGV: segmentation violation".
func isSignalLine(c []byte) bool {
	i := bytes.Index(c, []byte(": "))
	if i < 4 || i == len(c)-2 {
		return false
	}
	for _, b := range c[3:i] {
		if (b < 'A' || b > 'Z') && (b < '0' || b > '9') {
			return false
		}
	}
	return true
}

// headLike reports whether c is a line the runtime prints between a panic
// header and the first goroutine.
func headLike(c []byte, k Kind) bool {
	switch {
	case k == Blank, k == Call, k == File, c[0] == '\t', c[0] == '[':
		return true
	}
	for _, p := range headPrefixes {
		if bytes.HasPrefix(c, p) {
			return true
		}
	}
	return false
}

var headPrefixes = [][]byte{
	[]byte("runtime"), []byte("PC="), []byte("signal arrived"), []byte("SIG"), []byte("fatal error: "),
	[]byte("panic: "), []byte("stack: frame="), []byte("pc="), []byte("m="), []byte("goroutine running"),
}

// readTrace reads the lines of one trace from pos, the first of which
// starts at offset first, and returns its text.
func (s *Scanner) readTrace(pats []prefix, first int) (text []byte, truncated bool) {
	var (
		out       []byte
		inG       bool // a goroutine header or an exception's frames were seen
		prev      Kind // the last line kept
		noise     int
		scratch   []byte
		lastValid int // len(out) after the last line that was not blank
		other     int // the other stream's lines since the last line
	)
	keep := func(c []byte, k Kind) {
		if len(out)+len(c)+1 > MaxTraceBytes {
			truncated = true
			return
		}
		out = append(out, c...)
		out = append(out, '\n')
		prev = k
		if k != Blank {
			lastValid = len(out)
		}
	}
	line, ok := s.peek()
	if !ok {
		return nil, false
	}
	// Docker's records are never wrapped or cut by a viewer: its partial
	// records are joined already.
	stream := s.stream()
	docker := stream != nil
	wrapped := len(pats[0].tok) > 0 && !docker
	c := observedPanic(bytes.Clone(line[first:]))
	rawLen := len(line)
	s.skipLine()
	if wrapped && rawLen >= 60 {
		c = s.unwrap(pats, c)
	}
	k := Classify(c).Kind
	inG = k == Header
	keep(c, k)
	for noise <= maxNoise && other <= maxOther {
		line, ok := s.peek()
		if !ok {
			break
		}
		if docker {
			if _, ok := stream.strip(line); !ok || !s.vdocker {
				// The container's other stream, or no record (a line
				// cut or another program's).
				if s.vdocker {
					other++
				} else {
					noise++
				}
				s.skipLine()
				continue
			}
			other = 0
		}
		rawLen := len(line)
		c := stripAny(pats, line)
		c = normalizeFile(c, prev)
		l := Classify(c)
		if inG && l.Kind == Other && len(c) > 0 && c[0] != '\t' && startMarker(c, 0) >= 0 {
			break // the next trace
		}
		scratch = append(scratch[:0], c...) // peek and join may move buf
		cur := scratch
		s.skipLine()
		switch {
		case l.Kind == Other && len(cur) > 0 && (inG || !headLike(cur, Other)):
			// Not a trace line: a line a viewer wrapped, or another
			// program's log line (the other stream of a Docker
			// container) in between.
			j, n := cur, 0
			if !docker {
				j, n = s.join(pats, cur)
			}
			if n == 0 {
				if cur[0] == '\t' {
					break // "\tgoroutine running on other thread; stack unavailable"
				}
				noise++
				continue
			}
			cur = normalizeFile(j, prev)
			l = Classify(cur)
		case l.Kind == File && len(l.Rest) == 0 && prev == Call && !docker:
			// Perhaps a file line cut before its "+0x..." offset.
			if j, n := s.join(pats, cur); n > 0 && Classify(j).Kind == File {
				cur = j
			}
		}
		if wrapped && rawLen >= 60 && (l.Kind == CreatedBy || l.Kind == Other || !inG) {
			cur = s.unwrap(pats, cur)
		}
		switch {
		case l.Kind == Header || l.Kind == Elided || l.Kind == Ancestor:
			inG = true
		case l.Kind == Call && !inG && bytes.HasPrefix(out, anchorException):
			inG = true // an exception prints the crashing goroutine without a header
		}
		keep(cur, l.Kind)
		noise = 0
	}
	if !inG {
		return nil, false
	}
	return out[:lastValid], truncated
}

// anchorIn returns the offset of the first goroutine header or exception
// anchor in line, or -1.
func anchorIn(line []byte) int {
	a := bytes.Index(line, anchorHeader)
	if e := bytes.Index(line, anchorException); e >= 0 && (a < 0 || e < a) {
		a = e
	}
	return a
}

// join appends to c the following lines that a viewer cut from it, as
// long as the result is not yet a trace line, and returns the joined line
// and the number of lines consumed (0: no join made a trace line).
func (s *Scanner) join(pats []prefix, c []byte) ([]byte, int) {
	if !couldStart(c) {
		return c, 0
	}
	file := Classify(c).Kind == File // only its "+0x..." offset can follow
	start, startLine := s.pos, s.line
	s.pin = start // peek may move buf: fill keeps the line to give back, and moves pin with it
	defer func() { s.pin = -1 }()
	j := c
	for n := 1; n <= 3; n++ {
		next, ok := s.peek()
		if !ok || len(next) == 0 || bytes.IndexByte(next, '\t') >= 0 || matchesAny(pats, next) {
			break // a new line, not a continuation
		}
		if file && !(isDigit(next[0]) || next[0] == ' ' || next[0] == '+') {
			break
		}
		j = append(j, next...)
		s.skipLine()
		if k := Classify(j).Kind; k != Other {
			return j, n
		}
	}
	s.pos, s.line = s.pin, startLine
	return c, 0
}

// unwrap appends to c the lines a viewer wrapped off it: lines without
// the trace's log prefix that are neither trace lines nor log lines of
// their own. Only a trace behind a prefix can tell them apart.
func (s *Scanner) unwrap(pats []prefix, c []byte) []byte {
	for range 3 {
		next, ok := s.peek()
		if !ok || len(next) == 0 || next[0] == '\t' || matchesAny(pats, next) || looksLikeLogLine(next) {
			break
		}
		if k := Classify(next).Kind; k != Other || headLike(next, k) {
			break
		}
		c = append(c, next...)
		s.skipLine()
	}
	return c
}

// looksLikeLogLine reports whether line starts like a line a logger wrote:
// a timestamp, a JSON object, a docker compose "service  | " column.
func looksLikeLogLine(line []byte) bool {
	switch {
	case line[0] == '{', len(line) >= 4 && isDigit(line[0]) && isDigit(line[1]) && isDigit(line[2]) && isDigit(line[3]),
		len(line) >= 3 && isMonth(line[:3]):
		return true
	}
	return bytes.Contains(line[:min(len(line), 40)], []byte(" | "))
}

// stripAny strips the first of pats that line has, or nothing.
func stripAny(pats []prefix, line []byte) []byte {
	for i := range pats {
		if c, ok := pats[i].strip(line); ok {
			return c
		}
	}
	return line
}

// matchesAny reports whether line starts with a non-empty prefix of pats:
// it is a log line of its own.
func matchesAny(pats []prefix, line []byte) bool {
	for i := range pats {
		if len(pats[i].tok) > 0 {
			if _, ok := pats[i].strip(line); ok {
				return true
			}
		}
	}
	return false
}

// couldStart reports whether c could be the head of a trace line cut in
// two: a file line, a header, a "created by", or a function name (letters,
// digits and "./*()[]%-_", no spaces, quotes or braces) perhaps followed by
// part of its arguments.
func couldStart(c []byte) bool {
	switch {
	case len(c) == 0:
		return false
	case c[0] == '\t', bytes.HasPrefix(c, anchorHeader), bytes.HasPrefix(c, []byte("created by ")):
		return true
	}
	name := c
	if i := bytes.IndexByte(c, '('); i > 0 {
		name = c[:i]
	}
	if !(name[0] == '_' || name[0] >= 'a' && name[0] <= 'z' || name[0] >= 'A' && name[0] <= 'Z') {
		return false
	}
	return !bytes.ContainsAny(name, " \"{}=:,;'")
}

// normalizeFile turns a file line whose tab a paste turned into spaces, or
// dropped, back into "\t/path/file.go:12 +0x1d".
func normalizeFile(c []byte, prev Kind) []byte {
	if prev != Call && prev != CreatedBy || len(c) == 0 || c[0] == '\t' {
		return c
	}
	t := bytes.TrimLeft(c, " ")
	if _, _, _, ok := ParseFileLine(t); !ok {
		return c
	}
	return append([]byte{'\t'}, t...)
}

// observedPanic rewrites Kubernetes' HandleCrash line, `Observed a panic:
// "invalid memory address..." (runtime error: invalid memory address...)`,
// whose panic value is the part in parentheses, to the runtime's
// "panic: VALUE".
func observedPanic(c []byte) []byte {
	if !bytes.HasPrefix(c, []byte("panic: ")) || c[len(c)-1] != ')' {
		return c
	}
	i := bytes.LastIndex(c, []byte(" ("))
	if i < 0 || c[len("panic: ")] != '"' && c[len("panic: ")] != '&' {
		return c
	}
	return append([]byte("panic: "), c[i+2:len(c)-1]...)
}

// escapedField reads the traces in the quoted field around offset a of the
// line at pos, whose line breaks are escaped.
func (s *Scanner) escapedField(line []byte, a int) bool {
	qs, qe := quotedAround(line, a)
	field := unescape(nil, line[qs:qe])
	if bytes.Contains(field, []byte(`]:\n`)) { // escaped twice: JSON inside JSON
		field = unescape(nil, field)
	}
	when := timeOf(line, s.now)
	if r, ok := parseDocker(line); ok && when.IsZero() {
		when = timeOf(r.time, s.now) // a Docker record whose text is more than one line
	}
	lineNo := s.line + 1
	var msg []byte
	for _, k := range messageKeys {
		if v := fieldValue(line, k); len(v) > 0 && !bytes.Contains(v, anchorHeader) {
			msg = v
			break
		}
	}
	s.skipLine()
	n := 0
	in := NewScanner(bytes.NewReader(field))
	in.now = s.now
	for in.Scan() {
		t := in.Trace()
		if bytes.HasPrefix(t.Text, anchorHeader) && len(msg) > 0 {
			// The value is in a field of its own (klog's "panic", slog's
			// "err"): put it where the recover helper's shape has it.
			t.Text = append(append(bytes.ReplaceAll(msg, nl, []byte(" ")), '\n'), t.Text...)
		}
		t.Line, t.Prefix = lineNo, ""
		if t.Time.IsZero() {
			t.Time = when
		}
		s.queue = append(s.queue, t)
		n++
	}
	return n > 0
}

package traceback

import "bytes"

// Docker's json-file log driver (/var/lib/docker/containers/*/*-json.log,
// and many log shippers) writes one JSON object per line of the
// container's output:
//
//	{"log":"goroutine 1 [running]:\n","stream":"stderr","time":"2026-11-30T10:00:01.123456789Z"}
//
// The scanner reads such a record as the line
//
//	2026-11-30T10:00:01.123456789Z stderr goroutine 1 [running]:
//
// its time and stream as a log prefix before the text of "log" (the time
// with nine digits of fraction: see appendPrefix), so that the prefix
// machinery reads it as it reads a CRI line. A trace is followed along the
// stream it started on: Docker copies stdout and stderr each on its own,
// so that a busy server's other stream may come in bursts between the
// lines of a trace; those records are passed over, up to maxOther in a
// row, without counting as the foreign lines that end a trace. A line
// longer than Docker's 16 KB buffer is split into records whose "log" has
// no trailing line break; the records of the same stream that continue
// it are read as one line with it, over the other stream's in between;
// but while a trace is read, a record of the other stream is read alone,
// so that the parts of its long line do not pass over the trace's records.
// A line that is no record among records (one cut short, say) is a
// foreign line.

// dockerRecord holds the values of one json-file record, still escaped.
type dockerRecord struct {
	log, stream, time []byte
	hasStream         bool
}

// parseDocker parses line as a json-file record: a JSON object whose keys,
// in any order, are "log", a string, with "stream" and/or "time", strings,
// and perhaps "attrs". Any other key makes it some other JSON log line,
// whose other fields may hold a trace of their own.
func parseDocker(line []byte) (r dockerRecord, ok bool) {
	i := skipSpace(line, 0)
	if i == len(line) || line[i] != '{' {
		return r, false
	}
	var hasLog, hasTime bool
	for i = skipSpace(line, i+1); ; {
		if i == len(line) || line[i] != '"' {
			return r, false
		}
		ke, ok := stringEnd(line, i+1)
		if !ok {
			return r, false
		}
		key := line[i+1 : ke]
		if i = skipSpace(line, ke+1); i == len(line) || line[i] != ':' {
			return r, false
		}
		vs := skipSpace(line, i+1)
		ve, ok := valueEnd(line, vs)
		if !ok {
			return r, false
		}
		var val []byte
		if line[vs] == '"' {
			val = line[vs+1 : ve-1]
		}
		switch string(key) {
		case "log":
			r.log, hasLog = val, true
		case "stream":
			r.stream, r.hasStream = val, true
		case "time":
			r.time, hasTime = val, true
		case "attrs":
		default:
			return r, false
		}
		if val == nil && string(key) != "attrs" {
			return r, false
		}
		if i = skipSpace(line, ve); i < len(line) && line[i] == ',' {
			i = skipSpace(line, i+1)
			continue
		}
		if i == len(line) || line[i] != '}' {
			return r, false
		}
		return r, skipSpace(line, i+1) == len(line) && hasLog && (r.hasStream || hasTime)
	}
}

// sameStream reports whether b continues a's stream.
func (a *dockerRecord) sameStream(b *dockerRecord) bool {
	return a.hasStream == b.hasStream && bytes.Equal(a.stream, b.stream)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index of the quote that closes the JSON string
// starting at i, after its opening quote; ok is false when it is not
// closed or holds an escape JSON does not have. It reads each byte once:
// the next quote is searched for again only once an escape has passed it.
func stringEnd(b []byte, i int) (int, bool) {
	q := -1 // the next quote at or after i, once known
	for {
		if q < i {
			if q = bytes.IndexByte(b[i:], '"'); q < 0 {
				return 0, false
			}
			q += i
		}
		e := bytes.IndexByte(b[i:q], '\\')
		if e < 0 {
			return q, true
		}
		i += e + 1 // the escaped character
		if i == len(b) {
			return 0, false
		}
		switch b[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		case 'u':
			if _, ok := hex4(b[i+1:]); !ok {
				return 0, false
			}
			i += 4
		default:
			return 0, false
		}
		i++
	}
}

// valueEnd returns the index after the JSON value starting at i: a string,
// an object or array (checked only for balance and closed strings), or a
// number or literal.
func valueEnd(b []byte, i int) (int, bool) {
	if i == len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		e, ok := stringEnd(b, i+1)
		return e + 1, ok
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				e, ok := stringEnd(b, i+1)
				if !ok {
					return 0, false
				}
				i = e
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1, true
				}
			}
		}
		return 0, false
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ' ' {
		j++
	}
	return j, j > i
}

// appendPrefix appends the prefix the scanner reads a record with: its
// time, its stream, each followed by a space.
func (r *dockerRecord) appendPrefix(dst []byte) []byte {
	if t := r.time; len(t) >= 20 && isDate(t) && t[10] == 'T' {
		// Docker writes RFC 3339 with the fraction's trailing zeros
		// cut: nine digits, so that a whole second's prefix takes the
		// same shape as the others'.
		dst = append(dst, t[:19]...)
		t = t[19:]
		n := 0
		if t[0] == '.' {
			for n < 9 && n+1 < len(t) && isDigit(t[n+1]) {
				n++
			}
			dst = append(dst, t[:n+1]...)
			t = t[n+1:]
		} else {
			dst = append(dst, '.')
		}
		dst = append(append(dst, "000000000"[n:]...), t...)
		dst = append(dst, ' ')
	}
	if r.hasStream {
		dst = append(unescape(dst, r.stream), ' ')
	}
	return dst
}

// appendText appends the text of r's "log" to dst without its line break.
// whole is false for a partial record, which the next one continues; ok
// is false when the text holds a line break before its end, so that the
// record is no line of the output but a trace escaped in one field.
func (r *dockerRecord) appendText(dst []byte) (out []byte, whole, ok bool) {
	n := len(dst)
	dst = unescape(dst, r.log)
	if whole = len(dst) > n && dst[len(dst)-1] == '\n'; whole {
		dst = dst[:len(dst)-1]
	}
	return dst, whole, bytes.IndexByte(dst[n:], '\n') < 0
}

// dockerLine reads the record that is the raw line buf[at:next] (next is
// after its line break), and the partial records up to lim that continue
// it, as one line into dst: see peek. It returns the line, the length of
// its prefix, where its last record ends, how many records it spans and
// whether some of them are another stream's (over); ok is false when
// buf[at:next] is no record. While a trace is followed
// (see followStream), a record of another stream is read alone. With grow (at is pos, lim is
// end), it reads more input as it needs to tell where the line ends, which
// moves buf: the offsets it returns are in the moved buf, and the records
// already read are not read again.
func (s *Scanner) dockerLine(dst []byte, at, next, lim int, grow bool) (line []byte, plen, end, n int, over, ok bool) {
	r, ok := parseDocker(trimCR(s.buf[at:trimNL(s.buf, at, next)]))
	if !ok {
		return nil, 0, 0, 0, false, false
	}
	dst = r.appendPrefix(dst)
	plen = len(dst)
	if s.follow && !r.sameStream(&s.only) {
		// Another stream than the trace's: a record of its own, so
		// that the parts of a long line do not pass over the trace's.
		return trimCR(unescape(dst, r.log)), plen, next, 1, false, true
	}
	dst, whole, ok := r.appendText(dst)
	if !ok {
		return nil, 0, 0, 0, false, false
	}
	first := dockerRecord{stream: r.stream, hasStream: r.hasStream}
	end, n = next, 1
	cur, k, skipped, moved := next, 1, 0, false
	seen := cur // buf[cur:seen] holds no line break
	for !whole && cur-at < maxLine {
		e := 0
		if from := max(cur, seen); from < lim {
			if e = bytes.IndexByte(s.buf[from:lim], '\n') + 1; e > 0 {
				e += from - cur
			}
		}
		if e == 0 {
			seen = lim
			if grow && !s.eof && lim-cur < maxLine {
				// Read on to tell where the line ends: fill moves buf
				// by the history it drops.
				if !moved {
					first.stream, moved = bytes.Clone(first.stream), true // in buf
				}
				pos := s.pos
				s.fill()
				d := pos - s.pos
				at, cur, seen, end, lim = at-d, cur-d, seen-d, end-d, s.end
				continue
			}
			if cur == lim {
				break
			}
			e = lim - cur
		}
		c, ok := parseDocker(trimCR(s.buf[cur:trimNL(s.buf, cur, cur+e)]))
		if !ok {
			break
		}
		cur, k = cur+e, k+1
		if !c.sameStream(&first) {
			// Docker copies each stream on its own: the other's
			// records may come between the parts of a line.
			if skipped++; skipped > maxOther {
				break
			}
			continue
		}
		m := len(dst)
		if dst, whole, ok = c.appendText(dst); !ok {
			dst = dst[:m]
			break
		}
		end, n, over = cur, k, skipped > 0
	}
	return trimCR(dst), plen, end, n, over, true
}

// trimNL returns end, or end-1 when buf[end-1] is a line break.
func trimNL(buf []byte, start, end int) int {
	if end > start && buf[end-1] == '\n' {
		return end - 1
	}
	return end
}

// partialBefore returns where the partial records of r's stream that the
// record starting at at continues start, at itself when there are none,
// looking back no further than floor.
func (s *Scanner) partialBefore(r *dockerRecord, at int) int {
	for cur, skipped := at, 0; cur > s.floor; {
		ps := bytes.LastIndexByte(s.buf[:cur-1], '\n') + 1
		p, ok := parseDocker(trimCR(s.buf[ps : cur-1]))
		if !ok {
			break
		}
		cur = ps
		if !p.sameStream(r) {
			if skipped++; skipped > maxOther {
				break
			}
			continue
		}
		var whole bool
		if s.back, whole, ok = p.appendText(s.back[:0]); whole || !ok {
			break
		}
		at = ps
	}
	return at
}

// followStream starts following the stream of the Docker record that
// peek read last at pos, if it is one, or stops following (on false):
// while a trace on one stream is read, a record of another stream reads
// as itself alone, not joined with the records that continue it, which
// would pass over the trace's own records in between.
func (s *Scanner) followStream(on bool) {
	if !on {
		if s.follow {
			s.follow = false
			if r, ok := s.recordAt(s.vpos); ok && s.vdocker && !r.sameStream(&s.only) {
				s.vpos = -1 // read alone: peek joins it with the rest of its line now
			}
		}
		return
	}
	if s.vpos != s.pos || !s.vdocker {
		return
	}
	if r, ok := s.recordAt(s.pos); ok {
		// The line at pos is of this stream: peek reads it the same.
		s.only = dockerRecord{stream: append(s.only.stream[:0], r.stream...), hasStream: r.hasStream}
		s.follow = true
	}
}

// recordAt parses the raw line at i as a Docker record.
func (s *Scanner) recordAt(i int) (dockerRecord, bool) {
	if i < 0 || i >= s.end {
		return dockerRecord{}, false
	}
	end := s.end
	if j := bytes.IndexByte(s.buf[i:s.end], '\n'); j >= 0 {
		end = i + j
	}
	return parseDocker(trimCR(s.buf[i:end]))
}

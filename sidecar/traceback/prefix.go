package traceback

import (
	"bytes"
	"time"
)

// A prefix is the shape of the text a log system puts before each line of
// a trace, learned from the line that starts it: runs of digits match any
// digits and runs of spaces any spaces, so that
// "2026-02-03T19:00:16.678Z stderr F " also matches the next line's
// "2026-02-03T19:00:16.679Z stderr F ", and the gutter "  9 | " matches
// " 10 | ". Everything else must be equal: a docker compose line from
// "db-1  | " does not match a trace from "worker-1  | ".
type prefix struct {
	raw []byte
	tok []byte // the shape: literal bytes, with runs folded to tokDigits and tokSpaces
}

const (
	tokDigits = 0x01
	tokSpaces = 0x02
)

func learnPrefix(p []byte) prefix {
	tok := make([]byte, 0, len(p))
	for i := 0; i < len(p); {
		switch c := p[i]; {
		case isDigit(c):
			for i < len(p) && isDigit(p[i]) {
				i++
			}
			tok = append(tok, tokDigits)
		case c == ' ':
			for i < len(p) && p[i] == ' ' {
				i++
			}
			tok = append(tok, tokSpaces)
		default:
			tok = append(tok, c)
			i++
		}
	}
	return prefix{raw: p, tok: tok}
}

// strip returns line without a prefix of p's shape, and whether it had
// one. The last run of spaces is taken exactly as learned, so that a
// trace line indented with spaces keeps its indentation.
func (p *prefix) strip(line []byte) ([]byte, bool) {
	if len(p.tok) == 0 {
		return line, true
	}
	i := 0
	for k, t := range p.tok {
		switch t {
		case tokDigits:
			j := i
			for j < len(line) && isDigit(line[j]) {
				j++
			}
			if j == i {
				return line, false
			}
			i = j
		case tokSpaces:
			if k == len(p.tok)-1 {
				n := trailingSpaces(p.raw)
				if len(line)-i < n || string(line[i:i+n]) != spaces[:min(n, len(spaces))] {
					return line, false
				}
				i += n
				break
			}
			j := i
			for j < len(line) && line[j] == ' ' {
				j++
			}
			if j == i && k > 0 { // leading spaces are optional: right-aligned gutters
				return line, false
			}
			i = j
		default:
			if i >= len(line) || line[i] != t {
				return line, false
			}
			i++
		}
	}
	return line[i:], true
}

const spaces = "                                "

func trailingSpaces(b []byte) int {
	n := 0
	for n < len(b) && b[len(b)-1-n] == ' ' {
		n++
	}
	return n
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// timeOf reads the timestamp at or near the start of a log prefix: RFC 3339
// (CRI, kubectl --timestamps, JSON and logfmt loggers), "2006-01-02
// 15:04:05.000", Go's log package "2006/01/02 15:04:05", and the
// syslog/journald "Jan _2 15:04:05", which has no year: the latest such
// time not after now is taken. Zero when there is none.
func timeOf(p []byte, now time.Time) time.Time {
	if len(p) >= 15 && isMonth(p[:3]) {
		if t, err := time.Parse(time.Stamp, string(p[:15])); err == nil {
			t = t.AddDate(now.Year(), 0, 0)
			if t.After(now.Add(24 * time.Hour)) {
				t = t.AddDate(-1, 0, 0)
			}
			return t
		}
	}
	for i := 0; i+19 <= len(p) && i < 64; i++ {
		if !(p[i] == '2' || p[i] == '1') || !isDate(p[i:]) {
			continue
		}
		j := i + 19
		for j < len(p) && (isDigit(p[j]) || p[j] == '.' || p[j] == ',') {
			j++
		}
		zone := false
		if j < len(p) && p[j] == 'Z' {
			j, zone = j+1, true
		} else if j+6 <= len(p) && (p[j] == '+' || p[j] == '-') && p[j+3] == ':' {
			j, zone = j+6, true
		}
		tok := []byte(string(p[i:j]))
		tok[4], tok[7], tok[10] = '-', '-', 'T'
		if k := bytes.IndexByte(tok, ','); k >= 0 {
			tok[k] = '.'
		}
		var t time.Time
		var err error
		if zone {
			t, err = time.Parse(time.RFC3339Nano, string(tok))
		} else {
			t, err = time.ParseInLocation("2006-01-02T15:04:05.999999999", string(tok), time.UTC)
		}
		if err == nil {
			return t
		}
		return time.Time{}
	}
	return time.Time{}
}

// isDate matches "2006-01-02T15:04:05", with '-' or '/' in the date and
// 'T' or ' ' before the time.
func isDate(b []byte) bool {
	const shape = "dddd-dd-ddTdd:dd:dd"
	for i := range len(shape) {
		c := b[i]
		switch shape[i] {
		case 'd':
			if !isDigit(c) {
				return false
			}
		case '-':
			if c != '-' && c != '/' || c != b[4] {
				return false
			}
		case 'T':
			if c != 'T' && c != ' ' {
				return false
			}
		default:
			if c != shape[i] {
				return false
			}
		}
	}
	return true
}

func isMonth(b []byte) bool {
	switch string(b) {
	case "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec":
		return true
	}
	return false
}

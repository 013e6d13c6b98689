package traceback

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// Structured loggers (JSON, logfmt) write a whole trace into one quoted
// field with its line breaks escaped: stack="goroutine 7 [running]:\nmain.f()\n\t...".

// quotedAround returns the bounds of the quoted string in line that holds
// position at: the index after its opening quote and the index of its
// closing quote (len(line) when it is not closed).
func quotedAround(line []byte, at int) (start, end int) {
	start = 0
	for i := at - 1; i >= 0; i-- {
		if line[i] == '"' && !escaped(line, i) {
			start = i + 1
			break
		}
	}
	end = len(line)
	for i := at; i < len(line); i++ {
		if line[i] == '"' && !escaped(line, i) {
			end = i
			break
		}
	}
	return start, end
}

// escaped reports whether line[i] is preceded by an odd number of backslashes.
func escaped(line []byte, i int) bool {
	n := 0
	for i > 0 && line[i-1] == '\\' {
		n++
		i--
	}
	return n%2 == 1
}

// unescape undoes JSON and logfmt string escapes: \n \t \r \" \\ \/ and \uXXXX.
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 == len(s) {
			dst = append(dst, c)
			continue
		}
		i++
		switch s[i] {
		case 'n':
			dst = append(dst, '\n')
		case 't':
			dst = append(dst, '\t')
		case 'r':
			dst = append(dst, '\r')
		case 'u':
			if i+4 < len(s) {
				if r, err := strconv.ParseUint(string(s[i+1:i+5]), 16, 16); err == nil {
					dst = utf8.AppendRune(dst, rune(r))
					i += 4
					break
				}
			}
			dst = append(dst, '\\', 'u')
		default: // \" \\ \/ and anything else: the character itself
			dst = append(dst, s[i])
		}
	}
	return dst
}

// messageKeys are the fields a structured logger keeps a panic value in,
// best first: klog's "panic", then the usual error and message keys.
var messageKeys = []string{"panic", "error", "err", "msg", "message"}

// fieldValue returns the unescaped value of key in a JSON object or logfmt
// line, or nil.
func fieldValue(line []byte, key string) []byte {
	for _, pat := range [][]byte{[]byte(`"` + key + `":"`), []byte(`"` + key + `": "`), []byte(key + `="`)} {
		i := 0
		for {
			j := bytes.Index(line[i:], pat)
			if j < 0 {
				break
			}
			j += i
			// A logfmt key starts the line or follows a space.
			if pat[0] != '"' && j > 0 && line[j-1] != ' ' {
				i = j + len(pat)
				continue
			}
			start := j + len(pat)
			_, end := quotedAround(line, start)
			return unescape(nil, line[start:end])
		}
	}
	return nil
}

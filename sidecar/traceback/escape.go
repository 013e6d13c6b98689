package traceback

import (
	"bytes"
	"unicode/utf16"
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

// unescape undoes JSON and logfmt string escapes: \n \t \r \b \f \" \\ \/
// and \uXXXX, a UTF-16 surrogate pair as one character.
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			j := bytes.IndexByte(s[i:], '\\')
			if j < 0 {
				return append(dst, s[i:]...)
			}
			dst = append(dst, s[i:i+j]...)
			i += j
		}
		if i+1 == len(s) {
			return append(dst, '\\')
		}
		i++
		switch s[i] {
		case 'n':
			dst = append(dst, '\n')
		case 't':
			dst = append(dst, '\t')
		case 'r':
			dst = append(dst, '\r')
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'u':
			r, ok := hex4(s[i+1:])
			if !ok {
				dst = append(dst, '\\', 'u')
				break
			}
			i += 4
			if utf16.IsSurrogate(r) && i+2 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
				if lo, ok := hex4(s[i+3:]); ok {
					if c := utf16.DecodeRune(r, lo); c != utf8.RuneError {
						r = c
						i += 6
					}
				}
			}
			dst = utf8.AppendRune(dst, r) // a lone surrogate gives U+FFFD
		default: // \" \\ \/ and anything else: the character itself
			dst = append(dst, s[i])
		}
	}
	return dst
}

// hex4 reads the four hex digits of a \u escape.
func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case isDigit(c):
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
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

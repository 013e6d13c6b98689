package traceback

import "strings"

// Text is what the scanner reads: the panic parser keeps strings (one copy
// of its input, substrings after that), the debug=2 parser works on the
// dump's bytes and copies only what a new stack group keeps.
type Text interface{ ~string | ~[]byte }

// Kind is the kind of a line inside a goroutine's traceback.
type Kind uint8

// Kinds of traceback line, as Classify tells them.
const (
	Other     Kind = iota // anything else: register dumps, "exit status 2", log noise
	Blank                 // the empty line that ends a goroutine
	Header                // "goroutine 1 [running]:"
	Call                  // "pkg.fn(0x1, {0x2, 0x3})" or "pkg.fn(...)"
	File                  // "\t/path/file.go:19 +0x3f"
	CreatedBy             // "created by pkg.fn in goroutine 7"
	Elided                // "...12 frames elided..." or "...additional frames elided..."
	Ancestor              // "[originating from goroutine 3]:"
)

// Line is one classified line. What its fields hold depends on Kind:
//
//	Kind       N                               Name       Rest
//	Header     goroutine ID                    state      -
//	Call       -                               function   arguments, without parentheses
//	File       line number                     path       pc offset ("+0x3f")
//	CreatedBy  creating goroutine (0 pre-1.21) function   -
//	Elided     frames elided (0: "additional") -          -
//	Ancestor   goroutine ID                    -          -
//
// The fields are few and shared because the debug=2 parser classifies
// every line of dumps of tens of megabytes.
type Line[T Text] struct {
	Kind    Kind
	Inlined bool // Call printed as "fn(...)"
	N       int
	Name    T
	Rest    T
}

// Classify reads one line of a goroutine's traceback, without its line
// break.
func Classify[T Text](s T) Line[T] {
	if len(s) == 0 {
		return Line[T]{Kind: Blank}
	}
	switch s[0] {
	case '\t':
		if file, n, off, ok := ParseFileLine(s[1:]); ok {
			return Line[T]{Kind: File, N: n, Name: file, Rest: off}
		}
		return Line[T]{}
	case 'g':
		if id, state, ok := ParseHeader(s); ok {
			return Line[T]{Kind: Header, N: id, Name: state}
		}
	case 'c':
		if fn, ok := cutPrefix(s, "created by "); ok {
			id := 0
			if i := lastIndex(fn, " in goroutine "); i >= 0 {
				id = Atoi(fn[i+len(" in goroutine "):])
				fn = fn[:i]
			}
			if len(fn) > 0 && indexByte(fn, ' ') < 0 {
				return Line[T]{Kind: CreatedBy, N: id, Name: fn}
			}
			return Line[T]{}
		}
	case '.':
		if string(s) == "...additional frames elided..." {
			return Line[T]{Kind: Elided}
		}
		if n, ok := cutPrefix(s, "..."); ok {
			if n, ok := cutSuffix(n, " frames elided..."); ok {
				return Line[T]{Kind: Elided, N: Atoi(n)}
			}
		}
	case '[':
		if n, ok := cutPrefix(s, "[originating from goroutine "); ok {
			if n, ok := cutSuffix(n, "]:"); ok {
				return Line[T]{Kind: Ancestor, N: Atoi(n)}
			}
		}
	}
	if fn, args, ok := ParseCall(s); ok {
		if string(args) == "..." {
			return Line[T]{Kind: Call, Name: fn, Inlined: true}
		}
		return Line[T]{Kind: Call, Name: fn, Rest: args}
	}
	return Line[T]{}
}

// ParseHeader parses "goroutine 1 [running]:" and, since Go 1.23,
// "goroutine 1 gp=0xc000002380 m=0 mp=0x5a1b2c0 [running]:". The state is
// the text between the first '[' and the closing "]:", e.g.
// "chan receive, 2 minutes, locked to thread".
func ParseHeader[T Text](line T) (id int, state T, ok bool) {
	rest, ok := cutPrefix(line, "goroutine ")
	if !ok || !hasSuffix(rest, "]:") {
		return 0, state, false
	}
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || n > 19 || n == len(rest) || rest[n] != ' ' {
		return 0, state, false
	}
	id = Atoi(rest[:n])
	rest = rest[n+1:]
	i := indexByte(rest, '[')
	if i < 0 {
		return 0, state, false
	}
	return id, rest[i+1 : len(rest)-2], true
}

// ParseCall parses "pkg.fn(args)" and "pkg.fn(...)". Arguments hold no
// parentheses (hex words, braces, "?", "..."), the name may:
// "main.(*T).M(0x1)". A name holds no spaces.
func ParseCall[T Text](line T) (fn, args T, ok bool) {
	if len(line) < 3 || line[len(line)-1] != ')' {
		return fn, args, false
	}
	i := lastIndexByte(line, '(')
	if i <= 0 || indexByte(line[:i], ' ') >= 0 {
		return fn, args, false
	}
	return line[:i], line[i+1 : len(line)-1], true
}

// ParseFileLine parses what follows the tab of a file line:
// "/path/file.go:19 +0x3f", "/path/file.go:19" (inlined) and, with
// GOTRACEBACK=crash or a Windows exception, "/path/file.go:19 +0x3f fp=0x...
// sp=0x... pc=0x...". Paths may hold spaces and colons ("C:/Program
// Files/..."), so the line number is found from the right.
func ParseFileLine[T Text](s T) (file T, line int, offset T, ok bool) {
	if i := lastIndex(s, " +0x"); i >= 0 {
		offset = s[i+1:]
		if j := indexByte(offset, ' '); j >= 0 { // " fp=0x... sp=0x... pc=0x..."
			offset = offset[:j]
		}
		s = s[:i]
	} else if i := index(s, " fp="); i >= 0 {
		s = s[:i]
	}
	c := lastIndexByte(s, ':')
	if c <= 0 || c == len(s)-1 || len(s)-c > 11 {
		return file, 0, offset, false
	}
	for i := c + 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return file, 0, offset, false
		}
	}
	return s[:c], Atoi(s[c+1:]), offset, true
}

// SplitArgs splits printed arguments at top-level commas:
// "{0x0, 0x0}, 0x56" → ["{0x0, 0x0}", "0x56"].
func SplitArgs(s string) []string {
	// Every top-level comma splits, so the commas bound the count.
	out := make([]string, 0, strings.Count(s, ",")+1)
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, trimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, trimSpace(s[start:]))
}

// Atoi parses a decimal prefix, saturating instead of overflowing; bad
// input gives 0.
func Atoi[T Text](s T) int {
	n := 0
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if n > (1<<62)/10 {
			return 1 << 62
		}
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// The helpers below are the strings/bytes functions the scanner needs,
// for either Text. Lines are short, so plain loops do.

func hasPrefix[T Text](s T, p string) bool { return len(s) >= len(p) && string(s[:len(p)]) == p }

func hasSuffix[T Text](s T, p string) bool {
	return len(s) >= len(p) && string(s[len(s)-len(p):]) == p
}

func cutPrefix[T Text](s T, p string) (T, bool) {
	if hasPrefix(s, p) {
		return s[len(p):], true
	}
	return s, false
}

func cutSuffix[T Text](s T, p string) (T, bool) {
	if hasSuffix(s, p) {
		return s[:len(s)-len(p)], true
	}
	return s, false
}

func indexByte[T Text](s T, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func lastIndexByte[T Text](s T, c byte) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func index[T Text](s T, p string) int {
	for i := 0; i+len(p) <= len(s); i++ {
		if s[i] == p[0] && string(s[i:i+len(p)]) == p {
			return i
		}
	}
	return -1
}

func lastIndex[T Text](s T, p string) int {
	for i := len(s) - len(p); i >= 0; i-- {
		if s[i] == p[0] && string(s[i:i+len(p)]) == p {
			return i
		}
	}
	return -1
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

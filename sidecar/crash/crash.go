// Package crash groups parsed panics Sentry-style: by the kind of failure,
// the crash site (the first application frame below the last panic) and
// that site's caller. Line numbers are shown but left out of the key, so a
// redeploy that shifts lines does not split a group.
package crash

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/stackwatch/stackwatch/sidecar/stacktrace"
)

// Site is a code location.
type Site struct {
	Function string `json:"function"`
	File     string `json:"file"`
	Line     int    `json:"line"`
}

// Signature is what a panic is grouped by, plus what is shown for it.
type Signature struct {
	// Key identifies the group: a hash of Kind, Site.Function and Caller
	// (or of Kind and Message when there is no usable frame).
	Key     string
	Kind    string
	Message string
	// Site is the crash site; Site.Function is empty when the traceback
	// had no frames.
	Site Site
	// Caller is the function that called the crash site; empty when the
	// site is its goroutine's outermost frame.
	Caller string
	// CreatedBy is the function that started the crashing goroutine.
	CreatedBy string
	// NilReceiver is set when the crashing frame's first argument is nil
	// ("{0x0, 0x0}" for an interface or slice, "0x0" for a pointer) - in the
	// incident, a write to a nil session.
	NilReceiver bool
}

// Classify finds the crash site of p and computes its group key. The
// strings in the result are copies, so holding a Signature does not pin the
// parsed input.
func Classify(p *stacktrace.Panic) Signature {
	sig := Signature{Kind: p.Kind, Message: strings.Clone(p.Message)}
	if len(p.Goroutines) > 0 {
		frames := p.Goroutines[0].Frames
		if i := crashIndex(frames); i >= 0 {
			f := frames[i]
			sig.Site = Site{Function: strings.Clone(f.Function), File: strings.Clone(f.File), Line: f.Line}
			sig.NilReceiver = len(f.Args) > 0 && isNil(f.Args[0])
			sig.Caller = strings.Clone(caller(frames[i+1:]))
		}
		if g := p.Goroutines[0]; g.CreatedBy != nil {
			sig.CreatedBy = strings.Clone(g.CreatedBy.Function)
		}
	}
	// A site that is its goroutine's outermost frame is told apart by the
	// goroutine's creator instead (closures started from two places are two
	// groups), unless frames were elided and the outermost is unknown.
	outer := sig.Caller
	if outer == "" && len(p.Goroutines) > 0 && !p.Goroutines[0].FramesElided {
		outer = sig.CreatedBy
	}
	sig.Key = key(sig, outer)
	return sig
}

// caller returns the first frame of outer (the frames below the crash
// site) that is not the runtime's: GOTRACEBACK=system adds runtime.goexit
// and runtime.main.
func caller(outer []stacktrace.Frame) string {
	for _, f := range outer {
		if !isRuntime(f) {
			return f.Function
		}
	}
	return ""
}

// key hashes what a group is told apart by: kind, site and outer (the
// caller, or the goroutine's creator), or kind and message without a site.
func key(sig Signature, outer string) string {
	h := sha256.New()
	h.Write([]byte(sig.Kind))
	h.Write([]byte{0})
	if sig.Site.Function != "" {
		h.Write([]byte(sig.Site.Function))
		h.Write([]byte{0})
		h.Write([]byte(outer))
	} else {
		h.Write([]byte{1})
		h.Write([]byte(sig.Message))
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:8])
}

// crashIndex returns the index of the crash site in frames (innermost
// first): the first application frame below the last "panic(" frame. If
// there is none, the first frame that is neither runtime nor a recovery
// helper; -1 for no frames.
func crashIndex(frames []stacktrace.Frame) int {
	start := 0
	for i, f := range frames {
		if isPanicFrame(f) {
			start = i + 1
		}
	}
	if start >= len(frames) {
		// Nothing below the panic (a cut file): fall back to the whole stack.
		start = 0
	}
	fallback := -1
	for i := start; i < len(frames); i++ {
		f := frames[i]
		if isRuntime(f) || isRecoveryHelper(f) {
			continue
		}
		if !isStdlib(f.Pkg) {
			return i
		}
		if fallback < 0 {
			fallback = i
		}
	}
	if fallback < 0 && len(frames) > 0 {
		fallback = start
	}
	return fallback
}

func isPanicFrame(f stacktrace.Frame) bool {
	return f.Function == "panic" || f.Function == "runtime.gopanic"
}

func isRuntime(f stacktrace.Frame) bool {
	return f.Pkg == "runtime" || strings.HasPrefix(f.Pkg, "runtime/") ||
		strings.HasPrefix(f.Pkg, "internal/runtime/")
}

// isRecoveryHelper matches the recover-and-log helpers that sit between the
// panic and debug.Stack in a recovered trace, e.g. stacktool.RecoverFunc.
func isRecoveryHelper(f stacktrace.Frame) bool {
	short := f.ShortFunc()
	return strings.Contains(short, "RecoverFunc") || strings.HasPrefix(short, "stacktool.")
}

func isNil(arg string) bool {
	arg = strings.TrimSuffix(arg, "?")
	return arg == "0x0" || arg == "{0x0, 0x0}" || arg == "{0x0, 0x0?}" || arg == "{0x0?, 0x0?}"
}

// stdRoots are the first path elements of the standard library's packages
// (`go list std`; TestStdRoots keeps the list honest). Application import
// paths may also lack a dot ("main", "trevi/arcade-wilddig-gameserver/task"),
// so a dot-less path alone does not mean stdlib.
var stdRoots = map[string]bool{
	"archive": true, "bufio": true, "bytes": true, "cmp": true, "compress": true, "container": true,
	"context": true, "crypto": true, "database": true, "debug": true, "embed": true, "encoding": true,
	"errors": true, "expvar": true, "flag": true, "fmt": true, "go": true, "hash": true, "html": true,
	"image": true, "index": true, "internal": true, "io": true, "iter": true, "log": true, "maps": true,
	"math": true, "mime": true, "net": true, "os": true, "path": true, "plugin": true, "reflect": true,
	"regexp": true, "runtime": true, "slices": true, "sort": true, "strconv": true, "strings": true,
	"structs": true, "sync": true, "syscall": true, "testing": true, "text": true, "time": true,
	"unicode": true, "unique": true, "unsafe": true, "vendor": true, "weak": true,
}

func isStdlib(pkg string) bool {
	if pkg == "" {
		return true // C frames, unnamed
	}
	root, _, _ := strings.Cut(pkg, "/")
	return stdRoots[root]
}

// nameTime finds the UTC timestamp the game server puts in a stacktrace
// file's name (stacktool: <service>-20251030T111505.123456789Z-<gid>-<seq>).
var nameTime = regexp.MustCompile(`\d{8}T\d{6}(\.\d{1,9})?Z`)

// TimeOf is when the panic in a file happened: the time in the file's name
// when it has one, else its modification time, which copies (kubectl cp)
// reset.
func TimeOf(path string, mtime time.Time) time.Time {
	if m := nameTime.FindString(filepath.Base(path)); m != "" {
		if t, err := time.Parse("20060102T150405.999999999Z", m); err == nil {
			return t
		}
	}
	return mtime
}

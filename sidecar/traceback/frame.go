// Package traceback reads the tracebacks the Go runtime prints: panics,
// fatal errors, runtime.Stack dumps and /debug/pprof/goroutine?debug=2.
// The panic parser (sidecar/stacktrace) and the goroutine-dump parser
// (sidecar/goroutines) share its Frame type and scanner.
package traceback

import (
	"strconv"
	"strings"
)

// Frame is one call in a stack.
type Frame struct {
	// Function is the function as printed, e.g. "main.(*T).Method" or
	// "github.com/x/y/pkg.F.func1". runtime.gopanic prints as "panic".
	Function string `json:"function"`
	// Pkg is the import path part of Function: PackageOf(Function).
	Pkg  string `json:"pkg,omitempty"`
	File string `json:"file"`
	Line int    `json:"line"`
	// Args are the top-level arguments as printed, e.g. "{0x0, 0x0}",
	// "0x56", "0xc000010000?". Only the panic parser keeps them.
	Args []string `json:"args,omitempty"`
	// Inlined is set for frames printed with "(...)".
	Inlined bool `json:"inlined,omitempty"`
	// Offset is the pc offset, e.g. "+0x3f"; empty for inlined frames.
	Offset string `json:"offset,omitempty"`
}

// String formats f as "function file:line".
func (f Frame) String() string {
	if f.Function == "" {
		return ""
	}
	return f.Function + " " + f.Site()
}

// Site formats f as "file:line".
func (f Frame) Site() string {
	return f.File + ":" + strconv.Itoa(f.Line)
}

// ShortFunc returns Function without its import path directory:
// "task.clientWrite", "task.ClientGetWilddigReckonBetRes.func1", "main.(*T).M".
func (f Frame) ShortFunc() string {
	// Generic instantiations print as "[...]", so a '/' can only belong to the path.
	return f.Function[strings.LastIndexByte(f.Function, '/')+1:]
}

// IsRuntime reports whether f belongs to the Go runtime or the
// synchronisation layer beneath user code (runtime, internal/..., sync,
// sync/atomic). The first frame that is not is a goroutine's code location.
func (f Frame) IsRuntime() bool {
	pkg := f.Pkg
	if pkg == "" {
		pkg = PackageOf(f.Function)
	}
	switch {
	case pkg == "runtime", strings.HasPrefix(pkg, "runtime/"),
		pkg == "internal", strings.HasPrefix(pkg, "internal/"),
		pkg == "sync", pkg == "sync/atomic":
		return true
	}
	return false
}

// PackageOf returns the import path of a printed function name such as
// "github.com/x/y/pkg.(*T).Method.func1". The linker escapes dots in the
// last path element ("yaml%2ev2"), so the first dot after the last slash
// ends the path. "panic" (runtime.gopanic in old tracebacks) is in
// "runtime"; a name without a dot, such as an unsymbolized address, has no
// package and gives "".
func PackageOf(fn string) string {
	if fn == "panic" {
		return "runtime"
	}
	slash := strings.LastIndexByte(fn, '/')
	dot := strings.IndexByte(fn[slash+1:], '.')
	if dot < 0 {
		return ""
	}
	return fn[:slash+1+dot]
}

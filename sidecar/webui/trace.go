package webui

import (
	"strconv"
	"strings"

	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/stacktrace"
)

// Frame roles in a laid-out trace.
const (
	roleSite    = "site"    // the crash site
	roleApp     = "app"     // the application's own code
	roleLibrary = "library" // standard library and dependencies, folded
	roleRuntime = "runtime" // the runtime and panic machinery, folded
)

// traceView is a crash group's example trace laid out for reading: the
// crash site first, then its callers with runs of library and runtime
// frames folded, then the panic machinery above the site, folded.
type traceView struct {
	Message   string
	Header    string // "goroutine 8906150 [running]"
	Site      *frameView
	Callers   []frameRun
	Above     []frameView // between the panic and the site: runtime, recovery helpers
	CreatedBy *frameView
	Raw       string // the example as written, when it does not parse
}

// frameRun is consecutive frames of one kind: app frames are shown, runs
// of others are folded.
type frameRun struct {
	Folded bool
	Frames []frameView
}

type frameView struct {
	Role     string
	Function string
	Location string // file:line
	Args     []argView
}

type argView struct {
	Text string
	Nil  bool // a nil pointer, interface or slice: the incident's nil session
}

func layoutTrace(g crash.Group) traceView {
	p, err := stacktrace.ParseBytes([]byte(g.Example))
	if err != nil || len(p.Goroutines) == 0 || len(p.Goroutines[0].Frames) == 0 {
		return traceView{Message: g.Message, Raw: g.Example}
	}
	gr := p.Goroutines[0]
	tv := traceView{Message: p.Message, Header: "goroutine " + itoa(gr.ID) + " [" + gr.State + "]"}
	app := appPrefix(g.CrashSite.Function, gr.Frames)
	site := -1
	for i, f := range gr.Frames {
		if f.Function == g.CrashSite.Function {
			site = i
			break
		}
	}
	if site < 0 {
		site = 0
	}
	for _, f := range gr.Frames[:site] {
		tv.Above = append(tv.Above, view(f, roleRuntime))
	}
	sv := view(gr.Frames[site], roleSite)
	tv.Site = &sv
	for _, f := range gr.Frames[site+1:] {
		v := view(f, classify(f, app))
		folded := v.Role != roleApp
		if n := len(tv.Callers); n > 0 && tv.Callers[n-1].Folded == folded && folded {
			tv.Callers[n-1].Frames = append(tv.Callers[n-1].Frames, v)
			continue
		}
		tv.Callers = append(tv.Callers, frameRun{Folded: folded, Frames: []frameView{v}})
	}
	if gr.CreatedBy != nil {
		cv := view(*gr.CreatedBy, classify(*gr.CreatedBy, app))
		tv.CreatedBy = &cv
	}
	return tv
}

func view(f stacktrace.Frame, role string) frameView {
	v := frameView{Role: role, Function: f.Function, Location: f.File + ":" + itoa(f.Line)}
	for _, a := range f.Args {
		v.Args = append(v.Args, argView{Text: a, Nil: isNilArg(a)})
	}
	return v
}

func classify(f stacktrace.Frame, app string) string {
	switch {
	case f.Pkg == "runtime" || strings.HasPrefix(f.Pkg, "runtime/") || strings.HasPrefix(f.Pkg, "internal/runtime/"):
		return roleRuntime
	case app != "" && (f.Pkg == app || strings.HasPrefix(f.Pkg, app+"/")):
		return roleApp
	}
	return roleLibrary
}

// appPrefix guesses the application's module from the crash site's
// package: the first three path elements of a host-qualified path
// ("github.com/org/repo"), else the first two ("trevi/arcade-wilddig-gameserver"),
// else the package itself ("main").
func appPrefix(site string, frames []stacktrace.Frame) string {
	pkg := ""
	for _, f := range frames {
		if f.Function == site {
			pkg = f.Pkg
			break
		}
	}
	parts := strings.Split(pkg, "/")
	n := 2
	if strings.Contains(parts[0], ".") {
		n = 3
	}
	return strings.Join(parts[:min(n, len(parts))], "/")
}

// isNilArg reports whether a printed argument is nil: a nil pointer
// ("0x0") or the two words of a nil interface or slice ("{0x0, 0x0}"),
// possibly marked imprecise with "?".
func isNilArg(a string) bool {
	a = strings.NewReplacer("?", "", " ", "").Replace(a)
	return a == "0x0" || a == "{0x0,0x0}"
}

func itoa(n int) string { return strconv.Itoa(n) }

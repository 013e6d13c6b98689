package webui

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/pprof/driver"
	"github.com/google/pprof/profile"

	"github.com/stackwatch/stackwatch/sidecar/dumps"
)

// pprofKept is how many dumps keep their pprof UI in memory: a developer
// looks at one or two at a time, and each holds its parsed profile.
const pprofKept = 4

// pprofCache builds pprof's own web UI (flame graph, top, peek, source,
// graph) for a stored dump through github.com/google/pprof/driver, and
// keeps the handlers of the last few dumps opened.
type pprofCache struct {
	dumps *dumps.Store
	log   *slog.Logger

	build sync.Mutex // driver.PProf keeps global state: one at a time
	mu    sync.Mutex
	uis   map[string]map[string]http.Handler
	order []string // least recently opened first
}

func newPprofCache(d *dumps.Store, log *slog.Logger) *pprofCache {
	return &pprofCache{dumps: d, log: log, uis: map[string]map[string]http.Handler{}}
}

// pprofDropped are pprof's handlers that are not mounted: saving and
// deleting configurations writes to the sidecar's disk, and disassembly
// needs the game server's binary.
var pprofDropped = []string{"/saveconfig", "/deleteconfig", "/disasm"}

func (c *pprofCache) handlers(id string) (map[string]http.Handler, error) {
	c.mu.Lock()
	if h, ok := c.uis[id]; ok {
		c.touch(id)
		c.mu.Unlock()
		return h, nil
	}
	c.mu.Unlock()

	c.build.Lock()
	defer c.build.Unlock()
	data, _, err := c.dumps.Read(id)
	if err != nil {
		return nil, err
	}
	p, err := profile.ParseData(data)
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", id, err)
	}
	var handlers map[string]http.Handler
	err = driver.PProf(&driver.Options{
		Flagset: &pprofFlags{args: []string{"-http=localhost:0", "-no_browser", "-symbolize=none", id}},
		Fetch:   fetcher{p},
		Sym:     noSymbols{},
		UI:      quietUI{c.log},
		HTTPServer: func(args *driver.HTTPServerArgs) error {
			handlers = args.Handlers
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("pprof: %w", err)
	}
	if handlers == nil {
		return nil, errors.New("pprof did not start its web UI")
	}
	for _, path := range pprofDropped {
		delete(handlers, path)
	}
	c.mu.Lock()
	c.uis[id] = handlers
	c.touch(id)
	for len(c.order) > pprofKept {
		delete(c.uis, c.order[0])
		c.order = c.order[1:]
	}
	c.mu.Unlock()
	return handlers, nil
}

// touch moves id to the most recent end of the order; callers hold c.mu.
func (c *pprofCache) touch(id string) {
	for i, o := range c.order {
		if o == id {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
	c.order = append(c.order, id)
}

// pprofView serves /ui/dumps/{id}/pprof/{view}: pprof's handler for
// "/{view}", which links its sibling views relatively.
func (u *UI) pprofView(w http.ResponseWriter, r *http.Request, src *sources) {
	handlers, err := src.pprof.handlers(r.PathValue("id"))
	if err != nil {
		u.fail(w, r, dumpStatus(err), err)
		return
	}
	h, ok := handlers["/"+r.PathValue("view")]
	if !ok {
		u.fail(w, r, http.StatusNotFound, fmt.Errorf("pprof has no view %q", r.PathValue("view")))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'; form-action 'self'")
	h.ServeHTTP(w, r)
}

// fetcher hands pprof the stored dump, whatever source it names.
type fetcher struct{ p *profile.Profile }

func (f fetcher) Fetch(src string, _, _ time.Duration) (*profile.Profile, string, error) {
	return f.p.Copy(), src, nil
}

// noSymbols leaves the profile as it is: Go's goroutine profiles carry
// their function names, and the sidecar has no binary to symbolize with.
type noSymbols struct{}

func (noSymbols) Symbolize(string, driver.MappingSources, *profile.Profile) error { return nil }

// quietUI sends pprof's messages to the log: there is no terminal.
type quietUI struct{ log *slog.Logger }

func (quietUI) ReadLine(string) (string, error)     { return "", errors.New("no terminal") }
func (u quietUI) Print(a ...any)                    { u.log.Debug("pprof", "msg", strings.TrimSpace(fmt.Sprint(a...))) }
func (u quietUI) PrintErr(a ...any)                 { u.log.Warn("pprof", "msg", strings.TrimSpace(fmt.Sprint(a...))) }
func (quietUI) IsTerminal() bool                    { return false }
func (quietUI) WantBrowser() bool                   { return false }
func (quietUI) SetAutoComplete(func(string) string) {}

// pprofFlags is pprof's command line, fixed: a fresh flag set per run, so
// nothing touches the process's own flags.
type pprofFlags struct {
	args  []string
	fs    *flag.FlagSet
	extra []string
}

func (f *pprofFlags) set() *flag.FlagSet {
	if f.fs == nil {
		f.fs = flag.NewFlagSet("pprof", flag.ContinueOnError)
	}
	return f.fs
}

func (f *pprofFlags) Bool(n string, d bool, u string) *bool { return f.set().Bool(n, d, u) }
func (f *pprofFlags) Int(n string, d int, u string) *int    { return f.set().Int(n, d, u) }
func (f *pprofFlags) Float64(n string, d float64, u string) *float64 {
	return f.set().Float64(n, d, u)
}
func (f *pprofFlags) String(n, d, u string) *string { return f.set().String(n, d, u) }
func (f *pprofFlags) StringList(n, d, u string) *[]*string {
	return &[]*string{f.set().String(n, d, u)}
}
func (f *pprofFlags) ExtraUsage() string      { return strings.Join(f.extra, "\n") }
func (f *pprofFlags) AddExtraUsage(eu string) { f.extra = append(f.extra, eu) }
func (f *pprofFlags) Parse(usage func()) []string {
	fs := f.set()
	fs.Usage = usage
	if err := fs.Parse(f.args); err != nil {
		return nil
	}
	return fs.Args()
}

// Package webui is the sidecar's web UI for developers: the crash groups
// with their traces laid out for reading, the goroutines (stack groups,
// leak suspects with their trend, the runtime's proven leaks), and the
// goroutine dumps, each opened in pprof's own web UI.
//
// Pages are Go templates rendered on the server from embedded files, with a
// little vanilla JavaScript; nothing is loaded from elsewhere, so the UI
// works offline. The UI reads the sidecar through three small interfaces
// (Crashes, Goroutines, Dumps) and never changes anything but one thing:
// capturing a dump, a POST guarded against cross-site requests.
//
// Auth (see Auth): with a token, every page and API route needs it, sent
// as a bearer token or entered once in a form that sets an HttpOnly,
// SameSite=Strict session cookie; without one, only loopback clients
// asking for a loopback host are served.
package webui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/dumps"
	"github.com/stackwatch/stackwatch/sidecar/goroutines"
	"github.com/stackwatch/stackwatch/sidecar/leak"
	"github.com/stackwatch/stackwatch/sidecar/profiler"
)

// Crashes is the crash groups the UI lists.
type Crashes interface {
	// CrashGroups returns up to limit groups from offset, largest first,
	// and the total number of groups.
	CrashGroups(offset, limit int) ([]crash.Group, int)
	// CrashGroup returns the group with key.
	CrashGroup(key string) (crash.Group, bool)
}

// Profiler is the goroutine watch and the dump ring the UI shows;
// *profiler.Profiler is one.
type Profiler interface {
	// Status holds the leak suspects and the scrape state.
	Status() profiler.Status
	// Goroutines is the last scrape, stack groups largest first.
	Goroutines() *goroutines.Snapshot
	// Leaked is what the runtime's goroutineleak profile proved leaked.
	Leaked() *goroutines.Snapshot
	// History is the recent scrapes, oldest first, for the trend lines.
	History() []profiler.Sample
	// Store is the dump ring.
	Store() *dumps.Store
	// CaptureNow takes a dump for a developer, one at a time
	// (profiler.ErrBusy otherwise).
	CaptureNow(ctx context.Context, reason string) (dumps.Meta, error)
	DumpGroups(id string) (profiler.GroupsResponse, error)
	DiffDumps(baseID, id string) (profiler.DiffResponse, error)
}

// Config configures the UI.
type Config struct {
	Service string // shown in every title (required)
	// Auth guards the UI; share it with the API (see NewAuth). Required.
	Auth   *Auth
	Logger *slog.Logger
}

// PageSize is how many crash groups a page lists.
const PageSize = 50

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages are the templates, each page on its own copy of the layout. They
// are parsed on first use: a sidecar nobody browses keeps neither the
// parsed trees (300 KB) nor the parser's code pages in its RSS.
var pages = sync.OnceValue(func() map[string]*template.Template {
	base := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	m := map[string]*template.Template{}
	for _, name := range []string{"crashes", "group", "goroutines", "dumps", "dump", "diff", "login", "error"} {
		m[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html"))
	}
	return m
})

// UI serves the pages. Build it with New, mount its Handler, and Attach
// what it shows before serving: the sidecar takes the handler when it is
// built, and the UI reads the sidecar once it is.
type UI struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
	src atomic.Pointer[sources]
}

// sources are what the pages show.
type sources struct {
	crashes Crashes
	prof    Profiler // nil without a -target
	pprof   *pprofCache
}

// Attach sets what the UI shows: the crash groups, and the goroutine
// watch and dumps (prof may be nil when the sidecar has no -target).
// Until then the pages answer 503.
func (u *UI) Attach(crashes Crashes, prof Profiler) {
	s := &sources{crashes: crashes, prof: prof}
	if prof != nil {
		s.pprof = newPprofCache(prof.Store(), u.log)
	}
	u.src.Store(s)
}

// New builds the UI.
func New(cfg Config) (*UI, error) {
	if cfg.Service == "" || cfg.Auth == nil {
		return nil, errors.New("webui: Service and Auth are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	u := &UI{cfg: cfg, log: cfg.Logger.With("component", "webui")}
	u.routes()
	return u, nil
}

func (u *UI) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "favicon.svg")
	})
	m.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	m.HandleFunc("GET /ui/{$}", u.with(u.crashes))
	m.HandleFunc("GET /ui/crashes/{key}", u.with(u.group))
	m.HandleFunc("GET /ui/goroutines", u.withProfiler(u.goroutines))
	m.HandleFunc("GET /ui/dumps", u.withProfiler(u.dumpList))
	m.HandleFunc("POST /ui/dumps", u.withProfiler(u.capture))
	m.HandleFunc("GET /ui/dumps/diff", u.withProfiler(u.diff))
	m.HandleFunc("GET /ui/dumps/{id}", u.withProfiler(u.dump))
	m.HandleFunc("GET /ui/dumps/{id}/pprof/{view...}", u.withProfiler(u.pprofView))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		u.fail(w, r, http.StatusNotFound, fmt.Errorf("no page at %s", r.URL.Path))
	})
	u.mux = m
}

// with hands a page handler the attached sources, or answers 503 before
// Attach.
func (u *UI) with(h func(http.ResponseWriter, *http.Request, *sources)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		src := u.src.Load()
		if src == nil {
			u.fail(w, r, http.StatusServiceUnavailable, errors.New("the sidecar is starting"))
			return
		}
		h(w, r, src)
	}
}

// withProfiler is with for the goroutine and dump pages, which answer 404
// on a sidecar without a -target.
func (u *UI) withProfiler(h func(http.ResponseWriter, *http.Request, *sources)) http.HandlerFunc {
	return u.with(func(w http.ResponseWriter, r *http.Request, src *sources) {
		if src.prof == nil {
			u.fail(w, r, http.StatusNotFound, errNoProfiler)
			return
		}
		h(w, r, src)
	})
}

// Handler serves the UI at / and /ui/, behind Auth. Mount it on the
// sidecar's mux for "/" (it answers / with a redirect to /ui/).
func (u *UI) Handler() http.Handler { return u.cfg.Auth.Middleware(u.mux) }

// page is what every template gets.
type page struct {
	Service string
	Title   string
	Nav     string // the tab shown as current
	CSRF    string // the session's CSRF token for forms; empty without a session
	Profile bool   // the goroutine pages exist (a -target is set)
	Data    any
}

func (u *UI) render(w http.ResponseWriter, r *http.Request, name, title, nav string, data any) {
	u.renderStatus(w, r, http.StatusOK, name, title, nav, data)
}

func (u *UI) renderStatus(w http.ResponseWriter, r *http.Request, code int, name, title, nav string, data any) {
	render(w, code, page{Service: u.cfg.Service, Title: title, Nav: nav, CSRF: u.cfg.Auth.csrfToken(r),
		Profile: u.profiled(), Data: data}, name, u.log)
}

func (u *UI) profiled() bool {
	src := u.src.Load()
	return src != nil && src.prof != nil
}

// render writes page p with template name and the headers every page has.
func render(w http.ResponseWriter, code int, p page, name string, log *slog.Logger) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store") // pages can carry player data
	w.WriteHeader(code)
	if err := pages()[name].ExecuteTemplate(w, "layout", p); err != nil {
		log.Debug("page not sent", "page", name, "err", err)
	}
}

func (u *UI) fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	u.renderStatus(w, r, code, "error", http.StatusText(code), "", struct {
		Code int
		Err  string
	}{code, err.Error()})
}

func (u *UI) crashes(w http.ResponseWriter, r *http.Request, src *sources) {
	pageNo, _ := strconv.Atoi(r.URL.Query().Get("page"))
	pageNo = max(pageNo, 1)
	groups, total := src.crashes.CrashGroups((pageNo-1)*PageSize, PageSize)
	var latest *dumps.Meta
	if src.prof != nil {
		if l := src.prof.Store().List(); len(l) > 0 {
			latest = &l[0]
		}
	}
	u.render(w, r, "crashes", "Crash groups", "crashes", struct {
		Groups      []crash.Group
		Total, Page int
		Prev, Next  int
		LatestDump  *dumps.Meta
	}{groups, total, pageNo, pageNo - 1, nextPage(pageNo, total), latest})
}

func nextPage(p, total int) int {
	if p*PageSize < total {
		return p + 1
	}
	return 0
}

func (u *UI) group(w http.ResponseWriter, r *http.Request, src *sources) {
	g, ok := src.crashes.CrashGroup(r.PathValue("key"))
	if !ok {
		u.fail(w, r, http.StatusNotFound, fmt.Errorf("no crash group %q", r.PathValue("key")))
		return
	}
	u.render(w, r, "group", g.CrashSite.Function, "crashes", struct {
		Group crash.Group
		Trace traceView
	}{g, layoutTrace(g)})
}

// errNoProfiler answers the goroutine and dump pages of a sidecar
// without a -target.
var errNoProfiler = errors.New("this sidecar does not watch goroutines or keep dumps (no -target)")

// suspectView is a leak suspect with its trend across the scrape history.
type suspectView struct {
	leak.Suspect
	Trend []int
	Delta int // last minus first of Trend
}

func (u *UI) goroutines(w http.ResponseWriter, r *http.Request, src *sources) {
	p := src.prof
	st := p.Status()
	hist := p.History()
	totals := make([]int, len(hist))
	for i, s := range hist {
		totals[i] = s.Goroutines
	}
	suspects := make([]suspectView, len(st.Suspects))
	for i, s := range st.Suspects {
		t := trend(hist, s.Label())
		suspects[i] = suspectView{Suspect: s, Trend: t}
		if len(t) > 0 {
			suspects[i].Delta = t[len(t)-1] - t[0]
		}
	}
	u.render(w, r, "goroutines", "Goroutines", "goroutines", struct {
		Status   profiler.Status
		Snapshot *goroutines.Snapshot
		Leaked   *goroutines.Snapshot
		Totals   []int
		Since    time.Time
		Suspects []suspectView
	}{st, p.Goroutines(), p.Leaked(), totals, firstTime(hist), suspects})
}

// trend is a location's goroutines in each sample of the history (0 where
// it was not among the sample's top suspects).
func trend(hist []profiler.Sample, label string) []int {
	out := make([]int, len(hist))
	for i, s := range hist {
		out[i] = s.Suspects[label]
	}
	return out
}

func firstTime(hist []profiler.Sample) time.Time {
	if len(hist) == 0 {
		return time.Time{}
	}
	return hist[0].Time
}

func (u *UI) dumpList(w http.ResponseWriter, r *http.Request, src *sources) {
	list := src.prof.Store().List()
	u.render(w, r, "dumps", "Goroutine dumps", "dumps", struct {
		Dumps    []dumps.Meta
		Captured string
	}{list, r.URL.Query().Get("captured")})
}

func (u *UI) capture(w http.ResponseWriter, r *http.Request, src *sources) {
	reason := r.PostFormValue("reason")
	if reason == "" {
		reason = "captured from the web UI"
	}
	m, err := src.prof.CaptureNow(r.Context(), reason)
	if err != nil {
		code := http.StatusBadGateway
		if errors.Is(err, profiler.ErrBusy) {
			code = http.StatusTooManyRequests
		}
		u.fail(w, r, code, fmt.Errorf("capture: %w", err))
		return
	}
	http.Redirect(w, r, "/ui/dumps?captured="+m.ID, http.StatusSeeOther)
}

func (u *UI) dump(w http.ResponseWriter, r *http.Request, src *sources) {
	g, err := src.prof.DumpGroups(r.PathValue("id"))
	if err != nil {
		u.fail(w, r, dumpStatus(err), err)
		return
	}
	var others []dumps.Meta
	for _, d := range src.prof.Store().List() {
		if d.ID != g.Dump.ID {
			others = append(others, d)
		}
	}
	u.render(w, r, "dump", "Dump "+g.Dump.ID, "dumps", struct {
		Dump     dumps.Meta
		Snapshot *goroutines.Snapshot
		Others   []dumps.Meta
	}{g.Dump, g.Snapshot, others})
}

func (u *UI) diff(w http.ResponseWriter, r *http.Request, src *sources) {
	q := r.URL.Query()
	if q.Get("base") == "" || q.Get("id") == "" {
		u.fail(w, r, http.StatusBadRequest, errors.New("pick two dumps: ?base={id}&id={id}"))
		return
	}
	d, err := src.prof.DiffDumps(q.Get("base"), q.Get("id"))
	if err != nil {
		u.fail(w, r, dumpStatus(err), err)
		return
	}
	largest := 1
	for _, c := range d.Changes {
		largest = max(largest, abs(c.Delta))
	}
	u.render(w, r, "diff", "Diff", "dumps", struct {
		profiler.DiffResponse
		LargestDelta int
	}{d, largest})
}

// dumpStatus maps an error reading a dump to an HTTP status.
func dumpStatus(err error) int {
	switch {
	case errors.Is(err, dumps.ErrInvalidID):
		return http.StatusBadRequest
	case errors.Is(err, dumps.ErrNotFound):
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

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
	"time"

	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/dumps"
	"github.com/stackwatch/stackwatch/sidecar/goroutines"
	"github.com/stackwatch/stackwatch/sidecar/leak"
)

// Crashes is the crash groups the UI lists.
type Crashes interface {
	// CrashGroups returns up to limit groups from offset, largest first,
	// and the total number of groups.
	CrashGroups(offset, limit int) ([]crash.Group, int)
	// CrashGroup returns the group with key.
	CrashGroup(key string) (crash.Group, bool)
}

// Goroutines is the goroutine watch the UI shows.
type Goroutines interface {
	// StackGroups returns the newest goroutine snapshot, grouped by stack,
	// and when it was taken; nil before the first.
	StackGroups() (*goroutines.Snapshot, time.Time)
	// Suspects returns the leak suspects, largest first, each with its
	// trend across the recent scrapes.
	Suspects() []leak.Suspect
	// LeakProfile says whether the runtime's goroutineleak profile is
	// served ("available", "not available", "disabled", "unknown") and how
	// many goroutines it proved leaked at the last scrape.
	LeakProfile() (state string, leaked int)
}

// Dumps is the ring of goroutine dumps.
type Dumps interface {
	// List returns the dumps, newest first.
	List() []dumps.Meta
	// Read returns a dump's raw profile and metadata; dumps.ErrNotFound
	// and dumps.ErrInvalidID for a bad id.
	Read(id string) ([]byte, dumps.Meta, error)
	// Capture takes a dump now.
	Capture(ctx context.Context, reason string) (dumps.Meta, error)
}

// Config configures the UI.
type Config struct {
	Service string  // shown in every title (required)
	Crashes Crashes // required
	// Goroutines and Dumps are nil when the sidecar has no -target.
	Goroutines Goroutines
	Dumps      Dumps
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

// pages are the templates, each page on its own copy of the layout.
var pages = func() map[string]*template.Template {
	base := template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	m := map[string]*template.Template{}
	for _, name := range []string{"crashes", "group", "goroutines", "dumps", "dump", "diff", "login", "error"} {
		m[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html"))
	}
	return m
}()

// UI serves the pages. Build it with New.
type UI struct {
	cfg   Config
	log   *slog.Logger
	pprof *pprofCache
	mux   *http.ServeMux

	captureMu sync.Mutex // one capture at a time: each costs the target
}

// New builds the UI.
func New(cfg Config) (*UI, error) {
	if cfg.Service == "" || cfg.Crashes == nil || cfg.Auth == nil {
		return nil, errors.New("webui: Service, Crashes and Auth are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	u := &UI{cfg: cfg, log: cfg.Logger.With("component", "webui")}
	u.pprof = newPprofCache(cfg.Dumps, u.log)
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
	m.HandleFunc("GET /ui/{$}", u.crashes)
	m.HandleFunc("GET /ui/crashes/{key}", u.group)
	m.HandleFunc("GET /ui/goroutines", u.goroutines)
	m.HandleFunc("GET /ui/dumps", u.dumpList)
	m.HandleFunc("POST /ui/dumps", u.capture)
	m.HandleFunc("GET /ui/dumps/diff", u.diff)
	m.HandleFunc("GET /ui/dumps/{id}", u.dump)
	m.HandleFunc("GET /ui/dumps/{id}/pprof/{view...}", u.pprofView)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		u.fail(w, r, http.StatusNotFound, fmt.Errorf("no page at %s", r.URL.Path))
	})
	u.mux = m
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
		Profile: u.cfg.Dumps != nil, Data: data}, name, u.log)
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
	if err := pages[name].ExecuteTemplate(w, "layout", p); err != nil {
		log.Debug("page not sent", "page", name, "err", err)
	}
}

func (u *UI) fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	u.renderStatus(w, r, code, "error", http.StatusText(code), "", struct {
		Code int
		Err  string
	}{code, err.Error()})
}

func (u *UI) crashes(w http.ResponseWriter, r *http.Request) {
	pageNo, _ := strconv.Atoi(r.URL.Query().Get("page"))
	pageNo = max(pageNo, 1)
	groups, total := u.cfg.Crashes.CrashGroups((pageNo-1)*PageSize, PageSize)
	var latest *dumps.Meta
	if u.cfg.Dumps != nil {
		if l := u.cfg.Dumps.List(); len(l) > 0 {
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

func (u *UI) group(w http.ResponseWriter, r *http.Request) {
	g, ok := u.cfg.Crashes.CrashGroup(r.PathValue("key"))
	if !ok {
		u.fail(w, r, http.StatusNotFound, fmt.Errorf("no crash group %q", r.PathValue("key")))
		return
	}
	u.render(w, r, "group", g.CrashSite.Function, "crashes", struct {
		Group crash.Group
		Trace traceView
	}{g, layoutTrace(g)})
}

func (u *UI) goroutines(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Goroutines == nil {
		u.fail(w, r, http.StatusNotFound, errors.New("this sidecar does not watch goroutines (no -target)"))
		return
	}
	snap, at := u.cfg.Goroutines.StackGroups()
	state, leaked := u.cfg.Goroutines.LeakProfile()
	suspects := u.cfg.Goroutines.Suspects()
	var proven []leak.Suspect
	for _, s := range suspects {
		if s.Leaked > 0 {
			proven = append(proven, s)
		}
	}
	u.render(w, r, "goroutines", "Goroutines", "goroutines", struct {
		Snapshot    *goroutines.Snapshot
		At          time.Time
		Suspects    []leak.Suspect
		Proven      []leak.Suspect
		LeakProfile string
		Leaked      int
	}{snap, at, suspects, proven, state, leaked})
}

func (u *UI) dumpList(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Dumps == nil {
		u.fail(w, r, http.StatusNotFound, errors.New("this sidecar keeps no dumps (no -target)"))
		return
	}
	list := u.cfg.Dumps.List()
	u.render(w, r, "dumps", "Goroutine dumps", "dumps", struct {
		Dumps    []dumps.Meta
		Captured string
	}{list, r.URL.Query().Get("captured")})
}

func (u *UI) capture(w http.ResponseWriter, r *http.Request) {
	if u.cfg.Dumps == nil {
		u.fail(w, r, http.StatusNotFound, errors.New("this sidecar keeps no dumps (no -target)"))
		return
	}
	if !u.captureMu.TryLock() {
		u.fail(w, r, http.StatusTooManyRequests, errors.New("another capture is running; try again in a moment"))
		return
	}
	defer u.captureMu.Unlock()
	reason := r.PostFormValue("reason")
	if len(reason) > 256 {
		reason = reason[:256]
	}
	if reason == "" {
		reason = "captured from the web UI"
	}
	m, err := u.cfg.Dumps.Capture(r.Context(), reason)
	if err != nil {
		u.fail(w, r, http.StatusBadGateway, fmt.Errorf("capture: %w", err))
		return
	}
	http.Redirect(w, r, "/ui/dumps?captured="+m.ID, http.StatusSeeOther)
}

// readDump reads and parses a dump, answering the request itself on error.
func (u *UI) readDump(w http.ResponseWriter, r *http.Request, id string) (dumps.Meta, *goroutines.Snapshot, bool) {
	if u.cfg.Dumps == nil {
		u.fail(w, r, http.StatusNotFound, errors.New("this sidecar keeps no dumps (no -target)"))
		return dumps.Meta{}, nil, false
	}
	data, m, err := u.cfg.Dumps.Read(id)
	if err != nil {
		u.fail(w, r, dumpStatus(err), err)
		return m, nil, false
	}
	s, err := goroutines.ParseAny(data)
	if err != nil {
		u.fail(w, r, http.StatusInternalServerError, fmt.Errorf("dump %s: %w", id, err))
		return m, nil, false
	}
	return m, s, true
}

func (u *UI) dump(w http.ResponseWriter, r *http.Request) {
	m, s, ok := u.readDump(w, r, r.PathValue("id"))
	if !ok {
		return
	}
	var others []dumps.Meta
	for _, d := range u.cfg.Dumps.List() {
		if d.ID != m.ID {
			others = append(others, d)
		}
	}
	u.render(w, r, "dump", "Dump "+m.ID, "dumps", struct {
		Dump     dumps.Meta
		Snapshot *goroutines.Snapshot
		Others   []dumps.Meta
	}{m, s, others})
}

func (u *UI) diff(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("base") == "" || q.Get("id") == "" {
		u.fail(w, r, http.StatusBadRequest, errors.New("pick two dumps: ?base={id}&id={id}"))
		return
	}
	bm, base, ok := u.readDump(w, r, q.Get("base"))
	if !ok {
		return
	}
	m, cur, ok := u.readDump(w, r, q.Get("id"))
	if !ok {
		return
	}
	changes := goroutines.Diff(base, cur)
	largest := 1
	for _, c := range changes {
		largest = max(largest, abs(c.Delta))
	}
	u.render(w, r, "diff", "Diff", "dumps", struct {
		Base, Dump   dumps.Meta
		BaseTotal    int
		Total        int
		Changes      []goroutines.Change
		LargestDelta int
	}{bm, m, base.Total, cur.Total, changes, largest})
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

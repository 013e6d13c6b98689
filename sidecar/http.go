package sidecar

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stackwatch/stackwatch/internal/cli"
	"github.com/stackwatch/stackwatch/sidecar/crash"
)

// Paging of GET /api/v1/crashes: ?limit=N&offset=M, largest groups first.
const (
	DefaultCrashesLimit = 100
	MaxCrashesLimit     = 1000
)

// CrashesResponse is the body of GET /api/v1/crashes.
type CrashesResponse struct {
	Service string `json:"service"`
	Ready   bool   `json:"ready"` // backlog ingested
	// Files and Bytes are the stacktrace files on disk now.
	Files  int           `json:"files"`
	Bytes  int64         `json:"bytes"`
	Groups []crash.Group `json:"groups"`
	// Total is the number of groups in all; Groups holds those from
	// Offset on, at most Limit. NextOffset is where the next page starts,
	// omitted on the last page.
	Total      int  `json:"total"`
	Offset     int  `json:"offset"`
	Limit      int  `json:"limit"`
	NextOffset *int `json:"next_offset,omitempty"`
}

func (s *Sidecar) routes() {
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelError),
		EnableOpenMetrics: true,
	}))
	s.mux.Handle("GET /api/v1/crashes", s.auth(http.HandlerFunc(s.crashes)))
	s.mux.Handle("GET /api/v1/crashes/{key}", s.auth(http.HandlerFunc(s.crash)))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.healthy.Load() {
			http.Error(w, "watcher stopped", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "ingesting backlog", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	if s.cfg.UI != nil {
		ui := s.auth(s.cfg.UI)
		s.mux.Handle("/", ui)
		s.mux.Handle("/ui/", ui)
		return
	}
	s.mux.Handle("GET /{$}", cli.LandingPage("stackwatch sidecar",
		"Crash groups from "+s.cfg.Service+"'s stacktrace files, its goroutines and their dumps.",
		[]cli.Link{
			{Path: "/metrics", Text: "Prometheus metrics"},
			{Path: "/api/v1/crashes", Text: "crash groups, largest first (?limit=&offset=)"},
			{Path: "/healthz", Text: "health"},
			{Path: "/readyz", Text: "readiness: the backlog is ingested"},
		}))
}

// auth wraps h in Config.Auth, if any.
func (s *Sidecar) auth(h http.Handler) http.Handler {
	if s.cfg.Auth != nil {
		return s.cfg.Auth(h)
	}
	return h
}

func (s *Sidecar) crashes(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", DefaultCrashesLimit)
	if err != nil || limit < 0 {
		http.Error(w, "limit: want a number from 0 to "+strconv.Itoa(MaxCrashesLimit), http.StatusBadRequest)
		return
	}
	offset, err := intParam(r, "offset", 0)
	if err != nil || offset < 0 {
		http.Error(w, "offset: want a number from 0", http.StatusBadRequest)
		return
	}
	limit = min(limit, MaxCrashesLimit)
	s.mu.Lock()
	files, bytes := s.pipeline.Files()
	s.mu.Unlock()
	resp := CrashesResponse{Service: s.cfg.Service, Ready: s.ready.Load(), Files: files, Bytes: bytes,
		Offset: offset, Limit: limit}
	resp.Groups, resp.Total = s.CrashGroups(offset, limit)
	if next := offset + len(resp.Groups); next < resp.Total {
		resp.NextOffset = &next
	}
	s.writeJSON(w, resp)
}

func (s *Sidecar) crash(w http.ResponseWriter, r *http.Request) {
	g, ok := s.CrashGroup(r.PathValue("key"))
	if !ok {
		http.Error(w, "no such crash group", http.StatusNotFound)
		return
	}
	s.writeJSON(w, g)
}

func (s *Sidecar) writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		s.log.Debug("response not sent", "err", err)
	}
}

func intParam(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	return strconv.Atoi(v)
}

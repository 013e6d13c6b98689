package sidecar

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stackwatch/stackwatch/sidecar/crash"
)

// CrashesResponse is the body of GET /api/v1/crashes.
type CrashesResponse struct {
	Service string `json:"service"`
	Ready   bool   `json:"ready"` // backlog ingested
	// Files and Bytes are the stacktrace files on disk now.
	Files  int           `json:"files"`
	Bytes  int64         `json:"bytes"`
	Groups []crash.Group `json:"groups"`
}

func (s *Sidecar) routes() {
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelError),
		EnableOpenMetrics: true,
	}))
	var crashes http.Handler = http.HandlerFunc(s.crashes)
	if s.cfg.Auth != nil {
		crashes = s.cfg.Auth(crashes)
	}
	s.mux.Handle("GET /api/v1/crashes", crashes)
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
}

func (s *Sidecar) crashes(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	resp := CrashesResponse{Service: s.cfg.Service, Ready: s.ready.Load(), Files: len(s.st.Files), Bytes: s.bytes}
	s.mu.Unlock()
	resp.Groups = s.groups.Snapshot()
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(resp); err != nil {
		s.log.Debug("crashes response not sent", "err", err)
	}
}

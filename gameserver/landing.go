package gameserver

import (
	"net/http"

	"github.com/stackwatch/stackwatch/internal/cli"
)

// registerLanding adds a landing page at "/" of each listener. pprof is nil
// when pprof shares the admin mux.
func (s *Server) registerLanding(admin, pprof *http.ServeMux) error {
	title := "stackwatch game server " + s.cfg.Service
	about := "Game " + s.cfg.Game + ", " + s.cfg.Mode() + " mode."
	adminLinks := []cli.Link{
		{Path: "/metrics", Text: "Prometheus metrics"},
		{Path: "/healthz", Text: "liveness"},
		{Path: "/readyz", Text: "readiness"},
	}
	debugLinks := []cli.Link{{Path: "/debug/pprof/", Text: "profiles and goroutine dumps (they carry player data)"}}
	if pprof == nil {
		admin.Handle("GET /{$}", cli.LandingPage(title, about, append(adminLinks, debugLinks...)))
		return nil
	}
	admin.Handle("GET /{$}", cli.LandingPage(title, about+" Profiles are on "+s.PprofAddr().String()+".", adminLinks))
	pprof.Handle("GET /{$}", cli.LandingPage(title+" profiles", about, debugLinks))
	return nil
}

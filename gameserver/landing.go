package gameserver

import (
	"net/http"

	"github.com/stackwatch/stackwatch/internal/cli"
)

// registerLandingAndFault adds a landing page at "/" of each listener and,
// with Config.FaultInjection, the fault endpoint beside pprof. pprof is nil
// when pprof shares the admin mux.
func (s *Server) registerLandingAndFault(admin, pprof *http.ServeMux) error {
	debug := pprof
	if debug == nil {
		debug = admin
	}
	if s.cfg.FaultInjection {
		if err := s.registerFault(debug, s.PprofAddr()); err != nil {
			return err
		}
	}
	title := "stackwatch game server " + s.cfg.Service
	about := "Game " + s.cfg.Game + ", " + s.cfg.Mode() + " mode."
	adminLinks := []cli.Link{
		{Path: "/metrics", Text: "Prometheus metrics"},
		{Path: "/healthz", Text: "liveness"},
		{Path: "/readyz", Text: "readiness"},
	}
	debugLinks := []cli.Link{{Path: "/debug/pprof/", Text: "profiles and goroutine dumps (they carry player data)"}}
	if s.cfg.FaultInjection {
		debugLinks = append(debugLinks, cli.Link{Path: "/debug/fault", Text: "fault injection, POST only: ?kind=fatal|panic|leak[&n=N]"})
	}
	if pprof == nil {
		admin.Handle("GET /{$}", cli.LandingPage(title, about, append(adminLinks, debugLinks...)))
		return nil
	}
	admin.Handle("GET /{$}", cli.LandingPage(title, about+" Profiles are on "+s.PprofAddr().String()+".", adminLinks))
	pprof.Handle("GET /{$}", cli.LandingPage(title+" profiles", about, debugLinks))
	return nil
}

// Package gameservertest runs real game servers on loopback for tests, as
// net/http/httptest does for HTTP servers: the real listener, protocol, wallet
// and stacktrace writer, in the test's process.
package gameservertest

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver"
)

// StopTimeout bounds a graceful stop; a server that takes longer fails the test.
const StopTimeout = 30 * time.Second

// Server is a running game server.
type Server struct {
	*gameserver.Server
	t      testing.TB
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// Start runs a game server with cfg and stops it when the test ends. Unset
// fields get test defaults: game wilddig, loopback ports chosen by the
// kernel, log and data directories in t.TempDir. Logs are discarded, or
// written to the test log under -v.
func Start(t testing.TB, cfg gameserver.Config) *Server {
	t.Helper()
	if cfg.Game == "" {
		cfg.Game = "wilddig"
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Admin == "" {
		cfg.Admin = "127.0.0.1:0"
	}
	if cfg.LogDir == "" {
		cfg.LogDir = t.TempDir()
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewJSONHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := gameserver.New(cfg, logger)
	if err != nil {
		t.Fatalf("gameserver.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Server: srv, t: t, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Run(ctx) }()
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the server down gracefully and waits for it; later calls do
// nothing. Run returning an error, or not returning within StopTimeout,
// fails the test.
func (s *Server) Stop() {
	s.once.Do(func() {
		s.cancel()
		select {
		case err := <-s.done:
			if err != nil {
				s.t.Errorf("gameserver Run: %v", err)
			}
		case <-time.After(StopTimeout):
			s.t.Errorf("gameserver did not stop within %s", StopTimeout)
		}
	})
}

// AddrString is the game listener's address as a string, for clients.
func (s *Server) AddrString() string { return s.Addr().String() }

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

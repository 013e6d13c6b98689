package webui_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/gameservertest"
	"github.com/stackwatch/stackwatch/loadgen"
	"github.com/stackwatch/stackwatch/sidecar"
	"github.com/stackwatch/stackwatch/sidecar/leak"
	"github.com/stackwatch/stackwatch/sidecar/profiler"
	"github.com/stackwatch/stackwatch/sidecar/webui"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// stack is a legacy game server and a sidecar with its profiler and web UI,
// wired as cmd/sidecar wires them, serving real TCP.
type stack struct {
	URL  string
	srv  *gameservertest.Server
	sc   *sidecar.Sidecar
	prof *profiler.Profiler
}

const service = "wilddiggr"

// startStack runs the stack with the UI listening on listen; token may be
// empty (loopback only).
func startStack(t *testing.T, listen, token string) *stack {
	t.Helper()
	srv := gameservertest.Start(t, gameserver.Config{Legacy: true, WalletLatency: 20 * time.Millisecond})
	quiet := slog.New(slog.DiscardHandler)
	auth := webui.NewAuth(service, token)
	ui, err := webui.New(webui.Config{Service: service, Auth: auth, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sidecar.New(sidecar.Config{
		Service: service, LogDir: srv.Config().LogDir, DataDir: t.TempDir(), Settle: 50 * time.Millisecond,
		Auth: auth.Middleware, UI: ui.Handler(), Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	prof, err := profiler.New(profiler.Config{
		Target: "http://" + srv.AdminAddr().String(), Service: service, DataDir: t.TempDir(),
		Interval: 250 * time.Millisecond, KeepEvery: -1, PanicBurst: -1, Auth: auth.Middleware,
		Leak: leak.Config{BlockedThreshold: 10},
	}, sc.Registerer(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	prof.Register(sc.Mux())
	sc.AddComponent(prof)
	ui.Attach(sc, prof)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sidecar: %v", err)
		}
	})
	return &stack{URL: "http://" + ln.Addr().String(), srv: srv, sc: sc, prof: prof}
}

// load replays the incident: players dropping mid-bet against the legacy
// server, which panics in clientWrite and leaks reckon goroutines.
func (s *stack) load(t *testing.T, d time.Duration) loadgen.Summary {
	t.Helper()
	sum, err := loadgen.Run(t.Context(), loadgen.Config{Addr: s.srv.AddrString(), Clients: 40, Duration: d,
		Disconnect: 0.3, Drain: 2 * time.Second, DisconnectJitter: 30 * time.Millisecond})
	if err != nil {
		t.Fatalf("loadgen: %v", err)
	}
	return sum
}

// waitFor polls cond, which reads state the sidecar updates on its own
// schedule (scrapes, file events), until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(d)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
	}
}

// nonLoopback returns an address of this machine beyond loopback, if any.
func nonLoopback() (string, bool) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String(), true
		}
	}
	return "", false
}

// requireBrowser finds Chromium: outside CI a missing one skips the test,
// in CI (CI=true) it fails.
func requireBrowser(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("STACKWATCH_CHROMIUM"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("chromium")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("chromium is required in CI (Debian package chromium): %v", err)
	}
	t.Skipf("chromium not installed, skipping the browser test (in CI this fails): %v", err)
	return ""
}

func readAll(r io.Reader) string {
	b, err := io.ReadAll(r)
	if err != nil && !errors.Is(err, io.EOF) {
		return err.Error()
	}
	return string(b)
}

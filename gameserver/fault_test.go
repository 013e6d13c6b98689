package gameserver_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/gameservertest"
	"github.com/stackwatch/stackwatch/metrics"
)

// The recovered panic. The refusals, fatal and leak are tested against the
// binary (cmd/gameserver), as the last two outlive a test.
func TestFaultPanic(t *testing.T) {
	s := startServer(t, gameserver.Config{FaultInjection: true, Pprof: "127.0.0.1:0"})
	url := "http://" + s.PprofAddr().String() + "/debug/fault"
	// Only beside pprof: the admin listener does not serve it.
	if resp, err := http.Post("http://"+s.AdminAddr().String()+"/debug/fault?kind=panic", "", nil); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("admin listener: %v %v, want 404", resp, err)
	} else {
		resp.Body.Close()
	}

	// panic: through the server's recover helper, which writes one
	// stacktrace file and counts it; the server stays up.
	resp, err := http.Post(url+"?kind=panic", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("kind=panic: %s", resp.Status)
	}
	files, _ := filepath.Glob(filepath.Join(s.cfg.LogDir, "wilddiggr-*.stacktrace.log"))
	if len(files) != 1 {
		t.Fatalf("stacktrace files %v, want one", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "runtime error: invalid memory address or nil pointer dereference\n") ||
		!strings.Contains(string(b), "gameserver.settleInjectedBet(") {
		t.Errorf("stacktrace file:\n%s", b)
	}
	if got := metricValue(t, s.Registry(), metrics.PanicsRecovered.Name, nil); got != 1 {
		t.Errorf("%s = %v, want 1", metrics.PanicsRecovered.Name, got)
	}
	if body := httpGet(t, "http://"+s.AdminAddr().String()+"/healthz"); body != "ok\n" {
		t.Errorf("healthz after the panic: %q", body)
	}
}

// Fault injection is never served beyond loopback.
func TestFaultInjectionRefusedBeyondLoopback(t *testing.T) {
	for _, cfg := range []gameserver.Config{
		{Admin: "0.0.0.0:0"},                       // pprof on a pod-wide admin listener
		{Admin: "127.0.0.1:0", Pprof: "0.0.0.0:0"}, // a pod-wide pprof listener
	} {
		cfg.Game, cfg.Listen, cfg.LogDir, cfg.DataDir, cfg.FaultInjection = "wilddig", "127.0.0.1:0", t.TempDir(), t.TempDir(), true
		srv, err := gameserver.New(cfg, nil)
		if err == nil || !strings.Contains(err.Error(), "fault injection refused") {
			t.Errorf("admin %s, pprof %q: New = %v, %v; want refused", cfg.Admin, cfg.Pprof, srv, err)
		}
	}
	// Off by default: no endpoint at all.
	s := gameservertest.Start(t, gameserver.Config{})
	resp, err := http.Post("http://"+s.PprofAddr().String()+"/debug/fault?kind=panic", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("without FaultInjection: %s, want 404", resp.Status)
	}
}

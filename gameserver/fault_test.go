package gameserver_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/gameservertest"
	"github.com/stackwatch/stackwatch/metrics"
)

func do(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The endpoint's refusals, and the recovered panic. fatal and leak are run
// against the binary (cmd/gameserver), as they outlive a test.
func TestFaultEndpoint(t *testing.T) {
	s := startServer(t, gameserver.Config{FaultInjection: true, Pprof: "127.0.0.1:0"})
	url := "http://" + s.PprofAddr().String() + "/debug/fault"
	for _, tc := range []struct {
		method, query string
		code          int
		says          string
	}{
		{"GET", "?kind=fatal", http.StatusMethodNotAllowed, ""},
		{"PUT", "?kind=panic", http.StatusMethodNotAllowed, ""},
		{"POST", "", http.StatusBadRequest, `unknown kind ""`},
		{"POST", "?kind=oom", http.StatusBadRequest, `unknown kind "oom": want fatal, panic or leak`},
		{"POST", "?kind=leak&n=0", http.StatusBadRequest, "n must be 1..10000"},
		{"POST", "?kind=leak&n=10001", http.StatusBadRequest, "n must be 1..10000"},
		{"POST", "?kind=leak&n=many", http.StatusBadRequest, "n must be 1..10000"},
	} {
		if code, body := do(t, tc.method, url+tc.query); code != tc.code || !strings.Contains(body, tc.says) {
			t.Errorf("%s %s: %d %q, want %d saying %q", tc.method, tc.query, code, body, tc.code, tc.says)
		}
	}
	// Only beside pprof: the admin listener does not serve it.
	if code, _ := do(t, "POST", "http://"+s.AdminAddr().String()+"/debug/fault?kind=panic"); code != http.StatusNotFound {
		t.Errorf("admin listener: %d, want 404", code)
	}

	// panic: through the server's recover helper, which writes one
	// stacktrace file and counts it; the server stays up.
	if code, body := do(t, "POST", url+"?kind=panic"); code != http.StatusOK {
		t.Fatalf("panic: %d %q", code, body)
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
	if code, _ := do(t, "GET", "http://"+s.AdminAddr().String()+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz after the panic: %d", code)
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
	if code, _ := do(t, "POST", "http://"+s.PprofAddr().String()+"/debug/fault?kind=panic"); code != http.StatusNotFound {
		t.Errorf("without FaultInjection: %d, want 404", code)
	}
}

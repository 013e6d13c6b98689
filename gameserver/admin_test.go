package gameserver_test

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/metrics"
)

func TestAdminEndpoints(t *testing.T) {
	srv := startServer(t, gameserver.Config{Game: "forestteaparty", MemoryLimit: 123 << 20})
	c, _ := login(t, srv.Addr(), "alice")
	c.send(protocol.TypeBet, protocol.Bet{BetID: "1", Amount: 5})
	c.expect(protocol.TypeBetResult, nil)

	base := "http://" + srv.AdminAddr().String()
	if got := httpGet(t, base+"/healthz"); got != "ok\n" {
		t.Errorf("healthz %q", got)
	}
	if got := httpGet(t, base+"/readyz"); got != "ready\n" {
		t.Errorf("readyz %q", got)
	}
	if got := httpGet(t, base+"/debug/pprof/goroutine?debug=1"); !strings.Contains(got, "goroutine profile:") {
		t.Errorf("pprof goroutine: %.200s", got)
	}
	if got := httpGet(t, base+"/debug/pprof/"); !strings.Contains(got, "heap") {
		t.Errorf("pprof index: %.200s", got)
	}
	if resp, err := noKeepAlive.Post(base+"/metrics", "text/plain", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %v %v", resp.Status, err)
	} else {
		resp.Body.Close()
	}

	body := httpGet(t, base+"/metrics")
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		// The Go collector's own families are not ours to rename.
		if !strings.HasPrefix(p.Metric, "go_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
	// Every family of the catalog is exported; service is a target label, never the exporter's.
	for _, m := range append(metrics.Gameserver(), metrics.GoGoroutines, metrics.ProcessResidentMemory) {
		if !strings.Contains(body, "\n# TYPE "+m.Name+" ") {
			t.Errorf("/metrics lacks %s", m.Name)
		}
	}
	for line := range strings.Lines(body) {
		if !strings.HasPrefix(line, "#") && strings.Contains(line, `service=`) {
			t.Errorf("exporter-set service label: %s", line)
		}
	}
	reg := srv.Registry()
	if got := metricValue(t, reg, metrics.MemoryLimit.Name, nil); got <= 0 {
		t.Errorf("memory limit %v", got)
	}
	if got := metricValue(t, reg, metrics.MemoryInUse.Name, nil); got < 1<<20 {
		t.Errorf("memory in use %v", got)
	}
	if got := metricValue(t, reg, metrics.BetDuration.Name, nil); got != 1 {
		t.Errorf("bet duration count %v, want 1", got)
	}
	if got := metricValue(t, reg, metrics.GameserverModeInfo.Name, map[string]string{"mode": "patched"}); got != 1 {
		t.Errorf("mode info %v", got)
	}
}

// TestSeparatePprofListener: with -pprof set, goroutine dumps are served only
// there, and the (pod-wide) admin listener keeps /metrics and the probes.
func TestSeparatePprofListener(t *testing.T) {
	srv := startServer(t, gameserver.Config{Pprof: "127.0.0.1:0"})
	if srv.PprofAddr().String() == srv.AdminAddr().String() {
		t.Fatal("pprof shares the admin listener")
	}
	get := func(addr net.Addr, path string) int {
		t.Helper()
		r, err := http.Get("http://" + addr.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	for _, c := range []struct {
		addr net.Addr
		path string
		want int
	}{
		{srv.AdminAddr(), "/metrics", http.StatusOK},
		{srv.AdminAddr(), "/healthz", http.StatusOK},
		{srv.AdminAddr(), "/debug/pprof/goroutine?debug=2", http.StatusNotFound},
		{srv.PprofAddr(), "/debug/pprof/goroutine?debug=1", http.StatusOK},
		{srv.PprofAddr(), "/metrics", http.StatusNotFound},
	} {
		if got := get(c.addr, c.path); got != c.want {
			t.Errorf("GET %s%s = %d, want %d", c.addr, c.path, got, c.want)
		}
	}
}

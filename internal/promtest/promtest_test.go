package promtest

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// config writes a minimal Prometheus config.
func config(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(p, []byte("global:\n  scrape_interval: 1h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// taken is a loopback address this test listens on, so nothing else can
// bind it.
func taken(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// picker hands out addrs in order, then free ones, and counts its calls.
type picker struct {
	addrs []string
	calls int
}

func (p *picker) pick() (string, error) {
	p.calls++
	if p.calls <= len(p.addrs) {
		return p.addrs[p.calls-1], nil
	}
	return freeAddr()
}

func promArgs(t *testing.T, cfg string) func(string) []string {
	return func(addr string) []string {
		return []string{"--config.file=" + cfg, "--storage.tsdb.path=" + t.TempDir(), "--web.listen-address=" + addr}
	}
}

func TestStartPrometheus(t *testing.T) {
	d := StartPrometheus(t, config(t), "--log.level=warn")
	resp, err := http.Get(d.URL + "/api/v1/status/buildinfo")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || d.URL != "http://"+d.Addr {
		t.Fatalf("GET %s/api/v1/status/buildinfo: %s", d.URL, resp.Status)
	}
}

func TestStartAlertmanager(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: none\nreceivers:\n  - name: none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := StartAlertmanager(t, cfg)
	resp, err := http.Get(d.URL + "/api/v2/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/api/v2/status: %s", d.URL, resp.Status)
	}
}

// A port taken between the pick and the bind costs an attempt, not the
// test.
func TestRetriesATakenPort(t *testing.T) {
	bin := Binary(t, "prometheus")
	held := taken(t)
	p := &picker{addrs: []string{held}}
	d, err := start(t, bin, promArgs(t, config(t)), p.pick)
	if err != nil {
		t.Fatal(err)
	}
	if p.calls != 2 || d.Addr == held {
		t.Fatalf("%d picks, up on %s (held %s); want up on the second pick", p.calls, d.Addr, held)
	}
	resp, err := http.Get(d.URL + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /-/ready: %s", resp.Status)
	}
}

// The retries are bounded.
func TestGivesUpAfterAttempts(t *testing.T) {
	bin := Binary(t, "prometheus")
	held := taken(t)
	p := &picker{addrs: []string{held, held, held, held}}
	_, err := start(t, bin, promArgs(t, config(t)), p.pick)
	if !errors.Is(err, errExited) || !strings.Contains(err.Error(), "address already in use") || p.calls != attempts {
		t.Fatalf("%d picks, error %v; want %d, each address already in use", p.calls, err, attempts)
	}
}

// A daemon that exits for another reason is not retried: the error has
// its log.
func TestOtherExitFails(t *testing.T) {
	bin := Binary(t, "prometheus")
	p := &picker{}
	missing := filepath.Join(t.TempDir(), "missing.yml")
	_, err := start(t, bin, promArgs(t, missing), p.pick)
	if !errors.Is(err, errExited) || !strings.Contains(err.Error(), "missing.yml") || p.calls != 1 {
		t.Fatalf("%d picks, error %v; want 1, exited naming missing.yml", p.calls, err)
	}
}

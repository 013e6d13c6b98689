package profiler_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/bearer"
	"github.com/stackwatch/stackwatch/sidecar/profiler"
)

// needBinary returns the path of a binary the test needs. Outside CI a
// missing binary skips the test; in CI (CI=true) it fails it.
func needBinary(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found in CI: %v (install the Debian package)", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return path
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestAlertmanagerWebhook runs a real Alertmanager whose webhook receiver
// is the sidecar (with its bearer token), fires an alert for this service
// through Alertmanager's API, and waits for the dump it triggers.
func TestAlertmanagerWebhook(t *testing.T) {
	am := needBinary(t, "prometheus-alertmanager")
	tg := startTarget(t, 3)
	const tok = "alertmanager-token-0123456789"
	sc := newSidecar(t, profiler.Config{Target: tg.URL, Interval: time.Hour, KeepEvery: -1, Auth: bearer.Middleware(tok)}, true)

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(tok), 0o600)
	cfg := fmt.Sprintf(`route:
  receiver: sidecar
  group_by: [alertname, service]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: sidecar
    webhook_configs:
      - url: %s/api/v1/alertmanager
        send_resolved: false
        http_config:
          authorization:
            credentials_file: %s
`, sc.URL, tokenFile)
	cfgFile := filepath.Join(dir, "alertmanager.yml")
	os.WriteFile(cfgFile, []byte(cfg), 0o600)
	listen := freePort(t)
	cmd := exec.Command(am, "--config.file="+cfgFile, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--cluster.listen-address=")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("alertmanager log:\n%s", logs.String())
		}
	})
	waitFor(t, 15*time.Second, func() bool {
		resp, err := http.Get("http://" + listen + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	post := func(service string) {
		body := fmt.Sprintf(`[{"labels":{"alertname":"StackwatchGoroutineLeak","%s":%q},"startsAt":%q}]`,
			metrics.LabelService, service, time.Now().UTC().Format(time.RFC3339))
		resp, err := http.Post("http://"+listen+"/api/v2/alerts", "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST alert: %s", resp.Status)
		}
	}
	post("goldenclover") // another service's alert: no dump here
	post("wilddiggr")
	waitFor(t, 20*time.Second, func() bool {
		return gauge(t, sc, metrics.DumpsCaptured, metrics.LabelTrigger, profiler.TriggerAlert) == 1
	})
	l := sc.Store().List()
	if len(l) != 1 || l[0].Trigger != profiler.TriggerAlert || l[0].Service != "wilddiggr" ||
		!bytes.Contains([]byte(l[0].Reason), []byte("StackwatchGoroutineLeak")) {
		t.Errorf("dumps %+v", l)
	}
}

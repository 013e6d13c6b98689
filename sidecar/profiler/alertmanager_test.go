package profiler_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/internal/promtest"
	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/bearer"
	"github.com/stackwatch/stackwatch/sidecar/profiler"
)

// TestAlertmanagerWebhook runs a real Alertmanager whose webhook receiver
// is the sidecar (with its bearer token), fires an alert for this service
// through Alertmanager's API, and waits for the dump it triggers.
func TestAlertmanagerWebhook(t *testing.T) {
	promtest.Binary(t, "prometheus-alertmanager") // skip (in CI, fail) before the sidecar starts
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
	listen := promtest.StartAlertmanager(t, cfgFile).Addr // logs its tail if the test fails

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

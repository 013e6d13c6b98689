package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/internal/promtest"
	"github.com/stackwatch/stackwatch/metrics"
)

// TestRealPrometheusScrapes runs the real Prometheus against a live sidecar
// and checks that what it stores is what the sidecar counted, with the
// service label, and that promtool finds the exposition clean.
func TestRealPrometheusScrapes(t *testing.T) {
	promtest.Binary(t, "prometheus") // skip (in CI, fail) before the sidecar starts
	promtool := promtest.Binary(t, "promtool")

	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	w := recorder(logDir, true)
	for range 4 {
		w.crash(t, 0)
	}
	w.crash(t, 1)
	s, err := New(Config{Service: "wilddiggr", LogDir: logDir, DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	defer func() { cancel(); <-done }()
	target := ln.Addr().String()

	// promtool lints the exposition as served.
	r, err := http.Get("http://" + target + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := new(bytes.Buffer)
	body.ReadFrom(r.Body)
	r.Body.Close()
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = bytes.NewReader(body.Bytes())
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}

	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sidecar\n    static_configs:\n      - targets: [%q]\n        labels: {service: wilddiggr}\n", target)
	os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644)
	prom := promtest.StartPrometheus(t, filepath.Join(dir, "prometheus.yml")) // logs its tail if the test fails

	query := fmt.Sprintf(`sum by (service, kind, crash_site) (%s)`, metrics.Panics.Name)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := promQuery(t, prom.Addr, query)
		if len(got) == 2 {
			want := map[string]float64{"nil_dereference/sidecar.writeTo": 4, "index_out_of_range/sidecar.settle": 1}
			for _, res := range got {
				k := res.Metric["kind"] + "/" + res.Metric["crash_site"]
				if res.Metric["service"] != "wilddiggr" || res.Value != want[k] {
					t.Fatalf("prometheus has %v = %v", res.Metric, res.Value)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus never had the panics (got %v)", got)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

type promResult struct {
	Metric map[string]string
	Value  float64
}

// promQuery runs an instant query; errors (Prometheus still starting) give nil.
func promQuery(t *testing.T, addr, q string) []promResult {
	t.Helper()
	r, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil
	}
	defer r.Body.Close()
	var resp struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(r.Body).Decode(&resp) != nil {
		return nil
	}
	var out []promResult
	for _, res := range resp.Data.Result {
		var v float64
		if s, ok := res.Value[1].(string); ok {
			fmt.Sscan(s, &v)
		}
		out = append(out, promResult{Metric: res.Metric, Value: v})
	}
	return out
}

package analyze

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/stackwatch/stackwatch/internal/promtest"
)

// TestPrometheusGoroutineCount runs the installed Prometheus, a program
// nobody here wrote, and checks that analyze counts its goroutines exactly,
// from its debug=2 dump and from its profile, and finds no crash in them.
//
// Goroutines come and go, so the count is made exact by a sandwich: the
// runtime's own total (the debug=1 header) is read before and after the
// dump and the profile, all over one keep-alive connection so that every
// request sees the same serving goroutines. Only a sandwich whose two
// totals agree is judged; the state may move between sandwiches, never
// within one unseen.
func TestPrometheusGoroutineCount(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := promtest.StartPrometheus(t, cfg, "--log.level=error").Addr
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	get := func(path string) []byte {
		t.Helper()
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		return b
	}
	total := regexp.MustCompile(`(?m)^goroutine profile: total (\d+)$`)
	runtimeTotal := func() int {
		m := total.FindSubmatch(get("/debug/pprof/goroutine?debug=1"))
		if m == nil {
			t.Fatal("no total in the debug=1 profile")
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	judged := 0
	for attempt := 0; attempt < 10 && judged < 3; attempt++ {
		before := runtimeTotal()
		dump := get("/debug/pprof/goroutine?debug=2")
		prof := get("/debug/pprof/goroutine")
		after := runtimeTotal()
		if before != after {
			continue // Prometheus did something in between: not judged
		}
		judged++
		d2 := filepath.Join(dir, fmt.Sprintf("dump%d.txt", attempt))
		pb := filepath.Join(dir, fmt.Sprintf("profile%d.pb.gz", attempt))
		os.WriteFile(d2, dump, 0o644)
		os.WriteFile(pb, prof, 0o644)
		var out bytes.Buffer
		if err := Run(context.Background(), []string{"-json", d2, pb}, nil, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		var rep Report
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.Groups) != 0 || len(rep.Failures) != 0 || len(rep.Profiles) != 2 {
			t.Fatalf("groups %+v, failures %v, %d profiles: Prometheus's dump is not a crash", rep.Groups, rep.Failures, len(rep.Profiles))
		}
		t.Logf("runtime total %d; analyze: %s %d, %s %d", before, filepath.Base(rep.Profiles[0].File), rep.Profiles[0].Result.Total,
			filepath.Base(rep.Profiles[1].File), rep.Profiles[1].Result.Total)
		for _, p := range rep.Profiles {
			if p.Result.Total != before {
				t.Errorf("%s: analyze counts %d goroutines, the runtime %d", filepath.Base(p.File), p.Result.Total, before)
			}
		}
	}
	if judged == 0 {
		t.Fatal("Prometheus's goroutine count never held still across a sandwich")
	}
	t.Logf("%d sandwiches judged", judged)
}

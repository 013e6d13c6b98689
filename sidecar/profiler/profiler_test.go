package profiler_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/bearer"
	"github.com/stackwatch/stackwatch/sidecar/dumps"
	"github.com/stackwatch/stackwatch/sidecar/goroutines"
	"github.com/stackwatch/stackwatch/sidecar/leak"
	"github.com/stackwatch/stackwatch/sidecar/profiler"
)

// gauge reads one series of a family from the registry (with the service
// label the wrapper adds).
func gauge(t *testing.T, sc *sidecar, m metrics.Metric, labels ...string) float64 {
	t.Helper()
	mfs, err := sc.Reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != m.Name {
			continue
		}
	series:
		for _, s := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range s.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			if _, ok := have[metrics.LabelService]; ok {
				t.Fatalf("%s series with an exporter-set service label: %v", m.Name, have)
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			switch {
			case s.Gauge != nil:
				return s.Gauge.GetValue()
			case s.Counter != nil:
				return s.Counter.GetValue()
			case s.Histogram != nil:
				return float64(s.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

func TestScrapeFindsBlockedSuspect(t *testing.T) {
	tg := startTarget(t, 60)
	sc := newSidecar(t, profiler.Config{Target: tg.URL, Interval: time.Hour, KeepEvery: -1,
		Leak: leak.Config{BlockedThreshold: 50}}, false)
	if err := sc.Scrape(t.Context()); err != nil {
		t.Fatal(err)
	}
	var st profiler.Status
	if code := getJSON(t, sc.URL+"/api/v1/leaks", &st); code != 200 {
		t.Fatalf("leaks: %d", code)
	}
	if len(st.Suspects) != 1 {
		t.Fatalf("suspects %+v", st.Suspects)
	}
	s := st.Suspects[0]
	wantLine := lineOf(t, "helpers_test.go", "target:send")
	if !strings.HasSuffix(s.Location.Function, "profiler_test.blockedAtSend") || s.Location.Line != wantLine ||
		s.Count != 60 || !s.Has(metrics.SignalBlocked) || s.Wait != goroutines.WaitChanSend {
		t.Errorf("suspect %+v, want blockedAtSend at line %d ×60", s, wantLine)
	}
	// This test binary is not built with the goroutineleak experiment, so the
	// target answers 404: reported as not available, and not as an error.
	if st.LeakProfile != "not available" || st.LastError != "" {
		t.Errorf("leak profile %q, last error %q", st.LeakProfile, st.LastError)
	}
	if v := gauge(t, sc, metrics.GoroutineLeakProfileAvailable); v != 0 {
		t.Errorf("goroutineleak available = %v", v)
	}
	for _, r := range []string{profiler.ReasonStatus, profiler.ReasonUnreachable} {
		if v := gauge(t, sc, metrics.ScrapeErrors, metrics.LabelReason, r); v != 0 {
			t.Errorf("scrape errors %s = %v after a clean scrape", r, v)
		}
	}
	if v := gauge(t, sc, metrics.LeakSuspects, metrics.LabelLocation, s.Label(), metrics.LabelSignal, metrics.SignalBlocked); v != 60 {
		t.Errorf("leak suspects gauge = %v, want 60", v)
	}
	if v := gauge(t, sc, metrics.Goroutines); v < 60 || int(v) != st.Goroutines {
		t.Errorf("goroutines gauge %v, status %d", v, st.Goroutines)
	}
	if v := gauge(t, sc, metrics.ScrapeDuration, metrics.LabelProfile, profiler.ProfileGoroutine); v != 1 {
		t.Errorf("scrape duration count %v", v)
	}
	problems, err := testutil.GatherAndLint(sc.Reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %+v", err, problems)
	}
}

func TestRuntimeLeakProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a target with GOEXPERIMENT=goroutineleakprofile")
	}
	target := buildLeakTarget(t, 25)
	sc := newSidecar(t, profiler.Config{Target: target, Interval: time.Hour, KeepEvery: -1}, false)
	if err := sc.Scrape(t.Context()); err != nil {
		t.Fatal(err)
	}
	st := sc.Status()
	if st.LeakProfile != "available" || st.Leaked < 25 {
		t.Fatalf("leak profile %q, leaked %d, want available and ≥25", st.LeakProfile, st.Leaked)
	}
	var found *leak.Suspect
	for i, s := range st.Suspects {
		if s.Location.Function == "main.lostResponse" {
			found = &st.Suspects[i]
		}
	}
	if found == nil || !found.Has(metrics.SignalRuntime) || found.Leaked != 25 ||
		found.Location.Line != lineOf(t, "testdata/leaktarget/main.go", "leaktarget:send") {
		t.Fatalf("runtime suspect %+v in %+v", found, st.Suspects)
	}
	if v := gauge(t, sc, metrics.GoroutinesLeaked); v != 25 {
		t.Errorf("goroutines leaked gauge %v", v)
	}
	if v := gauge(t, sc, metrics.GoroutineLeakProfileAvailable); v != 1 {
		t.Errorf("available gauge %v", v)
	}
	if v := gauge(t, sc, metrics.LeakSuspects, metrics.LabelLocation, found.Label(), metrics.LabelSignal, metrics.SignalRuntime); v != 25 {
		t.Errorf("runtime suspects gauge %v", v)
	}

	// Every 2nd scrape only: scrapes 1 and 3 fetch it, scrape 2 reuses the
	// last answer, so the runtime signal does not flicker.
	sc2 := newSidecar(t, profiler.Config{Target: target, Interval: time.Hour, KeepEvery: -1, LeakProfileEvery: 2}, false)
	for i := 1; i <= 3; i++ {
		if err := sc2.Scrape(t.Context()); err != nil {
			t.Fatal(err)
		}
		if st := sc2.Status(); st.Leaked != 25 || len(st.Suspects) == 0 || !st.Suspects[0].Has(metrics.SignalRuntime) {
			t.Errorf("scrape %d: leaked %d, suspects %+v", i, st.Leaked, st.Suspects)
		}
	}
	if v := gauge(t, sc2, metrics.ScrapeDuration, metrics.LabelProfile, profiler.ProfileGoroutineLeak); v != 2 {
		t.Errorf("goroutineleak fetched %v times in 3 scrapes, want 2", v)
	}
	sc3 := newSidecar(t, profiler.Config{Target: target, Interval: time.Hour, KeepEvery: -1, LeakProfileEvery: -1}, false)
	sc3.Scrape(t.Context())
	if st := sc3.Status(); st.LeakProfile != "disabled" || st.Leaked != 0 {
		t.Errorf("disabled: %q leaked %d", st.LeakProfile, st.Leaked)
	}
}

func TestDumpsAPI(t *testing.T) {
	tg := startTarget(t, 10)
	sc := newSidecar(t, profiler.Config{Target: tg.URL, Interval: time.Hour, KeepEvery: -1}, false)

	code, body := do(t, http.MethodPost, sc.URL+"/api/v1/dumps", "", strings.NewReader(`{"reason":"early"}`))
	if code != http.StatusCreated {
		t.Fatalf("POST dumps: %d %s", code, body)
	}
	var early dumps.Meta
	json.Unmarshal(body, &early)
	tg.park(t, 15)
	code, body = do(t, http.MethodPost, sc.URL+"/api/v1/dumps", "", nil)
	if code != http.StatusCreated {
		t.Fatalf("POST dumps: %d %s", code, body)
	}
	var late dumps.Meta
	json.Unmarshal(body, &late)
	if early.Trigger != profiler.TriggerManual || early.Reason != "early" || late.Goroutines <= early.Goroutines {
		t.Errorf("metas %+v %+v", early, late)
	}

	var list profiler.DumpList
	getJSON(t, sc.URL+"/api/v1/dumps", &list)
	if len(list.Dumps) != 2 || list.Dumps[0].ID != late.ID || list.Service != "wilddiggr" {
		t.Fatalf("list %+v", list)
	}

	// The raw dump opens in go tool pprof as is.
	code, raw := do(t, http.MethodGet, sc.URL+"/api/v1/dumps/"+early.ID, "", nil)
	if code != 200 || int64(len(raw)) != early.Bytes {
		t.Fatalf("raw: %d, %d bytes", code, len(raw))
	}
	file := filepath.Join(t.TempDir(), "early.pb.gz")
	os.WriteFile(file, raw, 0o600)
	out, err := exec.Command("go", "tool", "pprof", "-top", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "profiler_test.blockedAtSend") {
		t.Errorf("go tool pprof -top: %v\n%s", err, out)
	}

	var groups profiler.GroupsResponse
	if code := getJSON(t, sc.URL+"/api/v1/dumps/"+late.ID+"/groups", &groups); code != 200 || groups.Total != late.Goroutines {
		t.Fatalf("groups: %d total %d", code, groups.Total)
	}

	var diff profiler.DiffResponse
	if code := getJSON(t, sc.URL+"/api/v1/dumps/"+late.ID+"/diff?base="+early.ID, &diff); code != 200 || len(diff.Changes) == 0 {
		t.Fatalf("diff: %d %+v", code, diff)
	}
	top := diff.Changes[0]
	if !strings.HasSuffix(top.Location.Function, "blockedAtSend") || top.Delta != 15 || top.Base != 10 || top.Count != 25 {
		t.Errorf("top change %+v, want blockedAtSend 10 → 25", top)
	}
	if v := gauge(t, sc, metrics.Dumps); v != 2 {
		t.Errorf("dumps gauge %v", v)
	}
	if v := gauge(t, sc, metrics.DumpsCaptured, metrics.LabelTrigger, profiler.TriggerManual); v != 2 {
		t.Errorf("captured{manual} %v", v)
	}

	// Bad ids never reach the file system.
	for path, want := range map[string]int{
		"/api/v1/dumps/..%2F..%2Fetc%2Fpasswd":                   http.StatusBadRequest,
		"/api/v1/dumps/" + early.ID + ".json":                    http.StatusBadRequest,
		"/api/v1/dumps/%2Fetc%2Fpasswd/groups":                   http.StatusBadRequest,
		"/api/v1/dumps/20990101T000000.000000000Z-000000":        http.StatusNotFound,
		"/api/v1/dumps/" + late.ID + "/diff":                     http.StatusBadRequest,
		"/api/v1/dumps/" + late.ID + "/diff?base=../../x":        http.StatusBadRequest,
		"/api/v1/dumps/" + late.ID + "/diff?base=" + late.ID[:5]: http.StatusBadRequest,
	} {
		code, body := do(t, http.MethodGet, sc.URL+path, "", nil)
		if code != want || !bytes.Contains(body, []byte(`"error"`)) {
			t.Errorf("GET %s: %d %s, want %d", path, code, body, want)
		}
	}
	// Oversize and malformed bodies.
	big := `{"reason":"` + strings.Repeat("x", 2<<20) + `"}`
	if code, _ := do(t, http.MethodPost, sc.URL+"/api/v1/dumps", "", strings.NewReader(big)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB body: %d", code)
	}
	if code, _ := do(t, http.MethodPost, sc.URL+"/api/v1/dumps", "", strings.NewReader("{")); code != http.StatusBadRequest {
		t.Errorf("bad JSON: %d", code)
	}

	// debug=2 on request.
	code, stacks := do(t, http.MethodGet, sc.URL+"/api/v1/stacks", "", nil)
	if code != 200 || !bytes.Contains(stacks, []byte("[chan send]")) {
		t.Errorf("stacks: %d %.200s", code, stacks)
	}
}

func TestAuth(t *testing.T) {
	tg := startTarget(t, 0)
	const tok = "0123456789abcdef-token"
	sc := newSidecar(t, profiler.Config{Target: tg.URL, Interval: time.Hour, KeepEvery: -1, Auth: bearer.Middleware(tok)}, false)
	for _, path := range []string{"/api/v1/dumps", "/api/v1/leaks", "/api/v1/stacks", "/api/v1/dumps/20990101T000000.000000000Z-000000"} {
		if code, _ := do(t, http.MethodGet, sc.URL+path, "", nil); code != http.StatusUnauthorized {
			t.Errorf("%s without token: %d", path, code)
		}
		if code, _ := do(t, http.MethodGet, sc.URL+path, "wrong-token-0123456789", nil); code != http.StatusUnauthorized {
			t.Errorf("%s with wrong token: %d", path, code)
		}
	}
	if code, _ := do(t, http.MethodPost, sc.URL+"/api/v1/dumps", "", nil); code != http.StatusUnauthorized {
		t.Errorf("POST without token: %d", code)
	}
	if code, _ := do(t, http.MethodPost, sc.URL+"/api/v1/alertmanager", "", strings.NewReader("{}")); code != http.StatusUnauthorized {
		t.Errorf("webhook without token: %d", code)
	}
	if c, _ := sc.Store().Usage(); c != 0 {
		t.Errorf("unauthenticated POST captured %d dumps", c)
	}
	if code, _ := do(t, http.MethodGet, sc.URL+"/api/v1/dumps", tok, nil); code != http.StatusOK {
		t.Errorf("with token: %d", code)
	}
}

// badTarget serves /debug/pprof/goroutine with h.
func badTarget(t *testing.T, h http.HandlerFunc) string {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/goroutine", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestBadTargets(t *testing.T) {
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(make([]byte, 16<<20))
	zw.Close()
	bomb := zipped.Bytes()
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	dead := httptest.NewServer(nil)
	deadURL := dead.URL
	dead.Close()
	for _, c := range []struct {
		name, target, reason string
		timeout              time.Duration // default 300ms
	}{
		{"down", deadURL, profiler.ReasonUnreachable, 0},
		{"slow", badTarget(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}), profiler.ReasonTimeout, 0},
		{"slow body", badTarget(t, func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte{0x1f, 0x8b})
			w.(http.Flusher).Flush()
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}), profiler.ReasonTimeout, 0},
		{"50 MB", badTarget(t, func(w http.ResponseWriter, r *http.Request) {
			chunk := bytes.Repeat([]byte("x"), 1<<20)
			for range 50 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}), profiler.ReasonTooLarge, 5 * time.Second},
		{"50 MB declared", badTarget(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(50<<20))
			w.Write([]byte("x"))
		}), profiler.ReasonTooLarge, 0},
		{"garbage", badTarget(t, func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("<html>this is not a profile</html>"))
		}), profiler.ReasonMalformed, 0},
		{"gzip bomb", badTarget(t, func(w http.ResponseWriter, r *http.Request) {
			w.Write(bomb) // 16 KiB on the wire, 16 MiB inflated
		}), profiler.ReasonTooLarge, 0},
		{"gzip garbage", badTarget(t, func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte{0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5})
		}), profiler.ReasonMalformed, 0},
		{"500", badTarget(t, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "boom", http.StatusInternalServerError)
		}), profiler.ReasonStatus, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.timeout == 0 {
				c.timeout = 300 * time.Millisecond
			}
			sc := newSidecar(t, profiler.Config{Target: c.target, Interval: time.Hour,
				Timeout: c.timeout, MaxProfileBytes: 8 << 20, KeepEvery: 1}, false)
			for range 2 {
				var se *profiler.ScrapeError
				if err := sc.Scrape(t.Context()); !errors.As(err, &se) || se.Reason != c.reason {
					t.Fatalf("scrape: %v, want a %s error", err, c.reason)
				}
			}
			if v := gauge(t, sc, metrics.ScrapeErrors, metrics.LabelReason, c.reason); v != 2 {
				t.Errorf("scrape errors %s = %v after 2 failed scrapes", c.reason, v)
			}
			// It keeps serving, says what is wrong, and stores nothing.
			var st profiler.Status
			if code := getJSON(t, sc.URL+"/api/v1/leaks", &st); code != 200 || !strings.Contains(st.LastError, c.reason) {
				t.Errorf("leaks: %d, last error %q", code, st.LastError)
			}
			code, body := do(t, http.MethodPost, sc.URL+"/api/v1/dumps", "", nil)
			if code != http.StatusBadGateway && code != http.StatusGatewayTimeout {
				t.Errorf("POST dumps against a bad target: %d %s", code, body)
			}
			if n, _ := sc.Store().Usage(); n != 0 {
				t.Errorf("%d dumps stored from a bad target", n)
			}
			for _, other := range []string{profiler.ReasonUnreachable, profiler.ReasonTimeout, profiler.ReasonTooLarge, profiler.ReasonMalformed, profiler.ReasonStatus} {
				if other != c.reason && gauge(t, sc, metrics.ScrapeErrors, metrics.LabelReason, other) != 0 {
					t.Errorf("also counted as %s", other)
				}
			}
		})
	}
}

func TestFullDataDir(t *testing.T) {
	tg := startTarget(t, 5)
	// Ring too small for one profile: the ring's byte cap is the "disk".
	sc := newSidecar(t, profiler.Config{Target: tg.URL, Interval: time.Hour, KeepEvery: -1, Dumps: dumps.Limits{MaxBytes: 512}}, false)
	code, body := do(t, http.MethodPost, sc.URL+"/api/v1/dumps", "", nil)
	if code != http.StatusInsufficientStorage || !bytes.Contains(body, []byte("larger than the ring")) {
		t.Errorf("over the ring cap: %d %s", code, body)
	}
	// The dumps directory replaced by a file: every write fails (root
	// ignores read-only permissions, so a read-only dir proves nothing here).
	dir := t.TempDir()
	sc2 := newSidecar(t, profiler.Config{Target: tg.URL, DataDir: dir, Interval: time.Hour, KeepEvery: 1}, false)
	os.RemoveAll(filepath.Join(dir, "dumps"))
	os.WriteFile(filepath.Join(dir, "dumps"), nil, 0o600)
	code, body = do(t, http.MethodPost, sc2.URL+"/api/v1/dumps", "", nil)
	if code != http.StatusInternalServerError || !bytes.Contains(body, []byte("not a directory")) {
		t.Errorf("unwritable ring: %d %s", code, body)
	}
	// Scraping and the API carry on.
	if err := sc2.Scrape(t.Context()); err != nil {
		t.Errorf("scrape with an unwritable ring: %v", err)
	}
	var st profiler.Status
	if code := getJSON(t, sc2.URL+"/api/v1/leaks", &st); code != 200 || st.Goroutines < 5 {
		t.Errorf("leaks after failed writes: %d %+v", code, st)
	}
}

// TestTriggers runs every capture trigger against a real target over TCP.
func TestTriggers(t *testing.T) {
	tg := startTarget(t, 20)
	sc := newSidecar(t, profiler.Config{Target: tg.URL, Interval: time.Hour, KeepEvery: 3,
		GoroutineThreshold: 1 << 20, PanicBurst: 3, PanicWindow: time.Minute, Cooldown: time.Hour}, true)
	waitFor(t, 5*time.Second, func() bool { n, _ := sc.Store().Usage(); return n == 1 }) // scrape 1 kept
	// Scrapes 2..5: only the 4th is kept.
	for range 4 {
		if err := sc.Scrape(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if v := gauge(t, sc, metrics.DumpsCaptured, metrics.LabelTrigger, profiler.TriggerSchedule); v != 2 {
		t.Errorf("schedule dumps %v, want 2 of 5 scrapes", v)
	}

	sc.OnPanics(1)
	sc.OnPanics(1)
	if v := gauge(t, sc, metrics.DumpsCaptured, metrics.LabelTrigger, profiler.TriggerPanics); v != 0 {
		t.Fatalf("2 panics triggered a dump")
	}
	sc.OnPanics(1)
	waitFor(t, 5*time.Second, func() bool {
		return gauge(t, sc, metrics.DumpsCaptured, metrics.LabelTrigger, profiler.TriggerPanics) == 1
	})
	// The window and cooldowns are timed in TestPanicTriggerInBubble.
	list := sc.Store().List()
	if list[0].Trigger != profiler.TriggerPanics || !strings.Contains(list[0].Reason, "3 panics") || list[0].Service != "wilddiggr" {
		t.Errorf("newest dump %+v", list[0])
	}

	// Alertmanager's webhook: only firing alerts for this service count.
	hook := func(service, status string) string {
		return fmt.Sprintf(`{"version":"4","status":%q,"receiver":"sidecar","alerts":[{"status":%q,
			"labels":{"alertname":"GoroutineLeak","service":%q},"startsAt":"2026-11-26T04:00:00Z"}]}`, status, status, service)
	}
	for _, c := range []struct{ service, status string }{{"goldenclover", "firing"}, {"wilddiggr", "resolved"}} {
		code, body := do(t, http.MethodPost, sc.URL+"/api/v1/alertmanager", "", strings.NewReader(hook(c.service, c.status)))
		if code != 200 || !bytes.Contains(body, []byte(`"queued": false`)) {
			t.Errorf("%s %s: %d %s", c.service, c.status, code, body)
		}
	}
	code, body := do(t, http.MethodPost, sc.URL+"/api/v1/alertmanager", "", strings.NewReader(hook("wilddiggr", "firing")))
	if code != 200 || !bytes.Contains(body, []byte(`"queued": true`)) {
		t.Errorf("matching alert: %d %s", code, body)
	}
	waitFor(t, 5*time.Second, func() bool {
		return gauge(t, sc, metrics.DumpsCaptured, metrics.LabelTrigger, profiler.TriggerAlert) == 1
	})
	if code, _ := do(t, http.MethodPost, sc.URL+"/api/v1/alertmanager", "", strings.NewReader("not json")); code != http.StatusBadRequest {
		t.Errorf("garbage webhook: %d", code)
	}
	huge := `{"alerts":[{"labels":{"x":"` + strings.Repeat("x", 2<<20) + `"}}]}`
	if code, _ := do(t, http.MethodPost, sc.URL+"/api/v1/alertmanager", "", strings.NewReader(huge)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB webhook: %d", code)
	}
	// A gzip-encoded body is read as sent, never inflated.
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write([]byte(`{"alerts":[` + strings.Repeat(`{},`, 1<<20) + `{}]}`))
	zw.Close()
	req, _ := http.NewRequest(http.MethodPost, sc.URL+"/api/v1/alertmanager", &bomb)
	req.Header.Set("Content-Encoding", "gzip")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("gzipped webhook: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}
}

func TestThresholdTrigger(t *testing.T) {
	tg := startTarget(t, 0)
	sc := newSidecar(t, profiler.Config{Target: tg.URL, Interval: time.Hour, KeepEvery: -1}, false)
	if err := sc.Scrape(t.Context()); err != nil {
		t.Fatal(err)
	}
	base := sc.Status().Goroutines
	sc2 := newSidecar(t, profiler.Config{Target: tg.URL, Interval: time.Hour, KeepEvery: -1, GoroutineThreshold: base + 30}, false)
	sc2.Scrape(t.Context())
	tg.park(t, 40)
	sc2.Scrape(t.Context())
	sc2.Scrape(t.Context()) // still above: one dump per excursion
	if v := gauge(t, sc2, metrics.DumpsCaptured, metrics.LabelTrigger, profiler.TriggerThreshold); v != 1 {
		t.Errorf("threshold dumps %v, want 1", v)
	}
	if l := sc2.Store().List(); len(l) != 1 || l[0].Goroutines < base+30 || !strings.Contains(l[0].Reason, "threshold") {
		t.Errorf("threshold dump %+v", l)
	}
}

//go:noinline
func blockedAtRecv(ch chan int) { <-ch }

// TestSuspectCardinality: past LeakTopN locations per signal, the rest are
// summed into location="other".
func TestSuspectCardinality(t *testing.T) {
	tg := startTarget(t, 30)
	ch := make(chan int)
	done := make(chan struct{})
	for range 12 {
		go func() { blockedAtRecv(ch); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		close(ch)
		for range 12 {
			<-done
		}
	})
	waitFor(t, 10*time.Second, func() bool { return countInDebug2("profiler_test.blockedAtRecv(") == 12 })
	sc := newSidecar(t, profiler.Config{Target: tg.URL, Interval: time.Hour, KeepEvery: -1, LeakTopN: 1,
		Leak: leak.Config{BlockedThreshold: 10}}, false)
	if err := sc.Scrape(t.Context()); err != nil {
		t.Fatal(err)
	}
	st := sc.Status()
	if len(st.Suspects) != 2 || st.Suspects[0].Count != 30 || st.Suspects[1].Count != 12 {
		t.Fatalf("suspects %+v", st.Suspects)
	}
	if v := gauge(t, sc, metrics.LeakSuspects, metrics.LabelLocation, st.Suspects[0].Label(), metrics.LabelSignal, metrics.SignalBlocked); v != 30 {
		t.Errorf("top location gauge %v", v)
	}
	if v := gauge(t, sc, metrics.LeakSuspects, metrics.LabelLocation, metrics.OtherCrashSite, metrics.LabelSignal, metrics.SignalBlocked); v != 12 {
		t.Errorf("other gauge %v, want 12", v)
	}
	if v := gauge(t, sc, metrics.LeakSuspects, metrics.LabelLocation, st.Suspects[1].Label(), metrics.LabelSignal, metrics.SignalBlocked); v != -1 {
		t.Errorf("second location has its own series (%v) beyond LeakTopN=1", v)
	}
}

// TestUIAccessors reads what the developer UI shows through the Go
// methods: the scrape history, current groups, suspects, dumps, a diff,
// and on-demand requests one at a time.
func TestUIAccessors(t *testing.T) {
	tg := startTarget(t, 60)
	sc := newSidecar(t, profiler.Config{Target: tg.URL, Interval: time.Hour, KeepEvery: -1, HistoryLen: 3,
		Leak: leak.Config{BlockedThreshold: 50}}, false)
	if sc.Goroutines() != nil || len(sc.History()) != 0 {
		t.Fatal("state before the first scrape")
	}
	ctx := t.Context()
	base, err := sc.CaptureNow(ctx, "before")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if i > 0 {
			tg.park(t, 10)
		}
		if err := sc.Scrape(ctx); err != nil {
			t.Fatal(err)
		}
	}
	h := sc.History()
	if len(h) != 3 {
		t.Fatalf("history holds %d scrapes, want HistoryLen 3", len(h))
	}
	label := sc.Status().Suspects[0].Label()
	for i, want := range []int{70, 80, 90} { // the first scrape (60) was dropped
		if h[i].Suspects[label] != want || (i > 0 && !h[i].Time.After(h[i-1].Time)) {
			t.Errorf("sample %d: %v at %s, want %d", i, h[i].Suspects, h[i].Time, want)
		}
	}
	cur := sc.Goroutines()
	if h[2].Goroutines != cur.Total || cur.Groups[0].Count != 90 || cur.Groups[0].Location.Function != sc.Status().Suspects[0].Location.Function {
		t.Errorf("current groups: total %d (history %d), largest %+v", cur.Total, h[2].Goroutines, cur.Groups[0])
	}
	if sc.Leaked() != nil {
		t.Error("Leaked from a target without the goroutineleak profile")
	}

	late, err := sc.CaptureNow(ctx, "after")
	if err != nil {
		t.Fatal(err)
	}
	if l := sc.Store().List(); len(l) != 2 || l[0].ID != late.ID || l[0].Goroutines != late.Goroutines || l[1].Reason != "before" {
		t.Errorf("dump list %+v", l)
	}
	d, err := sc.DiffDumps(base.ID, late.ID)
	if err != nil || len(d.Changes) == 0 || d.Changes[0].Delta != 30 || d.Base.ID != base.ID {
		t.Fatalf("diff: %v %+v", err, d)
	}
	if _, err := sc.DiffDumps("nope", late.ID); !errors.Is(err, dumps.ErrInvalidID) {
		t.Errorf("diff with a bad base: %v", err)
	}
	raw, m, err := sc.Store().Read(late.ID)
	if g, gerr := sc.DumpGroups(late.ID); err != nil || gerr != nil || int64(len(raw)) != m.Bytes || g.Total != late.Goroutines {
		t.Errorf("raw dump: %v %v, %d bytes of %d", err, gerr, len(raw), m.Bytes)
	}
}

// TestOnDemandOneAtATime: while one developer's capture waits on the
// target, a second capture and a debug=2 fetch are refused with ErrBusy,
// and a scheduled scrape waits its turn rather than fetching alongside.
func TestOnDemandOneAtATime(t *testing.T) {
	entered, release := make(chan string, 4), make(chan struct{})
	inner := pprofMux()
	target := badTarget(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- r.URL.String()
		<-release
		inner.ServeHTTP(w, r)
	})
	sc := newSidecar(t, profiler.Config{Target: target, Interval: time.Hour, KeepEvery: -1, LeakProfileEvery: -1}, false)
	ctx := t.Context()
	first := make(chan error, 1)
	go func() { _, err := sc.CaptureNow(ctx, "first"); first <- err }()
	<-entered
	if _, err := sc.CaptureNow(ctx, "second"); !errors.Is(err, profiler.ErrBusy) {
		t.Errorf("second capture: %v, want ErrBusy", err)
	}
	if _, err := sc.Stacks(ctx); !errors.Is(err, profiler.ErrBusy) {
		t.Errorf("stacks: %v, want ErrBusy", err)
	}
	code, _ := do(t, http.MethodPost, sc.URL+"/api/v1/dumps", "", nil)
	if code != http.StatusTooManyRequests {
		t.Errorf("POST while busy: %d", code)
	}
	scraped := make(chan error, 1)
	go func() { scraped <- sc.Scrape(ctx) }()
	// The sync point: the scrape parks waiting for the target.
	waitFor(t, 10*time.Second, func() bool { return countInDebug2("profiler.(*Profiler).acquire(") == 1 })
	if len(entered) != 0 {
		t.Errorf("scrape fetched %s while a capture held the target", <-entered)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-scraped; err != nil {
		t.Fatal(err)
	}
	if u := <-entered; u != "/debug/pprof/goroutine" {
		t.Errorf("scrape fetched %s", u)
	}
}

package report_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"

	"github.com/stackwatch/stackwatch/alerts"
	"github.com/stackwatch/stackwatch/internal/proctest"
	"github.com/stackwatch/stackwatch/internal/promtest"
	"github.com/stackwatch/stackwatch/loadgen"
	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/report"
	"github.com/stackwatch/stackwatch/sidecar"
	"github.com/stackwatch/stackwatch/sidecar/leak"
	"github.com/stackwatch/stackwatch/sidecar/profiler"
)

func TestMain(m *testing.M) { proctest.VerifyTestMain(m) }

// svc is one game service: the real game server binary, and its sidecar
// in this process, on real TCP.
type svc struct {
	name        string
	addr, admin string // the game server's listeners
	sidecar     string // base URL
	sc          *sidecar.Sidecar
	prof        *profiler.Profiler
}

// startGameServer runs cmd/gameserver, built as the Makefile builds it
// (with the runtime's goroutine leak profile), and reads its listeners
// from the {"msg":"listening"} line it logs.
func startGameServer(t *testing.T, game, logDir string, legacy bool) (addr, admin string) {
	t.Helper()
	args := []string{"-game", game, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-log-dir", logDir,
		"-data-dir", t.TempDir(), "-wallet-latency", "20ms", "-log.format", "json"}
	if legacy {
		args = append(args, "-legacy")
	}
	bin := proctest.Build(t, "../cmd/gameserver", "GOEXPERIMENT=goroutineleakprofile")
	m := proctest.Start(t, bin, args...).Listening(t, 30*time.Second)
	return m["addr"], m["admin"]
}

func startService(t *testing.T, name, game string, legacy bool) *svc {
	t.Helper()
	logDir := t.TempDir()
	addr, admin := startGameServer(t, game, logDir, legacy)
	quiet := slog.New(slog.DiscardHandler)
	sc, err := sidecar.New(sidecar.Config{Service: name, LogDir: logDir, DataDir: t.TempDir(),
		Settle: 50 * time.Millisecond, TailInterval: 50 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	prof, err := profiler.New(profiler.Config{Target: "http://" + admin, Service: name,
		DataDir: t.TempDir(), Interval: time.Second, KeepEvery: -1, PanicBurst: -1,
		// A slow machine leaks fewer reckon goroutines in the test's 12 s
		// than the default 100 that make a suspect.
		Leak: leak.Config{BlockedThreshold: 20}}, sc.Registerer(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	prof.Register(sc.Mux())
	sc.AddComponent(prof)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s sidecar: %v", name, err)
		}
	})
	return &svc{name: name, addr: addr, admin: admin, sidecar: "http://" + ln.Addr().String(), sc: sc, prof: prof}
}

// ownCount is the panics the sidecar itself counted.
func (s *svc) ownCount() int {
	n := 0
	groups, _ := s.sc.CrashGroups(0, -1)
	for _, g := range groups {
		n += g.Count
	}
	return n
}

// timeScale shrinks the generated rules' windows and for: durations
// (HighNilSessionRate's 5m become 5s), so alerts fire within the test.
const timeScale = 1.0 / 60

// writeConfig writes the generated rules on a shorter clock and a
// Prometheus config that scrapes each game server and sidecar with the
// service as a target label. It returns the config's path and
// HighNilSessionRate's for: duration.
func writeConfig(t *testing.T, services []*svc) (string, time.Duration) {
	t.Helper()
	dir := t.TempDir()
	cfg := alerts.Default()
	cfg.TimeScale = timeScale
	groups, err := alerts.Groups(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var pendingFor time.Duration
	for _, g := range groups {
		for _, r := range g.Rules {
			if r.Alert == alerts.HighNilSessionRate && r.For != nil {
				d, err := model.ParseDuration(string(*r.For))
				if err != nil {
					t.Fatal(err)
				}
				pendingFor = time.Duration(d)
			}
		}
	}
	if pendingFor <= 0 || pendingFor > 10*time.Second {
		t.Fatalf("HighNilSessionRate's for: is %v at time scale %v; the test waits for it", pendingFor, timeScale)
	}
	rules, err := yaml.Marshal(alerts.RuleFile{Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	rulesPath := filepath.Join(dir, "rules.yml")
	if err := os.WriteFile(rulesPath, rules, 0o644); err != nil {
		t.Fatal(err)
	}
	var gs, sc []any
	for _, s := range services {
		// As on Kubernetes: service and namespace are target labels.
		labels := map[string]string{metrics.LabelService: s.name, metrics.LabelNamespace: "games"}
		gs = append(gs, map[string]any{"targets": []string{s.admin}, "labels": labels})
		sc = append(sc, map[string]any{"targets": []string{strings.TrimPrefix(s.sidecar, "http://")}, "labels": labels})
	}
	conf := map[string]any{
		"global":     map[string]any{"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
		"rule_files": []string{rulesPath},
		"scrape_configs": []any{
			map[string]any{"job_name": cfg.GameserverJob, "static_configs": gs},
			map[string]any{"job_name": cfg.SidecarJob, "static_configs": sc},
		},
	}
	b, err := yaml.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, pendingFor
}

// waitFor polls cond, which reads state other processes change on their
// own schedule (scrapes, rule evaluations), until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(250 * time.Millisecond)
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

func query(t *testing.T, papi v1.API, expr string) model.Vector {
	t.Helper()
	v, _, _, err := papi.Query(t.Context(), expr, time.Now())
	if err != nil {
		t.Fatalf("query %s: %v", expr, err)
	}
	return v.(model.Vector)
}

// A real Prometheus scrapes a legacy wilddiggr, a legacy forestteaparty
// and a patched goldenclover under load; stackwatch report then tells them
// apart the way the incident report did, from live data.
func TestReportFromLivePrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three game servers under load and Prometheus")
	}
	promtest.Binary(t, "prometheus") // skip (in CI, fail) before the build
	services := []*svc{
		startService(t, "wilddiggr", "wilddig", true),
		startService(t, "forestteaparty", "forestteaparty", true),
		startService(t, "goldenclover", "goldenclover", false),
	}
	config, pendingFor := writeConfig(t, services)
	promURL := promtest.StartPrometheus(t, config).URL
	pc, err := api.NewClient(api.Config{Address: promURL})
	if err != nil {
		t.Fatal(err)
	}
	papi := v1.NewAPI(pc)
	waitFor(t, 30*time.Second, "every target up", func() bool {
		return len(query(t, papi, fmt.Sprintf(`%s == 1`, metrics.Up.Name))) == 2*len(services)
	})
	began := time.Now()

	var wg sync.WaitGroup
	for _, s := range services {
		wg.Go(func() {
			sum, err := loadgen.Run(t.Context(), loadgen.Config{Addr: s.addr, Clients: 20, Duration: 12 * time.Second,
				Disconnect: 0.3, Drain: 3 * time.Second, DisconnectJitter: 30 * time.Millisecond})
			if err != nil {
				t.Errorf("%s load: %v", s.name, err)
			}
			t.Logf("%s: %d bets, %d disconnects, %d lost", s.name, sum.BetsPlaced, sum.Disconnects, sum.Lost)
		})
	}
	wg.Wait()
	wild := services[0]
	firing := fmt.Sprintf(`%s{alertname=%q, service=%q, alertstate="firing"}`, metrics.Alerts.Name, alerts.HighNilSessionRate, wild.name)
	waitFor(t, 2*time.Minute, "HighNilSessionRate firing for wilddiggr", func() bool { return len(query(t, papi, firing)) > 0 })
	// Prometheus has scraped the sidecars' final counts.
	for _, s := range services {
		want := float64(s.ownCount())
		expr := fmt.Sprintf(`sum(%s{service=%q}) or vector(0)`, metrics.Panics.Name, s.name)
		waitFor(t, 15*time.Second, s.name+"'s panic count in Prometheus", func() bool {
			v := query(t, papi, expr)
			return len(v) == 1 && float64(v[0].Value) == want
		})
	}

	// A developer's dump, for the timeline.
	dump, err := wild.prof.CaptureNow(t.Context(), "after the load")
	if err != nil {
		t.Fatal(err)
	}

	// stackwatch report, as a developer runs it.
	since := time.Since(began) + 2*time.Minute
	out := filepath.Join(t.TempDir(), "report.md")
	args := []string{"-prometheus", promURL, "-since", since.Round(time.Second).String(), "-o", out, "-match", "namespace=games"}
	var sidecars []string
	for _, s := range services {
		args = append(args, "-sidecar", s.sidecar)
		sidecars = append(sidecars, s.sidecar)
	}
	var stdout, stderr bytes.Buffer
	if err := report.Run(t.Context(), args, nil, &stdout, &stderr); err != nil {
		t.Fatalf("stackwatch report: %v\n%s", err, stderr.String())
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("STACKWATCH_ARTIFACTS"); dir != "" { // for review
		os.WriteFile(filepath.Join(dir, "report.md"), md, 0o644)
		report.Run(t.Context(), append(args, "-format", "html", "-o", filepath.Join(dir, "report.html")), nil, &stdout, &stderr)
	}
	r, err := report.Gather(t.Context(), report.Options{Prometheus: promURL, Since: since, Sidecars: sidecars})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]report.Service{}
	for _, s := range r.Services {
		got[s.Name] = s
	}
	// -match: the CLI ran scoped to the namespace every target is in and
	// says so; scoped to another, nothing is found.
	if !strings.Contains(string(md), "**Scope**: `namespace=\"games\"`") {
		t.Errorf("the Markdown header does not name the -match scope")
	}
	for _, w := range r.Warnings {
		if strings.Contains(w, "clusters or namespaces") {
			t.Errorf("every service is in one namespace, yet: %s", w)
		}
	}
	other, err := report.ParseMatcher("namespace=other")
	if err != nil {
		t.Fatal(err)
	}
	if r2, err := report.Gather(t.Context(), report.Options{Prometheus: promURL, Since: since, Match: []report.Matcher{other}}); err != nil {
		t.Errorf("report scoped to another namespace: %v", err)
	} else if len(r2.Services) != 0 || len(r2.Firing) != 0 {
		t.Errorf("scoped to namespace other, the report found %d services and %d firing alerts", len(r2.Services), len(r2.Firing))
	}

	// The overview's stacktrace counts are the sidecars' own.
	for _, s := range services {
		row, ok := got[s.name]
		if !ok {
			t.Fatalf("%s missing from the overview %+v", s.name, r.Services)
		}
		if want := float64(s.ownCount()); row.Stacktraces != want {
			t.Errorf("%s: %v stacktraces in the overview, the sidecar counted %v", s.name, row.Stacktraces, want)
		}
		if !strings.Contains(string(md), fmt.Sprintf("| **%s** |", s.name)) {
			t.Errorf("the Markdown overview has no row for %s", s.name)
		}
	}
	if row := got[wild.name]; row.Stacktraces < 10 || row.Status != report.StatusCritical || row.First.IsZero() || row.Last.Before(row.First) {
		t.Errorf("wilddiggr row %+v: want its panics, critical, first ≤ last", row)
	}
	// forestteaparty took the graceful path.
	if row := got["forestteaparty"]; row.Stacktraces != 0 || row.ClosedSessionWarnings < 1 {
		t.Errorf("forestteaparty: %v stacktraces, %v closed-session warnings; want 0 and some", row.Stacktraces, row.ClosedSessionWarnings)
	}
	// The runtime proved the legacy reckon goroutines leaked (the binary is
	// built with the goroutine leak profile).
	if row := got[wild.name]; row.Leaked < 1 || !strings.Contains(row.LeakSuspect, "ClientGetWilddigReckonBetRes") {
		t.Errorf("wilddiggr leaks: %v proven, suspect %q", row.Leaked, row.LeakSuspect)
	}
	// The patched service is ok and meets every success criterion.
	if row := got["goldenclover"]; row.Status != report.StatusOK {
		t.Errorf("patched goldenclover is %s; firing: %+v", row.Status, r.Firing)
	}
	for _, c := range r.Criteria {
		if c.Service == "goldenclover" && !c.Met {
			t.Errorf("patched goldenclover does not meet %q: %s", c.Name, c.Figure)
		}
	}
	// HighNilSessionRate's timeline matches ALERTS and ALERTS_FOR_STATE.
	var pending, fired time.Time
	for _, e := range r.Timeline {
		if e.Service == wild.name && e.What == alerts.HighNilSessionRate+" pending" {
			pending = e.Time
		}
		if e.Service == wild.name && e.What == alerts.HighNilSessionRate+" firing" {
			fired = e.Time
		}
	}
	// Over the window: at the 5 s rate window of this time scale the alert
	// may have resolved since the load ended.
	forState := query(t, papi, fmt.Sprintf(`min_over_time(%s{alertname=%q, service=%q}[%s])`,
		metrics.AlertsForState.Name, alerts.HighNilSessionRate, wild.name, model.Duration(since)))
	if len(forState) != 1 || !pending.Equal(time.Unix(0, int64(float64(forState[0].Value)*1e9)).UTC()) {
		t.Errorf("timeline pending at %v; ALERTS_FOR_STATE says %v", pending, forState)
	}
	step := max(since/600, time.Second).Round(time.Second)
	firstFiring := firstSample(t, papi, firing, r.From, r.To, time.Second)
	if fired.IsZero() || fired.Before(firstFiring.Add(-step)) || fired.After(firstFiring.Add(step)) {
		t.Errorf("timeline firing at %v; ALERTS first says firing at %v (step %v)", fired, firstFiring, step)
	}
	if fired.Sub(pending) < pendingFor-step {
		t.Errorf("fired %v after pending, before the rule's for: %s", fired.Sub(pending), pendingFor)
	}
	// The dump is on the timeline, linked to its page in the sidecar's UI.
	dumpLine := false
	for _, e := range r.Timeline {
		dumpLine = dumpLine || e.Service == wild.name && strings.Contains(e.What, "/ui/dumps/"+dump.ID)
	}
	if !dumpLine {
		t.Errorf("dump %s is not on the timeline %+v", dump.ID, r.Timeline)
	}
	// Without a sidecar that answers, the crash sites come from Prometheus'
	// crash_site label, and the report says what it could not read.
	bare, err := report.Gather(t.Context(), report.Options{Prometheus: promURL, Since: since, Sidecars: []string{"http://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(bare.CrashSites) == 0 || !strings.HasSuffix(bare.CrashSites[0].CrashSite.Function, "clientWrite") ||
		bare.CrashSites[0].Count != wild.ownCount() {
		t.Errorf("crash sites from Prometheus alone: %+v, want clientWrite ×%d", bare.CrashSites, wild.ownCount())
	}
	if len(bare.Warnings) != 1 || !strings.Contains(bare.Warnings[0], "127.0.0.1:1") {
		t.Errorf("warnings %q, want the unreachable sidecar", bare.Warnings)
	}
	// Runbook links for every firing alert.
	for _, a := range r.Firing {
		if a.Runbook == "" || !strings.Contains(string(md), "]("+a.Runbook+")") {
			t.Errorf("firing %s (%s) has no runbook link in the report", a.Name, a.Service)
		}
	}
	if len(r.Warnings) > 0 {
		t.Errorf("report warnings: %v", r.Warnings)
	}
	t.Logf("summary: %s", r.Summary)
}

func firstSample(t *testing.T, papi v1.API, expr string, from, to time.Time, step time.Duration) time.Time {
	t.Helper()
	v, _, _, err := papi.QueryRange(t.Context(), expr, v1.Range{Start: from, End: to, Step: step})
	if err != nil {
		t.Fatal(err)
	}
	m := v.(model.Matrix)
	if len(m) == 0 || len(m[0].Values) == 0 {
		b, _ := json.Marshal(m)
		t.Fatalf("no samples of %s: %s", expr, b)
	}
	return m[0].Values[0].Timestamp.Time()
}

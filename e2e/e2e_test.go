package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"

	"github.com/stackwatch/stackwatch/alerts"
	"github.com/stackwatch/stackwatch/dashboards"
	"github.com/stackwatch/stackwatch/internal/proctest"
	"github.com/stackwatch/stackwatch/internal/promtest"
	"github.com/stackwatch/stackwatch/metrics"
)

func TestMain(m *testing.M) { proctest.VerifyTestMain(m) }

// Test-only timings. The shipped rules and routing are used as they are,
// except for these (see overlayRules and overlayAlertmanager).
const (
	scrapeInterval = "1s"
	evalInterval   = "1s"
	testFor        = "5s" // replaces every rule's for:
	rateWindow     = "1m" // what $__rate_interval becomes in panel queries
	loadDuration   = 60 * time.Second
	pageTimeout    = 150 * time.Second
)

// service is one game server under test, with its sidecar.
type service struct {
	name, game string
	legacy     bool
	addr       string // game listener
	admin      string // /metrics, /debug/pprof
	sidecar    string // sidecar listener, empty without a sidecar
}

// TestAlertsAndDashboards runs the shipped rules, routing and dashboards
// against real game servers, sidecars, load, Prometheus and Alertmanager:
// wilddiggr in -legacy must page HighNilSessionRate, the patched
// forestteaparty under the same load must not, and every dashboard query must
// return data.
func TestAlertsAndDashboards(t *testing.T) {
	t.Parallel()
	promtest.Binary(t, "prometheus") // skip (in CI, fail) before the builds
	promtest.Binary(t, "prometheus-alertmanager")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root := repoRoot(t)
	cfg := alerts.Default()

	tr := &http.Transport{}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)

	// Binaries, built the way make builds them.
	gameserverBin := proctest.Build(t, "../cmd/gameserver", "GOEXPERIMENT=goroutineleakprofile")
	loadgenBin := proctest.Build(t, "../cmd/loadgen")
	sidecarBin := ""
	if _, err := os.Stat(filepath.Join(root, "cmd", "sidecar")); err != nil {
		// Carry on: the alert needs only the game servers, and the sidecar
		// panels below fail one by one, naming what is missing.
		t.Errorf("cmd/sidecar does not exist (issues 3 and 4): running without sidecars: %v", err)
	} else {
		sidecarBin = proctest.Build(t, "../cmd/sidecar")
	}

	// The pager and the ops channel.
	rcv := newReceiver()
	mux := http.NewServeMux()
	mux.Handle("POST /pager", rcv)
	mux.Handle("POST /ops", rcv)
	mux.Handle("POST /dump", rcv)
	hook := httptest.NewServer(mux)
	t.Cleanup(hook.Close)

	services := []*service{
		{name: "wilddiggr", game: "wilddig", legacy: true},
		{name: "forestteaparty", game: "forestteaparty"},
	}
	for _, s := range services {
		dir := t.TempDir()
		logDir := filepath.Join(dir, "log")
		args := []string{"-game", s.game, "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0",
			"-log-dir", logDir, "-data-dir", filepath.Join(dir, "data"), "-log.format", "json"}
		if s.legacy {
			args = append(args, "-legacy")
		}
		m := proctest.Start(t, gameserverBin, args...).Listening(t, 30*time.Second, "addr", "admin")
		s.addr, s.admin = m["addr"], m["admin"]
		if sidecarBin == "" {
			continue
		}
		m = proctest.Start(t, sidecarBin, "-log.format=json", "-service", s.name, "-log-dir", logDir,
			"-data-dir", filepath.Join(dir, "sidecar"), "-listen", "127.0.0.1:0", "-target", "http://"+s.admin).
			Listening(t, 30*time.Second, "addr")
		s.sidecar = m["addr"]
	}

	// Alertmanager with the shipped routing; only the URLs change.
	dumpURLs := []string{hook.URL + "/dump"}
	if sidecarBin != "" {
		dumpURLs = nil
		for _, s := range services {
			dumpURLs = append(dumpURLs, "http://"+s.sidecar+"/api/v1/alertmanager")
		}
	}
	amCfg := overlayAlertmanager(t, filepath.Join(root, "alerts", "alertmanager.yml"), map[string][]string{
		"pager":          {hook.URL + "/pager"},
		"ops":            {hook.URL + "/ops"},
		"goroutine-dump": dumpURLs,
	})
	amAddr := promtest.StartAlertmanager(t, amCfg).Addr

	// Prometheus with the shipped rules, shorter for: and evaluation.
	promCfg := writePrometheusConfig(t, cfg, overlayRules(t, filepath.Join(root, "alerts", "stackwatch.rules.yml")), amAddr, services)
	prom := promtest.StartPrometheus(t, promCfg)
	pc, err := api.NewClient(api.Config{Address: prom.URL, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	papi := promv1.NewAPI(pc)
	began := time.Now()

	// The same load against both: players who disconnect mid-bet.
	loads := map[string]*proctest.Proc{}
	for _, s := range services {
		loads[s.name] = proctest.Start(t, loadgenBin, "-addr", s.addr, "-clients", "20",
			"-duration", loadDuration.String(), "-disconnect", "0.3", "-json", "-progress", "0")
	}

	t.Run("HighNilSessionRate pages for wilddiggr", func(t *testing.T) {
		want := map[string]string{"alertname": alerts.HighNilSessionRate, "service": "wilddiggr"}
		var got alert
		deadline := time.After(pageTimeout)
	wait:
		for {
			if _, a, ok := rcv.find("pager", want); ok {
				got = a
				break
			}
			select {
			case <-rcv.notify:
			case <-time.After(2 * time.Second):
			case <-deadline:
				t.Fatalf("no HighNilSessionRate page for wilddiggr within %v; notifications: %+v\nfiring in Prometheus: %s",
					pageTimeout, rcv.all(), instant(ctx, t, papi, `ALERTS{alertstate="firing"}`))
			case <-ctx.Done():
				break wait
			}
		}
		t.Logf("paged %v after the load started; firing now: %s", time.Since(began).Round(time.Second),
			instant(ctx, t, papi, `count by (alertname, service, severity) (ALERTS{alertstate="firing"})`))
		rule := findRule(t, cfg, alerts.HighNilSessionRate)
		if got.Labels["severity"] != alerts.SeverityCritical {
			t.Errorf("severity %q, want critical", got.Labels["severity"])
		}
		if got.Labels["alertname"] != rule.Alert {
			t.Errorf("alertname %q", got.Labels["alertname"])
		}
		if a := got.Annotations; a["summary"] != rule.Annotations["summary"] {
			t.Errorf("summary %q, want %q", a["summary"], rule.Annotations["summary"])
		}
		if a := got.Annotations; a["runbook_url"] != cfg.RunbookURL(alerts.HighNilSessionRate) {
			t.Errorf("runbook_url %q", a["runbook_url"])
		}
		d := got.Annotations["description"]
		perMin, err := humanized(d, "wilddiggr attempted ", " writes per minute to a nil client session")
		if err != nil {
			t.Errorf("description not expanded for wilddiggr: %v", err)
		} else if perMin <= cfg.NilSessionsPerMinute {
			t.Errorf("paged at %g nil-session writes per minute, not above the threshold %g", perMin, cfg.NilSessionsPerMinute)
		}
		if _, _, ok := rcv.find("ops", want); ok {
			t.Errorf("a critical alert reached the ops receiver")
		}
	})

	t.Run("forestteaparty does not page under the same load", func(t *testing.T) {
		// The same disconnects happened there: players closed their sessions
		// mid-bet. The patched server just never wrote to a nil session.
		if v := instant(ctx, t, papi, fmt.Sprintf(`sum(%s{service="forestteaparty"})`, metrics.SessionsClosed.Name)); scalar(v) <= 0 {
			t.Errorf("no forestteaparty session was closed: the negative proves nothing (%s)", v)
		}
		if v := instant(ctx, t, papi, fmt.Sprintf(`sum(%s{service="forestteaparty"})`, metrics.NilSessionAttempts.Name)); scalar(v) != 0 {
			t.Errorf("the patched forestteaparty counted nil-session writes: %s", v)
		}
		q := fmt.Sprintf(`ALERTS{alertname=%q,service!="wilddiggr"}`, alerts.HighNilSessionRate)
		if v := rangeQuery(ctx, t, papi, q, began); v.(model.Matrix).Len() > 0 {
			t.Errorf("HighNilSessionRate was pending or firing for another service: %s", v)
		}
		for _, n := range rcv.all() {
			for _, a := range n.Alerts {
				if a.Labels["alertname"] == alerts.HighNilSessionRate && a.Labels["service"] != "wilddiggr" {
					t.Errorf("notified %s: %v", n.Receiver, a.Labels)
				}
			}
		}
	})

	t.Run("warnings of a paging service are inhibited", func(t *testing.T) {
		if sidecarBin == "" {
			t.Skip("NewPanicDetected needs the sidecar")
		}
		// NewPanicDetected (warning) fires for wilddiggr with its first
		// panics; the page for the same service must silence it.
		deadline := time.Now().Add(30 * time.Second)
		for {
			as := amAlerts(ctx, t, client, amAddr, alerts.NewPanicDetected, "wilddiggr")
			if len(as) > 0 {
				st := as[0].Status
				if st.State != "suppressed" || len(st.InhibitedBy) == 0 {
					t.Errorf("NewPanicDetected for wilddiggr is %q (inhibited by %v), want suppressed by the page", st.State, st.InhibitedBy)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("NewPanicDetected never reached Alertmanager for wilddiggr")
			}
			time.Sleep(time.Second)
		}
		if _, _, ok := rcv.find("ops", map[string]string{"alertname": alerts.NewPanicDetected, "service": "wilddiggr"}); ok {
			t.Errorf("the ops receiver got NewPanicDetected for wilddiggr while it paged")
		}
	})

	if sidecarBin != "" {
		t.Run("a page captures a goroutine dump", func(t *testing.T) {
			q := fmt.Sprintf(`sum(%s{service="wilddiggr",%s="alert"})`, metrics.DumpsCaptured.Name, metrics.LabelTrigger)
			deadline := time.Now().Add(30 * time.Second)
			for {
				v := instant(ctx, t, papi, q)
				if scalar(v) > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the wilddiggr sidecar captured no goroutine dump for the page within 30s (%s = %s): "+
						"the sidecar's Alertmanager webhook POST /api/v1/alertmanager (issue 4) must capture a dump for the alert's service", q, v)
				}
				time.Sleep(time.Second)
			}
			// Every sidecar gets every page; only the paged service's dumps.
			crit := rangeQuery(ctx, t, papi, `ALERTS{service="forestteaparty",severity="critical",alertstate="firing"}`, began)
			other := instant(ctx, t, papi, fmt.Sprintf(`sum(%s{service="forestteaparty",%s="alert"})`, metrics.DumpsCaptured.Name, metrics.LabelTrigger))
			if empty(crit) && scalar(other) > 0 {
				t.Errorf("the forestteaparty sidecar captured %v dumps for pages that were not about forestteaparty", scalar(other))
			}
		})
	}

	t.Run("service is a target label", func(t *testing.T) {
		// With honor_labels off, a service label the exporter set would
		// be renamed exported_service; the scrape's own must be there.
		if v := instant(ctx, t, papi, `count(go_goroutines{exported_service!=""}) or count({exported_service!=""})`); !empty(v) {
			t.Errorf("an exporter sets service itself: %s", v)
		}
		for _, s := range services {
			q := fmt.Sprintf(`go_goroutines{job=%q,service=%q}`, cfg.GameserverJob, s.name)
			if v := instant(ctx, t, papi, q); empty(v) {
				t.Errorf("%s: no %s", s.name, q)
			}
		}
	})

	t.Run("every dashboard query returns data", func(t *testing.T) {
		specs, err := dashboards.All()
		if err != nil {
			t.Fatal(err)
		}
		qs, err := dashboards.Queries(specs)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			expr := dashboards.Substitute(q.Expr, ".*", rateWindow)
			var v model.Value
			if q.Instant {
				v = instant(ctx, t, papi, expr)
			} else {
				v = rangeQuery(ctx, t, papi, expr, began)
			}
			if !empty(v) {
				continue
			}
			// A catalog metric no exporter serves yet is work in flight on
			// another branch: named here, a failure in CI.
			var unserved []string
			for _, m := range metricName.FindAllStringSubmatch(expr, -1) {
				if empty(instant(ctx, t, papi, fmt.Sprintf(`count({__name__=%q})`, m[1]))) {
					unserved = append(unserved, m[1])
				}
			}
			if len(unserved) > 0 && os.Getenv("CI") != "true" {
				t.Logf("%s panel %q: no target exports %v yet (in CI this fails)", q.Dashboard, q.Panel, unserved)
				continue
			}
			t.Errorf("%s panel %d %q query %s returned no data (unexported: %v):\n  %s", q.Dashboard, q.PanelID, q.Panel, q.RefID, unserved, expr)
		}
		t.Logf("%d panel queries run", len(qs))
	})

	t.Run("loadgen", func(t *testing.T) {
		// The patched server loses nothing; the legacy one is expected to.
		p := loads["forestteaparty"]
		select {
		case <-p.Exited():
		case <-time.After(loadDuration + time.Minute):
			t.Fatalf("loadgen against forestteaparty did not finish")
		}
		if err := p.Err(); err != nil {
			t.Errorf("loadgen against the patched forestteaparty: %v\n%s", err, p.Tail())
		}
	})
}

// metricName finds the series names of a query: identifiers before a selector.
var metricName = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\{`)

// overlayRules copies the shipped rule file with every for: shortened and the
// evaluation interval lowered, into a temp dir.
func overlayRules(t *testing.T, shipped string) string {
	t.Helper()
	b, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	var rf alerts.RuleFile
	if err := yaml.UnmarshalStrict(b, &rf); err != nil {
		t.Fatalf("%s: %v", shipped, err)
	}
	for i := range rf.Groups {
		iv := monitoringDuration(evalInterval)
		rf.Groups[i].Interval = &iv
		for j := range rf.Groups[i].Rules {
			if rf.Groups[i].Rules[j].For != nil {
				d := monitoringDuration(testFor)
				rf.Groups[i].Rules[j].For = &d
			}
		}
	}
	out, err := yaml.Marshal(rf)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func monitoringDuration(s string) monitoringv1.Duration { return monitoringv1.Duration(s) }

// overlayAlertmanager copies the shipped Alertmanager config with each
// receiver's webhook URLs replaced by urls[receiver]. A receiver missing from
// urls fails the test, so a new receiver cannot slip past it.
func overlayAlertmanager(t *testing.T, shipped string, urls map[string][]string) string {
	t.Helper()
	b, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	var conf map[string]any
	if err := yaml.Unmarshal(b, &conf); err != nil {
		t.Fatalf("%s: %v", shipped, err)
	}
	recvs, _ := conf["receivers"].([]any)
	if len(recvs) == 0 {
		t.Fatalf("%s: no receivers", shipped)
	}
	for _, r := range recvs {
		rm, _ := r.(map[string]any)
		name, _ := rm["name"].(string)
		us, ok := urls[name]
		if !ok {
			t.Fatalf("%s: receiver %q has no test URL; add it to the e2e overlay", shipped, name)
		}
		hooks, _ := rm["webhook_configs"].([]any)
		if len(hooks) == 0 {
			t.Fatalf("%s: receiver %q has no webhook_configs", shipped, name)
		}
		template, _ := hooks[0].(map[string]any)
		var repl []any
		for _, u := range us {
			h := map[string]any{}
			for k, v := range template {
				h[k] = v
			}
			h["url"] = u
			repl = append(repl, h)
		}
		rm["webhook_configs"] = repl
	}
	out, err := yaml.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// writePrometheusConfig scrapes the game servers and sidecars under the job
// names the rules expect. service is a target label, as on Kubernetes: the
// exporters do not set it.
func writePrometheusConfig(t *testing.T, cfg alerts.Config, rules, amAddr string, services []*service) string {
	t.Helper()
	type target struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	var game, side []target
	for _, s := range services {
		game = append(game, target{[]string{s.admin}, map[string]string{metrics.LabelService: s.name}})
		if s.sidecar != "" {
			side = append(side, target{[]string{s.sidecar}, map[string]string{metrics.LabelService: s.name}})
		}
	}
	scrapes := []map[string]any{{"job_name": cfg.GameserverJob, "static_configs": game}}
	if len(side) > 0 {
		scrapes = append(scrapes, map[string]any{"job_name": cfg.SidecarJob, "static_configs": side})
	}
	conf := map[string]any{
		"global": map[string]any{
			"scrape_interval": scrapeInterval, "scrape_timeout": scrapeInterval, "evaluation_interval": evalInterval,
		},
		"rule_files": []string{rules},
		"alerting": map[string]any{
			"alertmanagers": []any{map[string]any{"static_configs": []any{map[string]any{"targets": []string{amAddr}}}}},
		},
		"scrape_configs": scrapes,
	}
	b, err := yaml.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func findRule(t *testing.T, cfg alerts.Config, name string) ruleView {
	t.Helper()
	groups, err := alerts.Groups(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		for _, r := range g.Rules {
			if r.Alert == name {
				return ruleView{Alert: r.Alert, Annotations: r.Annotations}
			}
		}
	}
	t.Fatalf("no rule %s", name)
	return ruleView{}
}

type ruleView struct {
	Alert       string
	Annotations map[string]string
}

// amAlert is the part of Alertmanager's GET /api/v2/alerts the test reads.
type amAlert struct {
	Labels map[string]string `json:"labels"`
	Status struct {
		State       string   `json:"state"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
}

func amAlerts(ctx context.Context, t *testing.T, client *http.Client, amAddr, name, service string) []amAlert {
	t.Helper()
	q := url.Values{"filter": {fmt.Sprintf("alertname=%q", name), fmt.Sprintf("service=%q", service)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+amAddr+"/api/v2/alerts?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("alertmanager API: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("alertmanager API: %s", resp.Status)
	}
	var as []amAlert
	if err := json.NewDecoder(resp.Body).Decode(&as); err != nil {
		t.Fatalf("alertmanager API: %v", err)
	}
	return as
}

func instant(ctx context.Context, t *testing.T, papi promv1.API, q string) model.Value {
	t.Helper()
	v, warn, _, err := papi.Query(ctx, q, time.Now())
	if err != nil {
		t.Fatalf("query %s: %v", q, err)
	}
	if len(warn) > 0 {
		t.Logf("query %s: warnings %v", q, warn)
	}
	return v
}

func rangeQuery(ctx context.Context, t *testing.T, papi promv1.API, q string, from time.Time) model.Value {
	t.Helper()
	v, warn, _, err := papi.QueryRange(ctx, q, promv1.Range{Start: from, End: time.Now(), Step: 2 * time.Second})
	if err != nil {
		t.Fatalf("query_range %s: %v", q, err)
	}
	if len(warn) > 0 {
		t.Logf("query_range %s: warnings %v", q, warn)
	}
	return v
}

// humanized reads back the {{ $value | humanize }} between prefix and
// suffix of s ("123.4", "1.2k").
func humanized(s, prefix, suffix string) (float64, error) {
	rest, ok := strings.CutPrefix(s, prefix)
	num, _, ok2 := strings.Cut(rest, suffix)
	if !ok || !ok2 {
		return 0, fmt.Errorf("%q is not %q<value>%q", s, prefix, suffix)
	}
	mult := 1.0
	switch {
	case strings.HasSuffix(num, "k"):
		num, mult = strings.TrimSuffix(num, "k"), 1e3
	case strings.HasSuffix(num, "M"):
		num, mult = strings.TrimSuffix(num, "M"), 1e6
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("value in %q: %w", s, err)
	}
	return v * mult, nil
}

// scalar is the value of a one-sample vector, or -1.
func scalar(v model.Value) float64 {
	if vec, ok := v.(model.Vector); ok && len(vec) == 1 {
		return float64(vec[0].Value)
	}
	return -1
}

func empty(v model.Value) bool {
	switch v := v.(type) {
	case model.Vector:
		return len(v) == 0
	case model.Matrix:
		return !slices.ContainsFunc(v, func(s *model.SampleStream) bool { return len(s.Values) > 0 })
	case *model.Scalar:
		return v == nil
	}
	return true
}

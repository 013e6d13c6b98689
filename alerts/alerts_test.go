package alerts_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/stackwatch/stackwatch/alerts"
	"github.com/stackwatch/stackwatch/internal/promtest"
)

const (
	ruleFile = "stackwatch.rules.yml"
	demoFile = "demo/stackwatch.rules.yml" // make demo's clock
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, promtest.Binary(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestRuleFileUpToDate(t *testing.T) {
	for file, c := range map[string]alerts.Config{ruleFile: alerts.Default(), demoFile: alerts.Demo()} {
		want, err := alerts.Render(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date with alerts.go; run `go generate ./alerts` (make generate)", file)
		}
	}
}

func TestPromtoolCheckRules(t *testing.T) {
	for _, file := range []string{ruleFile, demoFile} {
		out := run(t, "promtool", "check", "rules", file)
		if want := len(alerts.Names(alerts.Default())); !strings.Contains(out, "SUCCESS: "+strconv.Itoa(want)+" rules found") {
			t.Fatalf("%s: promtool found a different number of rules than the %d alerts:\n%s", file, want, out)
		}
	}
}

// TestDemoIsTheShippedRulesFaster: the demo's rules differ from the shipped
// ones only in their windows and for: durations, never in what they compare.
func TestDemoIsTheShippedRulesFaster(t *testing.T) {
	shipped, err := alerts.Groups(alerts.Default())
	if err != nil {
		t.Fatal(err)
	}
	demo, err := alerts.Groups(alerts.Demo())
	if err != nil {
		t.Fatal(err)
	}
	window := regexp.MustCompile(`\[\d+[smh]\]|\b(last|for) \d+[smh]\b|\d+[smh]\)`)
	for i, g := range shipped {
		for j, r := range g.Rules {
			d := demo[i].Rules[j]
			if window.ReplaceAllString(r.Expr.String(), "W") != window.ReplaceAllString(d.Expr.String(), "W") {
				t.Errorf("%s: demo expression differs beyond its windows:\n%s\n%s", r.Alert, r.Expr.String(), d.Expr.String())
			}
			if r.For != nil && d.For != nil && *r.For == *d.For {
				t.Errorf("%s: demo for: %s is not shorter", r.Alert, *d.For)
			}
		}
	}
	for _, r := range demo[0].Rules {
		if r.Alert == alerts.HighNilSessionRate {
			// One minute to fill the window, one minute pending: it pages
			// within three minutes of the first nil-session write.
			if e := r.Expr.String(); !strings.Contains(e, "[1m])) * 60 > 10") || *r.For != "1m" {
				t.Errorf("demo HighNilSessionRate: %s for %s", e, *r.For)
			}
		}
	}
}

func TestPromtoolTestRules(t *testing.T) {
	run(t, "promtool", "test", "rules", filepath.Join("testdata", "rules_test.yml"))
}

// unitTests is the part of a promtool unit-test file this test reads.
type unitTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `json:"alertname"`
			ExpAlerts []struct {
				ExpLabels map[string]string `json:"exp_labels"`
			} `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// TestEveryAlertIsTested holds the promtool tests to the rule: for every
// alert, a case where it fires and a case where it must not.
func TestEveryAlertIsTested(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "rules_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var ut unitTests
	if err := yaml.Unmarshal(b, &ut); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range ut.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
				for _, e := range a.ExpAlerts {
					if e.ExpLabels["severity"] == "" {
						t.Errorf("%s: expected alert without a severity label", a.Alertname)
					}
				}
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	names := alerts.Names(alerts.Default())
	if len(names) == 0 {
		t.Fatal("no alerts")
	}
	for _, n := range names {
		if !fires[n] {
			t.Errorf("%s: no promtool test case where it fires", n)
		}
		if !quiet[n] {
			t.Errorf("%s: no promtool test case where it must not fire", n)
		}
	}
}

// TestRunbooks checks that every alert links a runbook that exists and says
// what to do, and that no runbook is left over from a removed alert.
func TestRunbooks(t *testing.T) {
	// The action the incident report's monitoring plan prescribes.
	actions := map[string]string{
		alerts.HighNilSessionRate:      "alert the ops team",
		alerts.NewPanicDetected:        "investigate",
		alerts.StacktraceFilesHigh:     "restart the service",
		alerts.GoroutineLeakDetected:   "check for leaks",
		alerts.MemoryNearLimit:         "scale out",
		alerts.ClientWriteFailuresHigh: "investigate",
		alerts.BetSuccessRateLow:       "deploy the patched build",
		alerts.GameServerFatalCrash:    "stackwatch dumps pull",
		alerts.GameServerDown:          "restart",
		alerts.SidecarDown:             "restart the sidecar",
		alerts.GameServerAbsent:        "restore the target",
		alerts.SidecarAbsent:           "restore the sidecar",
	}
	dir := filepath.Join("..", "docs", "runbooks")
	groups, err := alerts.Groups(alerts.Default())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, g := range groups {
		for _, r := range g.Rules {
			seen[r.Alert+".md"] = true
			url := r.Annotations["runbook_url"]
			if !strings.HasSuffix(url, "docs/runbooks/"+r.Alert+".md") {
				t.Errorf("%s: runbook_url %q does not point at docs/runbooks/%s.md", r.Alert, url, r.Alert)
			}
			for _, k := range []string{"summary", "description"} {
				if r.Annotations[k] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, k)
				}
			}
			if strings.Contains(r.Annotations["summary"], "{{") {
				t.Errorf("%s: summary must be static: %q", r.Alert, r.Annotations["summary"])
			}
			d := r.Annotations["description"]
			if !strings.Contains(d, "{{ $labels.service }}") {
				t.Errorf("%s: description must name the service: %q", r.Alert, d)
			}
			// Target alerts have no value worth printing; every other alert shows it.
			if !strings.Contains(r.Alert, "Down") && !strings.Contains(r.Alert, "Absent") && !strings.Contains(d, "{{ $value") {
				t.Errorf("%s: description must show the value: %q", r.Alert, d)
			}
			if s := r.Labels[alerts.LabelSeverity]; s != alerts.SeverityCritical && s != alerts.SeverityWarning {
				t.Errorf("%s: severity %q", r.Alert, s)
			}
			b, err := os.ReadFile(filepath.Join(dir, r.Alert+".md"))
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
				continue
			}
			text := strings.ToLower(string(b))
			for _, h := range []string{"# " + strings.ToLower(r.Alert), "## meaning", "## diagnosis", "## actions"} {
				if !strings.Contains(text, h) {
					t.Errorf("%s runbook: missing %q", r.Alert, h)
				}
			}
			act, ok := actions[r.Alert]
			if !ok {
				t.Errorf("%s: no expected action in this test; add one", r.Alert)
			} else if _, after, _ := strings.Cut(text, "## actions"); !strings.Contains(after, act) {
				t.Errorf("%s runbook: its Actions section does not say %q", r.Alert, act)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !seen[e.Name()] {
			t.Errorf("runbook %s has no alert", e.Name())
		}
	}
}

func TestHighNilSessionRateIsPerMinute(t *testing.T) {
	groups, err := alerts.Groups(alerts.Default())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		for _, r := range g.Rules {
			if r.Alert == alerts.HighNilSessionRate {
				if e := r.Expr.String(); !strings.Contains(e, "[5m])) * 60 > 10") {
					t.Fatalf("HighNilSessionRate must compare a per-minute rate with 10: %s", e)
				}
				return
			}
		}
	}
	t.Fatal("HighNilSessionRate missing")
}

func TestThresholdsAreConfigurable(t *testing.T) {
	c := alerts.Default()
	c.NilSessionsPerMinute = 2.5
	c.StacktraceFiles = 7
	c.RunbookBaseURL = "https://git.example.com/games/stackwatch/-/blob/main/"
	c.GameserverJob = "game-.*"
	b, err := alerts.Render(c)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		"* 60 > 2.5", "threshold 2.5/min",
		`(stackwatch_stacktrace_files{job=~"stackwatch-sidecar"})
      > 7`, "threshold 7)",
		"runbook_url: https://git.example.com/games/stackwatch/-/blob/main/docs/runbooks/HighNilSessionRate.md",
		`up{job=~"game-.*"} == 0`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("rendered rules lack %q", want)
		}
	}
	p := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "promtool", "check", "rules", p)
}

func TestValidate(t *testing.T) {
	for name, mut := range map[string]func(*alerts.Config){
		"zero nil sessions":   func(c *alerts.Config) { c.NilSessionsPerMinute = 0 },
		"ratio above one":     func(c *alerts.Config) { c.MemoryLimitRatio = 1.5 },
		"success ratio one":   func(c *alerts.Config) { c.BetSuccessRatio = 1 },
		"no gameserver job":   func(c *alerts.Config) { c.GameserverJob = "" },
		"negative files":      func(c *alerts.Config) { c.StacktraceFiles = -1 },
		"zero goroutines":     func(c *alerts.Config) { c.Goroutines = 0 },
		"zero write failures": func(c *alerts.Config) { c.ClientWriteFailuresPerMinute = 0 },
		"zero time scale":     func(c *alerts.Config) { c.TimeScale = 0 },
		"slower than shipped": func(c *alerts.Config) { c.TimeScale = 2 },
	} {
		c := alerts.Default()
		mut(&c)
		if _, err := alerts.Render(c); err == nil {
			t.Errorf("%s: Render accepted an invalid config", name)
		}
	}
	if err := alerts.Default().Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
}

func TestAlertmanagerConfig(t *testing.T) {
	const cfg = "alertmanager.yml"
	out := run(t, "amtool", "check-config", cfg)
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("amtool check-config:\n%s", out)
	}
	for _, tc := range []struct {
		labels    []string
		receivers string
	}{
		{[]string{"alertname=HighNilSessionRate", "severity=critical", "service=wilddiggr"}, "goroutine-dump,pager"},
		{[]string{"alertname=StacktraceFilesHigh", "severity=critical", "service=goldenclover"}, "goroutine-dump,pager"},
		{[]string{"alertname=NewPanicDetected", "severity=warning", "service=wilddiggr"}, "ops"},
		{[]string{"alertname=SidecarDown", "severity=warning", "service=forestteaparty"}, "ops"},
		{[]string{"alertname=Watchdog"}, "ops"},
	} {
		args := append([]string{"config", "routes", "test", "--config.file=" + cfg, "--verify.receivers=" + tc.receivers}, tc.labels...)
		run(t, "amtool", args...)
		// And the negative: the same labels must not resolve to another set.
		other := "pager"
		if tc.receivers != "ops" {
			other = "ops"
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		neg := append([]string{"config", "routes", "test", "--config.file=" + cfg, "--verify.receivers=" + other}, tc.labels...)
		if out, err := exec.CommandContext(ctx, promtest.Binary(t, "amtool"), neg...).CombinedOutput(); err == nil {
			t.Errorf("%v also resolved to %s:\n%s", tc.labels, other, out)
		}
		cancel()
	}
}

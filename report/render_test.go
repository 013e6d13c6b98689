package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/crash"
)

var update = flag.Bool("update", false, "rewrite testdata/report.golden.md")

// fixture is the seed incident's figures as a Report.
func fixture() *Report {
	to := time.Date(2025, 11, 5, 13, 0, 0, 0, time.UTC)
	at := func(h, m int) time.Time { return time.Date(2025, 11, 5, h, m, 0, 0, time.UTC) }
	r := &Report{
		Generated: to, From: to.Add(-24 * time.Hour), To: to, Since: 24 * time.Hour,
		Prometheus: "http://prometheus:9090", Sidecars: []string{"http://wilddiggr:9091"},
		Services: []Service{
			{Name: "wilddiggr", Status: StatusCritical, Stacktraces: 376, Files: 376, First: at(3, 45), Last: at(12, 52),
				MemoryInUse: 936 << 20, MemoryLimit: 512 << 20, NilSessions: 376,
				Bets:       map[string]float64{metrics.OutcomeDelivered: 9624, metrics.OutcomeFailed: 376},
				Goroutines: 2210, LeakSuspect: "task.ClientGetWilddigReckonBetRes.func1 task_client_reckon_wilddig.go:24", LeakSuspectCount: 376},
			{Name: "forestteaparty", Status: StatusWarning, ClosedSessionWarnings: 120, Files: 1, MemoryInUse: 568 << 20, MemoryLimit: 512 << 20,
				Bets: map[string]float64{metrics.OutcomeDelivered: 5000}, Goroutines: 300},
		},
		CrashSites: []CrashSite{{Service: "wilddiggr", Group: crash.Group{
			Key: "9f2c", Kind: "nil_dereference", Message: "runtime error: invalid memory address or nil pointer dereference",
			CrashSite: crash.Site{Function: "trevi/arcade-wilddig-gameserver/task.clientWrite", File: "/tmp/build/arcade-wilddig-gameserver/task/task_helper.go", Line: 19},
			Caller:    "trevi/arcade-wilddig-gameserver/task.onWildDigBetClientResp", CreatedBy: "trevi/arcade-wilddig-gameserver/task.ClientCashDeductRes",
			NilReceiver: true, Count: 376,
			FirstSeen: at(3, 45), LastSeen: at(12, 52), RatePerHour: new(41.2),
			Example: "runtime error: invalid memory address or nil pointer dereference\ngoroutine 8906150 [running]:\ntrevi/arcade-wilddig-gameserver/task.clientWrite({0x0, 0x0}, {0xc0083f9380, 0x56, 0x80}, 0x56)\n\t/tmp/build/arcade-wilddig-gameserver/task/task_helper.go:19 +0x3f",
		}}},
		Timeline: []Event{
			{at(3, 45), "wilddiggr", "first panic in the window"},
			{at(3, 46), "wilddiggr", "HighNilSessionRate pending"},
			{at(3, 51), "wilddiggr", "HighNilSessionRate firing"},
			{at(3, 51), "wilddiggr", "dump captured (alert, 2210 goroutines): http://wilddiggr:9091/ui/dumps/20251105T035100.000000000Z-3fa9c2"},
		},
		Firing: []FiringAlert{{Name: "HighNilSessionRate", Service: "wilddiggr", Severity: "critical",
			Runbook: "https://github.com/stackwatch/stackwatch/blob/main/docs/runbooks/HighNilSessionRate.md", ActiveAt: at(3, 46)}},
		Queries: []Query{{Purpose: "Stacktraces: panics counted in the window", Expr: `sum by (service) (increase(stackwatch_panics_total[1d]))`},
			{Purpose: "Timeline", Expr: `max by (alertname, alertstate, service) (ALERTS)`, Range: true}},
	}
	g := &gatherer{rep: r}
	g.criteria()
	r.Summary = summary(r)
	return r
}

func TestMarkdownGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, fixture(), FormatMarkdown); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "report.golden.md")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./report -run Golden -update)", err)
	}
	if got := buf.String(); got != string(want) {
		t.Errorf("markdown differs from %s (run with -update if the change is meant):\n%s", golden, got)
	}
}

// The report's sections, in the seed's order.
var sections = []string{"Executive Summary", "Service Overview", "Crash-Site Analysis", "Impact Analysis",
	"Timeline", "Success Criteria", "Runbooks", "Queries Used"}

func TestSectionsInOrder(t *testing.T) {
	for _, format := range []string{FormatMarkdown, FormatHTML} {
		var buf bytes.Buffer
		if err := Write(&buf, fixture(), format); err != nil {
			t.Fatal(err)
		}
		out, last := buf.String(), -1
		for _, s := range sections {
			i := strings.Index(out, s)
			if i < 0 || i < last {
				t.Errorf("%s: section %q missing or out of order", format, s)
			}
			last = i
		}
	}
}

// The HTML report is one file: nothing is loaded from elsewhere.
func TestHTMLSelfContained(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, fixture(), FormatHTML); err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?i)<(script|link|img|iframe)[^>]*(src|href)=|@import|url\(`).FindString(buf.String()); m != "" {
		t.Errorf("the HTML report loads an outside resource: %s", m)
	}
	if !strings.Contains(buf.String(), "<pre>runtime error: invalid memory address") {
		t.Error("the example trace is missing")
	}
}

func TestSummaryFromFigures(t *testing.T) {
	s := fixture().Summary
	for _, want := range []string{"1 of 2 services are critical (wilddiggr)", "1 at warning (forestteaparty)", "376 stacktraces",
		"wilddiggr 376 at 183% memory", "task.clientWrite", "the client session, is nil", "376 bets failed",
		"forestteaparty took the graceful path instead: 120 closed-session warnings", "Firing now: HighNilSessionRate."} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
}

func TestThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 5000: "5,000", 1234567: "1,234,567", -1200: "-1,200", 12.6: "13"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}

// Command gen writes stackwatch's Prometheus rule file.
//
//	go run ./alerts/gen -o alerts/stackwatch.rules.yml [-nil-sessions-per-minute 10] ...
//	go run ./alerts/gen -demo -o alerts/demo/stackwatch.rules.yml
//
// The defaults are the thresholds in alerts.Default (with -demo, alerts.Demo:
// the same rules on make demo's shorter clock); go generate writes both, and
// the drift tests in package alerts compare the committed files with them.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/stackwatch/stackwatch/alerts"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	c := alerts.Default()
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	out := fs.String("o", "-", "output file (- for stdout)")
	fs.BoolFunc("demo", fmt.Sprintf("make demo's clock, alerts.Demo: -time-scale %g", alerts.DemoTimeScale), func(string) error {
		c.TimeScale = alerts.Demo().TimeScale
		return nil
	})
	fs.Float64Var(&c.TimeScale, "time-scale", c.TimeScale, "multiplies every rate window and for: duration (0, 1]")
	fs.StringVar(&c.RunbookBaseURL, "runbook-base", c.RunbookBaseURL, "URL prefix of docs/runbooks/<alert>.md (empty: repository-relative)")
	fs.Float64Var(&c.NilSessionsPerMinute, "nil-sessions-per-minute", c.NilSessionsPerMinute, "HighNilSessionRate threshold, nil-session writes per minute")
	fs.Float64Var(&c.StacktraceFiles, "stacktrace-files", c.StacktraceFiles, "StacktraceFilesHigh threshold, files on disk")
	fs.Float64Var(&c.Goroutines, "goroutines", c.Goroutines, "GoroutineLeakDetected threshold on go_goroutines")
	fs.Float64Var(&c.LeakSuspectGoroutines, "leak-suspect-goroutines", c.LeakSuspectGoroutines, "GoroutineLeakDetected threshold on goroutines at leak-suspect locations")
	fs.Float64Var(&c.MemoryLimitRatio, "memory-limit-ratio", c.MemoryLimitRatio, "MemoryNearLimit threshold, in-use/limit")
	fs.Float64Var(&c.ClientWriteFailuresPerMinute, "client-write-failures-per-minute", c.ClientWriteFailuresPerMinute, "ClientWriteFailuresHigh threshold")
	fs.Float64Var(&c.BetSuccessRatio, "bet-success-ratio", c.BetSuccessRatio, "BetSuccessRateLow objective, 1 - failed/all")
	fs.StringVar(&c.GameserverJob, "gameserver-job", c.GameserverJob, "regex matching the game servers' scrape job")
	fs.StringVar(&c.SidecarJob, "sidecar-job", c.SidecarJob, "regex matching the sidecars' scrape job")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := alerts.Render(c)
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(*out, b, 0o644)
}

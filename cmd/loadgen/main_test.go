package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/gameservertest"
	"github.com/stackwatch/stackwatch/internal/cli"
	"github.com/stackwatch/stackwatch/internal/clitest"
	"github.com/stackwatch/stackwatch/internal/proctest"
	"github.com/stackwatch/stackwatch/loadgen"
)

func TestMain(m *testing.M) { proctest.VerifyTestMain(m) }

func startServer(t *testing.T, legacy bool) string {
	t.Helper()
	return gameservertest.Start(t, gameserver.Config{Legacy: legacy}).AddrString()
}

// build compiles this command once per test binary.
func build(t *testing.T) string {
	t.Helper()
	return proctest.Build(t, ".")
}

func TestSmoke(t *testing.T) {
	bin := build(t)
	addr := startServer(t, false)
	code, stdout, stderr := clitest.Run(t, bin, "-addr", addr, "-clients", "10", "-duration", "2s",
		"-disconnect", "0.3", "-json", "-progress", "500ms", "-log.format", "json")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	var s loadgen.Summary
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, stdout)
	}
	if !s.OK() || s.Clients != 10 || s.BetsPlaced == 0 || s.Results != s.BetsPlaced || s.Lost != 0 ||
		s.BalanceChecks != 10 || s.Disconnects == 0 || s.P99ms <= 0 || s.BetsPerSecond <= 0 {
		t.Fatalf("summary: %+v", s)
	}
	for _, key := range []string{`"bets_placed"`, `"results_received"`, `"lost"`, `"duplicate_deliveries"`,
		`"duplicate_settlements"`, `"balance_mismatches"`, `"p50_ms"`, `"p99_ms"`, `"bets_per_second"`} {
		if !strings.Contains(stdout, key) {
			t.Errorf("JSON lacks %s", key)
		}
	}
	// stderr is logs only, every line in the format asked for.
	progress := 0
	for line := range strings.Lines(stderr) {
		var rec struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Level == "" {
			t.Errorf("stderr line is not a JSON log record: %q", line)
		}
		if strings.Contains(rec.Msg, "betting placed=") {
			progress++
		}
	}
	if progress == 0 {
		t.Errorf("no progress on stderr:\n%s", stderr)
	}
}

// Against the legacy server bets are lost, and loadgen must say so with its
// exit status.
func TestExitStatusOnLoss(t *testing.T) {
	bin := build(t)
	addr := startServer(t, true)
	code, stdout, stderr := clitest.Run(t, bin, "-addr", addr, "-clients", "20", "-duration", "2s",
		"-disconnect", "0.5", "-away", "1s", "-drain", "10s", "-progress", "0")
	if code != 1 || !strings.Contains(stdout, "FAIL") {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// Why, once, on stderr: the last line.
	if !regexp.MustCompile(`\nloadgen: run failed: [^\n]*\d+ bets lost[^\n]*\n$`).MatchString("\n" + stderr) {
		t.Errorf("stderr does not end with the reason:\n%s", stderr)
	}
}

// Against a closed port loadgen fails at once with the reason, even
// without progress lines, and does not wait for the players' dial deadline.
func TestClosedPortFailsFast(t *testing.T) {
	bin := build(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, stdout, stderr := clitest.Run(t, bin, "-addr", addr, "-duration", "10m", "-drain", "10m", "-progress", "0")
	want := "loadgen: -addr " + addr + ": connect: connection refused\n"
	if code != 1 || stdout != "" || stderr != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 1, nothing, %q", code, stdout, stderr, want)
	}
}

func TestHelpAndVersion(t *testing.T) {
	bin := build(t)
	for _, arg := range []string{"-h", "--help"} {
		if code, _, stderr := clitest.Run(t, bin, arg); code != 0 || !strings.Contains(stderr, "-log.level") {
			t.Errorf("%s: exit %d, want 0 with the flag list\n%s", arg, code, stderr)
		}
	}
	code, stdout, _ := clitest.Run(t, bin, "--version")
	if code != 0 || !strings.Contains(stdout, "loadgen, version") || !strings.Contains(stdout, "go version:") {
		t.Errorf("--version: exit %d\n%s", code, stdout)
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		why  string
	}{
		{[]string{"-addr", "10.1.2.3:7000"}, `target is not a loopback address: "10.1.2.3:7000"`},
		{[]string{"-clients", "0"}, "clients must be 1..10000, got 0"},
		{[]string{"-disconnect", "2"}, "disconnect probability must be in [0,1], got 2"},
		{[]string{"-duration", "-1s"}, "duration must be in (0, 24h0m0s], got -1s"},
		{[]string{"-log.format", "xml"}, `invalid value "xml" for flag -log.format`},
		{[]string{"-nosuchflag"}, "flag provided but not defined: -nosuchflag"},
		{[]string{"extra-arg"}, `unexpected arguments ["extra-arg"]`},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), tc.args, nil, &out, &errb)
		if code := cli.ExitCode(err); code != 2 || !strings.Contains(fmt.Sprint(err)+errb.String(), tc.why) {
			t.Errorf("loadgen %q: exit %d (%v), want 2 saying %q\n%s", tc.args, code, err, tc.why, errb.String())
		}
		if strings.Contains(fmt.Sprint(err), "loadgen:") {
			t.Errorf("loadgen %q: the error repeats the program's prefix: %v", tc.args, err)
		}
	}
	// A secret file that cannot be read is a runtime failure.
	err := run(context.Background(), []string{"-secret-file", "/nonexistent"}, nil, io.Discard, io.Discard)
	if cli.ExitCode(err) != 1 || err.Error() != "-secret-file: open /nonexistent: no such file or directory" {
		t.Errorf("missing secret file: exit %d, %v", cli.ExitCode(err), err)
	}
}

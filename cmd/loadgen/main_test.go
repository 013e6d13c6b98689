package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/gameservertest"
	"github.com/stackwatch/stackwatch/loadgen"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startServer(t *testing.T, legacy bool) string {
	t.Helper()
	return gameservertest.Start(t, gameserver.Config{Legacy: legacy}).AddrString()
}

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "loadgen")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runBin(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run %s: %v", bin, err)
	}
	return code, out.String(), errb.String()
}

func TestSmoke(t *testing.T) {
	bin := build(t)
	addr := startServer(t, false)
	code, stdout, stderr := runBin(t, bin, "-addr", addr, "-clients", "10", "-duration", "2s",
		"-disconnect", "0.3", "-json", "-progress", "500ms")
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
	if !strings.Contains(stderr, "loadgen:") || !strings.Contains(stderr, "betting placed=") {
		t.Errorf("no progress on stderr:\n%s", stderr)
	}
}

// Against the legacy server bets are lost, and loadgen must say so with its
// exit status.
func TestExitStatusOnLoss(t *testing.T) {
	bin := build(t)
	addr := startServer(t, true)
	code, stdout, stderr := runBin(t, bin, "-addr", addr, "-clients", "20", "-duration", "2s",
		"-disconnect", "0.5", "-away", "1s", "-drain", "10s", "-progress", "0")
	if code != 1 || !strings.Contains(stdout, "FAIL") {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-addr", "10.1.2.3:7000"},
		{"-clients", "0"},
		{"-disconnect", "2"},
		{"-duration", "-1s"},
		{"-secret-file", "/nonexistent"},
		{"-nosuchflag"},
		{"extra-arg"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("loadgen %q: exit %d, want 2 (stderr %q)", args, code, errb.String())
		}
	}
}

package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/internal/clitest"
)

// A fatal error bypasses recover: the process dies, and the trace the
// runtime printed is in the fatal file of the log directory, with the
// concurrent map write's site in the game server's code.
func TestFaultFatalLeavesTrace(t *testing.T) {
	bin := buildServer(t)
	dir := t.TempDir()
	logDir := filepath.Join(dir, "log")
	p := start(t, bin, "-game", "wilddig", "-fault-injection", "-pprof", "127.0.0.1:0",
		"-log-dir", logDir, "-data-dir", filepath.Join(dir, "data"))
	// The reply may or may not beat the crash; either way the process dies.
	if resp, err := http.Post("http://"+p.pprof+"/debug/fault?kind=fatal", "", nil); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("kind=fatal: %s", resp.Status)
		}
	}
	err := p.Wait(t, 30*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("exit %v, want a non-zero status", err)
	}
	fatal, _ := filepath.Glob(filepath.Join(logDir, "fatal-*.stacktrace.log"))
	if len(fatal) != 1 {
		t.Fatalf("fatal files %v, want one", fatal)
	}
	b, err := os.ReadFile(fatal[0])
	if err != nil {
		t.Fatal(err)
	}
	// The running goroutine, stopped by the runtime's map check in the
	// game server's code. Go 1.26 writes the "fatal error: concurrent map
	// writes" line to stderr only, not to the crash output
	// (golang/go#76859); the map check's frame says what happened.
	trace := string(b)
	site := regexp.MustCompile(`(?m)^goroutine \d+ [^\n]*\[running\]:\ninternal/runtime/maps\.fatal\(.*\n\t.*\n(?:.*\n\t.*\n)*?github\.com/stackwatch/stackwatch/gameserver\.concurrentMapWrites\.func1\(\)\n\t\S+/gameserver/fault\.go:\d+ `)
	if !site.MatchString(trace) {
		t.Errorf("%s holds no running goroutine stopped by the map check in gameserver.concurrentMapWrites.func1:\n%s", fatal[0], trace)
	}
	if strings.Contains(trace, "fatal error: concurrent map writes") {
		t.Log("the crash output now carries the runtime's message: golang/go#76859 is fixed")
	}
	// stderr has it all, as before.
	if !strings.Contains(p.Logs(), "fatal error: concurrent map writes\n") || !site.MatchString(p.Logs()) {
		t.Errorf("stderr lacks the fatal error or its trace:\n%s", p.Logs())
	}
}

// A recovered panic writes an ordinary stacktrace file; the server stays up.
// Leaked goroutines show in go_goroutines and in the goroutine profile.
func TestFaultPanicAndLeak(t *testing.T) {
	bin := buildServer(t)
	dir := t.TempDir()
	logDir := filepath.Join(dir, "log")
	p := start(t, bin, "-game", "wilddig", "-fault-injection",
		"-log-dir", logDir, "-data-dir", filepath.Join(dir, "data"))
	base := "http://" + p.admin // no -pprof: the loopback admin listener serves pprof and faults
	if _, page := request(t, "GET", base+"/"); !strings.Contains(page, `href="/debug/fault"`) {
		t.Errorf("the landing page does not list /debug/fault:\n%s", page)
	}

	if code, body := request(t, "POST", base+"/debug/fault?kind=panic"); code != http.StatusOK {
		t.Fatalf("kind=panic: %d %q", code, body)
	}
	files, _ := filepath.Glob(filepath.Join(logDir, "wilddiggr-*.stacktrace.log"))
	if len(files) != 1 {
		t.Fatalf("stacktrace files %v, want one", files)
	}
	if b, _ := os.ReadFile(files[0]); !strings.Contains(string(b), "gameserver.settleInjectedBet(") {
		t.Errorf("%s:\n%s", files[0], b)
	}
	if m := get(t, base+"/metrics"); metric(t, m, "gameserver_panics_recovered_total") != 1 {
		t.Errorf("panics recovered: %v", metric(t, m, "gameserver_panics_recovered_total"))
	}

	const n = 500
	before := metric(t, get(t, base+"/metrics"), "go_goroutines")
	if code, body := request(t, "POST", fmt.Sprintf("%s/debug/fault?kind=leak&n=%d", base, n)); code != http.StatusOK {
		t.Fatalf("kind=leak: %d %q", code, body)
	}
	// Other goroutines (HTTP connections) come and go meanwhile: the
	// profile below counts the parked ones exactly.
	if after := metric(t, get(t, base+"/metrics"), "go_goroutines"); after <= before || after < n {
		t.Errorf("go_goroutines %v → %v, want it to rise past %d", before, after, n)
	}
	profile := get(t, base+"/debug/pprof/goroutine?debug=1")
	parked := regexp.MustCompile(`(?m)^(\d+) @[^\n]*\n(?:#[^\n]*\n)*?#\s+0x[0-9a-f]+\s+github.com/stackwatch/stackwatch/gameserver\.parkGoroutines\.func1\+`).FindStringSubmatch(profile)
	if parked == nil || parked[1] != strconv.Itoa(n) {
		t.Errorf("goroutine profile: %v parked in parkGoroutines, want %d", parked, n)
	}
	for _, tc := range []struct {
		method, query string
		code          int
		says          string
	}{
		{"GET", "?kind=fatal", http.StatusMethodNotAllowed, ""},
		{"PUT", "?kind=panic", http.StatusMethodNotAllowed, ""},
		{"POST", "", http.StatusBadRequest, `unknown kind ""`},
		{"POST", "?kind=oom", http.StatusBadRequest, `unknown kind "oom": want fatal, panic or leak`},
		{"POST", "?kind=leak&n=0", http.StatusBadRequest, "n must be 1..10000"},
		{"POST", "?kind=leak&n=20000", http.StatusBadRequest, "n must be 1..10000"},
		{"POST", "?kind=leak&n=many", http.StatusBadRequest, "n must be 1..10000"},
	} {
		if code, body := request(t, tc.method, base+"/debug/fault"+tc.query); code != tc.code || !strings.Contains(body, tc.says) {
			t.Errorf("%s %s: %d %q, want %d saying %q", tc.method, tc.query, code, body, tc.code, tc.says)
		}
	}
	if code, _ := request(t, "GET", base+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz: %d", code)
	}
}

// -fault-injection beside a listener beyond loopback is a usage error.
func TestFaultInjectionRefused(t *testing.T) {
	bin := buildServer(t)
	dir := t.TempDir()
	dirs := []string{"-game", "wilddig", "-listen", "127.0.0.1:0", "-log-dir", filepath.Join(dir, "log"), "-data-dir", filepath.Join(dir, "data")}
	for _, tc := range []struct {
		args []string
		why  string
	}{
		{[]string{"-admin", "0.0.0.0:0"}, "-admin is 0.0.0.0:0"},
		{[]string{"-admin", ":7060"}, "-admin is :7060"},
		{[]string{"-admin", "127.0.0.1:0", "-pprof", "0.0.0.0:0"}, "-pprof is 0.0.0.0:0"},
	} {
		code, _, stderr := clitest.Run(t, bin, append(append(dirs[:len(dirs):len(dirs)], "-fault-injection"), tc.args...)...)
		want := "gameserver: -fault-injection is served beside /debug/pprof, on loopback only; " + tc.why + "\n"
		if code != 2 || stderr != want {
			t.Errorf("%q: exit %d, stderr %q; want 2, %q", tc.args, code, stderr, want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a refused start left %v", entries)
	}
}

// metric reads one sample's value from an exposition.
func metric(t *testing.T, exposition, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(?:\{[^}]*\})? (\S+)$`).FindStringSubmatch(exposition)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

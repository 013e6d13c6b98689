package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stackwatch/stackwatch/internal/clitest"
)

func TestHelpExitsZero(t *testing.T) {
	bin := buildServer(t)
	for _, arg := range []string{"-h", "--help", "-help"} {
		code, _, stderr := clitest.Run(t, bin, arg)
		if code != 0 || !strings.Contains(stderr, "-log.format") || !strings.Contains(stderr, `(default "127.0.0.1:7060")`) {
			t.Errorf("%s: exit %d, want 0 with the flag list\n%s", arg, code, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	bin := buildServer(t)
	code, stdout, stderr := clitest.Run(t, bin, "--version")
	if code != 0 || stderr != "" {
		t.Fatalf("--version: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"gameserver, version", "revision:", "go version:"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--version lacks %q:\n%s", want, stdout)
		}
	}
}

// Usage errors exit 2 and say why once; nothing is created on disk.
func TestUsageErrorsExitTwo(t *testing.T) {
	bin := buildServer(t)
	dir := t.TempDir()
	dirs := []string{"-log-dir", filepath.Join(dir, "log"), "-data-dir", filepath.Join(dir, "data")}
	for _, tc := range []struct {
		args []string
		why  string
	}{
		{[]string{"-game", "wilddig", "extra"}, `gameserver: unexpected arguments ["extra"]`},
		{[]string{"-nosuchflag"}, "flag provided but not defined: -nosuchflag"},
		{[]string{"-game", "poker"}, `gameserver: -game "poker": want one of forestteaparty, goldenclover, wilddig`},
		{[]string{"-game", "wilddig", "-memory-limit", "lots"}, `gameserver: -memory-limit: bad size "lots"`},
		{[]string{"-game", "wilddig", "-log.level", "loud"}, `invalid value "loud" for flag -log.level`},
		{[]string{"-game", "wilddig", "-log.format", "xml"}, `invalid value "xml" for flag -log.format`},
		{[]string{"-game", "wilddig", "-listen", "127.0.0.1:7999", "-admin", "127.0.0.1:7999"}, "gameserver: -listen and -admin are both 127.0.0.1:7999"},
		{[]string{"-game", "wilddig", "-admin", "no-port"}, "gameserver: -admin no-port: address no-port: missing port in address"},
		{[]string{"-game", "wilddig", "-listen", "0.0.0.0:0"}, "gameserver: -listen 0.0.0.0:0 is not loopback: set -secret-file"},
		{[]string{"-game", "wilddig", "-max-conns", "-5"}, "gameserver: -max-conns, -max-unauth-conns, -redelivery-page and -bet-history must not be negative"},
		{[]string{"-game", "wilddig", "-hello-timeout", "-1s"}, "must not be negative"},
	} {
		code, _, stderr := clitest.Run(t, bin, append(dirs[:len(dirs):len(dirs)], tc.args...)...)
		if code != 2 || strings.Count(stderr, tc.why) != 1 {
			t.Errorf("%q: exit %d, want 2 saying %q once:\n%s", tc.args, code, tc.why, stderr)
		}
		if strings.Contains(stderr, "gameserver: gameserver:") {
			t.Errorf("%q: doubled prefix:\n%s", tc.args, stderr)
		}
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "*")); len(matches) != 0 {
		t.Errorf("a refused start left %v", matches)
	}
}

// A runtime failure exits 1, naming the flag and the reason, once.
func TestPortInUseExitsOne(t *testing.T) {
	bin := buildServer(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	for _, flag := range []string{"-listen", "-admin"} {
		dir := t.TempDir()
		args := []string{"-game", "wilddig", "-listen", "127.0.0.1:0", "-admin", "127.0.0.1:0",
			"-log-dir", filepath.Join(dir, "log"), "-data-dir", filepath.Join(dir, "data"), flag, addr}
		code, _, stderr := clitest.Run(t, bin, args...)
		want := "gameserver: " + flag + " " + addr + ": bind: address already in use\n"
		if code != 1 || stderr != want {
			t.Errorf("%s busy: exit %d, stderr %q; want 1, %q", flag, code, stderr, want)
		}
		if fatal, _ := filepath.Glob(filepath.Join(dir, "log", "fatal-*")); len(fatal) != 0 {
			t.Errorf("a failed start left %v", fatal)
		}
	}
	code, _, stderr := clitest.Run(t, bin, "-game", "wilddig", "-secret-file", "/nonexistent/secret")
	if want := "gameserver: -secret-file: open /nonexistent/secret: no such file or directory\n"; code != 1 || stderr != want {
		t.Errorf("missing secret file: exit %d, stderr %q; want 1, %q", code, stderr, want)
	}
}

// The default log format is logfmt (start parses it); -log.format json
// makes every line on stderr a JSON object.
func TestLogFormatJSON(t *testing.T) {
	bin := buildServer(t)
	dir := t.TempDir()
	p := start(t, bin, "-game", "wilddig", "-log.format", "json",
		"-log-dir", filepath.Join(dir, "log"), "-data-dir", filepath.Join(dir, "data"))
	p.Stop(t, os.Interrupt)
	for line := range strings.Lines(p.Logs()) {
		if !json.Valid([]byte(line)) {
			t.Errorf("not JSON: %q", line)
		}
	}
	if !strings.Contains(p.Logs(), `"msg":"stopped"`) {
		t.Errorf("no stopped line:\n%s", p.Logs())
	}
}

// Each listener's "/" links its endpoints, and only its own.
func TestLandingPages(t *testing.T) {
	bin := buildServer(t)
	dir := t.TempDir()
	shared := start(t, bin, "-game", "wilddig", "-log-dir", filepath.Join(dir, "a", "log"), "-data-dir", filepath.Join(dir, "a", "data"))
	split := start(t, bin, "-game", "goldenclover", "-pprof", "127.0.0.1:0",
		"-log-dir", filepath.Join(dir, "b", "log"), "-data-dir", filepath.Join(dir, "b", "data"))
	link := func(path string) string { return `href="` + path + `"` }
	for _, tc := range []struct {
		name, addr string
		want, not  []string
	}{
		{"shared admin", shared.admin, []string{link("/metrics"), link("/healthz"), link("/readyz"), link("/debug/pprof/"), "wilddiggr"}, nil},
		{"split admin", split.admin, []string{link("/metrics"), link("/healthz"), link("/readyz"), split.pprof}, []string{link("/debug/pprof/")}},
		{"split pprof", split.pprof, []string{link("/debug/pprof/"), "goldenclover"}, []string{link("/metrics")}},
	} {
		body := get(t, "http://"+tc.addr+"/")
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s /: lacks %s\n%s", tc.name, w, body)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(body, w) {
				t.Errorf("%s /: has %s\n%s", tc.name, w, body)
			}
		}
		// The page is at "/" only; every path it links answers.
		if code, _ := request(t, "GET", "http://"+tc.addr+"/nope"); code != http.StatusNotFound {
			t.Errorf("%s /nope: %d", tc.name, code)
		}
		for _, m := range regexp.MustCompile(`href="([^"]+)"`).FindAllStringSubmatch(body, -1) {
			if code, _ := request(t, "GET", "http://"+tc.addr+m[1]); code != http.StatusOK {
				t.Errorf("%s: link %s answers %d", tc.name, m[1], code)
			}
		}
	}
}

// request sends an empty request and returns the status and body.
func request(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// While the server runs, the runtime's fatal error output has a file in the
// log directory, named for the sidecar's stacktrace pattern; a clean exit
// removes it, empty.
func TestCrashOutputFileLifecycle(t *testing.T) {
	bin := buildServer(t)
	dir := t.TempDir()
	logDir := filepath.Join(dir, "log")
	p := start(t, bin, "-game", "wilddig", "-log-dir", logDir, "-data-dir", filepath.Join(dir, "data"))
	fatal, _ := filepath.Glob(filepath.Join(logDir, "fatal-*.stacktrace.log"))
	if len(fatal) != 1 || !strings.HasSuffix(fatal[0], fmt.Sprintf("-%d.stacktrace.log", p.Pid())) {
		t.Fatalf("fatal files %v, want one for pid %d", fatal, p.Pid())
	}
	if fi, err := os.Stat(fatal[0]); err != nil || fi.Size() != 0 {
		t.Fatalf("%s: %v, size %d", fatal[0], err, fi.Size())
	}
	if !strings.Contains(p.Logs(), fatal[0]) {
		t.Errorf("the log does not name %s:\n%s", fatal[0], p.Logs())
	}
	if err := p.Stop(t, os.Interrupt); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.Logs())
	}
	if _, err := os.Stat(fatal[0]); !os.IsNotExist(err) {
		t.Errorf("after a clean exit %s: %v", fatal[0], err)
	}
}

package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func parse(t *testing.T, args ...string) (c *Common, stop bool, out string, err error) {
	t.Helper()
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Int("n", 1, "a number")
	c = Register(fs, "prog")
	var buf bytes.Buffer
	stop, err = c.Parse(fs, args, &buf)
	return c, stop, buf.String(), err
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args []string
		stop bool
		code int
	}{
		{nil, false, ExitOK},
		{[]string{"-h"}, true, ExitOK},
		{[]string{"--help"}, true, ExitOK},
		{[]string{"--version"}, true, ExitOK},
		{[]string{"-n", "x"}, true, ExitUsage},
		{[]string{"-nope"}, true, ExitUsage},
		{[]string{"-log.level", "loud"}, true, ExitUsage},
		{[]string{"-log.format", "json", "-log.level", "debug"}, false, ExitOK},
	} {
		_, stop, _, err := parse(t, tc.args...)
		if stop != tc.stop || ExitCode(err) != tc.code {
			t.Errorf("%q: stop=%v code=%d (err %v), want stop=%v code=%d", tc.args, stop, ExitCode(err), err, tc.stop, tc.code)
		}
	}
}

func TestVersionPrintsProgramAndGoVersion(t *testing.T) {
	_, _, out, _ := parse(t, "--version")
	if !strings.Contains(out, "prog, version") || !strings.Contains(out, "go version:") {
		t.Fatalf("--version printed %q", out)
	}
}

func TestLoggerFormat(t *testing.T) {
	c, _, _, _ := parse(t, "-log.format", "json", "-log.level", "warn")
	var buf bytes.Buffer
	log := c.Logger(&buf)
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	if s := buf.String(); strings.Contains(s, "hidden") || !strings.HasPrefix(s, "{") || !strings.Contains(s, `"msg":"shown"`) {
		t.Fatalf("log output %q", s)
	}
}

func TestExitCode(t *testing.T) {
	if got := ExitCode(fmt.Errorf("wrapped: %w", Usagef("bad %s", "x"))); got != ExitUsage {
		t.Errorf("wrapped usage error: %d", got)
	}
	if got := ExitCode(errors.New("listen: address in use")); got != ExitFailure {
		t.Errorf("runtime error: %d", got)
	}
	if got := ExitCode(fmt.Errorf("x: %w", flag.ErrHelp)); got != ExitOK {
		t.Errorf("help: %d", got)
	}
}

func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(BuildInfo("prog"))
	if n, err := testutil.GatherAndCount(reg, "prog_build_info"); err != nil || n != 1 {
		t.Fatalf("prog_build_info: %d series, %v", n, err)
	}
}

func TestLandingPage(t *testing.T) {
	h := LandingPage("prog", "does things", []Link{{"/metrics", "Prometheus metrics"}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `href="/metrics"`) {
		t.Fatalf("/: %d %q", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/nope", nil))
	if rec.Code != 404 {
		t.Fatalf("/nope: %d", rec.Code)
	}
}

func TestHelpPrintsDefaultsWithoutPanic(t *testing.T) {
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	c := Register(fs, "prog")
	if _, err := c.Parse(fs, []string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	if s := out.String(); strings.Contains(s, "panic") || !strings.Contains(s, `(default info)`) || !strings.Contains(s, `(default logfmt)`) {
		t.Fatalf("help output:\n%s", s)
	}
}

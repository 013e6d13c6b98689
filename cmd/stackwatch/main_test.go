package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stackwatch/stackwatch/internal/cli"
)

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "1.stacktrace.log")
	if err := os.WriteFile(trace, []byte("runtime error: invalid memory address or nil pointer dereference\n"+
		"goroutine 7 [running]:\nmain.f({0x0, 0x0})\n\t/src/main.go:9 +0x1d\ncreated by main.main in goroutine 1\n\t/src/main.go:5 +0x25\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string // a substring of stdout
	}{
		{[]string{"-h"}, cli.ExitOK, ""},
		{[]string{"--version"}, cli.ExitOK, "stackwatch, version"},
		{nil, cli.ExitUsage, ""},
		{[]string{"frobnicate"}, cli.ExitUsage, ""},
		{[]string{"report"}, cli.ExitUsage, ""}, // -prometheus missing
		{[]string{"report", "-prometheus", "http://127.0.0.1:1", "-format", "pdf"}, cli.ExitUsage, ""}, // bad format
		{[]string{"report", "-h"}, cli.ExitOK, ""},
		{[]string{"report", "-prometheus", "http://127.0.0.1:1"}, cli.ExitFailure, ""}, // unreachable
		{[]string{"analyze", trace}, cli.ExitOK, "main.f"},
		{[]string{"dumps", "list", "-sidecar", "http://127.0.0.1:1"}, cli.ExitFailure, ""},
	} {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), tc.args, nil, &stdout, &stderr)
		if got := cli.ExitCode(err); got != tc.code || !strings.Contains(stdout.String(), tc.stdout) {
			t.Errorf("stackwatch %q: exit %d (%v), stdout %q; want exit %d with %q", tc.args, got, err, stdout.String(), tc.code, tc.stdout)
		}
	}
}

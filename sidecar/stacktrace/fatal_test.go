package stacktrace_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/stacktrace"
)

// TestSetCrashOutputFile builds testdata/fatalcrash, lets it die of a
// concurrent map write with its crash output sent to a file as the game
// server does, and parses that file: a fatal crash at the map write.
func TestSetCrashOutputFile(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool:", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "fatalcrash")
	if out, err := exec.Command(goTool, "build", "-o", bin, "./testdata/fatalcrash").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	logDir := filepath.Join(dir, "log")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, logDir).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("fatalcrash exited with %v, want status 2\n%s", err, out)
	}
	files, err := filepath.Glob(filepath.Join(logDir, "fatal-*.stacktrace.log"))
	if err != nil || len(files) != 1 {
		t.Fatalf("crash files %q, %v", files, err)
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := stacktrace.Parse(f, 0)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, out)
	}
	if p.Kind != stacktrace.KindFatal || !p.Fatal || p.Message != "concurrent map writes" {
		t.Errorf("Kind %q, Fatal %v, Message %q; want fatal, concurrent map writes", p.Kind, p.Fatal, p.Message)
	}
	sig := crash.Classify(p)
	if sig.Site.Function != "main.recordBet" || sig.Caller != "main.main.func1" {
		t.Errorf("crash site %+v, caller %q; want main.recordBet called by main.main.func1", sig.Site, sig.Caller)
	}
}

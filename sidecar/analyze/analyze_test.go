package analyze

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/stacktool"
	"github.com/stackwatch/stackwatch/internal/proctest"
	"github.com/stackwatch/stackwatch/sidecar/stacktrace"
)

func TestMain(m *testing.M) { proctest.VerifyTestMain(m) }

const thisPkg = "github.com/stackwatch/stackwatch/sidecar/analyze."

// clientWrite and the two response handlers have the incident's shape: a
// nil session interface dereferenced in clientWrite.
//
//go:noinline
func clientWrite(w io.Writer, data []byte, size int) error {
	_, err := w.Write(data[:size])
	return err
}

//go:noinline
func onWildDigBetClientResp(w io.Writer) { _ = clientWrite(w, make([]byte, 0x56, 0x80), 0x56) }

//go:noinline
func onGoldenCloverBetClientResp(w io.Writer) { _ = clientWrite(w, make([]byte, 0x55, 0x80), 0x55) }

// record writes n stacktrace files into dir with the game server's own
// recorder (gameserver/stacktool), from real recovered panics of f.
func record(t *testing.T, dir, service string, legacy bool, n int, f func()) []string {
	t.Helper()
	var paths []string
	rec := &stacktool.Recorder{
		Dir: dir, Service: service, Legacy: legacy,
		Logger:  slog.New(slog.NewJSONHandler(io.Discard, nil)),
		OnPanic: func(_ any, path string) { paths = append(paths, path) },
	}
	for range n {
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer rec.RecoverFunc()
			f()
		}()
		<-done
	}
	if len(paths) != n {
		t.Fatalf("recorded %d of %d files", len(paths), n)
	}
	return paths
}

func setMtimes(t *testing.T, paths []string, start time.Time, step time.Duration) {
	t.Helper()
	for i, p := range paths {
		at := start.Add(time.Duration(i) * step)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// jsonReport mirrors the documented JSON contract with plain maps, so a
// renamed key fails here even if the Go types change with it.
type jsonReport struct {
	Files    int              `json:"files"`
	Groups   []map[string]any `json:"groups"`
	Failures []struct {
		File  string `json:"file"`
		Error string `json:"error"`
	} `json:"failures"`
	Profiles []map[string]any `json:"profiles"`
}

func runJSON(t *testing.T, args ...string) (jsonReport, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), append([]string{"-json"}, args...), nil, &out, &errOut)
	var rep jsonReport
	if out.Len() > 0 {
		if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
			t.Fatalf("output is not JSON: %v\n%s", jerr, out.Bytes())
		}
	}
	return rep, err
}

func group(t *testing.T, rep jsonReport, function, caller string) map[string]any {
	t.Helper()
	for _, g := range rep.Groups {
		site := g["crash_site"].(map[string]any)
		if site["function"] == function && g["caller"] == caller {
			return g
		}
	}
	t.Fatalf("no group %s <- %s in %v", function, caller, rep.Groups)
	return nil
}

// podCopy builds a folder as kubectl cp would copy it out of a pod: files
// the game server's recorder wrote (both write modes), the report's
// examples, and the junk a log folder collects.
func podCopy(t *testing.T) (dir string, wild, gold []string) {
	dir = t.TempDir()
	t0 := time.Date(2025, 11, 5, 11, 45, 0, 0, time.UTC)
	wild = record(t, dir, "wilddiggr", true, 9, func() { onWildDigBetClientResp(nil) })
	wild = append(wild, record(t, dir, "wilddiggr", false, 1, func() { onWildDigBetClientResp(nil) })...)
	setMtimes(t, wild, t0, time.Hour) // ten panics over nine hours
	gold = record(t, dir, "goldenclover", true, 4, func() { onGoldenCloverBetClientResp(nil) })
	setMtimes(t, gold, t0.Add(6*time.Hour), time.Hour)
	sub := filepath.Join(dir, "older", "report")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 3; n++ {
		copyFile(t, fmt.Sprintf("../stacktrace/testdata/report_example%d.stacktrace.log", n),
			filepath.Join(sub, fmt.Sprintf("ex%d.stacktrace.log", n)))
	}
	for name, content := range map[string]string{
		"garbage.stacktrace.log": "\x00\x01\x02\xff binary",
		"empty.stacktrace.log":   "",
		"notes.txt":              "not a stacktrace file, not looked at",
		"gameserver.log":         `{"level":"WARN","msg":"[Client] Gate session closed, message cannot be sent","player":"p1"}` + "\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, wild, gold
}

func TestAnalyzeFolderJSON(t *testing.T) {
	dir, wild, gold := podCopy(t)
	rep, err := runJSON(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	// 10 + 4 recorded, 3 report examples, garbage, empty.
	if rep.Files != 19 {
		t.Errorf("files = %d, want 19", rep.Files)
	}
	if len(rep.Groups) != 5 {
		t.Errorf("%d groups, want 5: %v", len(rep.Groups), rep.Groups)
	}
	w := group(t, rep, thisPkg+"clientWrite", thisPkg+"onWildDigBetClientResp")
	if w["count"] != 10.0 || w["nil_receiver"] != true || w["kind"] != stacktrace.KindNilDereference ||
		w["message"] != "runtime error: invalid memory address or nil pointer dereference" {
		t.Errorf("wilddiggr group: %v", w)
	}
	if w["first_seen"] != "2025-11-05T11:45:00Z" || w["last_seen"] != "2025-11-05T20:45:00Z" {
		t.Errorf("seen %v .. %v", w["first_seen"], w["last_seen"])
	}
	if r := w["rate_per_hour"].(float64); r < 1.1 || r > 1.12 {
		t.Errorf("rate %v, want 10/9 per hour", r)
	}
	files := w["files"].([]any)
	if len(files) != 10 || files[0] != wild[9] || files[9] != wild[0] {
		t.Errorf("files (newest first): %v", files)
	}
	site := w["crash_site"].(map[string]any)
	if !strings.HasSuffix(site["file"].(string), "analyze_test.go") || site["line"].(float64) <= 0 {
		t.Errorf("crash_site %v", site)
	}
	if !strings.HasPrefix(w["example"].(string), "runtime error: invalid memory address") {
		t.Errorf("example %q", w["example"])
	}
	g := group(t, rep, thisPkg+"clientWrite", thisPkg+"onGoldenCloverBetClientResp")
	if g["count"] != 4.0 || g["nil_receiver"] != true || len(g["files"].([]any)) != len(gold) {
		t.Errorf("goldenclover group: %v", g)
	}
	// The report's examples, verbatim: three groups of their own.
	const task = "trevi/arcade-wilddig-gameserver/task."
	for _, c := range [][2]string{
		{task + "clientWrite", task + "onWildDigBetClientResp"},
		{task + "clientWrite", task + "onGoldenCloverBetClientResp"},
		{task + "ClientGetWilddigReckonBetRes.func1", ""},
	} {
		if g := group(t, rep, c[0], c[1]); g["count"] != 1.0 {
			t.Errorf("%v: %v", c, g)
		}
	}
	// Largest first.
	if rep.Groups[0]["count"] != 10.0 {
		t.Errorf("first group has count %v", rep.Groups[0]["count"])
	}
	failed := map[string]string{}
	for _, f := range rep.Failures {
		failed[filepath.Base(f.File)] = f.Error
	}
	if len(failed) != 2 || !strings.Contains(failed["garbage.stacktrace.log"], "binary") ||
		!strings.Contains(failed["empty.stacktrace.log"], "empty") {
		t.Errorf("failures: %v", rep.Failures)
	}
	// Every contract key is present in every group.
	for _, g := range rep.Groups {
		for _, k := range []string{"key", "kind", "message", "crash_site", "caller", "nil_receiver", "count",
			"first_seen", "last_seen", "rate_per_hour", "files", "files_dropped", "example"} {
			if _, ok := g[k]; !ok {
				t.Errorf("group lacks %q: %v", k, g)
			}
		}
	}
}

func TestAnalyzeText(t *testing.T) {
	dir, _, _ := podCopy(t)
	var out, errOut bytes.Buffer
	if err := Run(context.Background(), []string{"-show-files", "2", dir}, nil, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"17 panics in 5 crash groups (19 files read, 2 failed)",
		"analyze.clientWrite:", "analyze.onWildDigBetClientResp", "analyze.onGoldenCloverBetClientResp",
		"task.ClientGetWilddigReckonBetRes.func1:208",
		"nil receiver: the crashing call's first argument is nil",
		"... and 8 more files",
		"garbage.stacktrace.log: stacktrace: not a Go panic: binary data",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "notes.txt") || strings.Contains(text, "gameserver.log") {
		t.Errorf("files outside the pattern were read:\n%s", text)
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr: %s", errOut.String())
	}
}

// Files named explicitly are read whatever their name; folders and files mix.
func TestAnalyzeExplicitFiles(t *testing.T) {
	dir := t.TempDir()
	paths := record(t, dir, "wilddiggr", false, 2, func() { onWildDigBetClientResp(nil) })
	renamed := filepath.Join(dir, "copied-by-hand.txt")
	copyFile(t, paths[0], renamed)
	other := t.TempDir()
	record(t, other, "goldenclover", false, 1, func() { onGoldenCloverBetClientResp(nil) })
	rep, err := runJSON(t, renamed, other, "../stacktrace/testdata/go1.19_http_serving.txt")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != 3 || len(rep.Groups) != 3 || len(rep.Failures) != 0 {
		t.Errorf("files %d, groups %d, failures %v", rep.Files, len(rep.Groups), rep.Failures)
	}
}

func TestAnalyzeUsageErrors(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no paths", nil, "usage: sidecar analyze"},
		{"json but no paths", []string{"-json"}, "usage: sidecar analyze"},
		{"unknown flag", []string{"-bogus", "."}, "flag provided but not defined"},
		{"bad pattern", []string{"-pattern", "[", "."}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if err := Run(context.Background(), tc.args, nil, &out, &errOut); err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(errOut.String(), tc.stderr) {
				t.Errorf("stderr %q lacks %q", errOut.String(), tc.stderr)
			}
		})
	}
}

// A missing path is an error, but the paths that exist are still reported.
func TestAnalyzeMissingPath(t *testing.T) {
	dir := t.TempDir()
	record(t, dir, "wilddiggr", false, 1, func() { onWildDigBetClientResp(nil) })
	rep, err := runJSON(t, filepath.Join(dir, "nope"), dir)
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v", err)
	}
	if len(rep.Groups) != 1 {
		t.Errorf("groups: %v", rep.Groups)
	}
}

// A 100 MB stacktrace file is parsed from its head; a 100 MB garbage file
// fails cleanly.
func TestAnalyzeHugeFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200 MB")
	}
	dir := t.TempDir()
	paths := record(t, dir, "wilddiggr", false, 1, func() { onWildDigBetClientResp(nil) })
	head, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	fill := func(name string, head []byte, line string) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		chunk := []byte(strings.Repeat(line, (1<<20)/len(line)))
		if _, err := f.Write(head); err != nil {
			t.Fatal(err)
		}
		for range 100 {
			if _, err := f.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
	fill("huge.stacktrace.log", head, "\ngoroutine 7 [chan receive]:\nmain.worker()\n\t/app/w.go:1 +0x1\n")
	fill("noise.stacktrace.log", nil, "lorem ipsum dolor sit amet\n")
	rep, err := runJSON(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Groups) != 1 || rep.Groups[0]["count"] != 2.0 {
		t.Errorf("groups: %v", rep.Groups)
	}
	if len(rep.Failures) != 1 || filepath.Base(rep.Failures[0].File) != "noise.stacktrace.log" {
		t.Errorf("failures: %v", rep.Failures)
	}
}

// profileResult is what the test's profile analyzer returns.
// A goroutine profile and a debug=2 dump named on the command line are
// grouped as goroutines; the same bytes found in a folder under the
// stacktrace pattern are not panics.
func TestProfiles(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "goroutine.pb.gz")
	dump := filepath.Join(dir, "goroutine.debug2.txt")
	var pb, d2 bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&pb, 0); err != nil {
		t.Fatal(err)
	}
	if err := pprof.Lookup("goroutine").WriteTo(&d2, 2); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{prof: pb.Bytes(), dump: d2.Bytes()} {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sub := filepath.Join(dir, "log")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, dump, filepath.Join(sub, "x.stacktrace.log"))
	rep, err := runJSON(t, prof, dump)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Profiles) != 2 || len(rep.Groups) != 0 || len(rep.Failures) != 0 {
		t.Fatalf("profiles %v, groups %v, failures %v", rep.Profiles, rep.Groups, rep.Failures)
	}
	for _, p := range rep.Profiles {
		if total := p["result"].(map[string]any)["total"].(float64); total < 2 {
			t.Errorf("%s: %v goroutines", p["file"], total)
		}
	}
	var out bytes.Buffer
	if err := Run(context.Background(), []string{dump}, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "profile "+dump+":\n") || !strings.Contains(out.String(), "goroutines in") {
		t.Errorf("text:\n%s", out.String())
	}
}

// Symlinked files are followed; fifos and dangling links never block or abort the walk.
func TestAnalyzeSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	real := t.TempDir()
	paths := record(t, real, "wilddiggr", false, 1, func() { onWildDigBetClientResp(nil) })
	if err := os.Symlink(paths[0], filepath.Join(dir, "link.stacktrace.log")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "gone"), filepath.Join(dir, "dangling.stacktrace.log")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.stacktrace.log"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A running game server's crash output file: empty, not a failure.
	if err := os.WriteFile(filepath.Join(dir, gameserver.FatalPrefix+"20261130T144807.607Z-12415"+stacktool.Suffix), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := runJSON(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != 1 || len(rep.Groups) != 1 || len(rep.Failures) != 1 ||
		filepath.Base(rep.Failures[0].File) != "dangling.stacktrace.log" {
		t.Errorf("files %d, groups %d, failures %v", rep.Files, len(rep.Groups), rep.Failures)
	}
}

// BenchmarkAnalyzeFolder runs analyze over a folder of real stacktrace
// files, I/O included.
func BenchmarkAnalyzeFolder(b *testing.B) {
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		b.Fatal(err)
	}
	rec := &stacktool.Recorder{Dir: src, Service: "wilddiggr", Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer rec.RecoverFunc()
		onWildDigBetClientResp(nil)
	}()
	<-done
	m, _ := filepath.Glob(filepath.Join(src, "*.stacktrace.log"))
	if len(m) != 1 {
		b.Fatalf("%d files", len(m))
	}
	data, err := os.ReadFile(m[0])
	if err != nil {
		b.Fatal(err)
	}
	const files = 2000
	for i := range files {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("w-%d.stacktrace.log", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		rep, err := Analyze(context.Background(), []string{dir}, Options{})
		if err != nil || rep.Files != files+1 {
			b.Fatal(err, rep.Files)
		}
	}
	b.ReportMetric(float64(b.N*(files+1))/b.Elapsed().Seconds(), "files/s")
}

func TestAnalyzeCancelled(t *testing.T) {
	dir := t.TempDir()
	record(t, dir, "wilddiggr", false, 3, func() { onWildDigBetClientResp(nil) })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := Analyze(ctx, []string{dir, dir}, Options{})
	if !errors.Is(err, context.Canceled) || rep == nil || rep.Files != 0 {
		t.Fatalf("cancelled: %v, %+v", err, rep)
	}
}

// TestRunInterrupted: Ctrl-C stops analyze while it waits on stdin or on a
// FIFO, reads that cannot themselves be interrupted.
func TestRunInterrupted(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	var w *os.File
	for _, tc := range []struct {
		name           string
		arg            string
		reading, close func()
	}{
		{"stdin", "-", func() {}, func() { pw.Close() }},
		// Opening the write end returns once analyze has opened the read
		// end; analyze then waits for data until the writer closes.
		{"fifo", fifo, func() {
			var err error
			if w, err = os.OpenFile(fifo, os.O_WRONLY, 0); err != nil {
				t.Fatal(err)
			}
		}, func() { w.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- Run(ctx, []string{tc.arg}, pr, io.Discard, io.Discard) }()
			tc.reading()
			cancel()
			select {
			case err := <-errc:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Run: %v, want context.Canceled", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run still waiting 10s after Ctrl-C")
			}
			tc.close()
		})
	}
}

// A run that finds nothing to analyze in any input fails, so a pipeline
// (kubectl logs | stackwatch analyze -) notices; one good input is enough.
func TestRunFailsWhenNothingAnalyzed(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "a.stacktrace.log")
	if err := os.WriteFile(garbage, []byte("hello world\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err := Run(context.Background(), []string{garbage}, nil, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "none of the 1 inputs") {
		t.Fatalf("garbage only: err %v", err)
	}
	if !strings.Contains(out.String(), "not analyzed") {
		t.Errorf("the failure is not reported:\n%s", out.String())
	}
	paths := record(t, dir, "wilddiggr", false, 1, func() { onWildDigBetClientResp(nil) })
	if err := Run(context.Background(), []string{garbage, paths[0]}, nil, &out, &errOut); err != nil {
		t.Fatalf("garbage beside a panic: %v", err)
	}
}

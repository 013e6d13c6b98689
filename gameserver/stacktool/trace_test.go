package stacktool

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

//go:noinline
func nilDeref(p *struct{ x int }) int { return p.x }

func TestRecoverFuncWritesOneFilePerPanic(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(map[bool]string{false: "atomic", true: "legacy"}[legacy], func(t *testing.T) {
			dir := t.TempDir()
			var mu sync.Mutex
			var got []string
			r := &Recorder{Dir: dir, Service: "wilddiggr", Legacy: legacy, Logger: quiet,
				OnPanic: func(v any, path string) { mu.Lock(); got = append(got, path); mu.Unlock() }}
			var wg sync.WaitGroup
			for range 10 {
				wg.Go(func() {
					defer r.RecoverFunc()
					nilDeref(nil)
				})
			}
			wg.Wait()
			files, _ := filepath.Glob(filepath.Join(dir, "*"+Suffix))
			if len(files) != 10 || len(got) != 10 {
				t.Fatalf("%d files, %d callbacks, want 10", len(files), len(got))
			}
			all, _ := os.ReadDir(dir)
			if len(all) != 10 {
				t.Fatalf("%d entries in dir (temporary files left?)", len(all))
			}
			name := regexp.MustCompile(`^wilddiggr-\d{8}T\d{6}\.\d{9}Z-g[1-9]\d*-\d+\.stacktrace\.log$`)
			for _, f := range files {
				if !name.MatchString(filepath.Base(f)) {
					t.Errorf("name %s", filepath.Base(f))
				}
				b, _ := os.ReadFile(f)
				first, rest, _ := strings.Cut(string(b), "\n")
				if first != "runtime error: invalid memory address or nil pointer dereference" ||
					!strings.HasPrefix(rest, "goroutine ") || !strings.Contains(rest, "stacktool.nilDeref(") {
					t.Errorf("%s:\n%s", f, b)
				}
			}
		})
	}
}

func TestRecoverFuncWithoutPanicDoesNothing(t *testing.T) {
	dir := t.TempDir()
	r := &Recorder{Dir: dir, OnPanic: func(any, string) { t.Error("OnPanic without a panic") }}
	func() { defer r.RecoverFunc() }()
	if e, _ := os.ReadDir(dir); len(e) != 0 {
		t.Fatal(e)
	}
}

func TestRecordFailureStillRecovers(t *testing.T) {
	r := &Recorder{Dir: filepath.Join(t.TempDir(), "missing"), Logger: quiet}
	var path = "unset"
	r.OnPanic = func(_ any, p string) { path = p }
	func() {
		defer r.RecoverFunc()
		panic(errors.New("boom"))
	}()
	if path != "" {
		t.Fatalf("path %q, want empty when the file could not be written", path)
	}
}

func TestGoroutineID(t *testing.T) {
	for in, want := range map[string]uint64{
		"goroutine 8906150 [running]:\n": 8906150,
		"goroutine 1 [running]:":         1,
		"goroutine x [running]":          0,
		"":                               0,
		"goroutine 12":                   0,
		"gorout":                         0,
	} {
		if got := goroutineID([]byte(in)); got != want {
			t.Errorf("goroutineID(%q) = %d, want %d", in, got, want)
		}
	}
}

func FuzzGoroutineID(f *testing.F) {
	for _, s := range []string{"goroutine 8906150 [running]:\n", "goroutine  [", "goroutine 99999999999999999999999 [", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		id := goroutineID(b)
		if id != 0 && !strings.HasPrefix(string(b), "goroutine ") {
			t.Fatalf("id %d from %q", id, b)
		}
	})
}

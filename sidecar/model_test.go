package sidecar

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/ingest"
	"github.com/stackwatch/stackwatch/sidecar/state"
)

// The model test's knobs: `go test` runs 200 steps of a random seed; make
// fuzz runs more. A failure prints its seed; STACKWATCH_MODEL_SEED (or
// -model.seed) replays it.
var (
	modelSteps = flag.Int("model.steps", envInt("STACKWATCH_MODEL_STEPS", 200), "operations in TestModel")
	modelSeed  = flag.Uint64("model.seed", uint64(envInt("STACKWATCH_MODEL_SEED", 0)), "TestModel's seed (0: random)")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// mfile is the model of one name in the log directory.
type mfile struct {
	kind    string // "regular", "symlink" or "fifo"
	content []byte // regular: what is on disk
	target  []byte // regular: the trace it is being written towards
	locked  bool   // chmod 000
	// counted: this file (this inode and content lineage) was counted;
	// countedAfterSave: since the last state save, so a kill -9 forgets it.
	counted, countedAfterSave bool
	failed, failedAfterSave   bool // its "unreadable" failure was counted
	// read is what the sidecar last read of it, if wasRead; a file is read
	// again only when it changed, or while it is unreadable.
	read, readAtSave       []byte
	wasRead, wasReadAtSave bool
}

// model is what the sidecar must report, computed without it.
type model struct {
	files    map[string]*mfile
	panics   int // counted panics, gone files included
	failures int
	// goneUnsaved counts what files gone since the last save had counted
	// since it: a kill -9 loses those counts with the unsaved state.
	goneUnsaved gone
	root        bool // root reads files whatever their mode
}

type gone struct{ panics, failures int }

// forget drops a file replaced, deleted or gone with its directory.
func (m *model) forget(f *mfile) {
	if f == nil {
		return
	}
	if f.countedAfterSave {
		m.goneUnsaved.panics++
	}
	if f.failedAfterSave {
		m.goneUnsaved.failures++
	}
}

// observe is what a sync point makes the sidecar see: every readable,
// complete regular file is counted once, and an unreadable one fails once.
// stackwatch_parse_failures_total counts files, not attempts: an mfile is
// one file (inode), so one still unreadable after a restart is not counted
// again unless its failure was lost with the unsaved state, while another
// file put in its place, even one the last saved state knew unreadable
// under that name, is a failure of its own. A file read fine and then
// locked without changing is not read again, so it does not fail.
func (m *model) observe() {
	for _, f := range m.files {
		if f.kind != "regular" {
			continue
		}
		if f.locked && !m.root {
			if (!f.wasRead || !bytes.Equal(f.read, f.content)) && !f.failed {
				f.failed, f.failedAfterSave = true, true
				m.failures++
			}
			continue
		}
		f.read, f.wasRead = f.content, true
		if !f.counted && bytes.Equal(f.content, f.target) {
			f.counted, f.countedAfterSave = true, true
			m.panics++
		}
	}
}

func (m *model) saved() {
	m.goneUnsaved = gone{}
	for _, f := range m.files {
		f.countedAfterSave, f.failedAfterSave = false, false
		f.readAtSave, f.wasReadAtSave = f.read, f.wasRead
	}
}

// killed rolls back what was counted since the last save, as the state
// file does; files still there are counted again at the next sync.
func (m *model) killed() {
	m.panics -= m.goneUnsaved.panics
	m.failures -= m.goneUnsaved.failures
	m.goneUnsaved = gone{}
	for _, f := range m.files {
		if f.countedAfterSave {
			f.counted, f.countedAfterSave = false, false
			m.panics--
		}
		if f.failedAfterSave {
			f.failed, f.failedAfterSave = false, false
			m.failures--
		}
		f.read, f.wasRead = f.readAtSave, f.wasReadAtSave
	}
}

// TestModel is a model-based fault test in the style of Vector's file
// source: a seeded random sequence of file-system operations (create,
// chunked writes, rename in, delete, truncate, chmod, symlink and FIFO
// swaps, directory recreation, state saves, kill -9 and restart) runs
// against the real sidecar and against a model of the counts; after each
// operation a rescan is the sync point and the two must agree.
func TestModel(t *testing.T) {
	seed := *modelSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (replay: STACKWATCH_MODEL_SEED=%d go test -run TestModel ./sidecar)", seed, seed)
	defer func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d: replay with STACKWATCH_MODEL_SEED=%d", seed, seed)
		}
	}()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	logDir, dataDir := dirs(t)
	os.MkdirAll(logDir, 0o755)
	outside := filepath.Join(t.TempDir(), "outside.stacktrace.log")
	w := recorder(t.TempDir(), false)
	var traces [][]byte
	for kind := range 3 {
		b, err := os.ReadFile(w.crash(t, kind))
		if err != nil {
			t.Fatal(err)
		}
		traces = append(traces, b)
	}
	os.WriteFile(outside, traces[0], 0o644)
	goroutineID := regexp.MustCompile(`goroutine \d+ \[`)
	serial := 0
	newTrace := func() []byte { // unique content: its own goroutine id
		serial++
		return goroutineID.ReplaceAll(traces[rng.IntN(len(traces))], fmt.Appendf(nil, "goroutine %d [", 100000+serial))
	}

	cfg := Config{LogDir: logDir, DataDir: dataDir, Settle: time.Millisecond, StateInterval: time.Hour,
		IncompleteAfter: time.Hour, ServerLog: "-"}
	h := start(t, cfg)
	m := &model{files: map[string]*mfile{}, root: os.Geteuid() == 0}
	stash := filepath.Join(t.TempDir(), "saved-state.json") // the state as of the last save
	names := []string{"a", "b", "c", "d", "e"}
	path := func(name string) string { return filepath.Join(logDir, name+".stacktrace.log") }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	replace := func(name string, f *mfile) { m.forget(m.files[name]); m.files[name] = f } // the old file's counts stay
	var ops []string

	for step := range *modelSteps {
		name := names[rng.IntN(len(names))]
		f := m.files[name]
		regular := f != nil && f.kind == "regular"
		writable := regular && (!f.locked || m.root)
		var op string
		switch r := rng.IntN(100); {
		case r < 18: // rename a complete file in
			op = "rename-in " + name
			b := newTrace()
			tmp := filepath.Join(logDir, ".tmp-"+name)
			must(os.WriteFile(tmp, b, 0o644))
			must(os.Rename(tmp, path(name)))
			replace(name, &mfile{kind: "regular", content: b, target: b})
		case r < 30: // create in place, the first chunk only
			op = "create " + name
			b := newTrace()
			n := rng.IntN(len(b))
			os.Remove(path(name))
			must(os.WriteFile(path(name), b[:n], 0o644))
			replace(name, &mfile{kind: "regular", content: b[:n], target: b})
		case r < 50 && writable && len(f.content) < len(f.target): // write the next chunk
			op = "append " + name
			n := min(len(f.target), len(f.content)+1+rng.IntN(400))
			appendFile(t, path(name), string(f.target[len(f.content):n]))
			f.content = f.target[:n]
		case r < 58 && f != nil: // delete
			op = "delete " + name
			must(os.Remove(path(name)))
			m.forget(f)
			delete(m.files, name)
		case r < 64 && writable && len(f.content) > 0: // truncate: another file, written anew
			op = "truncate " + name
			must(os.Truncate(path(name), 0))
			replace(name, &mfile{kind: "regular", content: nil, target: newTrace(), locked: f.locked})
		case r < 70 && regular: // chmod
			f.locked = !f.locked
			mode := fs.FileMode(0o644)
			if f.locked {
				mode = 0
			}
			op = fmt.Sprintf("chmod %o %s", mode, name)
			must(os.Chmod(path(name), mode))
		case r < 76: // a symlink to a panic outside, or a FIFO, renamed over the name
			tmp := filepath.Join(logDir, ".swap-"+name)
			kind := "symlink"
			if rng.IntN(2) == 0 {
				kind = "fifo"
				must(syscall.Mkfifo(tmp, 0o644))
			} else {
				must(os.Symlink(outside, tmp))
			}
			op = kind + "-swap " + name
			must(os.Rename(tmp, path(name)))
			replace(name, &mfile{kind: kind})
		case r < 80: // the directory deleted and created again
			op = "recreate-dir"
			must(os.RemoveAll(logDir))
			must(os.Mkdir(logDir, 0o755))
			for _, f := range m.files {
				m.forget(f)
			}
			clear(m.files)
		case r < 90: // the state saved
			op = "save"
			must(h.s.save())
			copyState(t, dataDir, stash)
			m.saved()
		default: // kill -9: the state as of the last save, and a restart
			op = "kill-9"
			h.stop()
			restoreState(t, dataDir, stash)
			m.killed()
			h = start(t, cfg)
		}
		ops = append(ops, op)
		h.sync()
		m.observe()
		got, gotFailures := h.value(metrics.Panics), h.value(metrics.ParseFailures)
		groups := 0
		for _, g := range h.groups() {
			groups += g.Count
		}
		if got != float64(m.panics) || gotFailures != float64(m.failures) || groups != m.panics {
			t.Fatalf("step %d (%s): sidecar counts %v panics (%d in groups) and %v failures, the model %d and %d\nops: %q\nlogs:\n%s",
				step, op, got, groups, gotFailures, m.panics, m.failures, ops[max(0, len(ops)-30):], tail(h.logs.String(), 4000))
		}
		if want := m.regular(); h.value(metrics.StacktraceFiles) != float64(want) {
			t.Fatalf("step %d (%s): %v stacktrace files, the model %d\nops: %q", step, op, h.value(metrics.StacktraceFiles), want, ops[max(0, len(ops)-30):])
		}
	}
	t.Logf("%d steps, %d panics, %d failures", *modelSteps, m.panics, m.failures)
	if got := h.value(metrics.ParseFailures, metrics.LabelReason, ingest.FailNotPanic); got != 0 {
		t.Fatalf("%v not_panic failures: a cut file was taken for garbage", got)
	}
}

// TestModelUnprivileged runs TestModel as a user that cannot read a file
// chmod 000 (as root it runs a copy of itself as nobody), so chmod yields
// unreadable failures and late counts.
func TestModelUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("TestModel already runs unprivileged")
	}
	runAsNobody(t, "TestModel", "-model.steps="+strconv.Itoa(*modelSteps), "-model.seed="+strconv.FormatUint(*modelSeed, 10))
}

func (m *model) regular() int {
	n := 0
	for _, f := range m.files {
		if f.kind == "regular" {
			n++
		}
	}
	return n
}

func copyState(t *testing.T, dataDir, stash string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, state.FileName))
	if errors.Is(err, fs.ErrNotExist) {
		os.Remove(stash)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stash, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// restoreState puts back the state file as it was at the last save (none:
// no state file), as a kill -9 right after that save would have left it.
func restoreState(t *testing.T, dataDir, stash string) {
	t.Helper()
	p := filepath.Join(dataDir, state.FileName)
	b, err := os.ReadFile(stash)
	if errors.Is(err, fs.ErrNotExist) {
		os.Remove(p)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

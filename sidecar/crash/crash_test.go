package crash

import (
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/stacktrace"
)

const (
	task    = "trevi/arcade-wilddig-gameserver/task."
	thisPkg = "github.com/stackwatch/stackwatch/sidecar/crash."
)

func classify(t testing.TB, b []byte) Signature {
	t.Helper()
	p, err := stacktrace.ParseBytes(b)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, b)
	}
	return Classify(p)
}

func reportExample(t testing.TB, n int) []byte {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("../stacktrace/testdata/report_example%d.stacktrace.log", n))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The incident report's three examples are three groups: the two
// clientWrite nil-session sites, told apart by their caller, and the
// reckon closure.
func TestClassifyReportExamples(t *testing.T) {
	tests := []struct {
		n                int
		function, caller string
		file             string
		line             int
		nilReceiver      bool
	}{
		{1, task + "clientWrite", task + "onWildDigBetClientResp", "/tmp/build/arcade-wilddig-gameserver/task/task_helper.go", 19, true},
		{2, task + "clientWrite", task + "onGoldenCloverBetClientResp", "/tmp/build/arcade-wilddig-gameserver/task/task_helper.go", 19, true},
		{3, task + "ClientGetWilddigReckonBetRes.func1", "", "/tmp/build/arcade-wilddig-gameserver/task/task_client_reckon_wilddig.go", 208, false},
	}
	keys := map[string]int{}
	for _, tc := range tests {
		sig := classify(t, reportExample(t, tc.n))
		want := Site{Function: tc.function, File: tc.file, Line: tc.line}
		if sig.Site != want || sig.Caller != tc.caller || sig.NilReceiver != tc.nilReceiver ||
			sig.Kind != stacktrace.KindNilDereference ||
			sig.Message != "runtime error: invalid memory address or nil pointer dereference" {
			t.Errorf("example %d: %+v", tc.n, sig)
		}
		if len(sig.Key) != 16 {
			t.Errorf("example %d: key %q", tc.n, sig.Key)
		}
		if prev, ok := keys[sig.Key]; ok {
			t.Errorf("examples %d and %d share key %s", prev, tc.n, sig.Key)
		}
		keys[sig.Key] = tc.n
	}
}

// shiftLines moves every file:line by d, as a redeploy does.
func shiftLines(b []byte, d int) []byte {
	re := regexp.MustCompile(`\.go:(\d+)`)
	return re.ReplaceAllFunc(b, func(m []byte) []byte {
		n, _ := strconv.Atoi(string(m[4:]))
		return fmt.Appendf(nil, ".go:%d", n+d)
	})
}

func TestKeyIgnoresLinesAndArguments(t *testing.T) {
	for _, b := range [][]byte{reportExample(t, 1), trace(t, "wilddig")} {
		a := classify(t, b)
		shifted := classify(t, shiftLines(b, 7))
		if a.Key != shifted.Key || shifted.Site.Line != a.Site.Line+7 {
			t.Errorf("line shift: %s:%d key %s vs %s:%d key %s", a.Site.Function, a.Site.Line, a.Key,
				shifted.Site.Function, shifted.Site.Line, shifted.Key)
		}
		other := classify(t, []byte(strings.Replace(string(b), "goroutine ", "goroutine 1", 1)))
		if other.Key != a.Key {
			t.Error("goroutine id changed the key")
		}
	}
}

func TestClassifyRealTraces(t *testing.T) {
	tests := []struct {
		shape            string
		kind             string
		function, caller string
		nilReceiver      bool
	}{
		// The game server's recovered shape: debug.Stack, the recovery
		// helper and panic( are skipped.
		{"wilddig", stacktrace.KindNilDereference, "clientWrite", "onWildDigBetClientResp", true},
		{"goldenclover", stacktrace.KindNilDereference, "clientWrite", "onGoldenCloverBetClientResp", true},
		// Runtime frames between panic( and the method (panicmem, sigpanic)
		// are skipped; the nil *Session receiver prints as 0x0.
		{"nil_method", stacktrace.KindNilDereference, "(*Session).Write", "crasher.func3", false},
		// Unrecovered, in its own goroutine.
		{"unrecovered_goroutine", stacktrace.KindNilDereference, "clientWrite", "onWildDigBetClientResp", true},
		// Panics raised inside the standard library: the site is the
		// application frame that called it.
		{"stdlib_panics", stacktrace.KindCustom, "repeatBanner", "crasher.func5", false},
		{"waitgroup", stacktrace.KindCustom, "settle", "crasher.func6", false},
		// net/http's recover frame sits above panic( and is skipped.
		{"http_serving", stacktrace.KindNilDereference, "clientWrite", "onWildDigBetClientResp", true},
		// A throw: no panic( frame; internal/runtime/maps is skipped; the
		// site is the goroutine's outermost frame, so there is no caller
		// (the goroutine's creator is CreatedBy).
		{"concurrent_map_writes", stacktrace.KindFatal, "crasher.func8", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.shape, func(t *testing.T) {
			b := trace(t, tc.shape)
			sig := classify(t, b)
			nilOK := sig.NilReceiver == tc.nilReceiver
			if tc.shape == "nil_method" {
				// The register ABI may print a stale receiver ("0x48ac89?");
				// a build that spills it (-race) prints "0x0".
				nilOK = sig.NilReceiver == strings.Contains(string(b), "(*Session).Write(0x0")
			}
			if sig.Kind != tc.kind || sig.Site.Function != thisPkg+tc.function || (tc.caller != "" && sig.Caller != thisPkg+tc.caller || tc.caller == "" && (sig.Caller != "" || sig.CreatedBy != thisPkg+"crasher")) || !nilOK || !strings.HasSuffix(sig.Site.File, "/crasher_test.go") || sig.Site.Line <= 0 {
				t.Errorf("got %+v\nwant %s site %s caller %s nil %v\n%s", sig, tc.kind, tc.function, tc.caller, tc.nilReceiver, b)
			}
		})
	}
	// Identical first lines, different sites → different groups.
	a, b := classify(t, trace(t, "wilddig")), classify(t, trace(t, "goldenclover"))
	if a.Key == b.Key || a.Site.Function != b.Site.Function {
		t.Errorf("wilddig and goldenclover: %+v / %+v", a, b)
	}
	// A recovered panic and the same bug unrecovered are one group, and
	// so is the unrecovered one printed with runtime frames.
	if u := classify(t, trace(t, "unrecovered_goroutine")); u.Key != a.Key {
		t.Errorf("recovered and unrecovered wilddig differ: %+v / %+v", a, u)
	}
	sys := trace(t, "unrecovered_goroutine", "GOTRACEBACK=system")
	if !strings.Contains(string(sys), "runtime.goexit") {
		t.Fatalf("GOTRACEBACK=system had no effect:\n%s", sys)
	}
	if u := classify(t, sys); u.Key != a.Key {
		t.Errorf("GOTRACEBACK=system changed the group: %+v / %+v", a, u)
	}
	o, osys := classify(t, trace(t, "outermost")), classify(t, trace(t, "outermost", "GOTRACEBACK=system"))
	if o.Key != osys.Key || o.Caller != "" || o.CreatedBy != thisPkg+"crasher" || o.Site.Function != thisPkg+"crasher.func9" {
		t.Errorf("outermost: %+v / with runtime frames %+v", o, osys)
	}
}

// The parser never returns a frameless first goroutine (ErrIncomplete), but
// Classify must not depend on that.
func TestClassifyNoFrames(t *testing.T) {
	p := &stacktrace.Panic{Message: "boom", Kind: stacktrace.KindCustom, Goroutines: []stacktrace.Goroutine{{ID: 1}}}
	sig := Classify(p)
	if sig.Site.Function != "" || sig.Caller != "" || len(sig.Key) != 16 {
		t.Errorf("%+v", sig)
	}
	q := &stacktrace.Panic{Message: "other", Kind: stacktrace.KindCustom}
	if Classify(q).Key == sig.Key {
		t.Error("frameless panics with different messages share a key")
	}
}

func TestIsNil(t *testing.T) {
	for arg, want := range map[string]bool{
		"0x0": true, "0x0?": true, "{0x0, 0x0}": true, "{0x0?, 0x0?}": true, "{0x0, 0x0?}": true,
		"0x1": false, "{0x0, 0x1}": false, "0xc000010000": false, "...": false, "{}": false, "": false,
	} {
		if isNil(arg) != want {
			t.Errorf("isNil(%q) = %v", arg, !want)
		}
	}
}

// stdRoots must cover every standard-library package of the installed Go.
func TestStdRoots(t *testing.T) {
	out, err := exec.Command("go", "list", "std").Output()
	if err != nil {
		t.Fatalf("go list std: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if !isStdlib(pkg) {
			t.Errorf("%s is not treated as standard library", pkg)
		}
	}
	for _, pkg := range []string{"main", "trevi/arcade-wilddig-gameserver/task", "github.com/x/y", "go.etcd.io/bbolt"} {
		if isStdlib(pkg) {
			t.Errorf("%s treated as standard library", pkg)
		}
	}
}

func sigFor(fn, caller string) Signature {
	s := Signature{Kind: stacktrace.KindNilDereference, Site: Site{Function: fn, File: "/x.go", Line: 1}, Caller: caller}
	s.Key = key(s, caller)
	return s
}

func TestGroups(t *testing.T) {
	g := NewGroups()
	t0 := time.Date(2025, 11, 5, 11, 45, 0, 0, time.UTC)
	wild := classify(t, reportExample(t, 1))
	gold := classify(t, reportExample(t, 2))
	// 376 wilddiggr panics over 9 hours, 43 goldenclover over 3, as in the report.
	for i := range 376 {
		at := t0.Add(time.Duration(i) * 9 * time.Hour / 375)
		g.Add(wild, File{Path: fmt.Sprintf("w%03d.stacktrace.log", i), Size: 1400, ModTime: at}, "example wild")
	}
	for i := range 43 {
		at := t0.Add(6*time.Hour + time.Duration(i)*3*time.Hour/42)
		g.Add(gold, File{Path: fmt.Sprintf("g%03d.stacktrace.log", i), Size: 1400, ModTime: at}, "example gold")
	}
	snap := g.Snapshot()
	if len(snap) != 2 || g.Len() != 2 {
		t.Fatalf("%d groups", len(snap))
	}
	w := snap[0]
	if w.Key != wild.Key || w.Count != 376 || w.Bytes != 376*1400 || !w.FirstSeen.Equal(t0) ||
		!w.LastSeen.Equal(t0.Add(9*time.Hour)) || w.Example != "example wild" || !w.NilReceiver {
		t.Errorf("wilddiggr group: %+v", w)
	}
	if r := w.RatePerHour; r == nil || *r < 41.7 || *r > 41.8 {
		t.Errorf("rate %v, the report says ~42/h", r)
	}
	if r := snap[1].RatePerHour; snap[1].Count != 43 || r == nil || *r < 14.3 || *r > 14.4 {
		t.Errorf("goldenclover: count %d rate %v, the report says ~14/h", snap[1].Count, r)
	}
	// Files: the newest MaxFiles, newest first; the rest counted.
	if len(w.Files) != MaxFiles || w.FilesDropped != 376-MaxFiles || w.Files[0] != "w375.stacktrace.log" ||
		w.Files[MaxFiles-1] != "w276.stacktrace.log" {
		t.Errorf("files: %d listed (%s..%s), %d dropped", len(w.Files), w.Files[0], w.Files[len(w.Files)-1], w.FilesDropped)
	}
	// An old file arriving late (backlog order) is counted but not listed.
	got := g.Add(wild, File{Path: "old.stacktrace.log", ModTime: t0.Add(-time.Hour)}, "")
	if got.Count != 377 || got.FilesDropped != 377-MaxFiles || !got.FirstSeen.Equal(t0.Add(-time.Hour)) {
		t.Errorf("late old file: %+v", got)
	}
	// A burst: no rate until the span is MinRateSpan, then over the real span.
	b := NewGroups()
	for i := range 5 {
		b.Add(sigFor("a.f", "a.g"), File{Path: "x", ModTime: t0.Add(time.Duration(i) * time.Second)}, "")
	}
	if r := b.Snapshot()[0].RatePerHour; r != nil {
		t.Errorf("burst over 4 s has rate %v, want none", *r)
	}
	b.Add(sigFor("a.f", "a.g"), File{Path: "y", ModTime: t0.Add(30 * time.Minute)}, "")
	if r := b.Snapshot()[0].RatePerHour; r == nil || *r != 12 {
		t.Errorf("6 panics over 30 min: rate %v, want 12", r)
	}
}

// TestGroupsCap: past the cap the least recently seen groups roll into
// Other, which keeps every count; a group can give a file back (Remove).
func TestGroupsCap(t *testing.T) {
	g := NewGroupsMax(3)
	t0 := time.Unix(1e9, 0)
	for i := range 10 {
		sig := sigFor(fmt.Sprintf("site%d.f", i), "main.main")
		for j := range i + 1 {
			g.Add(sig, File{Path: fmt.Sprintf("%d-%d", i, j), Size: 10, ModTime: t0.Add(time.Duration(i) * time.Hour)}, "ex")
		}
	}
	snap := g.Snapshot()
	if len(snap) != 4 || g.Len() != 4 {
		t.Fatalf("%d groups, want 3 and other", len(snap))
	}
	total := 0
	var other Group
	for _, gr := range snap {
		total += gr.Count
		if gr.Key == OtherKey {
			other = gr
		}
	}
	// Sites 0..6 (1+2+...+7 = 28 panics) were rolled out; 7, 8, 9 are kept.
	if total != 55 || other.Count != 28 || other.Bytes != 280 || !other.FirstSeen.Equal(t0) ||
		!other.LastSeen.Equal(t0.Add(6*time.Hour)) || len(other.Files) != 28 {
		t.Fatalf("total %d, other %+v", total, other)
	}
	if g.Has(sigFor("site0.f", "main.main").Key) || !g.Has(sigFor("site9.f", "main.main").Key) {
		t.Fatal("the wrong groups were rolled out")
	}
	// Removing from a rolled-out group takes from Other.
	g.Remove(sigFor("site0.f", "main.main").Key, File{Path: "0-0", Size: 10})
	if o, _ := g.Get(OtherKey); o.Count != 27 || slices.Contains(o.Files, "0-0") {
		t.Fatalf("other after remove: %+v", o)
	}
	// A kept group emptied by Remove goes away.
	nine := sigFor("site9.f", "main.main").Key
	for j := range 10 {
		g.Remove(nine, File{Path: fmt.Sprintf("9-%d", j), Size: 10})
	}
	if _, ok := g.Get(nine); ok {
		t.Fatal("an empty group is still listed")
	}
	// Restore keeps Other and the cap.
	r := NewGroupsMax(3)
	r.Restore(g.Snapshot())
	total = 0
	for _, gr := range r.Snapshot() {
		total += gr.Count
	}
	if total != 44 || r.Len() != 3 {
		t.Fatalf("restored %d groups, %d panics", r.Len(), total)
	}
}

func TestTimeOf(t *testing.T) {
	mtime := time.Unix(1e9, 0)
	for path, want := range map[string]time.Time{
		"/logs/wilddiggr-20251030T111505.123456789Z-17-3.stacktrace.log": time.Date(2025, 10, 30, 11, 15, 5, 123456789, time.UTC),
		"fatal-20251030T111505Z.stacktrace.log":                          time.Date(2025, 10, 30, 11, 15, 5, 0, time.UTC),
		"copied.stacktrace.log":                                          mtime,
		"x-20251399T111505Z.stacktrace.log":                              mtime, // no such month
	} {
		if got := TimeOf(path, mtime); !got.Equal(want) {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
	}
}

// Files stay exact across the batch compaction of the file list, whatever
// the arrival order.
func TestGroupFilesOrder(t *testing.T) {
	g := NewGroups()
	sig := sigFor("a.f", "a.g")
	t0 := time.Unix(1e9, 0)
	const n = 3*MaxFiles + 17
	for i := range n {
		j := (i * 37) % n // a permutation: backlog order is arbitrary
		g.Add(sig, File{Path: fmt.Sprint(j), ModTime: t0.Add(time.Duration(j) * time.Second)}, "")
		snap := g.Snapshot()[0]
		if len(snap.Files)+snap.FilesDropped != i+1 {
			t.Fatalf("after %d: %d listed + %d dropped", i+1, len(snap.Files), snap.FilesDropped)
		}
	}
	snap := g.Snapshot()[0]
	for k, p := range snap.Files {
		if p != fmt.Sprint(n-1-k) {
			t.Fatalf("Files[%d] = %s, want %d", k, p, n-1-k)
		}
	}
}

func TestGroupLineShown(t *testing.T) {
	g := NewGroups()
	t0 := time.Now()
	b := reportExample(t, 1)
	g.Add(classify(t, b), File{Path: "a", ModTime: t0}, "")
	got := g.Add(classify(t, shiftLines(b, 3)), File{Path: "b", ModTime: t0.Add(time.Second)}, "")
	if g.Len() != 1 || got.Count != 2 || got.CrashSite.Line != 22 {
		t.Errorf("after redeploy: %d groups, %+v", g.Len(), got)
	}
	// An older file does not move the shown line back.
	got = g.Add(classify(t, b), File{Path: "c", ModTime: t0.Add(-time.Second)}, "")
	if got.CrashSite.Line != 22 {
		t.Errorf("line went back to %d", got.CrashSite.Line)
	}
}

func TestExampleCapped(t *testing.T) {
	g := NewGroups()
	big := strings.Repeat("é", MaxExampleBytes) // 2 bytes per rune
	got := g.Add(sigFor("a.f", ""), File{Path: "x", ModTime: time.Now()}, "x"+big)
	if len(got.Example) > MaxExampleBytes || !strings.HasPrefix(got.Example, "xé") || strings.ContainsRune(got.Example, '\uFFFD') {
		t.Errorf("example of %d bytes", len(got.Example))
	}
	if !strings.HasSuffix(got.Example, "é") {
		t.Error("rune split")
	}
}

func TestGroupsConcurrent(t *testing.T) {
	g := NewGroups()
	sigs := []Signature{sigFor("a.f", "a.g"), sigFor("a.f", "a.h"), sigFor("b.f", "b.g")}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 500 {
				g.Add(sigs[(w+i)%len(sigs)], File{Path: fmt.Sprint(w, i), ModTime: time.Unix(int64(i), 0)}, "")
				if i%50 == 0 {
					g.Snapshot()
				}
			}
		})
	}
	wg.Wait()
	total := 0
	snap := g.Snapshot()
	for i, gr := range snap {
		total += gr.Count
		if i > 0 && gr.Count > snap[i-1].Count {
			t.Error("not sorted by count")
		}
	}
	if total != 8*500 || len(snap) != 3 {
		t.Errorf("total %d in %d groups", total, len(snap))
	}
}

func TestRestore(t *testing.T) {
	g := NewGroups()
	t0 := time.Date(2025, 11, 5, 0, 0, 0, 0, time.UTC)
	for i := range 120 {
		g.Add(sigFor("a.f", "a.g"), File{Path: fmt.Sprint("f", i), Size: 10, ModTime: t0.Add(time.Duration(i) * time.Minute)}, "ex")
	}
	g.Add(sigFor("b.f", "b.g"), File{Path: "b", Size: 5, ModTime: t0}, "exb")
	before := g.Snapshot()
	r := NewGroups()
	r.Restore(before)
	after := r.Snapshot()
	if !reflect.DeepEqual(before, after) {
		t.Errorf("restore changed groups:\n%+v\n%+v", before, after)
	}
	// Counting continues on top of the restored state.
	got := r.Add(sigFor("a.f", "a.g"), File{Path: "new", ModTime: t0.Add(5 * time.Hour)}, "")
	if got.Count != 121 || got.Files != nil || got.FilesDropped != 21 {
		t.Errorf("after restore: count %d, files %v, dropped %d", got.Count, got.Files, got.FilesDropped)
	}
	if snap := r.Snapshot(); snap[0].Files[0] != "new" || len(snap[0].Files) != MaxFiles || snap[0].Files[1] != "f119" {
		t.Errorf("after restore: files %v", snap[0].Files[:2])
	}
}

func TestSiteLabels(t *testing.T) {
	l := NewSiteLabels(2)
	wild := classify(t, reportExample(t, 1))
	gold := classify(t, reportExample(t, 2))
	reckon := classify(t, reportExample(t, 3))
	third := sigFor("x/y.z", "")
	if v := l.Label(wild); v != "task.clientWrite" {
		t.Errorf("wild: %q", v)
	}
	// Same crash-site function, other caller: same value, no budget spent.
	if v := l.Label(gold); v != "task.clientWrite" {
		t.Errorf("gold: %q", v)
	}
	if v := l.Label(reckon); v != "task.ClientGetWilddigReckonBetRes.func1" {
		t.Errorf("reckon: %q", v)
	}
	if v := l.Label(third); v != metrics.OtherCrashSite {
		t.Errorf("third: %q", v)
	}
	// Stable: asking again gives the same values.
	for range 3 {
		if l.Label(wild) != "task.clientWrite" || l.Label(third) != metrics.OtherCrashSite {
			t.Fatal("label changed")
		}
	}
	if v := l.Label(Signature{Key: "k"}); v != metrics.OtherCrashSite {
		t.Errorf("frameless: %q", v)
	}
	// A site literally named like the overflow value cannot take a slot.
	l2 := NewSiteLabels(5)
	if v := l2.Label(sigFor("pkg/other", "")); v != metrics.OtherCrashSite {
		t.Errorf("%q", v)
	}
}

func TestSiteLabelsConcurrentBound(t *testing.T) {
	l := NewSiteLabels(DefaultMaxSiteLabels)
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]bool{}
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				v := l.Label(sigFor(fmt.Sprintf("p.f%d", (i*7+w)%100), ""))
				mu.Lock()
				seen[v] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != DefaultMaxSiteLabels+1 || !seen[metrics.OtherCrashSite] {
		t.Errorf("%d distinct values", len(seen))
	}
}

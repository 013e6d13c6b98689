package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/stackwatch/stackwatch/gameserver/stacktool"
	"github.com/stackwatch/stackwatch/internal/cli"
	"github.com/stackwatch/stackwatch/internal/clitest"
	"github.com/stackwatch/stackwatch/internal/proctest"
	"github.com/stackwatch/stackwatch/metrics"
)

func TestMain(m *testing.M) { proctest.VerifyTestMain(m) }

// binary builds cmd/sidecar once per test run.
func binary(t *testing.T) string { return proctest.Build(t, ".") }

// proc is a running sidecar.
type proc struct {
	*proctest.Proc
	addr string
}

// startProc runs the sidecar binary and waits for its "listening" line.
func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	p := proctest.Start(t, binary(t), append([]string{"-log.format=json"}, args...)...)
	return &proc{Proc: p, addr: p.Listening(t, 10*time.Second)["addr"]}
}

// scrape returns the value of the unlabelled (or summed) metric m.
func (p *proc) scrape(t *testing.T, m metrics.Metric) float64 {
	t.Helper()
	var sum float64
	for _, s := range p.families(t)[m.Name].GetMetric() {
		if s.Counter != nil {
			sum += s.Counter.GetValue()
		} else if s.Gauge != nil {
			sum += s.Gauge.GetValue()
		}
	}
	return sum
}

func (p *proc) waitMetric(t *testing.T, m metrics.Metric, v float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := p.scrape(t, m)
		if got == v {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v; logs:\n%s", m.Name, got, v, p.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writePanics(t *testing.T, dir string, n int) {
	t.Helper()
	rec := &stacktool.Recorder{Dir: dir, Service: "wilddiggr", Logger: slog.New(slog.DiscardHandler)}
	for range n {
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer rec.RecoverFunc()
			var m map[string]int
			//lint:ignore SA5000 the point is a real nil map panic
			m["bet"] = 1
		}()
		<-done
	}
}

func TestProcessSignalsAndRestart(t *testing.T) {
	root := t.TempDir()
	logDir, dataDir := filepath.Join(root, "logs"), filepath.Join(root, "data")
	os.MkdirAll(logDir, 0o755)
	args := []string{"-service", "wilddiggr", "-log-dir", logDir, "-data-dir", dataDir,
		"-listen", "127.0.0.1:0", "-target", "http://127.0.0.1:1", "-state-interval", "50ms"}
	writePanics(t, logDir, 3)
	p := startProc(t, args...)
	p.waitMetric(t, metrics.Panics, 3)
	writePanics(t, logDir, 2)
	p.waitMetric(t, metrics.Panics, 5)

	// The JSON API.
	r, err := http.Get("http://" + p.addr + "/api/v1/crashes")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Service string
		Groups  []struct {
			Kind  string
			Count int
		}
	}
	json.NewDecoder(r.Body).Decode(&body)
	r.Body.Close()
	if body.Service != "wilddiggr" || len(body.Groups) != 1 || body.Groups[0].Count != 5 || body.Groups[0].Kind != "nil_map_write" {
		t.Fatalf("crashes: %+v", body)
	}

	// SIGTERM: graceful, exit 0, state saved.
	if err := p.Stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.Logs())
	}
	writePanics(t, logDir, 1)
	p = startProc(t, args...)
	p.waitMetric(t, metrics.Panics, 6)

	// SIGKILL once the state holds all six: the restart takes the count
	// from the state, not from the files, so it holds even with the files
	// gone (sync point: the saved state itself).
	waitSaved(t, dataDir, 6)
	p.Stop(t, syscall.SIGKILL)
	stash := t.TempDir()
	moveAll(t, logDir, stash)
	p = startProc(t, args...)
	p.waitMetric(t, metrics.StacktraceFiles, 0)
	if got := p.scrape(t, metrics.Panics); got != 6 {
		t.Fatalf("panics after SIGKILL restart with the files gone: %v", got)
	}
	if err := p.Stop(t, syscall.SIGINT); err != nil {
		t.Fatalf("exit after SIGINT: %v", err)
	}

	// SIGKILL before any save: state and counters roll back together (the
	// state still says 6) and the files since are counted again, to the
	// same total.
	slow := append(slices.Clone(args), "-state-interval", "1h")
	p = startProc(t, slow...)
	p.waitMetric(t, metrics.Panics, 6)
	writePanics(t, logDir, 2)
	p.waitMetric(t, metrics.Panics, 8)
	p.Stop(t, syscall.SIGKILL)
	if got := savedPanics(t, dataDir); got != 6 {
		t.Fatalf("the state saved %v panics before the kill, want 6 (nothing saved since)", got)
	}
	p = startProc(t, slow...)
	p.waitMetric(t, metrics.Panics, 8)
	p.Stop(t, syscall.SIGTERM)
}

// savedPanics reads stackwatch_panics_total from the state file.
func savedPanics(t *testing.T, dataDir string) float64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "state.json"))
	if err != nil {
		return -1
	}
	var st struct {
		Counters []struct {
			Metric string
			Value  float64
		}
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, c := range st.Counters {
		if c.Metric == metrics.Panics.Name {
			n += c.Value
		}
	}
	return n
}

// waitSaved waits until the state file holds n panics.
func waitSaved(t *testing.T, dataDir string, n float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for savedPanics(t, dataDir) != n {
		if time.Now().After(deadline) {
			t.Fatalf("state never saved %v panics (has %v)", n, savedPanics(t, dataDir))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func moveAll(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.Rename(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAnalyzeSubcommand(t *testing.T) {
	dir := t.TempDir()
	writePanics(t, dir, 2)
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"analyze", "-json", dir}, &out, &errb); err != nil {
		t.Fatalf("analyze: %v\n%s", err, errb.String())
	}
	var rep struct {
		Files  int
		Groups []struct{ Count int }
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Files != 2 || len(rep.Groups) != 1 || rep.Groups[0].Count != 2 {
		t.Fatalf("analyze output %s (%v)", out.String(), err)
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{},                                 // -service missing
		{"-service", "x", "-log-dir", "l"}, // -data-dir missing
		{"-service", "x", "-retention-age", "7x"}, // bad duration
		{"-service", "x", "-log-dir", "l", "-data-dir", "d", "stray"},
		{"-service", "x", "-log-dir", "l", "-data-dir", "d", "-log.level", "loud"},
		{"-service", "x", "-log-dir", "l", "-data-dir", "d", "-target", "ftp://x"},
		{"-service", "x", "-log-dir", "l", "-data-dir", "d", "-incomplete-after", "-1s"},
		{"-service", "x", "-log-dir", "l", "-data-dir", "d", "-dump-max-count", "-1"},
	} {
		var errb bytes.Buffer
		if err := run(context.Background(), args, io.Discard, &errb); cli.ExitCode(err) != cli.ExitUsage {
			t.Errorf("%q: %v (exit %d), want a usage error", args, err, cli.ExitCode(err))
		}
	}
	var d days
	if err := d.Set("7d"); err != nil || time.Duration(d) != 7*24*time.Hour {
		t.Fatalf("7d = %v, %v", time.Duration(d), err)
	}
	if err := d.Set("36h"); err != nil || time.Duration(d) != 36*time.Hour {
		t.Fatalf("36h = %v, %v", time.Duration(d), err)
	}
	if !strings.Contains(d.String(), "36h") {
		t.Fatalf("String %q", d.String())
	}
}

// TestCLIConventions runs the binary as a user would: -h and --help exit
// 0, --version prints the build, a usage error exits 2 and says why once,
// a runtime failure exits 1.
func TestCLIConventions(t *testing.T) {
	bin := binary(t)
	exit := func(args ...string) (int, string, string) { return clitest.Run(t, bin, args...) }
	for _, h := range []string{"-h", "--help"} {
		if code, _, stderr := exit(h); code != 0 || !strings.Contains(stderr, "-log.format") {
			t.Errorf("%s: exit %d\n%s", h, code, stderr)
		}
	}
	if code, stdout, _ := exit("--version"); code != 0 || !strings.Contains(stdout, "stackwatch_sidecar, version") {
		t.Errorf("--version: exit %d, %q", code, stdout)
	}
	if code, _, stderr := exit("-service", "x"); code != 2 || stderr != "sidecar: -log-dir is required\n" {
		t.Errorf("missing -log-dir: exit %d, %q", code, stderr)
	}
	// A runtime failure: the data directory cannot be made.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	code, _, stderr := exit("-service", "x", "-log-dir", t.TempDir(), "-data-dir", filepath.Join(file, "data"), "-listen", "127.0.0.1:0")
	if code != 1 || strings.Count(stderr, "sidecar:") != 1 || strings.Contains(stderr, "sidecar: sidecar:") {
		t.Errorf("runtime failure: exit %d, %q", code, stderr)
	}
}

// TestLandingPageBuildInfoAndZeroCounters: / links the endpoints, the
// sidecar exports its build_info, every counter that can start at 0 does,
// and a missing -log-dir is a warning and a gauge, not silence.
func TestLandingPageBuildInfoAndZeroCounters(t *testing.T) {
	logDir := filepath.Join(t.TempDir(), "not-yet")
	p := startProc(t, "-service", "wilddiggr", "-log-dir", logDir, "-data-dir", t.TempDir(), "-listen", "127.0.0.1:0")
	r, err := http.Get("http://" + p.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || !strings.Contains(string(body), `href="/api/v1/crashes"`) || !strings.Contains(string(body), `href="/metrics"`) {
		t.Fatalf("landing page: %d\n%s", r.StatusCode, body)
	}
	families := p.families(t)
	if mf := families[metrics.SidecarBuildInfo.Name]; mf == nil || len(mf.GetMetric()) != 1 {
		t.Fatalf("no %s", metrics.SidecarBuildInfo.Name)
	}
	for _, m := range []metrics.Metric{metrics.ParseFailures, metrics.Rescans, metrics.RetentionDeletedFiles,
		metrics.FatalCrashes, metrics.ClosedSessionWarnings, metrics.RetentionDeletedBytes,
		metrics.AuthFailures, metrics.AuthThrottled} {
		mf := families[m.Name]
		if mf == nil || len(mf.GetMetric()) == 0 {
			t.Errorf("%s is missing before its first event", m.Name)
			continue
		}
		if len(m.Labels) > 0 && len(mf.GetMetric()) < 3 {
			t.Errorf("%s: only %d series at start", m.Name, len(mf.GetMetric()))
		}
	}
	p.waitMetric(t, metrics.LogDirMissing, 1)
	if !strings.Contains(p.Logs(), "log directory does not exist") {
		t.Fatalf("no warning about the missing log directory:\n%s", p.Logs())
	}
	os.MkdirAll(logDir, 0o755)
	p.waitMetric(t, metrics.LogDirMissing, 0)
	p.Stop(t, syscall.SIGTERM)
}

// TestTokenGuessingThrottled: past the burst of wrong tokens the API
// answers 429 with Retry-After, the right token then waits too (it is not
// compared), and both are counted on /metrics.
func TestTokenGuessingThrottled(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("the-right-token-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "-service", "wilddiggr", "-log-dir", t.TempDir(), "-data-dir", t.TempDir(),
		"-listen", "127.0.0.1:0", "-token-file", tokenFile)
	get := func(token string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+"/api/v1/crashes", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return r
	}
	if r := get("the-right-token-0123"); r.StatusCode != http.StatusOK {
		t.Fatalf("right token: %s", r.Status)
	}
	codes := map[int]int{}
	for i := range 30 {
		codes[get(fmt.Sprintf("guess-%d", i)).StatusCode]++
	}
	if codes[http.StatusUnauthorized] == 0 || codes[http.StatusTooManyRequests] == 0 {
		t.Fatalf("30 wrong tokens at once: %v, want 401s then 429s", codes)
	}
	r := get("the-right-token-0123")
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("right token while throttled: %s, Retry-After %q", r.Status, r.Header.Get("Retry-After"))
	}
	if got := p.scrape(t, metrics.AuthFailures); got != float64(codes[http.StatusUnauthorized]) {
		t.Errorf("%s = %v, want %d", metrics.AuthFailures.Name, got, codes[http.StatusUnauthorized])
	}
	if got := p.scrape(t, metrics.AuthThrottled); got != float64(codes[http.StatusTooManyRequests]+1) {
		t.Errorf("%s = %v, want %d", metrics.AuthThrottled.Name, got, codes[http.StatusTooManyRequests]+1)
	}
	p.Stop(t, syscall.SIGTERM)
}

// families scrapes /metrics.
func (p *proc) families(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	r, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	dec := expfmt.NewDecoder(r.Body, expfmt.NewFormat(expfmt.TypeTextPlain))
	out := map[string]*dto.MetricFamily{}
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			if err == io.EOF {
				return out
			}
			t.Fatal(err)
		}
		out[mf.GetName()] = &mf
	}
}

// FuzzDays checks the -retention-age parser: never a panic, never a
// negative duration, and what it accepts prints back to the same value.
func FuzzDays(f *testing.F) {
	for _, s := range []string{"7d", "0.5d", "36h", "0", "-1d", "1e3d", "d", "", "10m30s", "NaNd", "Infd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var d days
		if err := d.Set(s); err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("%q gave negative %v", s, time.Duration(d))
		}
		var again days
		if err := again.Set(d.String()); err != nil || again != d {
			t.Fatalf("%q -> %s -> %v (%v)", s, d.String(), time.Duration(again), err)
		}
	})
}

// siteTrace is a recovered panic at a crash site of its own, padded to
// size bytes: odd ones with a deep stack (the whole file is the group's
// example), even ones with parked goroutines (a full dump).
func siteTrace(i, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "runtime error: index out of range [%d] with length 0\n", i)
	fmt.Fprintf(&b, "goroutine %d [running]:\nruntime/debug.Stack()\n\t/usr/local/go/src/runtime/debug/stack.go:26 +0x5e\n", 100+i)
	b.WriteString("panic({0x6b2f40?, 0xc000123450?})\n\t/usr/local/go/src/runtime/panic.go:792 +0x132\n")
	fmt.Fprintf(&b, "game/site%05d.Handle(0xc000010000)\n\t/app/site%05d.go:%d +0x1d\n", i, i, 10+i%50)
	for d := 0; i%2 == 1 && b.Len() < size-300; d++ {
		fmt.Fprintf(&b, "game/recurse.Walk%d(0xc000020000, 0x%x)\n\t/app/recurse.go:%d +0x2a\n", d%7, d, 100+d%9)
	}
	b.WriteString("game/server.(*Conn).serve(0xc000020000)\n\t/app/server.go:88 +0x2a\n")
	b.WriteString("created by game/server.Listen in goroutine 1\n\t/app/server.go:40 +0x85\n")
	for g := 0; b.Len() < size-200; g++ {
		fmt.Fprintf(&b, "\ngoroutine %d [chan receive, %d minutes]:\ngame/server.(*Conn).wait(0xc000030000)\n\t/app/server.go:120 +0x44\ncreated by game/server.Listen in goroutine 1\n\t/app/server.go:41 +0x99\n", 1000+g, g%60)
	}
	return b.Bytes()
}

// peakRSS is a running sidecar's own peak RSS so far, in bytes.
func peakRSS(t *testing.T, p *proc) int64 {
	t.Helper()
	m, err := p.Memory()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			t.Skipf("no /proc: %v", err)
		}
		t.Fatal(err)
	}
	return m.Peak
}

// TestBoundedManySites is issue 10's memory attack: 15,000 distinct crash
// sites in 16 KB files. Peak RSS stays under 100 MB, the state under 32 MB,
// the API pages, and a restart keeps stackwatch_panics_total.
func TestBoundedManySites(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 240 MB of stacktrace files")
	}
	const sites, size = 15000, 16 << 10
	root := t.TempDir()
	logDir, dataDir := filepath.Join(root, "logs"), filepath.Join(root, "data")
	os.MkdirAll(logDir, 0o755)
	for i := range sites {
		if err := os.WriteFile(filepath.Join(logDir, fmt.Sprintf("site%05d.stacktrace.log", i)), siteTrace(i, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"-service", "wilddiggr", "-log-dir", logDir, "-data-dir", dataDir, "-listen", "127.0.0.1:0", "-server-log", "-"}
	p := startProc(t, args...)
	deadline := time.Now().Add(3 * time.Minute)
	for p.scrape(t, metrics.Panics) != sites {
		if time.Now().After(deadline) {
			t.Fatalf("counted %v of %d", p.scrape(t, metrics.Panics), sites)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := p.scrape(t, metrics.CrashGroups); got != 1001 {
		t.Errorf("%v crash groups, want 1,000 and other", got)
	}
	// The API pages: the default page, then the last one.
	var page struct {
		Total      int
		Limit      int
		NextOffset *int `json:"next_offset"`
		Groups     []struct {
			Key   string
			Count int
		}
	}
	getJSON := func(url string) {
		r, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		page.NextOffset = nil
		if err := json.NewDecoder(r.Body).Decode(&page); err != nil {
			t.Fatal(err)
		}
	}
	getJSON("http://" + p.addr + "/api/v1/crashes")
	if page.Total != 1001 || len(page.Groups) != 100 || page.NextOffset == nil || *page.NextOffset != 100 ||
		page.Groups[0].Key != "other" || page.Groups[0].Count != sites-1000 {
		t.Fatalf("first page: total %d, %d groups, next %v, first %+v", page.Total, len(page.Groups), page.NextOffset, page.Groups[0])
	}
	getJSON("http://" + p.addr + "/api/v1/crashes?offset=1000&limit=500")
	if len(page.Groups) != 1 || page.NextOffset != nil {
		t.Fatalf("last page: %d groups, next %v", len(page.Groups), page.NextOffset)
	}
	// The peak so far covers the backlog, the state save after it (as large
	// as the final one) and the API pages.
	peak := peakRSS(t, p)
	if err := p.Stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dataDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d sites: peak RSS %.1f MB, state %.1f MB", sites, float64(peak)/(1<<20), float64(fi.Size())/(1<<20))
	if peak > 100<<20 {
		t.Errorf("peak RSS %.1f MB, over 100 MB", float64(peak)/(1<<20))
	}
	if fi.Size() > 32<<20 {
		t.Errorf("state is %.1f MB, over 32 MB", float64(fi.Size())/(1<<20))
	}
	p = startProc(t, args...)
	p.waitMetric(t, metrics.StacktraceFiles, sites)
	if got := p.scrape(t, metrics.Panics); got != sites {
		t.Fatalf("panics after restart: %v, want %d", got, sites)
	}
	p.Stop(t, syscall.SIGTERM)
}

// TestFailedStartLeavesNothing: a port in use is named by its flag, once,
// and fails before -data-dir is created.
func TestFailedStartLeavesNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	err = run(context.Background(), []string{"-service", "x", "-log-dir", dir, "-data-dir", data,
		"-listen", busy.Addr().String(), "-target", "http://127.0.0.1:1"}, io.Discard, io.Discard)
	if cli.ExitCode(err) != cli.ExitFailure || !strings.HasPrefix(err.Error(), "-listen "+busy.Addr().String()+": bind: ") {
		t.Errorf("port in use: %v", err)
	}
	if _, serr := os.Stat(data); !errors.Is(serr, fs.ErrNotExist) {
		t.Errorf("failed start left -data-dir behind: %v", serr)
	}
}

package webui_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/crash"
)

var updateDocs = flag.Bool("update-docs", false, "copy the browser test's screenshots into docs/ui/")

// artifacts is where screenshots go: $STACKWATCH_ARTIFACTS, else
// testdata/artifacts (ignored by git).
func artifacts(t *testing.T) string {
	dir := os.Getenv("STACKWATCH_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("testdata", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

type browser struct {
	t      *testing.T
	ctx    context.Context
	dir    string
	mu     sync.Mutex
	errors []string // console errors and uncaught exceptions, every page
}

// newBrowser starts headless Chromium with a fresh profile and nothing
// that reaches the network on its own.
func newBrowser(t *testing.T) *browser {
	path := requireBrowser(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoFirstRun, chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 900),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx, dir: artifacts(t)}
	if err := chromedp.Do(ctx); err != nil { // start the browser and its tab
		cancel()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	watching := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		msgs := chromedp.Console(ctx)
		close(watching)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				b.mu.Lock()
				b.errors = append(b.errors, fmt.Sprintf("%s:%d %s", m.URL, m.Line+1, m.Text))
				b.mu.Unlock()
			}
		}
	}()
	<-watching
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		<-stopped
	})
	return b
}

func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// shot saves a full-page screenshot as name.png, and into docs/ui with
// -update-docs.
func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	write := func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	write(b.dir)
	if *updateDocs {
		docs := filepath.Join("..", "..", "docs", "ui")
		if err := os.MkdirAll(docs, 0o755); err != nil {
			b.t.Fatal(err)
		}
		write(docs)
	}
}

// The developer's path through the UI, against a sidecar watching a legacy
// game server under load, beyond localhost when this machine has an
// address there: sign in, crash groups, the clientWrite trace, the leak
// suspect's sparkline, a captured dump in pprof's flame graph, and a diff.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a game server under load and a browser")
	}
	b := newBrowser(t)
	host := "127.0.0.1"
	if ip, ok := nonLoopback(); ok {
		host = ip
	} else {
		t.Log("no address beyond loopback on this machine: the UI listens on 127.0.0.1 (TestAuth covers remote clients)")
	}
	const token = "browser-test-token-0123456789"
	s := startStack(t, host+":0", token)
	t.Logf("sidecar UI at %s", s.URL)

	waitFor(t, 10*time.Second, "the first scrape", func() bool { return !s.prof.Status().LastScrape.IsZero() })
	before, err := s.prof.Capture(t.Context(), "manual", "before the load")
	if err != nil {
		t.Fatal(err)
	}
	sum := s.load(t, 4*time.Second)
	t.Logf("load: %d bets, %d disconnects, %d lost", sum.BetsPlaced, sum.Disconnects, sum.Lost)
	var site crash.Group
	waitFor(t, 30*time.Second, "the clientWrite crash group", func() bool {
		groups, _ := s.sc.CrashGroups(0, -1)
		for _, g := range groups {
			if strings.HasSuffix(g.CrashSite.Function, ".clientWrite") {
				site = g
				return true
			}
		}
		return false
	})
	reckon := func() bool {
		for _, sp := range s.prof.Status().Suspects {
			if strings.Contains(sp.Location.Function, "ClientGetWilddigReckonBetRes.func1") && sp.Has(metrics.SignalBlocked) {
				return true
			}
		}
		return false
	}
	waitFor(t, 30*time.Second, "the reckon leak suspect", reckon)

	// Unauthenticated, the browser lands on the login form.
	b.do("open /", chromedp.Navigate(s.URL+"/"), chromedp.WaitVisible(chromedp.CSS("form.login")))
	b.shot("login")
	b.do("sign in",
		chromedp.SendKeys(chromedp.CSS("input[name=token]"), token),
		chromedp.Submit(chromedp.CSS("form.login")),
		chromedp.WaitVisible(chromedp.CSS("table.groups")))

	// / lists the clientWrite group.
	rows := eval[[]string](b, `[...document.querySelectorAll("table.groups a.site")].map(a => a.textContent)`)
	if !contains(rows, "task.clientWrite") {
		t.Fatalf("crash groups list %q, want task.clientWrite", rows)
	}
	nilCell := eval[string](b, `document.querySelector('tr[data-key="`+site.Key+`"] .nil')?.textContent ?? ""`)
	if nilCell != "nil" {
		t.Errorf("clientWrite row's nil receiver cell %q, want nil", nilCell)
	}
	b.shot("crashes")

	// Clicking it shows the trace, crash site first, with the nil receiver marked.
	b.do("open the group", chromedp.Click(chromedp.CSS(`tr[data-key="`+site.Key+`"] a.site`)),
		chromedp.WaitVisible(chromedp.CSS("#crash-site")))
	siteFn := eval[string](b, `document.querySelector("#crash-site .fn").textContent`)
	if !strings.HasSuffix(siteFn, ".clientWrite") {
		t.Errorf("first frame shown is %q, want the crash site clientWrite", siteFn)
	}
	marked := eval[[]string](b, `[...document.querySelectorAll("#crash-site mark.nil")].map(m => m.textContent)`)
	if len(marked) == 0 || !strings.HasPrefix(marked[0], "{0x0") {
		t.Errorf("nil arguments marked at the crash site: %q, want the nil session {0x0, 0x0}", marked)
	}
	if n := eval[int](b, `document.querySelectorAll(".trace .frame.app").length`); n == 0 {
		t.Error("no in-app frame highlighted below the crash site")
	}
	if n := eval[int](b, `document.querySelectorAll(".trace details.fold").length`); n == 0 {
		t.Error("no runtime or library frames folded")
	}
	b.shot("group")

	// The leak suspect shows a rising sparkline.
	b.do("open goroutines", chromedp.Click(chromedp.CSS(`nav a[href="/ui/goroutines"]`)),
		chromedp.WaitVisible(chromedp.CSS("table.suspects")))
	points := eval[string](b, `(() => {
		for (const tr of document.querySelectorAll("table.suspects tbody tr")) {
			if (tr.textContent.includes("ClientGetWilddigReckonBetRes.func1")) {
				const p = tr.querySelector("svg.spark.rising polyline");
				return p ? p.getAttribute("points") : "not rising";
			}
		}
		return "no row";
	})()`)
	if first, last, ok := ends(points); !ok || !(last < first) { // SVG y grows downwards
		t.Errorf("reckon suspect sparkline %q does not rise", points)
	}
	b.shot("goroutines")

	// Capture a dump from the UI and open it in pprof's flame graph.
	b.do("open dumps", chromedp.Click(chromedp.CSS(`nav a[href="/ui/dumps"]`)), chromedp.WaitVisible(chromedp.ID("capture")))
	b.do("capture", chromedp.Click(chromedp.ID("capture")), chromedp.WaitVisible(chromedp.CSS("p.ok")))
	captured := eval[string](b, `document.querySelector("p.ok a").textContent`)
	if captured == "" || captured == before.ID {
		t.Fatalf("captured dump id %q", captured)
	}
	b.shot("dumps")
	b.do("open the flame graph", chromedp.Click(chromedp.CSS(`tr[data-id="`+captured+`"] a.flame`)),
		chromedp.WaitVisible(chromedp.CSS("#stack-chart .boxbg")))
	if loc := eval[string](b, `location.pathname`); loc != "/ui/dumps/"+captured+"/pprof/flamegraph" {
		t.Errorf("flame graph at %s", loc)
	}
	if txt := eval[string](b, `document.getElementById("stack-chart").textContent`); !strings.Contains(txt, "ReckonBetRes") {
		t.Errorf("flame graph does not show the reckon goroutines")
	}
	b.shot("flamegraph")
	// pprof's other views load cleanly too (console errors are checked at the end).
	for _, view := range []string{"top", "peek", "source"} {
		b.do("open pprof "+view, chromedp.Navigate(s.URL+"/ui/dumps/"+captured+"/pprof/"+view),
			chromedp.WaitVisible(chromedp.CSS("body")))
		if title := eval[string](b, `document.title`); !strings.Contains(title, "goroutine") {
			t.Errorf("pprof %s view titled %q", view, title)
		}
	}

	// The diff of the dump before the load and the captured one shows the
	// leaking group growing, on top.
	b.do("back to dumps", chromedp.Navigate(s.URL+"/ui/dumps"), chromedp.WaitVisible(chromedp.ID("diff")))
	b.do("pick and diff",
		chromedp.Click(chromedp.CSS(`tr[data-id="`+before.ID+`"] input[name=base]`)),
		chromedp.Click(chromedp.CSS(`tr[data-id="`+captured+`"] input[name=id]`)),
		chromedp.Click(chromedp.ID("diff")),
		chromedp.WaitVisible(chromedp.CSS("table.diff")))
	top := eval[[]string](b, `(() => { const tr = document.querySelector("table.diff tbody tr"); return [tr.className, tr.dataset.delta, tr.cells[0].textContent]; })()`)
	delta, _ := strconv.Atoi(top[1])
	if top[0] != "grew" || delta < 10 || !strings.Contains(top[2], "ClientGetWilddigReckonBetRes.func1") {
		t.Errorf("top diff row %q, want the reckon closure grown by ≥ 10", top)
	}
	b.shot("diff")

	// A dump's own page: its stack groups and the ways into pprof.
	b.do("open the dump", chromedp.Click(chromedp.CSS(`a[href="/ui/dumps/`+captured+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("table.stacks")))
	if n := eval[int](b, `document.querySelectorAll("p.views a[href*='/pprof/']").length`); n < 4 {
		t.Errorf("the dump page links %d pprof views", n)
	}
	b.shot("dump")

	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errors {
		t.Errorf("console error: %s", e)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ends returns the y of the first and last points of an SVG polyline.
func ends(points string) (first, last float64, ok bool) {
	ps := strings.Fields(points)
	if len(ps) < 2 {
		return 0, 0, false
	}
	y := func(p string) (float64, bool) {
		_, v, found := strings.Cut(p, ",")
		f, err := strconv.ParseFloat(v, 64)
		return f, found && err == nil
	}
	first, ok1 := y(ps[0])
	last, ok2 := y(ps[len(ps)-1])
	return first, last, ok1 && ok2
}

package profiler_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	rpprof "runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stackwatch/stackwatch/internal/proctest"
	"github.com/stackwatch/stackwatch/sidecar/profiler"
)

func TestMain(m *testing.M) { proctest.VerifyTestMain(m) }

// pprofMux serves the real net/http/pprof handlers, as the game server's
// admin listener does.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	return mux
}

// blockedAtSend parks goroutines on a channel send, the way a lost response
// blocks: the line is found by its marker.
func blockedAtSend(ch chan int) { ch <- 1 } // target:send

type parkedTarget struct {
	URL string
	ch  chan int
	wg  sync.WaitGroup
	n   int
}

// startTarget starts a real HTTP server serving this process's pprof, with
// n goroutines parked at blockedAtSend.
func startTarget(t *testing.T, n int) *parkedTarget {
	t.Helper()
	tg := &parkedTarget{ch: make(chan int)}
	srv := httptest.NewServer(pprofMux())
	tg.URL = srv.URL
	tg.park(t, n)
	t.Cleanup(func() {
		srv.Close()
		go func() {
			for range tg.ch {
			}
		}()
		tg.wg.Wait()
		close(tg.ch)
	})
	return tg
}

//go:noinline
func (tg *parkedTarget) park(t *testing.T, n int) {
	for range n {
		tg.wg.Go(func() { blockedAtSend(tg.ch) })
	}
	tg.n += n
	waitFor(t, 10*time.Second, func() bool { return countInDebug2("profiler_test.blockedAtSend(") >= tg.n })
}

func countInDebug2(s string) int {
	var b strings.Builder
	pprofLookupDebug2(&b)
	return strings.Count(b.String(), s)
}

func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
	}
}

func lineOf(t testing.TB, file, marker string) int {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if strings.HasSuffix(sc.Text(), "// "+marker) {
			return n
		}
	}
	t.Fatalf("marker %q not in %s", marker, file)
	return 0
}

type sidecar struct {
	*profiler.Profiler
	URL    string
	Reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewJSONHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newSidecar builds a profiler for cfg and serves its API on a real
// listener. run starts its scrape loop.
func newSidecar(t *testing.T, cfg profiler.Config, run bool) *sidecar {
	t.Helper()
	if cfg.Service == "" {
		cfg.Service = "wilddiggr"
	}
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	reg := prometheus.NewRegistry()
	p, err := profiler.New(cfg, reg, logger(t))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	p.Register(mux)
	srv := httptest.NewServer(mux)
	sc := &sidecar{Profiler: p, URL: srv.URL, Reg: reg, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	sc.cancel = cancel
	if run {
		go func() { sc.done <- p.Run(ctx) }()
	} else {
		sc.done <- nil
	}
	t.Cleanup(func() {
		cancel()
		if err := <-sc.done; err != nil {
			t.Errorf("Run: %v", err)
		}
		srv.Close()
		http.DefaultClient.CloseIdleConnections()
	})
	return sc
}

func do(t testing.TB, method, url, auth string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	code, b := do(t, http.MethodGet, url, "", nil)
	if code == http.StatusOK {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v\n%s", url, err, b)
		}
	}
	return code
}

// buildLeakTarget builds testdata/leaktarget with the goroutineleak
// experiment and starts it with n leaked goroutines.
func buildLeakTarget(t *testing.T, n int) string {
	t.Helper()
	return startLeakTarget(t, buildTarget(t, "goroutineleakprofile"), "-leak", itoa(n))
}

// buildTarget builds testdata/leaktarget with GOEXPERIMENT=experiment.
func buildTarget(t testing.TB, experiment string) string {
	t.Helper()
	return proctest.Build(t, "./testdata/leaktarget", "GOEXPERIMENT="+experiment)
}

// startLeakTarget runs bin with args until the test ends and returns its URL.
func startLeakTarget(t testing.TB, bin string, args ...string) string {
	t.Helper()
	return "http://" + proctest.Start(t, bin, args...).Listening(t, 30*time.Second, "addr")["addr"]
}

func pprofLookupDebug2(w io.Writer) { rpprof.Lookup("goroutine").WriteTo(w, 2) }

func itoa(n int) string { return strconv.Itoa(n) }

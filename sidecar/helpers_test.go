package sidecar

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stackwatch/stackwatch/gameserver/stacktool"
	"github.com/stackwatch/stackwatch/internal/proctest"
	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/crash"
)

func TestMain(m *testing.M) { proctest.VerifyTestMain(m) }

// session stands in for the game's player session: an interface, as in the
// server, so a missing one is the nil interface and prints as {0x0, 0x0}.
type session interface {
	Write(data []byte, size int) error
}

// writeTo is shaped like the server's clientWrite; a nil session panics
// with a nil dereference.
//
//go:noinline
func writeTo(s session, data []byte, size int) error { return s.Write(data, size) }

//go:noinline
func settle(results []int, i int) int { return results[i] } // index out of range

// writer writes stacktrace files with the game server's own recover helper.
type writer struct {
	rec  *stacktool.Recorder
	mu   sync.Mutex
	last string
}

func recorder(dir string, legacy bool) *writer {
	w := &writer{}
	w.rec = &stacktool.Recorder{Dir: dir, Service: "wilddiggr", Legacy: legacy, Logger: slog.New(slog.DiscardHandler),
		OnPanic: func(_ any, p string) { w.mu.Lock(); w.last = p; w.mu.Unlock() }}
	return w
}

// crash makes a real panic in a new goroutine and lets the recover helper
// write its stacktrace file; it returns the file's path.
func (w *writer) crash(t testing.TB, kind int) string {
	t.Helper()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer w.rec.RecoverFunc()
		switch kind {
		case 0:
			writeTo(nil, []byte("bet result"), 10)
		case 1:
			settle(make([]int, 2), kind+4)
		default:
			panic(fmt.Sprintf("custom failure %d", kind))
		}
	})
	wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == "" {
		t.Fatal("recorder wrote no file")
	}
	p := w.last
	w.last = ""
	return p
}

type harness struct {
	t       testing.TB
	timeout time.Duration // for wait; default 10s
	s       *Sidecar
	logs    *syncBuffer
	cancel  context.CancelFunc
	done    chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// start runs a sidecar on cfg until the test ends (or stop is called).
func start(t testing.TB, cfg Config) *harness {
	t.Helper()
	return startWith(t, cfg, nil)
}

// startWith is start with a chance to extend the sidecar before Run.
func startWith(t testing.TB, cfg Config, extend func(*Sidecar)) *harness {
	t.Helper()
	if cfg.Service == "" {
		cfg.Service = "wilddiggr"
	}
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if extend != nil {
		extend(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, s: s, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- s.Run(ctx, nil) }()
	t.Cleanup(h.stop)
	h.wait("ready", func() bool { return s.Ready() })
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	if err := <-h.done; err != nil {
		h.t.Errorf("Run: %v", err)
	}
}

// wait polls cond until it holds, failing after 10 s.
func (h *harness) wait(what string, cond func() bool) {
	h.t.Helper()
	timeout := h.timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s; logs:\n%s", timeout, what, tail(h.logs.String(), 3000))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func tail(s string, n int) string { return s[max(0, len(s)-n):] }

// value sums the samples of a metric family whose labels include want,
// checking on the way that every series carries the service label.
func value(t testing.TB, g prometheus.Gatherer, m metrics.Metric, want ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != m.Name {
			continue
		}
	series:
		for _, s := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if _, ok := labels[metrics.LabelService]; ok {
				t.Fatalf("%s series with an exporter-set service label: %v", m.Name, labels)
			}
			for i := 0; i+1 < len(want); i += 2 {
				if labels[want[i]] != want[i+1] {
					continue series
				}
			}
			sum += sampleValue(s)
		}
	}
	return sum
}

func sampleValue(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	}
	return 0
}

func (h *harness) value(m metrics.Metric, want ...string) float64 {
	h.t.Helper()
	return value(h.t, h.s.Gatherer(), m, want...)
}

// waitValue waits until a metric reaches v exactly.
func (h *harness) waitValue(m metrics.Metric, v float64, want ...string) {
	h.t.Helper()
	h.wait(fmt.Sprintf("%s%v == %v", m.Name, want, v), func() bool { return h.value(m, want...) == v })
}

// waitAtLeast waits until a metric reaches at least v.
func (h *harness) waitAtLeast(m metrics.Metric, v float64, want ...string) {
	h.t.Helper()
	h.wait(fmt.Sprintf("%s%v >= %v", m.Name, want, v), func() bool { return h.value(m, want...) >= v })
}

// files lists the stacktrace files in dir.
func files(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.stacktrace.log"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func setOld(t testing.TB, path string, age time.Duration) {
	t.Helper()
	old := time.Now().Add(-age)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// groups returns every crash group.
func (h *harness) groups() []crash.Group {
	g, _ := h.s.CrashGroups(0, -1)
	return g
}

// sync is a sync point: it returns once a full scan of the log directory,
// started after the call, has gone through the pipeline.
func (h *harness) sync() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.s.watcher.Rescan(ctx); err != nil {
		h.t.Fatalf("rescan: %v", err)
	}
}

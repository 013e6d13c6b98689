package profiler_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stackwatch/stackwatch/sidecar/profiler"
)

// The tests in this file check the profiler's time logic (schedule,
// timeout, panic window, cooldowns) in a synctest bubble, where the clock
// moves only when every goroutine waits. A bubble cannot go idle while a
// goroutine waits on a socket, so the target is the real net/http/pprof
// handler served over in-memory pipes (net.Pipe) instead of TCP.

// pipeListener is a net.Listener whose connections are net.Pipe ends.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// bubbleProfiler serves h over pipes and returns a profiler scraping it,
// its API mux (for httptest.NewRecorder) and a function starting Run. All
// of it stops at the end of the bubble.
func bubbleProfiler(t *testing.T, h http.Handler, cfg profiler.Config) (*profiler.Profiler, *http.ServeMux, func()) {
	l := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	tr := &http.Transport{DialContext: l.dial}
	cfg.Target, cfg.Service, cfg.DataDir = "http://target", "wilddiggr", t.TempDir()
	cfg.Client = &http.Client{Transport: tr}
	p, err := profiler.New(cfg, prometheus.NewRegistry(), logger(t))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	p.Register(mux)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		srv.Close()
		tr.CloseIdleConnections()
	})
	return p, mux, func() { wg.Go(func() { p.Run(ctx) }) }
}

// TestScheduleInBubble: Run scrapes at once and then every Interval, to
// the nanosecond, keeps every KeepEvery-th scrape, and never asks for the
// debug=2 dump, which stops the target's world, unless a developer does.
func TestScheduleInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var asked []string
		pprof := pprofMux()
		record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			asked = append(asked, r.URL.RequestURI())
			mu.Unlock()
			pprof.ServeHTTP(w, r)
		})
		p, _, run := bubbleProfiler(t, record, profiler.Config{Interval: 15 * time.Second, KeepEvery: 2, PanicBurst: 1, GoroutineThreshold: 1})
		start := time.Now()
		run()
		time.Sleep(time.Minute + time.Second) // scrapes at 0, 15, 30, 45 and 60 s
		synctest.Wait()
		h := p.History()
		if len(h) != 5 {
			t.Fatalf("%d scrapes in 61s at 15s", len(h))
		}
		for i, s := range h {
			if got := s.Time.Sub(start); got != time.Duration(i)*15*time.Second {
				t.Errorf("scrape %d at %s", i+1, got)
			}
		}
		p.OnPanics(1)
		synctest.Wait()
		// Scrape 1 crossed the threshold, 3 and 5 were scheduled, then the panic.
		if l := p.Store().List(); len(l) != 4 || l[0].Trigger != profiler.TriggerPanics || l[3].Trigger != profiler.TriggerThreshold {
			t.Errorf("dumps %+v, want threshold, 2 × schedule, panics", l)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, u := range asked {
			if u != "/debug/pprof/goroutine" && u != "/debug/pprof/goroutineleak" {
				t.Errorf("the profiler asked for %s unprompted", u)
			}
		}
		if len(asked) != 11 { // 5 scrapes × 2 profiles, 1 capture
			t.Errorf("%d requests: %v", len(asked), asked)
		}
	})
}

// TestTimeoutInBubble: a target that never answers costs one Timeout per
// scrape, no more, and is counted as a timeout.
func TestTimeoutInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hang := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
		p, _, _ := bubbleProfiler(t, http.HandlerFunc(hang), profiler.Config{Interval: 15 * time.Second, Timeout: 4 * time.Second})
		start := time.Now()
		err := p.Scrape(t.Context())
		var se *profiler.ScrapeError
		if !errors.As(err, &se) || se.Reason != profiler.ReasonTimeout {
			t.Fatalf("scrape of a silent target: %v", err)
		}
		if d := time.Since(start); d != 4*time.Second {
			t.Errorf("scrape took %s, want the 4s timeout", d)
		}
		// A timeout longer than the interval is cut to the interval.
		p2, _, _ := bubbleProfiler(t, http.HandlerFunc(hang), profiler.Config{Interval: time.Second, Timeout: time.Minute})
		start = time.Now()
		p2.Scrape(t.Context())
		if d := time.Since(start); d != time.Second {
			t.Errorf("scrape took %s at a 1s interval, want 1s", d)
		}
	})
}

// TestPanicTriggerInBubble: PanicBurst panics within PanicWindow trigger
// one dump; more within Cooldown trigger none; panics spread wider than the
// window never add up.
func TestPanicTriggerInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _, run := bubbleProfiler(t, pprofMux(), profiler.Config{Interval: time.Hour, KeepEvery: -1,
			PanicBurst: 3, PanicWindow: time.Minute, Cooldown: 10 * time.Minute})
		run()
		dumps := func() int { synctest.Wait(); n, _ := p.Store().Usage(); return n }
		p.OnPanics(2)
		time.Sleep(time.Minute + time.Second) // the first two fall out of the window
		p.OnPanics(2)
		if n := dumps(); n != 0 {
			t.Fatalf("%d dumps from 2+2 panics 61s apart (window 1m)", n)
		}
		p.OnPanics(1) // 3 within the window
		if n := dumps(); n != 1 {
			t.Fatalf("%d dumps after 3 panics within the window", n)
		}
		p.OnPanics(10)
		time.Sleep(9 * time.Minute)
		p.OnPanics(10)
		if n := dumps(); n != 1 {
			t.Fatalf("%d dumps within the 10m cooldown", n)
		}
		time.Sleep(time.Minute) // cooldown over
		p.OnPanics(3)
		if n := dumps(); n != 2 {
			t.Fatalf("%d dumps after the cooldown", n)
		}
		if l := p.Store().List(); l[0].Trigger != profiler.TriggerPanics || !strings.Contains(l[0].Reason, "3 panics") {
			t.Errorf("dump %+v", l[0])
		}
	})
}

// TestAlertCooldownInBubble: a firing alert for this service queues one
// dump; its repeats within Cooldown are acknowledged but dump nothing.
func TestAlertCooldownInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, mux, run := bubbleProfiler(t, pprofMux(), profiler.Config{Interval: time.Hour, KeepEvery: -1, Cooldown: 5 * time.Minute})
		run()
		fire := func() string {
			body := `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"GoroutineLeak","service":"wilddiggr"}}]}`
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/alertmanager", strings.NewReader(body)))
			synctest.Wait()
			n, _ := p.Store().Usage()
			return fmt.Sprintf("%d %s", n, strings.Join(strings.Fields(rec.Body.String()), ""))
		}
		for _, step := range []struct {
			wait time.Duration
			want string
		}{
			{0, `1 {"matched":["GoroutineLeak"],"queued":true,"cooldown":false}`},
			{4 * time.Minute, `1 {"matched":["GoroutineLeak"],"queued":false,"cooldown":true}`},
			{time.Minute, `2 {"matched":["GoroutineLeak"],"queued":true,"cooldown":false}`},
		} {
			time.Sleep(step.wait)
			if got := fire(); got != step.want {
				t.Errorf("after %s: %s, want %s", step.wait, got, step.want)
			}
		}
	})
}

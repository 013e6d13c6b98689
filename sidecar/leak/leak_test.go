package leak_test

import (
	"bufio"
	"bytes"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/goroutines"
	"github.com/stackwatch/stackwatch/sidecar/leak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func stuckSend(ch chan int)    { ch <- 1 } // leak:send
func stuckReceive(ch chan int) { <-ch }    // leak:receive
func busyWorker(stop chan struct{}) {
	for {
		select { // leak:worker
		case <-stop:
			return
		case <-time.After(time.Hour):
		}
	}
}

type pool struct {
	send, recv chan int
	stop       chan struct{}
	wg         sync.WaitGroup
}

func newPool(t *testing.T) *pool {
	p := &pool{send: make(chan int), recv: make(chan int), stop: make(chan struct{})}
	t.Cleanup(func() {
		close(p.recv)
		close(p.stop)
		go func() {
			for range p.send {
			}
		}()
		p.wg.Wait()
		close(p.send)
	})
	return p
}

//go:noinline
func (p *pool) sends(n int) {
	for range n {
		p.wg.Go(func() { stuckSend(p.send) })
	}
}

//go:noinline
func (p *pool) receives(n int) {
	for range n {
		p.wg.Go(func() { stuckReceive(p.recv) })
	}
}

//go:noinline
func (p *pool) workers(n int) {
	for range n {
		p.wg.Go(func() { busyWorker(p.stop) })
	}
}

// snapshot waits until every goroutine of the test's bubble is parked
// (synctest.Wait, the sync point), checks the counts want per function
// (plain string count over debug=2), then parses a real pprof goroutine
// profile.
func snapshot(t *testing.T, want map[string]int) *goroutines.Snapshot {
	t.Helper()
	synctest.Wait()
	var txt bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&txt, 2)
	for fn, n := range want {
		if got := strings.Count(txt.String(), "leak_test."+fn+"("); got != n {
			t.Fatalf("%d goroutines parked in %s, want %d", got, fn, n)
		}
	}
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 0); err != nil {
		t.Fatal(err)
	}
	s, err := goroutines.ParseProfile(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func lineOf(t *testing.T, marker string) int {
	t.Helper()
	f, err := os.Open("leak_test.go")
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
	t.Fatalf("marker %q not found", marker)
	return 0
}

func find(ss []leak.Suspect, fn string) *leak.Suspect {
	for i := range ss {
		if strings.HasSuffix(ss[i].Location.Function, "leak_test."+fn) {
			return &ss[i]
		}
	}
	return nil
}

func TestBlockedRule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t)
		p.sends(120)   // over the threshold
		p.receives(40) // under it
		p.workers(150) // many, but in a timer select that is not a leak... still a channel select
		d := leak.New(leak.Config{BlockedThreshold: 100})
		got := d.Observe(snapshot(t, map[string]int{"stuckSend": 120, "stuckReceive": 40, "busyWorker": 150}), nil)

		s := find(got, "stuckSend")
		if s == nil {
			t.Fatalf("no suspect at stuckSend: %+v", got)
		}
		if s.Count != 120 || !s.Has(metrics.SignalBlocked) || s.Has(metrics.SignalGrowth) || s.Wait != goroutines.WaitChanSend {
			t.Errorf("stuckSend suspect %+v", s)
		}
		if want := lineOf(t, "leak:send"); s.Location.Line != want || !strings.HasSuffix(s.Location.File, "leak_test.go") {
			t.Errorf("location %s, want leak_test.go:%d", s.Location.Site(), want)
		}
		if !strings.HasSuffix(s.Label(), "leak_test.go:"+itoa(lineOf(t, "leak:send"))) {
			t.Errorf("label %q", s.Label())
		}
		if find(got, "stuckReceive") != nil {
			t.Error("40 blocked receivers (< threshold 100) flagged")
		}
		// LeakProf's rule flags any mass park on a channel: 150 workers in a
		// select are flagged too. That is the rule's known false positive; the
		// growth signal is what separates a steady pool from a leak.
		if w := find(got, "busyWorker"); w == nil || w.Has(metrics.SignalGrowth) {
			t.Errorf("busyWorker: %+v", w)
		}
	})
}

func TestGrowthSignal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t)
		d := leak.New(leak.Config{BlockedThreshold: 1 << 30, GrowthWindow: 4, GrowthMin: 6})
		p.workers(20) // steady pool
		var got []leak.Suspect
		for i := 1; i <= 4; i++ {
			p.receives(3)
			got = d.Observe(snapshot(t, map[string]int{"stuckReceive": 3 * i, "busyWorker": 20}), nil)
			if i < 4 && len(got) != 0 {
				t.Fatalf("scrape %d: suspects before the window filled: %+v", i, got)
			}
		}
		s := find(got, "stuckReceive")
		if s == nil {
			t.Fatalf("no growth suspect: %+v", got)
		}
		if !s.Has(metrics.SignalGrowth) || s.Has(metrics.SignalBlocked) || s.Count != 12 || s.Delta != 9 ||
			len(s.Trend) != 4 || s.Trend[0] != 3 || s.Trend[3] != 12 {
			t.Errorf("growth suspect %+v", s)
		}
		if find(got, "busyWorker") != nil {
			t.Error("a steady pool was flagged as growing")
		}
		// A fall breaks the streak: nothing grows any more.
		got = d.Observe(snapshot(t, map[string]int{"stuckReceive": 12, "busyWorker": 20}), nil)
		if s := find(got, "stuckReceive"); s == nil { // 6,9,12,12 still rises by 6
			t.Errorf("plateau after growth lost the suspect too early")
		}
		d2 := leak.New(leak.Config{BlockedThreshold: 1 << 30, GrowthWindow: 3, GrowthMin: 1})
		base := snapshot(t, map[string]int{"stuckReceive": 12, "busyWorker": 20})
		for range 5 {
			if got := d2.Observe(base, nil); len(got) != 0 {
				t.Fatalf("flat series flagged: %+v", got)
			}
		}
	})
}

func TestRuntimeSignalAndBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPool(t)
		p.sends(5)
		s := snapshot(t, map[string]int{"stuckSend": 5})
		// The goroutineleak profile has the same shape as the goroutine profile;
		// here the parked senders play the proven-leaked set (a real
		// goroutineleak profile is exercised by the profiler's tests).
		var leakedSet goroutines.Snapshot
		for _, g := range s.Groups {
			if strings.HasSuffix(g.Location.Function, "stuckSend") {
				leakedSet.Groups = append(leakedSet.Groups, g)
				leakedSet.Total += g.Count
			}
		}
		d := leak.New(leak.Config{MaxTracked: 2})
		got := d.Observe(s, &leakedSet)
		if len(got) != 1 || !got[0].Has(metrics.SignalRuntime) || got[0].Leaked != 5 || got[0].Count != 5 {
			t.Fatalf("runtime suspects %+v", got)
		}
		if len(d.Suspects()) != 1 {
			t.Error("Suspects() does not return the last result")
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

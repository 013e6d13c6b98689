package gameserver_test

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/loadgen"
)

// The sidecar scrapes /debug/pprof/goroutineleak every 15s. Whatever the
// runtime proves leaked there must stay parked: waking one at shutdown
// killed the process with "fatal error: bad g->status in ready".
func TestLegacyLeakScrapesThenSIGTERMExitsCleanly(t *testing.T) {
	bin := buildServer(t, "goroutineleakprofile")
	p := startProc(t, bin, "-game", "wilddig", "-legacy", "-wallet-latency", "20ms")
	leakURL := "http://" + p.pprof + "/debug/pprof/goroutineleak?debug=1"

	scrape := func() string {
		code, body, err := fetchURL(leakURL, 30*time.Second)
		if err != nil || code != 200 || !strings.Contains(body, "goroutineleak profile: total") {
			t.Errorf("scrape: %d %v\n%.300s", code, err, body)
		}
		return body
	}
	var scrapes sync.WaitGroup
	loadDone := make(chan struct{})
	scrapes.Go(func() { // during the load
		for {
			select {
			case <-loadDone:
				return
			case <-time.After(300 * time.Millisecond):
				scrape()
			}
		}
	})
	sum, err := loadgen.Run(context.Background(), loadgen.Config{Addr: p.addr, Clients: 40, Duration: 2 * time.Second,
		Disconnect: 0.3, DisconnectJitter: 40 * time.Millisecond, Drain: 5 * time.Second})
	close(loadDone)
	scrapes.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Disconnects == 0 {
		t.Fatalf("no disconnects, no legacy panics: %s", sum)
	}
	// After the load: the reckon goroutines the panics left are proven leaked.
	var body string
	for range 3 {
		body = scrape()
	}
	if !strings.Contains(body, "ClientGetWilddigReckonBetRes.func1") {
		t.Errorf("the leak profile names no reckon goroutine:\n%.2000s", body)
	}

	// And while shutting down.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, _, err := fetchURL(leakURL, 2*time.Second); err != nil {
			break // the listener closed
		}
	}
	if err := p.Wait(t, 30*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, tail(p.Logs(), 3000))
	}
	if log := p.Logs(); strings.Contains(log, "fatal error:") || !strings.Contains(log, `"msg":"stopped"`) {
		t.Fatalf("unclean exit:\n%s", tail(log, 3000))
	}
}

func tail(s string, n int) string { return s[max(0, len(s)-n):] }

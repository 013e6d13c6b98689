//go:build unix

package gameserver_test

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/metrics"
)

// raiseNoFile lifts the soft RLIMIT_NOFILE to the hard limit for the test
// and returns the hard limit.
func raiseNoFile(t *testing.T) int {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	old := rl
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	return int(min(rl.Max, 1<<20))
}

// A flood of idle, never-authenticating connections: the server holds at
// most its unauthenticated cap and refuses the rest at once, counted;
// /healthz keeps answering within a second throughout; once the flood
// ends, players get in again.
func TestIdleConnectionFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("opens tens of thousands of connections")
	}
	const want = 25_000
	hard := raiseNoFile(t)
	srv := startServer(t, gameserver.Config{})
	cfg := srv.Config()
	// The clients live in this process too: leave room for the server's
	// own connections and descriptors.
	n := min(want, hard-cfg.MaxUnauthConns-1024)
	if n < want {
		t.Logf("RLIMIT_NOFILE hard limit is %d: flooding with %d idle connections instead of %d", hard, n, want)
	}

	healthz := "http://" + srv.AdminAddr().String() + "/healthz"
	stopProbe := make(chan struct{})
	var probes, slow atomic.Int64
	var probeWG sync.WaitGroup
	probeWG.Go(func() {
		for {
			start := time.Now()
			code, _, err := fetchURL(healthz, time.Second)
			probes.Add(1)
			if err != nil || code != 200 {
				slow.Add(1)
				t.Errorf("/healthz after %v: %d %v", time.Since(start).Round(time.Millisecond), code, err)
			}
			select {
			case <-stopProbe:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})

	conns := make([]net.Conn, n)
	var dialFailed, resets atomic.Int64
	var wg sync.WaitGroup
	const dialers = 16
	for d := range dialers {
		wg.Go(func() {
			for i := d; i < n; i += dialers {
				c, err := net.DialTimeout("tcp", srv.AddrString(), 5*time.Second)
				if err != nil {
					if errors.Is(err, syscall.ECONNRESET) {
						resets.Add(1) // accepted and refused before connect returned
					} else if dialFailed.Add(1) == 1 {
						t.Logf("first failed dial: %v", err)
					}
					continue
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	// Saturated: one more probe, then look at the counts.
	start := time.Now()
	if code, _, err := fetchURL(healthz, time.Second); err != nil || code != 200 {
		t.Errorf("/healthz with the port saturated: %d %v after %v", code, err, time.Since(start))
	}
	// The kernel completes handshakes before the server accepts them: wait
	// until it has taken the whole flood, every connection held (up to the
	// cap) or refused. A server holding more than its cap never gets there.
	reached := float64(n - int(dialFailed.Load()))
	var refused float64
	waitFor(t, "the server to take the whole flood within its cap", 30*time.Second, func() bool {
		refused = metricValue(t, srv.Registry(), metrics.ConnectionsRefused.Name, map[string]string{metrics.LabelReason: metrics.ReasonUnauthenticated})
		return refused+float64(cfg.MaxUnauthConns) >= reached
	})
	t.Logf("%d connections dialled (%d reset while connecting, %d failed otherwise), %.0f refused at the unauthenticated cap of %d; %d /healthz probes",
		n, resets.Load(), dialFailed.Load(), refused, cfg.MaxUnauthConns, probes.Load())
	if refused < float64(n/2) {
		t.Errorf("only %.0f of %d idle connections refused", refused, n)
	}

	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	close(stopProbe)
	probeWG.Wait()

	// Recovered: once the server has seen the flood go, a player logs in
	// and bets as usual.
	waitFor(t, "a player getting in after the flood", 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", srv.AddrString(), time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		rc := &rawClient{t: t, conn: c}
		if protocol.WriteMessage(c, protocol.TypeHello, protocol.Hello{PlayerID: "after", Token: token(t, "after")}) != nil {
			return false // refused: the server has not caught up yet
		}
		if f, err := rc.read(); err != nil || f.Type != protocol.TypeWelcome {
			return false
		}
		rc.send(protocol.TypeBet, protocol.Bet{BetID: "b1", Amount: 10})
		rc.expect(protocol.TypeBetResult, nil)
		return true
	})
}

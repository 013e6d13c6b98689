package loadgen_test

import (
	"context"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/client"
	"github.com/stackwatch/stackwatch/gameserver/gameservertest"
	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/gameserver/stacktool"
	"github.com/stackwatch/stackwatch/gameserver/ticket"
	"github.com/stackwatch/stackwatch/loadgen"
)

// server is a real game server running in this process on loopback.
type server struct {
	*gameservertest.Server
	cfg gameserver.Config
}

func startServer(t testing.TB, cfg gameserver.Config) *server {
	t.Helper()
	s := gameservertest.Start(t, cfg)
	return &server{Server: s, cfg: s.Config()}
}

func (s *server) addr() string { return s.Addr().String() }

// metric sums the samples of a family in the server's registry whose labels
// include want.
func (s *server) metric(t testing.TB, name string, want ...string) float64 {
	t.Helper()
	return gathered(t, s.Registry(), name, want...)
}

func gathered(t testing.TB, g prometheus.Gatherer, name string, want ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(want); i += 2 {
				if labels[want[i]] != want[i+1] {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

func stacktraceFiles(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"+stacktool.Suffix))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func token(t testing.TB, player string) string {
	t.Helper()
	tok, err := ticket.Sign([]byte(ticket.DevSecret), player, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func dial(t testing.TB, addr, player string) *client.Client {
	t.Helper()
	c, err := client.Dial(testCtx(t, 10*time.Second), addr, player, token(t, player), client.WithResultBuffer(256))
	if err != nil {
		t.Fatalf("dial as %s: %v", player, err)
	}
	t.Cleanup(func() { c.Close() })
	// A Pong proves the server has registered the session. Without it, a
	// connection closed right after Welcome can be registered after the
	// player's next one and replace it (a server race reported to the
	// gameserver owner), which is not what these tests are about.
	if _, err := c.Ping(testCtx(t, 10*time.Second)); err != nil {
		t.Fatalf("ping as %s: %v", player, err)
	}
	return c
}

// betUnread places a bet on a raw connection that never reads, then closes
// it once the server has settled the bet: the result was written into a
// socket the player never read, so from the player's side it disconnected
// before the response.
func betUnread(t testing.TB, s *server, player, betID string, amount int64) {
	t.Helper()
	conn, err := net.Dial("tcp", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	settled := s.metric(t, "gameserver_bet_results_total")
	if err := protocol.WriteMessage(conn, protocol.TypeHello, protocol.Hello{PlayerID: player, Token: token(t, player)}); err != nil {
		t.Fatal(err)
	}
	if err := protocol.WriteMessage(conn, protocol.TypeBet, protocol.Bet{BetID: betID, Amount: amount}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "bet settled", func() bool { return s.metric(t, "gameserver_bet_results_total") > settled })
}

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// next returns the next result from c, failing after d.
func next(t testing.TB, c *client.Client, d time.Duration) client.Result {
	t.Helper()
	select {
	case r, ok := <-c.Results():
		if !ok {
			t.Fatalf("connection ended: %v", c.Err())
		}
		return r
	case <-time.After(d):
		t.Fatalf("no result within %v", d)
	}
	return client.Result{}
}

// onlyOwn asserts that whatever arrives on c within d is player's own: a
// repeat of a result the player already saw is allowed (delivery is at least
// once), anyone else's is not.
func onlyOwn(t testing.TB, c *client.Client, player string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case r := <-c.Results():
			if r.PlayerID != player {
				t.Fatalf("%s received a result for %q: %+v", player, r.PlayerID, r.BetResult)
			}
		case <-deadline:
			return
		}
	}
}

func runLoad(t testing.TB, cfg loadgen.Config) loadgen.Summary {
	t.Helper()
	s, err := loadgen.Run(testCtx(t, cfg.Duration+cfg.Drain+2*time.Minute), cfg)
	if err != nil {
		t.Fatalf("loadgen.Run: %v", err)
	}
	t.Logf("loadgen: %s", s)
	for _, e := range s.Errors {
		t.Logf("loadgen error: %s", e)
	}
	return s
}

// goroutines samples the process's goroutine count once it has stopped
// falling, so goroutines that are just finishing do not count.
func goroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}

const devSecret = ticket.DevSecret

func tokenFor(player string, secret []byte, expires time.Time) (string, error) {
	return ticket.Sign(secret, player, expires)
}

// rawHello opens a raw connection and sends Hello on it.
func rawHello(t testing.TB, addr, player, tok string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := protocol.WriteMessage(conn, protocol.TypeHello, protocol.Hello{PlayerID: player, Token: tok}); err != nil {
		t.Fatal(err)
	}
	return conn
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

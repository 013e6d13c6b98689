package bearer_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stackwatch/stackwatch/sidecar/bearer"
)

// guard is a Checker's Middleware in front of a handler answering "ok",
// logging into a buffer.
type guard struct {
	c   *bearer.Checker
	h   http.Handler
	log *bytes.Buffer
}

func newGuard(lim bearer.Limits) *guard {
	g := &guard{c: bearer.NewChecker(token, bearer.NewLimiter(lim)), log: new(bytes.Buffer)}
	g.c.Limiter().SetLogger(slog.New(slog.NewTextHandler(g.log, nil)))
	g.h = g.c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	return g
}

// do sends a request with "Bearer tok" from remote; it returns the status
// and Retry-After.
func (g *guard) do(remote, tok string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, "/api/v1/dumps", nil)
	req.RemoteAddr = remote
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	g.h.ServeHTTP(rec, req)
	return rec.Code, rec.Header().Get("Retry-After")
}

func wrong(i int) string { return fmt.Sprintf("wrong-token-%08d", i) }

// Past the burst, wrong tokens get 429 with Retry-After, before any
// comparison (so the right token too); after the wait, one more try.
// Another address is unaffected.
func TestLimitBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGuard(bearer.Limits{})
		const a, b = "192.0.2.1:40000", "192.0.2.2:40000"
		for i := range 10 {
			if code, _ := g.do(a, wrong(i)); code != http.StatusUnauthorized {
				t.Fatalf("wrong token %d: %d, want 401", i, code)
			}
		}
		code, retry := g.do(a, wrong(10))
		if code != http.StatusTooManyRequests || retry != "1" {
			t.Fatalf("11th wrong token: %d Retry-After %q, want 429 and 1", code, retry)
		}
		// The right token is not even compared while the client is over.
		if code, retry := g.do(a, token); code != http.StatusTooManyRequests || retry == "" {
			t.Errorf("right token from a throttled client: %d Retry-After %q, want 429", code, retry)
		}
		// Another address, and another port of it, are their own clients.
		if code, _ := g.do(b, token); code != http.StatusOK {
			t.Errorf("right token from another address: %d", code)
		}
		if code, _ := g.do(b, wrong(0)); code != http.StatusUnauthorized {
			t.Errorf("wrong token from another address: %d", code)
		}
		if code, _ := g.do("192.0.2.1:40001", wrong(11)); code != http.StatusTooManyRequests {
			t.Errorf("another port of the throttled address: %d, want 429", code)
		}

		time.Sleep(time.Second)
		if code, _ := g.do(a, wrong(12)); code != http.StatusUnauthorized {
			t.Errorf("after Retry-After: %d, want 401", code)
		}
		if code, _ := g.do(a, wrong(13)); code != http.StatusTooManyRequests {
			t.Errorf("a second try after one second: %d, want 429", code)
		}
		time.Sleep(time.Second)
		if code, _ := g.do(a, token); code != http.StatusOK {
			t.Errorf("right token after the wait: %d", code)
		}
		// Ten seconds refill the burst.
		time.Sleep(10 * time.Second)
		for i := range 10 {
			if code, _ := g.do(a, wrong(100+i)); code != http.StatusUnauthorized {
				t.Fatalf("after ten seconds, wrong token %d: %d, want 401", i, code)
			}
		}
		st := g.c.Limiter().Stats()
		if st.Throttled != 4 || st.Failures != 22 {
			t.Errorf("stats %+v, want 4 throttled, 22 failures", st)
		}
	})
}

// Right tokens cost nothing, and a client sending its last wrong token
// again (a stale secret) is charged once.
func TestOnlyNewFailuresCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGuard(bearer.Limits{})
		const a = "198.51.100.7:5000"
		for range 1000 {
			if code, _ := g.do(a, token); code != http.StatusOK {
				t.Fatalf("right token: %d", code)
			}
		}
		for range 1000 {
			if code, _ := g.do(a, "stale-token-0123456789"); code != http.StatusUnauthorized {
				t.Fatalf("the same wrong token again: %d, want 401", code)
			}
		}
		for i := range 9 {
			if code, _ := g.do(a, wrong(i)); code != http.StatusUnauthorized {
				t.Fatalf("wrong token %d after a stale one: %d, want 401", i, code)
			}
		}
		if code, _ := g.do(a, wrong(9)); code != http.StatusTooManyRequests {
			t.Errorf("11th distinct wrong token: %d, want 429", code)
		}
		if st := g.c.Limiter().Stats(); st.Failures != 10 {
			t.Errorf("failures %d, want 10", st.Failures)
		}
	})
}

// X-Forwarded-For is anyone's to write: the remote address decides. An
// IPv6 client is its /64, and an IPv4-mapped address its IPv4 one.
func TestClientKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGuard(bearer.Limits{Burst: 2})
		spoof := func(i int) int {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.RemoteAddr = "203.0.113.9:1234"
			req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.0.0.%d", i))
			req.Header.Set("X-Real-Ip", fmt.Sprintf("10.0.1.%d", i))
			req.Header.Set("Authorization", "Bearer "+wrong(i))
			rec := httptest.NewRecorder()
			g.h.ServeHTTP(rec, req)
			return rec.Code
		}
		if spoof(0) != 401 || spoof(1) != 401 || spoof(2) != http.StatusTooManyRequests {
			t.Error("X-Forwarded-For made a new client")
		}
		if c1, _ := g.do("[2001:db8:1:2::1]:80", wrong(0)); c1 != 401 {
			t.Fatalf("IPv6: %d", c1)
		}
		g.do("[2001:db8:1:2:ffff::9]:80", wrong(1))
		if code, _ := g.do("[2001:db8:1:2:abcd:ef01:2345:6789%eth0]:80", wrong(2)); code != http.StatusTooManyRequests {
			t.Errorf("third address of one /64: %d, want 429", code)
		}
		if code, _ := g.do("[2001:db8:1:3::1]:80", wrong(3)); code != 401 {
			t.Errorf("the next /64: %d, want 401", code)
		}
		g.do("[::ffff:192.0.2.50]:80", wrong(0))
		g.do("192.0.2.50:81", wrong(1))
		if code, _ := g.do("[::ffff:192.0.2.50]:82", wrong(2)); code != http.StatusTooManyRequests {
			t.Errorf("IPv4-mapped address: %d, want 429", code)
		}
	})
}

// A guess spread over many addresses meets the global bound, which holds
// any new client; loopback clients and those that presented the right
// token lately still get in with it.
func TestGlobalBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGuard(bearer.Limits{})
		const operator = "192.0.2.200:5000"
		if code, _ := g.do(operator, token); code != http.StatusOK {
			t.Fatalf("operator: %d", code)
		}
		addr := func(i int) string { return fmt.Sprintf("10.%d.%d.%d:4000", i>>16&255, i>>8&255, i&255) }
		refused := 0
		for i := range 1000 {
			code, retry := g.do(addr(i), wrong(i))
			switch code {
			case http.StatusUnauthorized:
			case http.StatusTooManyRequests:
				if retry != "1" {
					t.Fatalf("global 429 with Retry-After %q", retry)
				}
				refused++
			default:
				t.Fatalf("wrong token from %s: %d", addr(i), code)
			}
		}
		if refused != 900 {
			t.Errorf("%d of 1000 distinct addresses refused, want 900 (a global burst of 100)", refused)
		}
		// During the flood: a new client is held, even with the right token;
		// loopback and the operator who came in before are not.
		if code, _ := g.do("192.0.2.201:5000", token); code != http.StatusTooManyRequests {
			t.Errorf("right token from a new address during the flood: %d, want 429", code)
		}
		if code, _ := g.do(operator, token); code != http.StatusOK {
			t.Errorf("right token from a known address during the flood: %d", code)
		}
		for _, lo := range []string{"127.0.0.1:6000", "[::1]:6000", "@"} {
			if code, _ := g.do(lo, token); code != http.StatusOK {
				t.Errorf("right token from %s during the flood: %d", lo, code)
			}
		}
		// A known client's wrong tokens still count against its own limit.
		for i := range 10 {
			g.do(operator, wrong(i))
		}
		if code, _ := g.do(operator, token); code != http.StatusTooManyRequests {
			t.Errorf("known client past its own burst: %d, want 429", code)
		}
		// At 5 a second, a new client gets one try after 200ms.
		time.Sleep(200 * time.Millisecond)
		if code, _ := g.do("192.0.2.201:5000", token); code != http.StatusOK {
			t.Errorf("right token from a new address after the flood: %d", code)
		}
		st := g.c.Limiter().Stats()
		if st.ThrottledGlobal != 901 || st.Failures != 110 {
			t.Errorf("stats %+v, want 901 global refusals, 110 failures", st)
		}
		if n := strings.Count(g.log.String(), "from all clients"); n != 1 {
			t.Errorf("%d log lines about the global bound, want 1:\n%s", n, g.log)
		}
	})
}

// A flood from 100,000 distinct addresses (IPv4, then IPv6 /64s) keeps
// the table at MaxClients, also with the global bound out of the way.
func TestTableBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, lim := range []bearer.Limits{{}, {MaxClients: 1000, GlobalBurst: 1 << 30, GlobalEvery: time.Nanosecond}} {
			g := newGuard(lim)
			maxClients := lim.MaxClients
			if maxClients == 0 {
				maxClients = 4096
			}
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			for i := range 100_000 {
				req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:4000", i>>16&255, i>>8&255, i&255)
				if i%2 == 1 {
					req.RemoteAddr = fmt.Sprintf("[2001:db8:%x:%x::1]:4000", i>>16, i&0xffff)
				}
				if ok, _ := g.c.Check(req, wrong(i)); ok {
					t.Fatal("a wrong token passed")
				}
				if i%1000 == 0 {
					time.Sleep(time.Millisecond)
					if n := g.c.Limiter().Stats().Clients; n > maxClients {
						t.Fatalf("after %d addresses: %d clients remembered, cap %d", i+1, n, maxClients)
					}
				}
			}
			if n := g.c.Limiter().Stats().Clients; n > maxClients {
				t.Fatalf("%d clients remembered, cap %d", n, maxClients)
			}
			st := g.c.Limiter().Stats()
			t.Logf("limits %+v: %+v", lim, st)
			// Once every bucket is full again, nothing is kept.
			time.Sleep(11 * time.Second)
			g.do("192.0.2.1:1", token)
			if n := g.c.Limiter().Stats().Clients; n != 0 {
				t.Errorf("%d clients remembered after the flood", n)
			}
		}
	})
}

// Throttling is logged once per client per LogEvery, however many
// requests are refused.
func TestLogOncePerClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGuard(bearer.Limits{})
		for _, a := range []string{"192.0.2.1:1", "192.0.2.2:1"} {
			for i := range 500 {
				g.do(a, wrong(i))
			}
		}
		if n := strings.Count(g.log.String(), "from a client"); n != 2 {
			t.Fatalf("%d log lines for two throttled clients, want 2:\n%s", n, g.log)
		}
		if !strings.Contains(g.log.String(), "client=192.0.2.1 ") {
			t.Errorf("log lacks the client: %s", g.log)
		}
		time.Sleep(5 * time.Second)
		for i := range 100 {
			g.do("192.0.2.1:1", wrong(1000+i))
		}
		if n := strings.Count(g.log.String(), "from a client"); n != 2 {
			t.Errorf("logged again within a minute: %d lines", n)
		}
		time.Sleep(time.Minute)
		for i := range 100 {
			g.do("192.0.2.1:1", wrong(2000+i))
		}
		if n := strings.Count(g.log.String(), "refused_since_last_log"); n != 3 {
			t.Errorf("%d lines after a minute, want 3:\n%s", n, g.log)
		}
	})
}

// Concurrent guesses from one client stay within its burst: a failure is
// charged before the comparison.
func TestConcurrentBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGuard(bearer.Limits{})
		var mu sync.Mutex
		got := map[int]int{}
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Go(func() {
				code, _ := g.do("192.0.2.9:1", wrong(i))
				mu.Lock()
				got[code]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if got[http.StatusUnauthorized] != 10 || got[http.StatusTooManyRequests] != 190 {
			t.Errorf("200 concurrent guesses: %v, want 10 401s and 190 429s", got)
		}
	})
}

// An empty token matches nothing and throttles nothing.
func TestEmptyTokenFailsClosed(t *testing.T) {
	c := bearer.NewChecker("", nil)
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	for range 100 {
		if ok, retry := c.Check(req, ""); ok || retry != 0 {
			t.Fatalf("empty token: %v %v", ok, retry)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "1", time.Nanosecond: "1", 999 * time.Millisecond: "1",
		time.Second: "1", time.Second + 1: "2", 90 * time.Second: "90"} {
		if got := bearer.RetryAfter(d); got != want {
			t.Errorf("RetryAfter(%v) = %q, want %q", d, got, want)
		}
	}
}

// Every loopback address, IPv4 or IPv6, and a Unix socket are one client:
// a process in the pod could otherwise take a new address of 127.0.0.0/8
// for every ten guesses, each exempt from the global bound too.
func TestLoopbackOneClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGuard(bearer.Limits{})
		for i := range 10 {
			if code, _ := g.do(fmt.Sprintf("127.0.%d.%d:5000", i>>8, i&255+1), wrong(i)); code != http.StatusUnauthorized {
				t.Fatalf("wrong token %d from loopback: %d, want 401", i, code)
			}
		}
		for i, lo := range []string{"127.0.1.1:5000", "127.255.255.254:1", "[::1]:6000", "[::ffff:127.0.0.2]:7000", "@", ""} {
			if code, retry := g.do(lo, wrong(100+i)); code != http.StatusTooManyRequests || retry != "1" {
				t.Errorf("wrong token from %q after ten from loopback: %d Retry-After %q, want 429 and 1", lo, code, retry)
			}
		}
		if code, _ := g.do("192.0.2.1:5000", token); code != http.StatusOK {
			t.Errorf("right token from elsewhere: %d", code)
		}
		if !strings.Contains(g.log.String(), "client=local ") {
			t.Errorf("log does not name the local client:\n%s", g.log)
		}
	})
}

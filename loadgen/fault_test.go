package loadgen

// The real server never loses, double-settles or misdelivers in patched mode,
// so these tests give the load generator a deliberately faulty server to
// prove that each of its checks fires. faultServer speaks the real protocol
// and verifies real tickets; only its bookkeeping is scripted.

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/gameserver/ticket"
)

type fault int

const (
	noFault      fault = iota
	loseResults        // deduct, never settle (the incident's lost bet)
	doubleSettle       // a resent bet id is settled again, differently
	misdeliver         // results name another player
	skewBalance        // the ledger balance drifts from the results
	refuseTicket       // every Hello is refused
)

type faultServer struct {
	t     *testing.T
	fault fault
	ln    net.Listener
	wg    sync.WaitGroup

	mu      sync.Mutex
	wallets map[string]int64
	settled map[string]protocol.BetResult // player/bet → result
	unacked map[string]map[string]bool    // player → bet ids not yet acknowledged
	conns   map[net.Conn]bool
}

func startFaultServer(t *testing.T, f fault) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &faultServer{t: t, fault: f, ln: ln, wallets: map[string]int64{}, settled: map[string]protocol.BetResult{},
		unacked: map[string]map[string]bool{}, conns: map[net.Conn]bool{}}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return ln.Addr().String()
}

func (s *faultServer) serve(c net.Conn) {
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	f, err := protocol.ReadFrame(c, 0)
	if err != nil || f.Type != protocol.TypeHello {
		return
	}
	var h protocol.Hello
	if f.Decode(&h) != nil {
		return
	}
	if err := ticket.Verify([]byte(ticket.DevSecret), h.PlayerID, h.Token, time.Now()); err != nil || s.fault == refuseTicket {
		protocol.WriteMessage(c, protocol.TypeError, protocol.Error{Code: protocol.CodeBadToken, Message: "refused"})
		return
	}
	var wmu sync.Mutex
	write := func(t protocol.Type, v any) {
		wmu.Lock()
		defer wmu.Unlock()
		protocol.WriteMessage(c, t, v)
	}
	s.mu.Lock()
	if _, ok := s.wallets[h.PlayerID]; !ok {
		s.wallets[h.PlayerID] = 100_000
	}
	bal := s.wallets[h.PlayerID]
	var redeliver []protocol.BetResult
	for id := range s.unacked[h.PlayerID] {
		r := s.settled[h.PlayerID+"/"+id]
		r.Redelivered = true
		redeliver = append(redeliver, r)
	}
	s.mu.Unlock()
	write(protocol.TypeWelcome, protocol.Welcome{PlayerID: h.PlayerID, SessionID: 1, Game: "fault", Balance: bal})
	for _, r := range redeliver {
		write(protocol.TypeBetResult, r)
	}
	held := map[string]protocol.BetResult{} // doubleSettle: first settlements held back
	for {
		f, err := protocol.ReadFrame(c, 0)
		if err != nil {
			return
		}
		switch f.Type {
		case protocol.TypeBet:
			var b protocol.Bet
			if f.Decode(&b) != nil {
				return
			}
			r, ok := s.bet(h.PlayerID, b)
			switch {
			case !ok:
			case s.fault == doubleSettle && r.Win == 0:
				// The first settlement is held until the client resends
				// the bet and the server settles it again.
				held[b.BetID] = r
			case s.fault == doubleSettle:
				if first, ok := held[b.BetID]; ok {
					delete(held, b.BetID)
					write(protocol.TypeBetResult, first)
				}
				write(protocol.TypeBetResult, r)
			default:
				write(protocol.TypeBetResult, r)
			}
		case protocol.TypeAck:
			var a protocol.Ack
			f.Decode(&a)
			s.mu.Lock()
			delete(s.unacked[h.PlayerID], a.BetID)
			s.mu.Unlock()
		case protocol.TypeBalanceRequest:
			s.mu.Lock()
			bal := s.wallets[h.PlayerID]
			s.mu.Unlock()
			if s.fault == skewBalance {
				bal++
			}
			write(protocol.TypeBalance, protocol.Balance{Balance: bal})
		case protocol.TypePing:
			write(protocol.TypePong, protocol.Pong{})
		}
	}
}

// bet settles b and returns the result to send now, if any.
func (s *faultServer) bet(player string, b protocol.Bet) (protocol.BetResult, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := player + "/" + b.BetID
	prev, seen := s.settled[key]
	switch {
	case s.fault == loseResults:
		if !seen {
			s.settled[key] = protocol.BetResult{}
			s.wallets[player] -= b.Amount // deducted, never settled
		}
		return protocol.BetResult{}, false
	case seen && s.fault != doubleSettle:
		return s.address(prev), true
	}
	win := int64(len(b.BetID)%3) * b.Amount
	if s.fault == doubleSettle {
		win = 0
		if seen {
			win = 2 * b.Amount // a second, different settlement
		}
	}
	s.wallets[player] += win - b.Amount
	r := protocol.BetResult{BetID: b.BetID, PlayerID: player, Game: "fault", Amount: b.Amount, Win: win,
		Balance: s.wallets[player], Symbols: []int{int(win)}}
	s.settled[key] = r
	if s.unacked[player] == nil {
		s.unacked[player] = map[string]bool{}
	}
	s.unacked[player][b.BetID] = true
	return s.address(r), true
}

func (s *faultServer) address(r protocol.BetResult) protocol.BetResult {
	if s.fault == misdeliver {
		r.PlayerID = "someone-else"
	}
	return r
}

func runAgainst(t *testing.T, addr string, cfg Config) Summary {
	t.Helper()
	cfg.Addr = addr
	if cfg.Clients == 0 {
		cfg.Clients = 5
	}
	if cfg.Duration == 0 {
		cfg.Duration = 300 * time.Millisecond
	}
	if cfg.Drain == 0 {
		cfg.Drain = time.Second
	}
	if cfg.ResultTimeout == 0 {
		cfg.ResultTimeout = 100 * time.Millisecond
	}
	cfg.RedeliveryWait = 50 * time.Millisecond
	cfg.Away = 10 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", s)
	return s
}

func TestChecksAgainstFaultyServers(t *testing.T) {
	t.Run("healthy", func(t *testing.T) {
		s := runAgainst(t, startFaultServer(t, noFault), Config{Disconnect: 0.5, Duration: time.Second, Drain: 10 * time.Second})
		if !s.OK() || s.Results == 0 || s.Results != s.BetsPlaced || s.Disconnects == 0 || s.Redelivered == 0 ||
			s.BalanceChecks != 5 || s.P99ms <= 0 || s.BetsPerSecond <= 0 {
			t.Fatalf("healthy server failed the run: %+v", s)
		}
	})
	t.Run("lost results", func(t *testing.T) {
		s := runAgainst(t, startFaultServer(t, loseResults), Config{Disconnect: 0.5})
		if s.OK() || s.Lost == 0 || s.Lost != s.BetsPlaced {
			t.Fatalf("lost bets not reported: %+v", s)
		}
		if s.BalanceMismatches == 0 { // the money left the wallet with no result to show
			t.Fatalf("deducted-but-lost bets not caught by the ledger check: %+v", s)
		}
	})
	t.Run("double settlement", func(t *testing.T) {
		s := runAgainst(t, startFaultServer(t, doubleSettle), Config{Duration: 2 * time.Second})
		if s.OK() || s.DuplicateSettlements == 0 || s.BalanceMismatches == 0 {
			t.Fatalf("double settlement not reported: %+v", s)
		}
	})
	t.Run("misdelivery", func(t *testing.T) {
		s := runAgainst(t, startFaultServer(t, misdeliver), Config{})
		if s.OK() || s.Misdelivered == 0 || s.Lost == 0 {
			t.Fatalf("misdelivery not reported: %+v", s)
		}
	})
	t.Run("balance drift", func(t *testing.T) {
		s := runAgainst(t, startFaultServer(t, skewBalance), Config{})
		if s.OK() || s.BalanceMismatches != 5 || s.Lost != 0 {
			t.Fatalf("balance drift not reported: %+v", s)
		}
	})
	t.Run("refused ticket", func(t *testing.T) {
		s := runAgainst(t, startFaultServer(t, refuseTicket), Config{})
		if s.OK() || s.BetsPlaced != 0 || s.NeverConnected != 5 || len(s.Errors) == 0 || !strings.Contains(s.Errors[0], "refused") {
			t.Fatalf("refusal not reported: %+v", s)
		}
	})
}

func TestUnreachableServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	var progress lockedBuffer
	s := runAgainst(t, addr, Config{Clients: 2, Drain: 300 * time.Millisecond,
		Progress: &progress, ProgressInterval: 50 * time.Millisecond})
	if s.OK() || s.BetsPlaced != 0 || s.Lost != 0 || s.NeverConnected != 2 || s.DialFailures == 0 {
		t.Fatalf("unreachable server: %+v", s)
	}
	// The progress lines say why nothing happens, not only bets/s=0.
	if out := progress.String(); !strings.Contains(out, "last_dial_error=") || !strings.Contains(out, "connection refused") {
		t.Fatalf("progress does not name the dial error:\n%s", out)
	}
}

// lockedBuffer is a bytes.Buffer safe for the progress printer and the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestConfigValidation(t *testing.T) {
	good := Config{Addr: "127.0.0.1:1", Clients: 1, Duration: time.Second}
	for name, mut := range map[string]func(*Config){
		"remote address":   func(c *Config) { c.Addr = "10.0.0.1:7000" },
		"hostname":         func(c *Config) { c.Addr = "example.com:7000" },
		"no port":          func(c *Config) { c.Addr = "127.0.0.1" },
		"no clients":       func(c *Config) { c.Clients = 0 },
		"too many clients": func(c *Config) { c.Clients = MaxClients + 1 },
		"no duration":      func(c *Config) { c.Duration = 0 },
		"probability > 1":  func(c *Config) { c.Disconnect = 1.5 },
		"negative bet":     func(c *Config) { c.Bet = -1 },
		"bad prefix":       func(c *Config) { c.PlayerPrefix = "no spaces" },
		"remote target":    func(c *Config) { c.Target = func() string { return "192.0.2.1:1" } },
	} {
		c := good
		mut(&c)
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("%s: Run accepted %+v", name, c)
		}
	}
	if _, err := Run(context.Background(), Config{Addr: "8.8.8.8:53", Clients: 1, Duration: time.Second}); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("non-loopback target: %v", err)
	}
	for _, a := range []string{"127.0.0.1:7000", "[::1]:7000", "localhost:7000", "127.3.4.5:1"} {
		if err := CheckLoopback(a); err != nil {
			t.Errorf("CheckLoopback(%q) = %v", a, err)
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if p := percentile(d, 0.5); p != 50*time.Millisecond {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(d, 0.99); p != 99*time.Millisecond {
		t.Errorf("p99 = %v", p)
	}
	if p := percentile(d[:1], 0.99); p != time.Millisecond {
		t.Errorf("p99 of one = %v", p)
	}
}

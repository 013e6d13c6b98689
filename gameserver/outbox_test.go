package gameserver_test

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver/game"
	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/gameserver/wallet"
	"github.com/stackwatch/stackwatch/internal/proctest"
)

// fillOutbox settles n bets for player straight into a ledger in dir, as
// the server would have had the player never acked any.
func fillOutbox(t *testing.T, dir, player string, n int) {
	t.Helper()
	w, err := wallet.Open(dir, wallet.Options{Outbox: true, MaxBatchDelay: 20 * time.Millisecond, InitialBalance: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	g, _ := game.Lookup(game.WildDig)
	const workers = 1000
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for k := range workers {
		wg.Go(func() {
			for i := k; i < n; i += workers {
				id := "b" + strconv.Itoa(i)
				if _, _, err := w.Deduct(context.Background(), g.Name, player, id, 10); err != nil {
					errs <- err
					return
				}
				if _, err := w.Settle(player, id, g.Draw(player, id, 10)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustResolve(t *testing.T, addr string) net.Addr {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// rss is a process's resident set in bytes.
func rss(t *testing.T, p *proctest.Proc) int64 {
	t.Helper()
	m, err := p.Memory()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			t.Skipf("no /proc: %v", err)
		}
		t.Fatal(err)
	}
	return m.RSS
}

// One player with 100,000 unacked results: each reconnect gets one page,
// not the whole outbox, so the server's memory stays flat however often
// they come back; acking then brings every result, none dropped.
func TestUnackedOutboxStaysBounded(t *testing.T) {
	bin := buildServer(t, "")
	const n, page = 100_000, 256
	data := t.TempDir()
	fillOutbox(t, data, "whale", n)
	p := startProc(t, bin, "-game", "wilddig", "-data-dir", data, "-redelivery-page", strconv.Itoa(page), "-wallet-latency", "0")
	addr := mustResolve(t, p.addr)

	reconnect := func() (c *rawClient, got []string) {
		c, _ = login(t, addr, "whale")
		// The page, then nothing more without acks: a ping's pong comes next.
		c.send(protocol.TypePing, protocol.Ping{})
		for {
			f, err := c.read()
			if err != nil {
				t.Fatalf("after %d results: %v", len(got), err)
			}
			if f.Type == protocol.TypePong {
				return c, got
			}
			var r protocol.BetResult
			if f.Type != protocol.TypeBetResult || f.Decode(&r) != nil || !r.Redelivered {
				t.Fatalf("got %s %s", f.Type, f.Payload)
			}
			got = append(got, r.BetID)
		}
	}
	var base int64
	var first string
	for i := range 20 {
		c, got := reconnect()
		if len(got) != page {
			t.Fatalf("reconnect %d: %d results, want one page of %d", i, len(got), page)
		}
		if i == 0 {
			first = got[0]
		} else if got[0] != first {
			t.Fatalf("reconnect %d: backlog starts at %s, want %s (the oldest bet)", i, got[0], first)
		}
		c.conn.Close()
		switch r := rss(t, p.Proc); {
		case i == 2:
			base = r
		case i > 2 && r > base+32<<20:
			t.Fatalf("RSS grew from %d MB to %d MB over %d reconnects", base>>20, r>>20, i-2)
		}
	}
	t.Logf("RSS %d MB after 20 reconnects", rss(t, p.Proc)>>20)

	// Acking brings the rest, in bet order, none dropped.
	c, _ := login(t, addr, "whale")
	seen := make(map[string]bool, n)
	for len(seen) < n {
		f, err := c.read()
		if err != nil {
			t.Fatalf("after %d results: %v", len(seen), err)
		}
		var r protocol.BetResult
		if f.Type != protocol.TypeBetResult || f.Decode(&r) != nil {
			t.Fatalf("got %s %s", f.Type, f.Payload)
		}
		seen[r.BetID] = true
		c.send(protocol.TypeAck, protocol.Ack{BetID: r.BetID})
	}
	if r := rss(t, p.Proc); r > base+64<<20 {
		t.Errorf("RSS %d MB after the drain (base %d MB)", r>>20, base>>20)
	}
}

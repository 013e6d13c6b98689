package session

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns a session over a real TCP connection and the peer's end.
func pair(t *testing.T, id uint64, player string) (*GateSession, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	t.Cleanup(func() { c.Close(); peer.Close() })
	return New(id, player, c, 200*time.Millisecond), peer
}

func TestWritesAreSerialised(t *testing.T) {
	s, peer := pair(t, 1, "p")
	const writers, size = 8, 4096
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			buf := make([]byte, size)
			for j := range buf {
				buf[j] = byte('a' + i)
			}
			if err := s.Write(buf, size); err != nil {
				t.Error(err)
			}
		})
	}
	got := make([]byte, writers*size)
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for off := 0; off < len(got); off += size {
		for _, b := range got[off : off+size] {
			if b != got[off] {
				t.Fatalf("writes interleaved at %d", off)
			}
		}
	}
}

func TestWriteTimeoutClosesAndCounts(t *testing.T) {
	s, _ := pair(t, 1, "p") // the peer never reads
	big := make([]byte, 1<<20)
	var err error
	for range 64 {
		if err = s.Write(big, len(big)); err != nil {
			break
		}
	}
	if !IsTimeout(err) {
		t.Fatalf("want a deadline error once the peer's window is full, got %v", err)
	}
	h := s.Health(time.Minute)
	if !s.IsClosed() || h.FailedWrites != 1 || h.IsHealthy {
		t.Fatalf("after a failed write: closed %v health %+v", s.IsClosed(), h)
	}
	if err := s.Write([]byte("x"), 1); err != ErrClosed {
		t.Fatalf("write after close: %v", err)
	}
}

func TestZeroSessionIsClosable(t *testing.T) {
	var s GateSession
	if s.IsClosed() {
		t.Fatal("zero session reports closed before Close")
	}
	s.Close()
	s.Close()
	if !s.IsClosed() || s.Write([]byte("x"), 1) != ErrClosed {
		t.Fatal("closed zero session writes")
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed")
	}
}

func TestManagerReplacesAndReaps(t *testing.T) {
	var mu sync.Mutex
	reasons := map[string]int{}
	m := NewManager(func(_ *GateSession, r string) { mu.Lock(); reasons[r]++; mu.Unlock() })
	a1, _ := pair(t, 1, "a")
	a2, _ := pair(t, 2, "a")
	b, _ := pair(t, 3, "b")
	m.Add(a1)
	m.Add(b)
	m.Add(a2) // replaces a1
	if !a1.IsClosed() || a2.IsClosed() {
		t.Fatal("replace")
	}
	if s, ok := m.Get("a"); !ok || s != a2 {
		t.Fatal("Get after replace")
	}
	m.Remove(a1) // stale removal of a replaced session leaves a2
	if s, _ := m.Get("a"); s != a2 || m.Len() != 2 {
		t.Fatal("removing the old session dropped the new one")
	}
	b.Close()
	if _, ok := m.Get("b"); ok {
		t.Fatal("Get returned a closed session")
	}
	a2.lastPing.Store(time.Now().Add(-time.Hour).UnixNano())
	if n := m.Reap(time.Minute); n != 1 || m.Len() != 0 || !a2.IsClosed() {
		t.Fatal("stale session not reaped")
	}
	mu.Lock()
	defer mu.Unlock()
	if reasons["replaced"] != 1 || reasons["closed"] != 1 || reasons["stale"] != 1 {
		t.Fatalf("close reasons %v", reasons)
	}
}

// The reaper runs every interval on its own and reaps a session once it has
// been silent for staleAfter, not before.
func TestRunReaperReapsSilentSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewManager(nil)
		c, peer := net.Pipe()
		defer peer.Close()
		s := New(1, "a", c, time.Second)
		m.Add(s)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { m.RunReaper(ctx, 10*time.Millisecond, time.Second); close(done) }()

		time.Sleep(990 * time.Millisecond)
		synctest.Wait()
		if m.Len() != 1 || s.IsClosed() {
			t.Fatal("reaped before staleAfter")
		}
		time.Sleep(30 * time.Millisecond) // past staleAfter, and a tick
		synctest.Wait()
		if m.Len() != 0 || !s.IsClosed() {
			t.Fatal("not reaped after staleAfter")
		}
		cancel()
		<-done
	})
}

func TestHealth(t *testing.T) {
	s, _ := pair(t, 1, "p")
	if h := s.Health(time.Second); !h.IsHealthy || h.FailedWrites != 0 || time.Since(h.LastPing) > time.Second {
		t.Fatalf("fresh %+v", h)
	}
	if h := s.Health(time.Nanosecond); h.IsHealthy {
		t.Fatal("silent session healthy")
	}
}

// TestManagerNewestSessionWins: a hello that raced the same player's newer
// reconnect registers late; it must not close the newer session.
func TestManagerNewestSessionWins(t *testing.T) {
	var reasons []string
	m := NewManager(func(_ *GateSession, r string) { reasons = append(reasons, r) })
	older, _ := pair(t, 1, "a")
	newer, _ := pair(t, 2, "a")
	if !m.Add(newer) {
		t.Fatal("first session refused")
	}
	if m.Add(older) {
		t.Fatal("an older session replaced a newer one")
	}
	if !older.IsClosed() || newer.IsClosed() {
		t.Fatalf("older closed=%v newer closed=%v", older.IsClosed(), newer.IsClosed())
	}
	if s, ok := m.Get("a"); !ok || s != newer {
		t.Fatal("the newer session is no longer current")
	}
	if len(reasons) != 1 || reasons[0] != "superseded" {
		t.Fatalf("close reasons %v", reasons)
	}
}

package task

import (
	"net"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/gameserver/session"
)

// A backlog goes out a page at a time as the player acks, then ends; no
// mailbox is left behind for a player with nothing under way.
func TestBacklogPagesOnAcksAndLeavesNothing(t *testing.T) {
	tk := newTestTask(t, DefaultRetryPolicy)
	tk.page = 2
	for _, id := range []string{"b1", "b2", "b3"} {
		settled(t, tk, "p", id)
	}
	c, peer := net.Pipe()
	defer c.Close()
	defer peer.Close()
	got := make(chan string, 8)
	go func() {
		for {
			f, err := protocol.ReadFrame(peer, 0)
			if err != nil {
				close(got)
				return
			}
			var r protocol.BetResult
			f.Decode(&r)
			got <- r.BetID
		}
	}()
	s := session.New(1, "p", c, time.Second)
	if n, err := tk.Redeliver(s); n != 2 || err != nil {
		t.Fatalf("first page: %d, %v", n, err)
	}
	first, second := <-got, <-got
	tk.Ack(s, first) // half a page acked: the rest follows
	third := <-got
	if first != "b1" || second != "b2" || third != "b3" {
		t.Fatalf("order %s %s %s", first, second, third)
	}
	tk.Ack(s, second)
	tk.Ack(s, third)
	tk.Detach(s)
	tk.boxMu.Lock()
	defer tk.boxMu.Unlock()
	if len(tk.boxes) != 0 {
		t.Fatalf("%d mailboxes left", len(tk.boxes))
	}
}

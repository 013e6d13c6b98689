package task

import (
	"sync"

	"github.com/stackwatch/stackwatch/gameserver/protocol"
)

// Results follow the player, not the connection. A result whose session is
// gone waits in the outbox; the player's next session gets the backlog at
// once, in bet order, a page at a time (the next page as the player acks),
// and results settled meanwhile join the backlog rather than overtake it.

// mailbox serialises one player's result writes.
type mailbox struct {
	mu      sync.Mutex // held across the player's result writes
	refs    int        // holders and waiters; guarded by Task.boxMu
	backlog *backlog   // set while a returning player's backlog is paged out
}

// backlog is the outbox being paged out to a returning player's session.
type backlog struct {
	s       Session
	after   []byte // outbox cursor: the last result sent
	unacked int    // sent and not acked yet
}

// box locks the player's mailbox; call the returned func to unlock it.
func (t *Task) box(player string) (*mailbox, func()) {
	t.boxMu.Lock()
	m := t.boxes[player]
	if m == nil {
		m = &mailbox{}
		t.boxes[player] = m
	}
	m.refs++
	t.boxMu.Unlock()
	m.mu.Lock()
	return m, func() {
		m.mu.Unlock()
		t.boxMu.Lock()
		// With no reference left nobody else can touch m, so its backlog
		// is safe to read here.
		if m.refs--; m.refs == 0 && m.backlog == nil {
			delete(t.boxes, player)
		}
		t.boxMu.Unlock()
	}
}

// Redeliver starts sending session its player's unacknowledged results,
// flagged Redelivered, oldest bet first: the first page at once, the rest as
// the player acks. Call it right after Welcome, before reading requests.
func (t *Task) Redeliver(s Session) (int, error) {
	player := s.PlayerID()
	m, unlock := t.box(player)
	defer unlock()
	t.retry.dropPlayer(player) // the backlog covers them
	m.backlog = &backlog{s: s}
	return t.sendPage(m, player)
}

// sendPage tops the backlog's unacknowledged results up to one page. The
// backlog ends once the outbox has nothing more: later results go out
// directly. The caller holds the mailbox.
func (t *Task) sendPage(m *mailbox, player string) (int, error) {
	bl := m.backlog
	want := t.page - bl.unacked
	if want <= 0 {
		return 0, nil
	}
	results, next, err := t.wallet.OutboxPage(player, bl.after, want)
	if err != nil {
		m.backlog = nil
		return 0, err
	}
	sent := 0
	for _, res := range results {
		res.Redelivered = true
		data, err := protocol.Marshal(protocol.TypeBetResult, res)
		if err == nil {
			err = t.deliver(bl.s, player, data)
		}
		if err != nil {
			m.backlog = nil // the next session starts over
			return sent, err
		}
		sent++
	}
	bl.after, bl.unacked = next, bl.unacked+sent
	if len(results) < want {
		m.backlog = nil
	}
	return sent, nil
}

// Ack forgets a result the player confirmed on session s, and sends more of
// the backlog once half a page is acked.
func (t *Task) Ack(s Session, betID string) {
	player := s.PlayerID()
	t.retry.drop(player, betID)
	t.wallet.Ack(player, betID)
	m, unlock := t.box(player)
	defer unlock()
	bl := m.backlog
	if bl == nil || bl.s != s {
		return
	}
	if bl.unacked > 0 {
		bl.unacked--
	}
	if bl.unacked <= t.page/2 {
		if _, err := t.sendPage(m, player); err != nil {
			t.log.Info("backlog interrupted; it resumes on the next session", "player", player, "err", err)
		}
	}
}

// Detach ends s's backlog, if it has one: the session has closed.
func (t *Task) Detach(s Session) {
	m, unlock := t.box(s.PlayerID())
	defer unlock()
	if m.backlog != nil && m.backlog.s == s {
		m.backlog = nil
	}
}

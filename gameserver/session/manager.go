package session

import (
	"context"
	"sync"
	"time"
)

// Manager tracks the current session of each player. A player has at most
// one: a reconnect replaces (and retires) the old one.
type Manager struct {
	mu       sync.Mutex
	sessions map[string]*GateSession
	onClose  func(*GateSession, string)
}

// NewManager returns an empty manager. onClose, if set, is called once for
// every session removed, with the reason (closed, replaced, stale).
func NewManager(onClose func(s *GateSession, reason string)) *Manager {
	return &Manager{sessions: make(map[string]*GateSession), onClose: onClose}
}

// ReplacedDrain is how long a replaced session's connection is still read,
// so frames it had already received (a bet sent just before the player
// reconnected) are served rather than lost.
const ReplacedDrain = 2 * time.Second

// Add makes s its player's current session, retiring any previous one, and
// reports whether s is now current. Session ids grow with each hello, so a
// session older than the current one (its hello raced the player's newer
// reconnect) loses and is closed instead: the newest connection always wins.
func (m *Manager) Add(s *GateSession) bool {
	m.mu.Lock()
	old := m.sessions[s.player]
	if old != nil && old != s && old.ID() > s.ID() {
		m.mu.Unlock()
		s.Retire(ReplacedDrain)
		m.closed(s, "superseded")
		return false
	}
	m.sessions[s.player] = s
	m.mu.Unlock()
	if old != nil && old != s {
		old.Retire(ReplacedDrain)
		m.closed(old, "replaced")
	}
	return true
}

// Remove drops s if it is still its player's current session, and closes it.
func (m *Manager) Remove(s *GateSession) {
	m.mu.Lock()
	cur := m.sessions[s.player]
	removed := cur == s
	if removed {
		delete(m.sessions, s.player)
	}
	m.mu.Unlock()
	s.Close()
	if removed {
		m.closed(s, "closed")
	}
}

func (m *Manager) closed(s *GateSession, reason string) {
	if m.onClose != nil {
		m.onClose(s, reason)
	}
}

// Get returns the player's open session. A closed session found on the way
// is cleaned up.
func (m *Manager) Get(player string) (*GateSession, bool) {
	m.mu.Lock()
	s, ok := m.sessions[player]
	if ok && s.IsClosed() {
		delete(m.sessions, player)
		m.mu.Unlock()
		m.closed(s, "closed")
		return nil, false
	}
	m.mu.Unlock()
	return s, ok
}

// Len is the number of sessions held.
func (m *Manager) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

// Reap closes and removes sessions not heard from within staleAfter (or
// already closed) and returns how many it removed.
func (m *Manager) Reap(staleAfter time.Duration) int {
	var stale []*GateSession
	m.mu.Lock()
	for p, s := range m.sessions {
		if !s.Health(staleAfter).IsHealthy {
			delete(m.sessions, p)
			stale = append(stale, s)
		}
	}
	m.mu.Unlock()
	for _, s := range stale {
		s.Close()
		m.closed(s, "stale")
	}
	return len(stale)
}

// RunReaper reaps every interval until ctx ends.
func (m *Manager) RunReaper(ctx context.Context, interval, staleAfter time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.Reap(staleAfter)
		}
	}
}

// CloseAll closes and removes every session.
func (m *Manager) CloseAll() {
	m.mu.Lock()
	all := make([]*GateSession, 0, len(m.sessions))
	for p, s := range m.sessions {
		all = append(all, s)
		delete(m.sessions, p)
	}
	m.mu.Unlock()
	for _, s := range all {
		s.Close()
		m.closed(s, "closed")
	}
}

// Package session holds the gate sessions of authenticated players and the
// manager that finds, replaces and reaps them.
package session

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned by Write.
var (
	ErrClosed = errors.New("session is closed")
)

// UnhealthyFailedWrites is the failed-write count at which a session stops
// being healthy.
const UnhealthyFailedWrites = 3

// GateSession is one player's authenticated connection. Writes are
// serialised and bounded by a deadline. The zero value is a session with no
// connection; Close works on it.
type GateSession struct {
	id           uint64
	player       string
	conn         net.Conn
	writeTimeout time.Duration

	mu           sync.Mutex // serialises writes
	closed       atomic.Bool
	closeOnce    sync.Once
	done         chan struct{}
	lastPing     atomic.Int64 // unix nanoseconds of the last frame received
	failedWrites atomic.Int64

	readMu     sync.Mutex // orders ArmRead against Retire
	drainUntil time.Time  // set by Retire: the read deadline from then on
}

// New wraps an authenticated connection.
func New(id uint64, player string, conn net.Conn, writeTimeout time.Duration) *GateSession {
	s := &GateSession{id: id, player: player, conn: conn, writeTimeout: writeTimeout, done: make(chan struct{})}
	s.Touch()
	return s
}

// ID is the session's server-unique id.
func (s *GateSession) ID() uint64 { return s.id }

// PlayerID is the authenticated owner.
func (s *GateSession) PlayerID() string { return s.player }

// Done is closed when the session closes.
func (s *GateSession) Done() <-chan struct{} {
	if s.done == nil {
		return closedChan
	}
	return s.done
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// IsClosed reports whether the session was closed.
func (s *GateSession) IsClosed() bool { return s.closed.Load() }

// Close closes the session and its connection. It is idempotent.
func (s *GateSession) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.done != nil {
			close(s.done)
		}
		if s.conn != nil {
			err = s.conn.Close()
		}
	})
	return err
}

// Retire closes the session for writes but leaves its connection to be
// read until drain has passed (or the client closes it): a player who
// reconnects loses no frame the old connection had already received. The
// reader closes the connection when it is done.
func (s *GateSession) Retire(drain time.Duration) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if s.done != nil {
			close(s.done)
		}
		if s.conn != nil {
			s.drainUntil = time.Now().Add(drain)
			s.conn.SetReadDeadline(s.drainUntil)
		}
	})
}

// ArmRead sets the read deadline for the next frame: idle from now, or the
// drain deadline of a retired session.
func (s *GateSession) ArmRead(idle time.Duration) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	d := time.Now().Add(idle)
	if !s.drainUntil.IsZero() {
		d = s.drainUntil
	}
	s.conn.SetReadDeadline(d)
}

// Write writes data[:size] as one unit. A failed write closes the session:
// a partly written frame leaves the stream unusable.
func (s *GateSession) Write(data []byte, size int) error {
	if s.IsClosed() || s.conn == nil {
		return ErrClosed
	}
	if size < 0 || size > len(data) {
		size = len(data)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.IsClosed() {
		return ErrClosed
	}
	if s.writeTimeout > 0 {
		s.conn.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	}
	if _, err := s.conn.Write(data[:size]); err != nil {
		s.failedWrites.Add(1)
		s.Close()
		return err
	}
	return nil
}

// IsTimeout reports whether a Write error was its deadline expiring.
func IsTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// Touch records traffic from the client (any frame counts as a ping).
func (s *GateSession) Touch() { s.lastPing.Store(time.Now().UnixNano()) }

// Health is a snapshot of a session's health.
type Health struct {
	LastPing     time.Time
	FailedWrites int64
	IsHealthy    bool
}

// Health reports the session's health: healthy means open, heard from
// within staleAfter, and fewer than UnhealthyFailedWrites failed writes.
func (s *GateSession) Health(staleAfter time.Duration) Health {
	last := time.Unix(0, s.lastPing.Load())
	h := Health{LastPing: last, FailedWrites: s.failedWrites.Load()}
	h.IsHealthy = !s.IsClosed() && time.Since(last) < staleAfter && h.FailedWrites < UnhealthyFailedWrites
	return h
}

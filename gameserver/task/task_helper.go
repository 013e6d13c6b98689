package task

import (
	"errors"
	"sync/atomic"

	"github.com/stackwatch/stackwatch/gameserver/session"
)

// Errors returned by clientWrite.
var (
	ErrSessionNil    = errors.New("session is nil")
	ErrSessionClosed = session.ErrClosed // "session is closed"
)

// legacyTasks counts running legacy Tasks. Build 20251030111505's clientWrite
// had no checks, and clientWrite keeps the report's exact signature, so the
// switch cannot travel as an argument: while a legacy Task runs in this
// process the checks are off. Patched handlers check the session before
// they call clientWrite, so a patched Task sharing the process is unaffected.
var legacyTasks atomic.Int32

// clientWrite writes data[:size] to session: the incident's panic site.
// Fixed, it refuses nil and closed sessions with an error.
//
//go:noinline
func clientWrite(session Session, data []byte, size int) error {
	if checksOn() {
		if session == nil {
			return ErrSessionNil
		}
		if session.IsClosed() {
			return ErrSessionClosed
		}
	}
	return session.Write(data, size)
}

// checksOn reports whether clientWrite checks its session. It is a call, not
// inlined, so the arguments are spilled before the write and a panic's
// trace prints them exactly — clientWrite({0x0, 0x0}, ...) — as the
// report's did, not as "0x0?" guesses.
//
//go:noinline
func checksOn() bool { return legacyTasks.Load() == 0 }

package task

import (
	"time"

	"github.com/stackwatch/stackwatch/metrics"
)

// respond is the patched handlers' body (fix 2 and the graceful
// degradation): check the session, write, and on any failure queue the
// result for retry instead of losing it. The result is already in the
// durable outbox, so even a crash now loses nothing.
func respond(session Session, t *Task, b *bet, data []byte) {
	m, unlock := t.box(b.player)
	defer unlock()
	if m.backlog != nil {
		// The player is back and their backlog is going out: this result,
		// in the outbox too, follows it in bet order.
		t.outcome(b, metrics.OutcomeQueued)
		return
	}
	if session == nil || session.IsClosed() {
		t.log.Warn(ClosedSessionMsg, "player", b.player, "bet_id", b.id)
		t.queue(b, data)
		return
	}
	if err := t.deliver(session, b.player, data); err != nil {
		t.queue(b, data)
		return
	}
	t.answered(b)
}

// answered records a result that reached the player's session directly.
func (t *Task) answered(b *bet) {
	t.m.BetDuration.Observe(time.Since(b.start).Seconds())
	t.outcome(b, metrics.OutcomeDelivered)
}

// queue hands a result to the retry queue, or straight to the dead-letter
// store when the queue is full.
func (t *Task) queue(b *bet, data []byte) {
	if t.retry.add(b, data) {
		t.outcome(b, metrics.OutcomeQueued)
		return
	}
	t.deadLetter(b)
	t.outcome(b, metrics.OutcomeDeadLettered)
}

// deadLetter flags the result in the durable outbox as waiting for the
// player's reconnect.
func (t *Task) deadLetter(b *bet) {
	if err := t.wallet.MarkDead(b.player, b.id); err != nil {
		t.log.Error("dead-letter mark failed; the result stays in the outbox", "player", b.player, "bet_id", b.id, "err", err)
		return
	}
	t.log.Info("result dead-lettered until the player reconnects", "player", b.player, "bet_id", b.id)
}

// legacyWriteAttempt counts a legacy write about to hit a nil session, right
// before the write panics. Not inlined: being a call, it makes the handler
// spill its arguments, so the trace prints the session as {0x0, 0x0}.
//
//go:noinline
func (t *Task) legacyWriteAttempt(s Session) {
	if s == nil {
		t.m.NilSessionAttempts.Inc()
		t.m.ClientWriteFailures.WithLabelValues(metrics.ReasonNilSession).Inc()
	}
}

package task

import (
	"context"

	"github.com/stackwatch/stackwatch/metrics"
)

// ClientForestTeaPartyGetAPIBetResponse draws a forestteaparty card for a
// deducted bet, settles it and answers the player.
func ClientForestTeaPartyGetAPIBetResponse(ctx context.Context, t *Task, b *bet) {
	card := t.game.Draw(b.player, b.id, b.amount)
	data, ok := settle(ctx, t, b, card)
	if !ok {
		return
	}
	onForestTeaPartyBetClientResp(t.lookup(b.player), t, b, data)
}

// onForestTeaPartyBetClientResp sends a forestteaparty result. Even the
// legacy build checked the session here, and logged instead of panicking.
//
//go:noinline
func onForestTeaPartyBetClientResp(session Session, t *Task, b *bet, data []byte) {
	if t.legacy {
		if session == nil || session.IsClosed() {
			// Counted as logged: the player's session is closed (gone from
			// the manager or not), never a nil-session write.
			t.log.Warn(ClosedSessionMsg, "player", b.player, "bet_id", b.id)
			t.m.ClientWriteFailures.WithLabelValues(metrics.ReasonClosedSession).Inc()
			return // the result is lost to the player: counted as failed
		}
		if err := clientWrite(session, data, len(data)); err != nil {
			t.countWriteFailure(err)
			return
		}
		t.answered(b)
		return
	}
	respond(session, t, b, data)
}

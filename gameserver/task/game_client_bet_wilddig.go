package task

import (
	"context"
)

// ClientWildDigGetAPIBetResponse draws a wilddig card for a deducted bet,
// settles it and answers the player.
func ClientWildDigGetAPIBetResponse(ctx context.Context, t *Task, b *bet) {
	card := t.game.Draw(b.player, b.id, b.amount)
	data, ok := settle(ctx, t, b, card)
	if !ok {
		return
	}
	// The session is looked up now, at response time: the one the bet came
	// in on may be gone, and the player may be back on a new one.
	onWildDigBetClientResp(t.lookup(b.player), t, b, data)
}

// onWildDigBetClientResp sends a wilddig result.
//
//go:noinline
func onWildDigBetClientResp(session Session, t *Task, b *bet, data []byte) {
	if t.legacy {
		// Build 20251030111505: no session check.
		t.legacyWriteAttempt(session)
		if err := clientWrite(session, data, len(data)); err != nil {
			t.countWriteFailure(err)
			return
		}
		t.answered(b)
		return
	}
	respond(session, t, b, data)
}

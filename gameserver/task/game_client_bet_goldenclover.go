package task

import (
	"context"
)

// ClientGoldenCloverGetAPIBetResponse draws a goldenclover card for a
// deducted bet, settles it and answers the player.
func ClientGoldenCloverGetAPIBetResponse(ctx context.Context, t *Task, b *bet) {
	card := t.game.Draw(b.player, b.id, b.amount)
	data, ok := settle(ctx, t, b, card)
	if !ok {
		return
	}
	onGoldenCloverBetClientResp(t.lookup(b.player), t, b, data)
}

// onGoldenCloverBetClientResp sends a goldenclover result.
//
//go:noinline
func onGoldenCloverBetClientResp(session Session, t *Task, b *bet, data []byte) {
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

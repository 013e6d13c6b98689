package task

import (
	"context"
	"runtime"
	"sync"

	"github.com/stackwatch/stackwatch/gameserver/game"
)

// ClientGetWilddigReckonBetRes is the win-credit goroutine: its closure
// credits the win and records the result in one ledger transaction.
//
// Legacy: the closure then waits for the bet response handler to confirm the
// response, to close the reckon. A handler that panics never confirms, so
// the goroutine stays parked here for good — the incident's leak.
func ClientGetWilddigReckonBetRes(ctx context.Context, t *Task, b *bet, card game.Card, out chan<- settlement) {
	done := sync.OnceFunc(t.wg.Done)
	defer done()
	defer t.rec.RecoverFunc()
	reckon := func() {
		res, err := t.wallet.Settle(b.player, b.id, card)
		out <- settlement{result: res, err: err}
		if t.legacy && err == nil {
			w := b.responded
			// The original never waited for a reckon; Close waits only
			// where it can release them.
			t.parked.Add(1)
			defer t.parked.Done()
			done()
			<-w.ch // the incident's leak: parked here for good if the handler panicked
			// Keep w (not only its channel) reachable from this stack alone,
			// so Close can still find it through the weak registry.
			runtime.KeepAlive(w)
		}
	}
	reckon()
}

package task

import (
	"context"
	"errors"
	"time"

	"github.com/stackwatch/stackwatch/gameserver/game"
	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/gameserver/wallet"
	"github.com/stackwatch/stackwatch/metrics"
)

// ClientCashDeductRes takes a Bet from session: it validates it and hands
// the deduction and everything after it to a goroutine. ctx is the
// session's context: it ends when the client goes.
//
// A returned *protocol.Error is for the client; the bet was not started.
func ClientCashDeductRes(ctx context.Context, session Session, t *Task, req protocol.Bet) error {
	if !wallet.ValidBetID(req.BetID) || req.Amount <= 0 || req.Amount > game.MaxBet {
		return &protocol.Error{Code: protocol.CodeBadRequest, BetID: req.BetID,
			Message: "bet_id must be 1-128 printable characters and amount 1-1000000"}
	}
	// Fix 3: check the session before starting the goroutine. A session
	// closed since (the player left or reconnected) still authenticated the
	// bet: it runs whatever the client does, and its result follows the
	// player to their next session.
	if !t.legacy && session == nil {
		t.log.Warn("[Client] Session invalid, aborting bet processing", "bet_id", req.BetID)
		return ErrSessionNil
	}
	ctx = context.WithoutCancel(ctx)
	select {
	case <-t.closing:
		return &protocol.Error{Code: protocol.CodeUnavailable, BetID: req.BetID, Message: "server shutting down"}
	default:
	}
	b := &bet{player: session.PlayerID(), id: req.BetID, amount: req.Amount, start: time.Now()}
	limit := MaxBetsInFlight
	if t.legacy {
		limit = 0 // the original had no limit
	}
	if !t.begin(b.player, limit) {
		return &protocol.Error{Code: protocol.CodeUnavailable, BetID: req.BetID, Message: "too many bets in flight"}
	}
	if t.legacy {
		b.responded = t.leaks.add()
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer t.end(b.player)
		defer t.failedUnlessAnswered(b)
		defer t.rec.RecoverFunc()

		rec, existed, err := t.wallet.DeductReceived(ctx, t.game.Name, b.player, b.id, b.amount, b.start)
		switch {
		case errors.Is(err, wallet.ErrInsufficientFunds):
			b.outcomeOnce.Store(true)
			b.responded.release()
			t.sendError(b.player, &protocol.Error{Code: protocol.CodeInsufficientFunds, BetID: b.id, Message: "balance too low"})
			return
		case errors.Is(err, wallet.ErrForgotten):
			b.outcomeOnce.Store(true)
			b.responded.release()
			t.sendError(b.player, &protocol.Error{Code: protocol.CodeBadRequest, BetID: b.id,
				Message: "bet id is not above this player's pruned bet history: a resend of a pruned bet, or bet ids that do not increase"})
			return
		case err != nil:
			t.log.Error("deduction failed", "player", b.player, "bet_id", b.id, "err", err)
			b.outcomeOnce.Store(true)
			b.responded.release()
			t.sendError(b.player, &protocol.Error{Code: protocol.CodeInternal, BetID: b.id, Message: "deduction failed"})
			return
		case existed:
			t.resent(b, rec)
			return
		}
		// From here the stake is taken: the bet settles and its result is
		// kept even if the client has gone.
		getAPIBetResponse(context.WithoutCancel(ctx), t, b)
		// Reached only without a panic: a legacy handler that panicked never
		// confirms, and its reckon goroutine is left waiting.
		b.responded.release()
	}()
	return nil
}

// failedUnlessAnswered counts a bet whose result never left the server —
// the legacy panic's lost bets.
func (t *Task) failedUnlessAnswered(b *bet) { t.outcome(b, metrics.OutcomeFailed) }

// resent answers a bet id the player already used.
func (t *Task) resent(b *bet, rec wallet.Bet) {
	b.outcomeOnce.Store(true) // counted when first placed
	b.responded.release()
	switch {
	case t.legacy:
		// The original kept no results to replay.
		t.sendError(b.player, &protocol.Error{Code: protocol.CodeBadRequest, BetID: b.id, Message: "duplicate bet id"})
	case rec.State == wallet.Settled && rec.Result != nil:
		res := *rec.Result
		res.Redelivered = true
		data, err := protocol.Marshal(protocol.TypeBetResult, res)
		if err == nil {
			// Checked first, like every patched path, so a player who left
			// again is not counted as a nil-session write.
			if s := t.lookup(b.player); s != nil && !s.IsClosed() {
				err = t.deliver(s, b.player, data)
			} else {
				err = errPlayerAway
			}
		}
		if err != nil {
			t.log.Debug("replay of a settled bet not sent; it stays in the outbox", "player", b.player, "bet_id", b.id, "err", err)
		}
	default:
		// Still in flight: its own goroutine delivers it.
	}
}

func getAPIBetResponse(ctx context.Context, t *Task, b *bet) {
	switch t.game.Name {
	case game.WildDig:
		ClientWildDigGetAPIBetResponse(ctx, t, b)
	case game.GoldenClover:
		ClientGoldenCloverGetAPIBetResponse(ctx, t, b)
	default:
		ClientForestTeaPartyGetAPIBetResponse(ctx, t, b)
	}
}

// settlement is the win-credit goroutine's answer.
type settlement struct {
	result protocol.BetResult
	err    error
}

// ClientCashWinAccountRes starts the win-credit goroutine for a drawn card
// and returns where its settlement will arrive.
func ClientCashWinAccountRes(ctx context.Context, t *Task, b *bet, card game.Card) <-chan settlement {
	out := make(chan settlement, 1)
	t.wg.Add(1)
	go ClientGetWilddigReckonBetRes(ctx, t, b, card, out)
	return out
}

// settle runs the shared part of every game's API bet response: start the
// settlement and wait for it. It reports false if there is nothing to send.
func settle(ctx context.Context, t *Task, b *bet, card game.Card) ([]byte, bool) {
	var s settlement
	select {
	case s = <-ClientCashWinAccountRes(ctx, t, b, card):
	case <-t.closing:
		// Shutting down mid-settlement: the ledger commit either happened
		// (and the outbox holds the result) or recovery redoes it, so the
		// bet is queued for the player's reconnect, not failed.
		t.outcome(b, metrics.OutcomeQueued)
		return nil, false
	}
	if s.err != nil {
		t.log.Error("settlement failed; recovery settles it on restart", "player", b.player, "bet_id", b.id, "err", s.err)
		return nil, false
	}
	data, err := protocol.Marshal(protocol.TypeBetResult, s.result)
	if err != nil {
		t.log.Error("encode result", "bet_id", b.id, "err", err)
		return nil, false
	}
	return data, true
}

package loadgen

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/stackwatch/stackwatch/gameserver/client"
	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/gameserver/ticket"
)

// bet is one scratch card a player bought, identified by its bet id.
type bet struct {
	id        string
	amount    int64
	firstSent time.Time
	result    *protocol.BetResult // first settlement received
	rejected  *protocol.Error     // final refusal of the bet
	// refusedResend is a refusal of a resend (the legacy server's
	// "duplicate bet id"): the server has the bet but will not say how it
	// ended, so the player gives up on it and it counts as lost.
	refusedResend *protocol.Error
	sends         int  // bet frames sent
	retry         bool // a transient refusal asks for a resend
	dropped       bool // the player hung up right after sending it
}

// resolved reports whether the player is done with b.
func (b *bet) resolved() bool { return b.result != nil || b.rejected != nil || b.refusedResend != nil }

// lost reports whether b was placed and never settled nor refused.
func (b *bet) lost() bool { return !b.firstSent.IsZero() && b.result == nil && b.rejected == nil }

// player is one simulated player. Its loop runs on one goroutine; mu guards
// what the connection's reader goroutine writes from onResult.
type player struct {
	r      *run
	id     string
	token  string
	rng    *mrand.Rand
	signal chan struct{} // poked whenever a result or refusal arrives

	conn      *client.Client // loop goroutine only
	connected bool           // has ever connected; loop goroutine only

	mu           sync.Mutex
	bets         map[string]*bet
	latencies    []time.Duration // of bets whose player stayed connected
	dropLatency  []time.Duration // of bets whose player dropped: send → result
	startBalance int64
	broke        bool
	finalBalance int64
	balanceRead  bool
	balanceErr   error
}

func (r *run) newPlayer(i int) *player {
	id := r.cfg.PlayerPrefix + strconv.Itoa(i)
	tok, err := ticket.Sign(r.cfg.Secret, id, r.expires)
	if err != nil { // validate checked the prefix; this is a bug
		panic(fmt.Sprintf("loadgen: sign ticket for %q: %v", id, err))
	}
	return &player{
		r: r, id: id, token: tok,
		rng:    mrand.New(mrand.NewPCG(r.cfg.Seed, uint64(i))),
		signal: make(chan struct{}, 1),
		bets:   make(map[string]*bet),
	}
}

// expectedBalance is the ledger check: start − Σamount + Σwin over the
// distinct results the player received. Callers hold mu.
func (p *player) expectedBalance() int64 {
	bal := p.startBalance
	for _, b := range p.bets {
		if b.result != nil {
			bal += b.result.Win - b.result.Amount
		}
	}
	return bal
}

func (p *player) run(ctx context.Context) {
	defer p.hangUp()
	for seq := 1; time.Now().Before(p.r.betUntil) && ctx.Err() == nil; seq++ {
		p.mu.Lock()
		broke := p.broke
		p.mu.Unlock()
		if broke {
			break
		}
		if p.r.cfg.MaxBets > 0 && p.r.c.budget.Add(-1) < 0 {
			break
		}
		if !p.place(ctx, p.id+"-b"+strconv.Itoa(seq)) {
			break // the drain deadline passed or the player cannot connect
		}
	}
	p.readBalance(ctx)
}

type outcome int

const (
	resolved outcome = iota
	connLost
	timedOut
	retryLater
	cancelled
)

// place sends one bet and keeps at it — reconnecting, resending the same bet
// id — until it is settled or refused, or the drain deadline passes.
func (p *player) place(ctx context.Context, id string) bool {
	cfg := &p.r.cfg
	b := &bet{id: id, amount: cfg.Bet}
	p.mu.Lock()
	p.bets[id] = b
	p.mu.Unlock()
	drop := cfg.Disconnect > 0 && p.rng.Float64() < cfg.Disconnect
	for time.Now().Before(p.r.drainTill) {
		c := p.connect(ctx, p.r.drainTill)
		if c == nil {
			return false
		}
		p.mu.Lock()
		if b.resolved() { // settled by a redelivery while reconnecting
			p.mu.Unlock()
			return true
		}
		first := b.firstSent.IsZero()
		if first {
			b.firstSent = time.Now()
		}
		b.sends++
		p.mu.Unlock()
		if first {
			p.r.c.placed.Add(1)
		} else {
			p.r.c.resends.Add(1)
		}
		p.r.c.sent.Add(1)
		if err := c.Bet(ctx, id, b.amount); err != nil {
			p.hangUp()
			continue
		}
		wait := cfg.ResultTimeout
		if drop {
			// The incident: the player leaves right after betting, before
			// the result, then comes back.
			drop = false
			if j := cfg.DisconnectJitter; j > 0 && !sleep(ctx, time.Duration(p.rng.Int64N(int64(j)))) {
				return false
			}
			p.r.c.disconnects.Add(1)
			p.mu.Lock()
			b.dropped = true
			p.mu.Unlock()
			p.hangUp()
			if !sleep(ctx, time.Until(earliest(time.Now().Add(p.r.cfg.Away), p.r.drainTill))) {
				return false
			}
			if c = p.connect(ctx, p.r.drainTill); c == nil {
				return false
			}
			wait = cfg.RedeliveryWait
		}
		switch p.await(ctx, b, c, wait) {
		case resolved:
			return true
		case connLost:
			p.hangUp()
		case retryLater:
			if !sleep(ctx, 50*time.Millisecond) {
				return false
			}
		case cancelled:
			return false
		case timedOut: // resend on the same connection
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return b.resolved()
}

// await waits up to wait (and never past the drain deadline) for b to be
// resolved.
func (p *player) await(ctx context.Context, b *bet, c *client.Client, wait time.Duration) outcome {
	deadline := earliest(time.Now().Add(wait), p.r.drainTill)
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	check := func() (outcome, bool) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if b.resolved() {
			return resolved, true
		}
		if b.retry {
			b.retry = false
			return retryLater, true
		}
		return 0, false
	}
	for {
		if o, ok := check(); ok {
			return o
		}
		select {
		case <-p.signal:
		case <-c.Done():
			if o, ok := check(); ok {
				return o
			}
			return connLost
		case <-t.C:
			return timedOut
		case <-ctx.Done():
			return cancelled
		}
	}
}

// connect returns the open connection, dialling with backoff until deadline
// when there is none. It returns nil once the deadline passes or when the
// server refuses the player's ticket.
func (p *player) connect(ctx context.Context, deadline time.Time) *client.Client {
	if p.conn != nil {
		select {
		case <-p.conn.Done():
			p.hangUp()
		default:
			return p.conn
		}
	}
	backoff := 20 * time.Millisecond
	for ctx.Err() == nil && time.Now().Before(deadline) {
		addr := p.r.cfg.Target()
		if err := CheckLoopback(addr); err != nil {
			p.r.fail("player %s: %v", p.id, err)
			return nil
		}
		dctx, cancel := context.WithDeadline(ctx, earliest(time.Now().Add(5*time.Second), deadline))
		c, err := client.Dial(dctx, addr, p.id, p.token, client.WithResultHandler(p.onResult))
		cancel()
		if err == nil {
			if p.connected {
				p.r.c.reconnects.Add(1)
			} else {
				p.connected = true
				p.mu.Lock()
				p.startBalance = c.Welcome().Balance
				p.mu.Unlock()
			}
			p.conn = c
			return c
		}
		p.r.c.dialFailures.Add(1)
		msg := err.Error()
		p.r.c.lastDialErr.Store(&msg)
		var pe *protocol.Error
		if errors.As(err, &pe) {
			switch pe.Code {
			case protocol.CodeBadToken, protocol.CodeTokenExpired, protocol.CodeUnauthenticated:
				p.r.fail("player %s: server refused ticket: %v", p.id, pe)
				return nil
			}
		}
		p.r.cfg.Logger.Debug("dial failed", "player", p.id, "addr", addr, "err", err)
		jitter := time.Duration(p.rng.Int64N(int64(backoff)))
		if !sleep(ctx, min(backoff+jitter, time.Until(deadline))) {
			return nil
		}
		backoff = min(2*backoff, time.Second)
	}
	return nil
}

func (p *player) hangUp() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}

// readBalance reads the final ledger balance for the ledger check. It gets a
// short grace past the drain deadline so a run that lost bets still shows
// whether the money left the wallet.
func (p *player) readBalance(ctx context.Context) {
	if !p.connected {
		return // never got in, so placed nothing
	}
	deadline := p.r.drainTill
	if now := time.Now(); now.After(deadline) {
		deadline = now
	}
	deadline = deadline.Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		c := p.connect(ctx, deadline)
		if c == nil {
			break
		}
		bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var bal int64
		bal, err = c.Balance(bctx)
		cancel()
		if err == nil {
			p.mu.Lock()
			p.finalBalance, p.balanceRead = bal, true
			p.mu.Unlock()
			return
		}
		p.hangUp()
	}
	if err == nil {
		err = errors.New("could not reconnect")
	}
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	p.r.fail("player %s: final balance: %v", p.id, err)
	p.mu.Lock()
	p.balanceErr = err
	p.mu.Unlock()
}

// onResult runs on the connection's reader goroutine for every result or
// bet refusal, before the result is acknowledged.
func (p *player) onResult(res client.Result) {
	c := &p.r.c
	p.mu.Lock()
	defer func() {
		p.mu.Unlock()
		select {
		case p.signal <- struct{}{}:
		default:
		}
	}()
	b := p.bets[res.BetID]
	if res.Err != nil {
		if b == nil {
			c.misdelivered.Add(1)
			p.r.fail("player %s: refusal for unknown bet %q: %v", p.id, res.BetID, res.Err)
			return
		}
		switch res.Err.Code {
		case protocol.CodeInsufficientFunds, protocol.CodeBadRequest:
			if b.sends > 1 && b.refusedResend == nil && !b.resolved() {
				b.refusedResend = res.Err
				c.refusedResends.Add(1)
				p.r.fail("player %s bet %q: resend refused, result never delivered: %v", p.id, res.BetID, res.Err)
			} else if !b.resolved() {
				b.rejected = res.Err
				c.rejected.Add(1)
				p.broke = p.broke || res.Err.Code == protocol.CodeInsufficientFunds
			}
		default: // unavailable, internal: try again
			b.retry = true
		}
		return
	}
	c.deliveries.Add(1)
	switch {
	case res.PlayerID != p.id || b == nil:
		c.misdelivered.Add(1)
		p.r.fail("player %s received result for player %q bet %q", p.id, res.PlayerID, res.BetID)
	case res.Amount != b.amount:
		c.misdelivered.Add(1)
		p.r.fail("player %s bet %q: result for amount %d, bet was %d", p.id, res.BetID, res.Amount, b.amount)
	case b.result != nil:
		c.dupDeliveries.Add(1)
		if !sameSettlement(*b.result, res.BetResult) {
			c.dupSettlements.Add(1)
			p.r.fail("player %s bet %q settled twice: %+v then %+v", p.id, res.BetID, *b.result, res.BetResult)
		}
	case b.rejected != nil:
		c.dupSettlements.Add(1)
		p.r.fail("player %s bet %q settled after being refused (%v)", p.id, res.BetID, b.rejected)
	default:
		r := res.BetResult
		b.result = &r
		c.results.Add(1)
		lat := res.Received.Sub(b.firstSent)
		if !b.dropped {
			p.latencies = append(p.latencies, lat)
			break
		}
		p.dropLatency = append(p.dropLatency, lat)
		if b.sends == 1 {
			c.redelivered.Add(1) // the server pushed it; the player never resent
		}
	}
}

// sameSettlement reports whether two deliveries of a bet describe one
// settlement. The balance is left out: a double deduction shows in the
// ledger check instead.
func sameSettlement(a, b protocol.BetResult) bool {
	return a.Amount == b.Amount && a.Win == b.Win && a.Game == b.Game && slices.Equal(a.Symbols, b.Symbols)
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

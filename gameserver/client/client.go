// Package client is a client for the game server's wire protocol (see
// package protocol): it authenticates with a gate ticket, places bets, and
// receives their results asynchronously.
//
// A Client owns one TCP connection and one reader goroutine. Every BetResult
// the reader receives — direct, or redelivered after a reconnect — is handed
// to the result handler (or the Results channel) first and acknowledged
// second, so an acknowledged result has always reached the caller. Delivery
// is at least once: callers deduplicate by BetID.
//
// The reader ends when the connection does (Close, a server close, or a
// protocol error); Done is closed then and Err says why.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/stackwatch/stackwatch/gameserver/protocol"
)

// ErrClosed is returned by calls on a client whose connection has ended.
var ErrClosed = errors.New("client: connection closed")

// DefaultHandshakeTimeout bounds Dial's Hello/Welcome exchange when the
// context has no earlier deadline.
const DefaultHandshakeTimeout = 10 * time.Second

// Result is what became of one bet: a settled BetResult, or, when Err is set,
// the server's refusal of the bet (a *protocol.Error whose BetID names it;
// the embedded BetResult then carries only BetID).
type Result struct {
	protocol.BetResult
	Err      *protocol.Error
	Received time.Time // when the reader decoded it
}

// Option configures Dial.
type Option func(*options)

type options struct {
	dialer       *net.Dialer
	handler      func(Result)
	buffer       int
	maxFrameSize int
	timeout      time.Duration
}

// WithResultHandler makes the reader call h for every result instead of
// sending it on the Results channel. h runs on the reader goroutine, before
// the result is acknowledged: keep it short and never call the Client's
// request methods (Balance, Ping) from it.
func WithResultHandler(h func(Result)) Option { return func(o *options) { o.handler = h } }

// WithResultBuffer sets the capacity of the Results channel (default 64). The
// reader blocks while the channel is full, so a caller that uses Results must
// drain it.
func WithResultBuffer(n int) Option { return func(o *options) { o.buffer = n } }

// WithDialer sets the dialer used to reach the server.
func WithDialer(d *net.Dialer) Option { return func(o *options) { o.dialer = d } }

// WithMaxFrameSize bounds frames read from the server (default
// protocol.DefaultMaxFrameSize).
func WithMaxFrameSize(n int) Option { return func(o *options) { o.maxFrameSize = n } }

// WithHandshakeTimeout bounds the Hello/Welcome exchange.
func WithHandshakeTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// Client is one authenticated connection to a game server. Its methods are
// safe for concurrent use.
type Client struct {
	conn    net.Conn
	welcome protocol.Welcome
	opts    options
	results chan Result // nil when a handler is set

	wmu sync.Mutex // serialises frame writes

	// reqMu keeps one Balance or Ping in flight, so the next reply — or a
	// non-bet Error — unambiguously answers it.
	reqMu     sync.Mutex
	reply     chan protocol.Frame
	ansMu     sync.Mutex            // guards abandoned and hand-over to reply
	abandoned map[protocol.Type]int // replies still due to requests whose context ended

	closeOnce sync.Once
	closing   chan struct{} // closed by Close
	done      chan struct{} // closed when the reader returns
	errMu     sync.Mutex
	err       error
}

// Dial connects to addr and authenticates as playerID with token (from
// ticket.Sign). A rejected Hello returns the server's *protocol.Error.
// Results the server kept while the player was away arrive right after.
func Dial(ctx context.Context, addr, playerID, token string, opts ...Option) (*Client, error) {
	o := options{dialer: &net.Dialer{}, buffer: 64, timeout: DefaultHandshakeTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	conn, err := o.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", addr, err)
	}
	deadline := time.Now().Add(o.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	w, err := handshake(ctx, conn, deadline, playerID, token, o.maxFrameSize)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return start(conn, w, o), nil
}

// start wraps an authenticated connection and starts its reader.
func start(conn net.Conn, w protocol.Welcome, o options) *Client {
	c := &Client{conn: conn, welcome: w, opts: o, reply: make(chan protocol.Frame, 1), abandoned: map[protocol.Type]int{},
		closing: make(chan struct{}), done: make(chan struct{})}
	if o.handler == nil {
		c.results = make(chan Result, o.buffer)
	}
	go c.read()
	return c
}

func handshake(ctx context.Context, conn net.Conn, deadline time.Time, playerID, token string, maxFrame int) (protocol.Welcome, error) {
	// Unblock the exchange if ctx ends before the deadline does.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := conn.SetDeadline(deadline); err != nil {
		return protocol.Welcome{}, err
	}
	if err := protocol.WriteMessage(conn, protocol.TypeHello, protocol.Hello{PlayerID: playerID, Token: token}); err != nil {
		return protocol.Welcome{}, ctxErr(ctx, fmt.Errorf("client: send hello: %w", err))
	}
	f, err := protocol.ReadFrame(conn, maxFrame)
	if err != nil {
		return protocol.Welcome{}, ctxErr(ctx, fmt.Errorf("client: read welcome: %w", err))
	}
	switch f.Type {
	case protocol.TypeWelcome:
		var w protocol.Welcome
		if err := f.Decode(&w); err != nil {
			return w, fmt.Errorf("client: %w", err)
		}
		if !stop() { // ctx fired: the deadline it set would poison the conn
			return w, ctx.Err()
		}
		return w, conn.SetDeadline(time.Time{})
	case protocol.TypeError:
		var pe protocol.Error
		if err := f.Decode(&pe); err != nil {
			return protocol.Welcome{}, fmt.Errorf("client: %w", err)
		}
		return protocol.Welcome{}, &pe
	default:
		return protocol.Welcome{}, fmt.Errorf("client: expected welcome, got %s", f.Type)
	}
}

// ctxErr prefers the context's error when it caused err.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// Welcome returns the server's Welcome: session id, game, balance at connect.
func (c *Client) Welcome() protocol.Welcome { return c.welcome }

// Results returns the channel results arrive on (nil with WithResultHandler).
// It is closed when the reader ends.
func (c *Client) Results() <-chan Result { return c.results }

// Done is closed when the connection has ended and the reader has returned.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended: nil while open, ErrClosed after Close,
// io.EOF when the server closed, otherwise the read or protocol error.
func (c *Client) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

func (c *Client) setErr(err error) {
	c.errMu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.errMu.Unlock()
}

// Close ends the connection and waits for the reader to return. A bet sent
// just before Close is settled by the server all the same; its result comes
// back on a later connection.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.setErr(ErrClosed)
		close(c.closing)
		c.conn.Close()
	})
	<-c.done
	return nil
}

// Bet sends a bet and returns once it is written; its Result arrives
// asynchronously. Resending a betID is safe: the server settles it once.
func (c *Client) Bet(ctx context.Context, betID string, amount int64) error {
	return c.send(ctx, protocol.TypeBet, protocol.Bet{BetID: betID, Amount: amount})
}

// Balance asks for the ledger balance, which the server reports after every
// bet it has received from this player has settled.
func (c *Client) Balance(ctx context.Context) (int64, error) {
	var b protocol.Balance
	err := c.request(ctx, protocol.TypeBalanceRequest, protocol.BalanceRequest{}, protocol.TypeBalance, &b)
	return b.Balance, err
}

// Ping refreshes the session's health on the server and returns the round
// trip time.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	err := c.request(ctx, protocol.TypePing, protocol.Ping{}, protocol.TypePong, &protocol.Pong{})
	return time.Since(start), err
}

func (c *Client) request(ctx context.Context, t protocol.Type, msg any, want protocol.Type, out any) error {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	if err := c.send(ctx, t, msg); err != nil {
		return err
	}
	for {
		select {
		case f := <-c.reply:
			switch f.Type {
			case want:
				return f.Decode(out)
			case protocol.TypeError:
				var pe protocol.Error
				if err := f.Decode(&pe); err != nil {
					return err
				}
				return &pe
			default:
				return fmt.Errorf("client: %s answered with %s", t, f.Type)
			}
		case <-c.done:
			return c.connErr()
		case <-ctx.Done():
			// The reply may still come: the reader must drop it, or the
			// next request would take it for its own.
			c.ansMu.Lock()
			select {
			case <-c.reply: // it came just now
			default:
				c.abandoned[want]++
			}
			c.ansMu.Unlock()
			return ctx.Err()
		}
	}
}

func (c *Client) connErr() error {
	if err := c.Err(); err != nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return ErrClosed
}

func (c *Client) send(ctx context.Context, t protocol.Type, msg any) error {
	frame, err := protocol.Marshal(t, msg)
	if err != nil {
		return err
	}
	select {
	case <-c.done:
		return c.connErr()
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// Cancellation and the context's deadline interrupt a write blocked on
	// a server that stopped reading. No socket deadline is set from the
	// context: it could fire before ctx.Err() is set and surface as a bare
	// i/o timeout instead of the context's error.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.conn.SetWriteDeadline(time.Unix(1, 0))
		close(fired)
	})
	_, err = c.conn.Write(frame)
	if !stop() {
		<-fired // let it finish before the deadline is cleared
	}
	c.conn.SetWriteDeadline(time.Time{})
	if err != nil {
		if c.Err() != nil {
			return c.connErr()
		}
		// Part of the frame may be on the wire: the stream is broken.
		c.setErr(fmt.Errorf("client: send %s: %w", t, err))
		c.conn.Close()
		if ctx.Err() != nil {
			return fmt.Errorf("client: send %s: %w", t, ctx.Err())
		}
		return fmt.Errorf("client: send %s: %w", t, err)
	}
	return nil
}

func (c *Client) read() {
	defer close(c.done)
	if c.results != nil {
		defer close(c.results)
	}
	defer c.conn.Close()
	for {
		f, err := protocol.ReadFrame(c.conn, c.opts.maxFrameSize)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				err = ErrClosed
			}
			c.setErr(err)
			return
		}
		if err := c.handle(f); err != nil {
			c.setErr(err)
			return
		}
	}
}

func (c *Client) handle(f protocol.Frame) error {
	switch f.Type {
	case protocol.TypeBetResult:
		var r Result
		if err := f.Decode(&r.BetResult); err != nil {
			return err
		}
		r.Received = time.Now()
		if !c.deliver(r) {
			return ErrClosed // unacknowledged, so the server keeps it
		}
		// Acknowledge only after the caller has the result: an ack makes
		// the server forget it.
		return c.send(context.Background(), protocol.TypeAck, protocol.Ack{BetID: r.BetID})
	case protocol.TypeError:
		var pe protocol.Error
		if err := f.Decode(&pe); err != nil {
			return err
		}
		if pe.BetID != "" {
			if !c.deliver(Result{BetResult: protocol.BetResult{BetID: pe.BetID}, Err: &pe, Received: time.Now()}) {
				return ErrClosed
			}
			return nil
		}
		if fatal(pe.Code) {
			return &pe
		}
		c.answer(f)
		return nil
	case protocol.TypeBalance, protocol.TypePong:
		c.answer(f)
		return nil
	default:
		return fmt.Errorf("client: unexpected %s from server", f.Type)
	}
}

// answer hands a reply to the request waiting for it, dropping replies due
// to abandoned requests. An abandoned request answered with an Error instead
// is not recognised: that Error goes to the next request, which errs on the
// side of reporting a failure.
func (c *Client) answer(f protocol.Frame) {
	c.ansMu.Lock()
	defer c.ansMu.Unlock()
	if c.abandoned[f.Type] > 0 {
		c.abandoned[f.Type]--
		return
	}
	select {
	case c.reply <- f:
	default: // unsolicited while a reply waits: keep the first
	}
}

// deliver hands r to the caller; false means Close came first.
func (c *Client) deliver(r Result) bool {
	if c.opts.handler != nil {
		c.opts.handler(r)
		return true
	}
	select {
	case c.results <- r:
		return true
	case <-c.closing:
		return false
	}
}

func fatal(code string) bool {
	switch code {
	case protocol.CodeBadFrame, protocol.CodeFrameTooLarge, protocol.CodeUnauthenticated,
		protocol.CodeBadToken, protocol.CodeTokenExpired:
		return true
	}
	return false
}

var _ io.Closer = (*Client)(nil)

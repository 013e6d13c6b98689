package gameserver

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/gameserver/session"
	"github.com/stackwatch/stackwatch/gameserver/task"
	"github.com/stackwatch/stackwatch/gameserver/ticket"
)

// serveConn runs one client connection: Hello, then requests until the
// client goes, the session is replaced or reaped, or the server stops.
func (s *Server) serveConn(ctx context.Context, conn net.Conn) {
	defer s.untrack(conn)
	defer conn.Close()
	defer s.rec.RecoverFunc() // nothing a client sends may take the server down

	sess, ok := s.hello(conn)
	if !ok {
		return
	}
	// sctx ends when this connection ends: balance requests stop waiting.
	sctx, cancel := context.WithCancel(ctx)
	var reqs sync.WaitGroup
	// Balance requests wait for the player's bets to settle off the read
	// loop; a few at a time is plenty, and a flood must not grow goroutines.
	balanceSlots := make(chan struct{}, maxBalanceRequests)
	defer func() {
		cancel()
		s.sessions.Remove(sess)
		s.task.Detach(sess)
		reqs.Wait()
	}()
	s.sessionsCreated.Inc()
	if !s.sessions.Add(sess) {
		return // a newer connection of the same player won
	}
	if n, err := s.task.Redeliver(sess); err != nil {
		s.log.Warn("redelivery interrupted", "player", sess.PlayerID(), "err", err)
	} else if n > 0 {
		s.log.Info("redelivered results after reconnect", "player", sess.PlayerID(), "results", n)
	}

	for {
		sess.ArmRead(s.cfg.IdleTimeout)
		f, err := protocol.ReadFrame(conn, s.cfg.MaxFrameSize)
		if err != nil {
			if !sess.IsClosed() {
				s.frameError(conn, sess, err)
			}
			return
		}
		sess.Touch()
		// A replaced (retired) session is read to its end: its bets still
		// run, their results follow the player.
		if !s.handle(sctx, sess, f, &reqs, balanceSlots) && !sess.IsClosed() {
			return
		}
	}
}

// hello authenticates the connection and sends Welcome, within
// HelloTimeout; until it returns the connection counts against
// MaxUnauthConns.
func (s *Server) hello(conn net.Conn) (*session.GateSession, bool) {
	defer s.authenticated()
	conn.SetReadDeadline(time.Now().Add(s.cfg.HelloTimeout))
	f, err := protocol.ReadFrame(conn, s.cfg.MaxFrameSize)
	if err != nil {
		s.frameError(conn, nil, err)
		return nil, false
	}
	if f.Type != protocol.TypeHello {
		s.reject(conn, nil, protocol.CodeUnauthenticated, "first message must be hello, got "+f.Type.String())
		return nil, false
	}
	var h protocol.Hello
	if err := f.Decode(&h); err != nil {
		s.reject(conn, nil, protocol.CodeBadFrame, err.Error())
		return nil, false
	}
	if err := ticket.Verify(s.cfg.Secret, h.PlayerID, h.Token, time.Now()); err != nil {
		code := protocol.CodeBadToken
		if errors.Is(err, ticket.ErrExpired) {
			code = protocol.CodeTokenExpired
		}
		s.log.Warn("hello rejected", "remote", conn.RemoteAddr().String(), "code", code, "err", err)
		s.reject(conn, nil, code, err.Error())
		return nil, false
	}
	sess := session.New(s.nextSession.Add(1), h.PlayerID, conn, s.cfg.WriteTimeout)
	bal, err := s.wallet.Balance(h.PlayerID)
	if err != nil {
		s.reject(conn, nil, protocol.CodeUnavailable, "wallet unavailable")
		return nil, false
	}
	if !s.send(sess, protocol.TypeWelcome, protocol.Welcome{PlayerID: h.PlayerID, SessionID: sess.ID(), Game: s.cfg.Game, Balance: bal}) {
		return nil, false
	}
	return sess, true
}

// maxBalanceRequests bounds one connection's balance requests in flight.
const maxBalanceRequests = 4

// handle serves one request; false ends the connection.
func (s *Server) handle(ctx context.Context, sess *session.GateSession, f protocol.Frame, reqs *sync.WaitGroup, balanceSlots chan struct{}) bool {
	switch f.Type {
	case protocol.TypeBet:
		var b protocol.Bet
		if err := f.Decode(&b); err != nil {
			return s.send(sess, protocol.TypeError, protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error()})
		}
		err := task.ClientCashDeductRes(ctx, sess, s.task, b)
		var perr *protocol.Error
		switch {
		case errors.As(err, &perr):
			return s.send(sess, protocol.TypeError, perr)
		case err != nil:
			return false // session gone
		}
	case protocol.TypeAck:
		var a protocol.Ack
		if err := f.Decode(&a); err != nil {
			return s.send(sess, protocol.TypeError, protocol.Error{Code: protocol.CodeBadRequest, Message: err.Error()})
		}
		s.task.Ack(sess, a.BetID)
	case protocol.TypePing:
		return s.send(sess, protocol.TypePong, protocol.Pong{})
	case protocol.TypeBalanceRequest:
		// Waits for the player's bets in flight, so it must not block reads.
		select {
		case balanceSlots <- struct{}{}:
		default:
			return s.send(sess, protocol.TypeError, protocol.Error{Code: protocol.CodeUnavailable, Message: "too many balance requests in flight"})
		}
		reqs.Go(func() {
			defer func() { <-balanceSlots }()
			bal, err := s.task.Balance(ctx, sess.PlayerID())
			if err != nil {
				if ctx.Err() == nil {
					s.send(sess, protocol.TypeError, protocol.Error{Code: protocol.CodeUnavailable, Message: "balance unavailable"})
				}
				return
			}
			s.send(sess, protocol.TypeBalance, protocol.Balance{Balance: bal})
		})
	default:
		return s.send(sess, protocol.TypeError, protocol.Error{Code: protocol.CodeBadRequest,
			Message: "unexpected message " + f.Type.String()})
	}
	return true
}

// send writes one message to the session; false if the session is gone.
func (s *Server) send(sess *session.GateSession, t protocol.Type, v any) bool {
	b, err := protocol.Marshal(t, v)
	if err != nil {
		s.log.Error("encode", "type", t.String(), "err", err)
		return false
	}
	return sess.Write(b, len(b)) == nil
}

// frameError answers a frame that could not be read, then the connection
// is closed: after a framing error the stream cannot be trusted.
func (s *Server) frameError(conn net.Conn, sess *session.GateSession, err error) {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return // the client left between frames
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.log.Info("connection idle; closing", "remote", conn.RemoteAddr().String())
		return
	case errors.Is(err, protocol.ErrFrameTooLarge):
		s.reject(conn, sess, protocol.CodeFrameTooLarge, err.Error())
	default:
		s.reject(conn, sess, protocol.CodeBadFrame, err.Error())
	}
}

// reject sends a fatal Error and closes gracefully: the write side first,
// then whatever the client still sends is drained briefly, so the Error is
// not lost to a reset caused by unread input.
func (s *Server) reject(conn net.Conn, sess *session.GateSession, code, msg string) {
	s.log.Info("closing connection", "remote", conn.RemoteAddr().String(), "code", code, "reason", msg)
	b, err := protocol.Marshal(protocol.TypeError, protocol.Error{Code: code, Message: msg})
	if err != nil {
		return
	}
	if sess != nil {
		if sess.Write(b, len(b)) != nil {
			return
		}
	} else {
		conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := conn.Write(b); err != nil {
			return
		}
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.CloseWrite()
		conn.SetReadDeadline(time.Now().Add(time.Second))
		io.CopyN(io.Discard, conn, 1<<20)
	}
}

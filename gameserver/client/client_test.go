package client

// These tests pin the client's behaviour against a scripted peer that speaks
// the wire protocol, so each edge (rejections, oversize frames, a stalled
// server) can be provoked exactly. The client is exercised against the real
// game server in package loadgen.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stackwatch/stackwatch/gameserver/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// peer runs script on the first connection to a loopback listener and
// reports the script's error on the returned channel.
func peer(t *testing.T, script func(net.Conn) error) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		defer ln.Close()
		conn, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		errc <- script(conn)
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), errc
}

func expect(conn net.Conn, want protocol.Type, v any) error {
	f, err := protocol.ReadFrame(conn, 0)
	if err != nil {
		return err
	}
	if f.Type != want {
		return errors.New("got " + f.Type.String() + ", want " + want.String())
	}
	if v == nil {
		return nil
	}
	return f.Decode(v)
}

func welcome(conn net.Conn, balance int64) error {
	var h protocol.Hello
	if err := expect(conn, protocol.TypeHello, &h); err != nil {
		return err
	}
	return protocol.WriteMessage(conn, protocol.TypeWelcome, protocol.Welcome{PlayerID: h.PlayerID, SessionID: 7, Game: "wilddig", Balance: balance})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestBetResultAckBalancePing(t *testing.T) {
	addr, errc := peer(t, func(conn net.Conn) error {
		if err := welcome(conn, 1000); err != nil {
			return err
		}
		var bet protocol.Bet
		if err := expect(conn, protocol.TypeBet, &bet); err != nil {
			return err
		}
		if err := protocol.WriteMessage(conn, protocol.TypeBetResult, protocol.BetResult{BetID: bet.BetID, PlayerID: "p1", Amount: bet.Amount, Win: 30, Balance: 1020}); err != nil {
			return err
		}
		// The Ack comes from the reader, the requests from the caller:
		// their order on the wire is free.
		acked := false
		for {
			f, err := protocol.ReadFrame(conn, 0)
			switch {
			case err == io.EOF:
				if !acked {
					return errors.New("result never acknowledged")
				}
				return nil
			case err != nil:
				return err
			case f.Type == protocol.TypeAck:
				var ack protocol.Ack
				if err := f.Decode(&ack); err != nil || ack.BetID != bet.BetID {
					return fmt.Errorf("bad ack %s: %v", f.Payload, err)
				}
				acked = true
			case f.Type == protocol.TypeBalanceRequest:
				err = protocol.WriteMessage(conn, protocol.TypeBalance, protocol.Balance{Balance: 1020})
			case f.Type == protocol.TypePing:
				err = protocol.WriteMessage(conn, protocol.TypePong, protocol.Pong{})
			default:
				return errors.New("unexpected " + f.Type.String())
			}
			if err != nil {
				return err
			}
		}
	})
	c, err := Dial(ctx(t), addr, "p1", "tok")
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Welcome(); w.Balance != 1000 || w.SessionID != 7 {
		t.Fatalf("welcome = %+v", w)
	}
	if err := c.Bet(ctx(t), "b1", 10); err != nil {
		t.Fatal(err)
	}
	r := <-c.Results()
	if r.BetID != "b1" || r.Win != 30 || r.Err != nil || r.Received.IsZero() {
		t.Fatalf("result = %+v", r)
	}
	if bal, err := c.Balance(ctx(t)); err != nil || bal != 1020 {
		t.Fatalf("balance = %d, %v", bal, err)
	}
	if _, err := c.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("Err after Close = %v", c.Err())
	}
	if _, ok := <-c.Results(); ok {
		t.Fatal("Results not closed after Close")
	}
	if err := c.Bet(ctx(t), "b2", 10); !errors.Is(err, ErrClosed) {
		t.Fatalf("Bet after Close = %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatal("peer: ", err)
	}
}

func TestDialRejected(t *testing.T) {
	addr, errc := peer(t, func(conn net.Conn) error {
		if err := expect(conn, protocol.TypeHello, nil); err != nil {
			return err
		}
		return protocol.WriteMessage(conn, protocol.TypeError, protocol.Error{Code: protocol.CodeBadToken, Message: "bad signature"})
	})
	c, err := Dial(ctx(t), addr, "p1", "forged")
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeBadToken {
		t.Fatalf("Dial = %v, %v; want bad_token", c, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestDialHonoursContext(t *testing.T) {
	release := make(chan struct{})
	addr, errc := peer(t, func(conn net.Conn) error {
		<-release // never answer Hello
		return nil
	})
	cctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Dial(cctx, addr, "p1", "tok")
	close(release)
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Dial = %v, want a timeout", err)
		}
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("Dial took %v", time.Since(start))
	}
	<-errc
}

func TestBetErrorIsAResult(t *testing.T) {
	addr, errc := peer(t, func(conn net.Conn) error {
		if err := welcome(conn, 5); err != nil {
			return err
		}
		var bet protocol.Bet
		if err := expect(conn, protocol.TypeBet, &bet); err != nil {
			return err
		}
		return protocol.WriteMessage(conn, protocol.TypeError, protocol.Error{Code: protocol.CodeInsufficientFunds, Message: "no", BetID: bet.BetID})
	})
	c, err := Dial(ctx(t), addr, "p1", "tok")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bet(ctx(t), "b9", 10); err != nil {
		t.Fatal(err)
	}
	r := <-c.Results()
	if r.BetID != "b9" || r.Err == nil || r.Err.Code != protocol.CodeInsufficientFunds {
		t.Fatalf("result = %+v", r)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestServerFailures(t *testing.T) {
	cases := []struct {
		name  string
		after func(net.Conn) error
		want  func(error) bool
	}{
		{"server closes", func(net.Conn) error { return nil }, func(err error) bool { return err == io.EOF }},
		{"oversize frame", func(c net.Conn) error {
			_, err := c.Write(binary.BigEndian.AppendUint32(nil, protocol.DefaultMaxFrameSize+1))
			return err
		}, func(err error) bool { return errors.Is(err, protocol.ErrFrameTooLarge) }},
		{"unknown type", func(c net.Conn) error {
			_, err := c.Write([]byte{0, 0, 0, 1, 0x7f})
			return err
		}, func(err error) bool { return errors.Is(err, protocol.ErrUnknownType) }},
		{"garbage result", func(c net.Conn) error {
			_, err := c.Write(protocol.AppendFrame(nil, protocol.TypeBetResult, []byte("{not json")))
			return err
		}, func(err error) bool { return err != nil && !errors.Is(err, ErrClosed) }},
		{"fatal error", func(c net.Conn) error {
			return protocol.WriteMessage(c, protocol.TypeError, protocol.Error{Code: protocol.CodeBadFrame, Message: "x"})
		}, func(err error) bool {
			var pe *protocol.Error
			return errors.As(err, &pe) && pe.Code == protocol.CodeBadFrame
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, errc := peer(t, func(conn net.Conn) error {
				if err := welcome(conn, 1); err != nil {
					return err
				}
				if err := tc.after(conn); err != nil {
					return err
				}
				// Half-close, then wait for the client to hang up: closing
				// outright could reset the connection before it reads.
				conn.(*net.TCPConn).CloseWrite()
				_, err := io.Copy(io.Discard, conn)
				return err
			})
			c, err := Dial(ctx(t), addr, "p1", "tok")
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("reader did not end")
			}
			if !tc.want(c.Err()) {
				t.Fatalf("Err = %v", c.Err())
			}
			if _, err := c.Balance(ctx(t)); !errors.Is(err, ErrClosed) {
				t.Fatalf("Balance on dead conn = %v", err)
			}
			c.Close()
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A caller that stops draining Results must still be able to Close, and the
// result it never took must not be acknowledged (the server keeps it).
func TestCloseWithFullResults(t *testing.T) {
	acked := make(chan string, 8)
	addr, errc := peer(t, func(conn net.Conn) error {
		if err := welcome(conn, 1); err != nil {
			return err
		}
		for _, id := range []string{"r1", "r2"} {
			if err := protocol.WriteMessage(conn, protocol.TypeBetResult, protocol.BetResult{BetID: id, Redelivered: true}); err != nil {
				return err
			}
		}
		for {
			var a protocol.Ack
			if err := expect(conn, protocol.TypeAck, &a); err != nil {
				close(acked)
				return nil
			}
			acked <- a.BetID
		}
	})
	c, err := Dial(ctx(t), addr, "p1", "tok", WithResultBuffer(1))
	if err != nil {
		t.Fatal(err)
	}
	if id := <-acked; id != "r1" {
		t.Fatalf("first ack %q", id)
	}
	time.Sleep(50 * time.Millisecond) // reader now blocked handing over r2
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on a full Results channel")
	}
	for id := range acked {
		t.Fatalf("acknowledged %q that the caller never took", id)
	}
	if r := <-c.Results(); r.BetID != "r1" || !r.Redelivered {
		t.Fatalf("buffered result = %+v", r)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestResultHandler(t *testing.T) {
	addr, errc := peer(t, func(conn net.Conn) error {
		if err := welcome(conn, 1); err != nil {
			return err
		}
		if err := protocol.WriteMessage(conn, protocol.TypeBetResult, protocol.BetResult{BetID: "h1"}); err != nil {
			return err
		}
		return expect(conn, protocol.TypeAck, nil)
	})
	got := make(chan Result, 1)
	c, err := Dial(ctx(t), addr, "p1", "tok", WithResultHandler(func(r Result) { got <- r }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Results() != nil {
		t.Fatal("Results should be nil with a handler")
	}
	if r := <-got; r.BetID != "h1" {
		t.Fatalf("handler got %+v", r)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// FuzzReader feeds arbitrary server bytes to an authenticated client: the
// reader must never panic, must end when the stream does, and must hand over
// only results that decoded.
func FuzzReader(f *testing.F) {
	res, _ := protocol.Marshal(protocol.TypeBetResult, protocol.BetResult{BetID: "b1", PlayerID: "p1", Win: 3, Symbols: []int{1, 2}})
	rej, _ := protocol.Marshal(protocol.TypeError, protocol.Error{Code: protocol.CodeInsufficientFunds, BetID: "b2"})
	bal, _ := protocol.Marshal(protocol.TypeBalance, protocol.Balance{Balance: 9})
	pong, _ := protocol.Marshal(protocol.TypePong, protocol.Pong{})
	fatalErr, _ := protocol.Marshal(protocol.TypeError, protocol.Error{Code: protocol.CodeBadFrame})
	f.Add(res)
	f.Add(append(append(append(slices.Clone(res), rej...), bal...), pong...))
	f.Add(fatalErr)
	f.Add(res[:len(res)-3])
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(protocol.AppendFrame(nil, protocol.TypeBetResult, []byte(`{"bet_id":7}`)))
	f.Add(protocol.AppendFrame(nil, protocol.TypeHello, []byte(`{}`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		cli, srv := net.Pipe()
		drained := make(chan struct{})
		go func() { io.Copy(io.Discard, srv); close(drained) }()
		var got []Result
		c := start(cli, protocol.Welcome{}, options{handler: func(r Result) { got = append(got, r) }})
		go func() {
			srv.Write(data)
			srv.Close()
		}()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("reader did not end at end of stream")
		}
		c.Close()
		<-drained
		if c.Err() == nil {
			t.Fatal("reader ended without an error")
		}
		for _, r := range got {
			if r.Err == nil && r.BetID == "" && r.Received.IsZero() {
				t.Fatalf("empty result handed over: %+v", r)
			}
		}
	})
}

// A reply that arrives after its request gave up must not answer the next
// request.
func TestAbandonedRequestReplyIsDropped(t *testing.T) {
	received, gaveUp := make(chan struct{}), make(chan struct{})
	addr, errc := peer(t, func(conn net.Conn) error {
		if err := welcome(conn, 1); err != nil {
			return err
		}
		if err := expect(conn, protocol.TypeBalanceRequest, nil); err != nil {
			return err
		}
		close(received)
		<-gaveUp // the reply comes only once the client has given up
		if err := protocol.WriteMessage(conn, protocol.TypeBalance, protocol.Balance{Balance: 1}); err != nil {
			return err
		}
		if err := expect(conn, protocol.TypePing, nil); err != nil {
			return err
		}
		if err := protocol.WriteMessage(conn, protocol.TypePong, protocol.Pong{}); err != nil {
			return err
		}
		if err := expect(conn, protocol.TypeBalanceRequest, nil); err != nil {
			return err
		}
		return protocol.WriteMessage(conn, protocol.TypeBalance, protocol.Balance{Balance: 2})
	})
	c, err := Dial(ctx(t), addr, "p1", "tok")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	short, cancel := context.WithCancel(context.Background())
	go func() { <-received; cancel() }()
	_, err = c.Balance(short)
	close(gaveUp)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Balance with a cancelled context = %v", err)
	}
	if _, err := c.Ping(ctx(t)); err != nil {
		t.Fatalf("Ping after an abandoned Balance: %v", err)
	}
	if bal, err := c.Balance(ctx(t)); err != nil || bal != 2 {
		t.Fatalf("Balance = %d, %v; want 2 (1 was the abandoned request's)", bal, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// A server that stops reading must not hold a sender past its context; the
// connection, possibly holding half a frame, is then closed.
func TestSendHonoursContext(t *testing.T) {
	release := make(chan struct{})
	addr, errc := peer(t, func(conn net.Conn) error {
		if err := welcome(conn, 1); err != nil {
			return err
		}
		<-release // never read again
		return nil
	})
	c, err := Dial(ctx(t), addr, "p1", "tok")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := strings.Repeat("x", 32<<10)
	start := time.Now()
	for err == nil && time.Since(start) < 10*time.Second {
		// Each send gets its own deadline, so the one that fails is the
		// one blocked in Write once the socket buffers are full.
		sctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err = c.Bet(sctx, big, 1)
		cancel()
	}
	close(release)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Bet to a stalled server = %v after %v", err, time.Since(start))
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("connection with a broken frame stream left open")
	}
	if err := c.Bet(ctx(t), "next", 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Bet after a broken send = %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

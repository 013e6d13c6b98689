package gameserver_test

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/gameserver/ticket"
	"github.com/stackwatch/stackwatch/metrics"
)

// Bad input gets a clear Error, then the connection closes; the server goes
// on serving and writes no stacktrace.
func TestBadInputIsRejected(t *testing.T) {
	srv := startServer(t, gameserver.Config{})
	expired, _ := ticket.Sign([]byte(ticket.DevSecret), "mallory", time.Now().Add(-time.Minute))
	otherSecret, _ := ticket.Sign([]byte("not-the-secret"), "mallory", time.Now().Add(time.Hour))
	header := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

	cases := []struct {
		name     string
		raw      []byte // written as is
		hello    *protocol.Hello
		first    protocol.Type // a first frame other than Hello
		wantCode string
		wantMsg  string
	}{
		{name: "bad signature", hello: &protocol.Hello{PlayerID: "mallory", Token: otherSecret}, wantCode: protocol.CodeBadToken, wantMsg: "bad signature"},
		{name: "token for another player", hello: &protocol.Hello{PlayerID: "alice", Token: otherSecret}, wantCode: protocol.CodeBadToken},
		{name: "malformed token", hello: &protocol.Hello{PlayerID: "mallory", Token: "garbage"}, wantCode: protocol.CodeBadToken, wantMsg: "malformed"},
		{name: "bad player id", hello: &protocol.Hello{PlayerID: "no spaces allowed", Token: "1.x"}, wantCode: protocol.CodeBadToken, wantMsg: "player id"},
		{name: "expired token", hello: &protocol.Hello{PlayerID: "mallory", Token: expired}, wantCode: protocol.CodeTokenExpired, wantMsg: "expired"},
		{name: "first frame not hello", first: protocol.TypeBet, wantCode: protocol.CodeUnauthenticated, wantMsg: "hello"},
		{name: "oversize frame", raw: append(header(protocol.DefaultMaxFrameSize+1), make([]byte, 4096)...), wantCode: protocol.CodeFrameTooLarge},
		{name: "huge length", raw: header(0xFFFFFFFF), wantCode: protocol.CodeFrameTooLarge},
		{name: "empty frame", raw: header(0), wantCode: protocol.CodeBadFrame},
		{name: "unknown type", raw: append(header(3), 0x7F, '{', '}'), wantCode: protocol.CodeBadFrame, wantMsg: "unknown message type"},
		{name: "garbage bytes", raw: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), wantCode: protocol.CodeFrameTooLarge},
		{name: "hello not json", raw: append(header(4), byte(protocol.TypeHello), 'x', 'y', 'z'), wantCode: protocol.CodeBadFrame},
		{name: "truncated frame", raw: append(header(100), byte(protocol.TypeHello), '{'), wantCode: protocol.CodeBadFrame},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, srv.Addr())
			switch {
			case tc.raw != nil:
				c.conn.Write(tc.raw)
				if tc.name == "truncated frame" {
					c.conn.(interface{ CloseWrite() error }).CloseWrite()
				}
			case tc.hello != nil:
				c.send(protocol.TypeHello, *tc.hello)
			default:
				c.send(tc.first, protocol.Bet{BetID: "x", Amount: 1})
			}
			var e protocol.Error
			c.expect(protocol.TypeError, &e)
			if e.Code != tc.wantCode || !strings.Contains(e.Message, tc.wantMsg) {
				t.Fatalf("error %+v, want code %s containing %q", e, tc.wantCode, tc.wantMsg)
			}
			c.expectClosed()
		})
	}
	// Still serving, nothing panicked, nobody got in.
	c, _ := login(t, srv.Addr(), "alice")
	c.send(protocol.TypePing, protocol.Ping{})
	c.expect(protocol.TypePong, nil)
	if files := stacktraceFiles(t, srv.Config().LogDir); len(files) != 0 {
		t.Fatalf("stacktraces: %v", files)
	}
	if n := metricValue(t, srv.Registry(), metrics.SessionsCreated.Name, nil); n != 1 {
		t.Fatalf("sessions created = %v, want 1 (only alice)", n)
	}
}

// After login, framing errors are still fatal, request errors are not.
func TestBadInputAfterLogin(t *testing.T) {
	srv := startServer(t, gameserver.Config{})
	c, _ := login(t, srv.Addr(), "alice")
	var e protocol.Error
	for _, bad := range []protocol.Bet{{BetID: "", Amount: 1}, {BetID: "b", Amount: 0}, {BetID: "b", Amount: -5}, {BetID: "b", Amount: 1 << 40}, {BetID: "has space", Amount: 1}} {
		c.send(protocol.TypeBet, bad)
		c.expect(protocol.TypeError, &e)
		if e.Code != protocol.CodeBadRequest {
			t.Fatalf("bet %+v: %+v", bad, e)
		}
	}
	c.send(protocol.TypeWelcome, protocol.Welcome{}) // a server-only message
	c.expect(protocol.TypeError, &e)
	if e.Code != protocol.CodeBadRequest {
		t.Fatalf("%+v", e)
	}
	c.conn.Write([]byte{0, 0, 0, 2, byte(protocol.TypeBet), '['}) // framed, not JSON
	c.expect(protocol.TypeError, &e)
	if e.Code != protocol.CodeBadRequest {
		t.Fatalf("%+v", e)
	}
	c.send(protocol.TypePing, protocol.Ping{})
	c.expect(protocol.TypePong, nil)

	c.conn.Write(binary.BigEndian.AppendUint32(nil, 1<<30))
	c.expect(protocol.TypeError, &e)
	if e.Code != protocol.CodeFrameTooLarge {
		t.Fatalf("%+v", e)
	}
	c.expectClosed()
}

func TestHelloTimeout(t *testing.T) {
	srv := startServer(t, gameserver.Config{HelloTimeout: 200 * time.Millisecond})
	c := dial(t, srv.Addr())
	c.expectClosed() // silence gets no session
}

// FuzzConnection throws arbitrary bytes at a real server: whatever arrives,
// the server answers or closes, never panics, and keeps serving.
func FuzzConnection(f *testing.F) {
	hello, _ := protocol.Marshal(protocol.TypeHello, protocol.Hello{PlayerID: "fuzz", Token: "1.AAAA"})
	bet, _ := protocol.Marshal(protocol.TypeBet, protocol.Bet{BetID: "b", Amount: 1})
	ack, _ := protocol.Marshal(protocol.TypeAck, protocol.Ack{BetID: "b"})
	ping, _ := protocol.Marshal(protocol.TypePing, protocol.Ping{})
	bal, _ := protocol.Marshal(protocol.TypeBalanceRequest, protocol.BalanceRequest{})
	for _, loggedIn := range []bool{false, true} {
		f.Add(loggedIn, []byte{})
		f.Add(loggedIn, hello)
		f.Add(loggedIn, append(hello, bet...))
		f.Add(loggedIn, bet)
		f.Add(loggedIn, append(append(append(bet, ack...), ping...), bal...))
		f.Add(loggedIn, []byte{0, 0, 0, 1, 0x01})
		f.Add(loggedIn, []byte{0xff, 0xff, 0xff, 0xff})
		f.Add(loggedIn, []byte("\x00\x00\x00\x05\x03null"))
		f.Add(loggedIn, []byte("\x00\x00\x00\x03\x01{}"))
		f.Add(loggedIn, []byte("\x00\x00\x00\x1a\x01{\"player_id\":1,\"token\":2}"))
		f.Add(loggedIn, []byte("\x00\x00\x00\x22\x03{\"bet_id\":\"\xff\xfe\",\"amount\":1e99}"))
		f.Add(loggedIn, []byte("GET /metrics HTTP/1.1\r\n\r\n"))
	}
	srv := startFuzzServer(f)
	f.Fuzz(func(t *testing.T, loggedIn bool, in []byte) {
		var c *rawClient
		if loggedIn {
			c, _ = login(t, srv.Addr(), "fuzzer")
		} else {
			c = dial(t, srv.Addr())
		}
		c.conn.Write(in)
		c.conn.(interface{ CloseWrite() error }).CloseWrite()
		for {
			if _, err := c.read(); err != nil {
				break
			}
		}
		if files := stacktraceFiles(t, srv.Config().LogDir); len(files) != 0 {
			t.Fatalf("input %q made the server panic: %v", in, files)
		}
	})
}

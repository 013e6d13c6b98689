package gameserver_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/gameservertest"
	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/gameserver/ticket"
)

// testServer is a real server on loopback with its directories in t.TempDir.
type testServer struct {
	*gameservertest.Server
	cfg gameserver.Config
}

// startServer widens the disconnect race with a 20ms wallet latency unless
// cfg says otherwise.
func startServer(t testing.TB, cfg gameserver.Config) *testServer {
	t.Helper()
	if cfg.WalletLatency == 0 {
		cfg.WalletLatency = 20 * time.Millisecond
	}
	s := gameservertest.Start(t, cfg)
	return &testServer{Server: s, cfg: s.Config()}
}

// rawClient speaks the protocol over a real TCP connection.
type rawClient struct {
	t    testing.TB
	conn net.Conn
}

func dial(t testing.TB, addr net.Addr) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn}
}

func token(t testing.TB, player string) string {
	t.Helper()
	tok, err := ticket.Sign([]byte(ticket.DevSecret), player, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (c *rawClient) send(typ protocol.Type, v any) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := protocol.WriteMessage(c.conn, typ, v); err != nil {
		c.t.Fatalf("send %s: %v", typ, err)
	}
}

func (c *rawClient) read() (protocol.Frame, error) {
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	return protocol.ReadFrame(c.conn, 0)
}

// expect reads the next frame, which must be of type typ, into v.
func (c *rawClient) expect(typ protocol.Type, v any) {
	c.t.Helper()
	f, err := c.read()
	if err != nil {
		c.t.Fatalf("read, want %s: %v", typ, err)
	}
	if f.Type != typ {
		c.t.Fatalf("got %s %s, want %s", f.Type, f.Payload, typ)
	}
	if v != nil {
		if err := f.Decode(v); err != nil {
			c.t.Fatal(err)
		}
	}
}

// expectClosed asserts the server closed the connection.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	f, err := c.read()
	if err == nil {
		c.t.Fatalf("got %s %s, want the connection closed", f.Type, f.Payload)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isReset(err) {
		c.t.Fatalf("want EOF, got %v", err)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

func login(t testing.TB, addr net.Addr, player string) (*rawClient, protocol.Welcome) {
	t.Helper()
	c := dial(t, addr)
	c.send(protocol.TypeHello, protocol.Hello{PlayerID: player, Token: token(t, player)})
	var w protocol.Welcome
	c.expect(protocol.TypeWelcome, &w)
	return c, w
}

// startFuzzServer starts a server shared by every fuzz input.
func startFuzzServer(f *testing.F) *gameserver.Server {
	srv, err := gameserver.New(gameserver.Config{Game: "wilddig", LogDir: f.TempDir(), DataDir: f.TempDir(), WalletLatency: -1},
		slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	f.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.Error(err)
		}
	})
	return srv
}

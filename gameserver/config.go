package gameserver

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/stackwatch/stackwatch/gameserver/game"
	"github.com/stackwatch/stackwatch/gameserver/task"
	"github.com/stackwatch/stackwatch/gameserver/ticket"
)

// Config configures a Server. Its fields mirror cmd/gameserver's flags; zero
// values take the defaults noted.
type Config struct {
	Game    string // goldenclover, wilddig or forestteaparty (required)
	Service string // service name; defaults from Game (wilddig → wilddiggr)
	Listen  string // game listener; default 127.0.0.1:0
	Admin   string // admin listener (/metrics, health, and pprof unless Pprof is set); default 127.0.0.1:0
	Pprof   string // optional separate /debug/pprof listener, e.g. 127.0.0.1:7061 beside a pod-wide Admin
	LogDir  string // stacktrace files and gameserver.log (required)
	DataDir string // wallet ledger (required)
	Legacy  bool   // restore build 20251030111505's behaviour

	FaultInjection bool // serve POST /debug/fault (fault.go) beside pprof, which must then be on loopback

	Secret         []byte        // ticket secret; default ticket.DevSecret
	WalletLatency  time.Duration // slept inside each deduction; 0 = 5ms, <0 = none
	MemoryLimit    int64         // reported limit when no cgroup or GOMEMLIMIT; default 512MiB
	MaxFrameSize   int           // default protocol.DefaultMaxFrameSize
	HelloTimeout   time.Duration // time allowed for the Hello; default 10s
	IdleTimeout    time.Duration // read deadline between frames; default 60s
	WriteTimeout   time.Duration // deadline of one write; default 5s
	StaleAfter     time.Duration // the session manager reaps sessions silent this long; default 30s
	ReapInterval   time.Duration // default StaleAfter/3
	BetHistory     time.Duration // settled, acked bets older than this are pruned from the ledger; 0 keeps all (see wallet.Options.BetHistory)
	InitialBalance int64         // a new player's balance; default 1,000,000
	Retry          task.RetryPolicy
	RedeliveryPage int  // results sent at once on a reconnect; the rest follow as acks arrive; default task.DefaultRedeliveryPage
	NewLedger      bool // start a fresh ledger where a marker shows one existed (see wallet.Options.New)
	MaxConns       int  // concurrent game connections; default from RLIMIT_NOFILE (see defaultMaxConns)
	MaxUnauthConns int  // of those, connections still before their Hello; default min(1024, MaxConns/4)
}

// DefaultMemoryLimit is the memory limit reported when nothing else sets one.
const DefaultMemoryLimit = 512 << 20

// DefaultWalletLatency widens the disconnect race a little by default.
const DefaultWalletLatency = 5 * time.Millisecond

// ErrConfig marks an error from New that is the configuration's fault
// (a bad or unsafe flag value), not the machine's.
var ErrConfig = errors.New("invalid configuration")

// configError keeps the message and answers errors.Is(err, ErrConfig).
type configError struct{ error }

func (e configError) Unwrap() []error { return []error{e.error, ErrConfig} }

func (c *Config) setDefaults() error {
	g, err := game.Lookup(c.Game)
	if err != nil {
		return fmt.Errorf("-game %q: want one of %s", c.Game, strings.Join(game.Names(), ", "))
	}
	if c.Service == "" {
		c.Service = g.Service
	}
	if c.LogDir == "" || c.DataDir == "" {
		return errors.New("-log-dir and -data-dir are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.Admin == "" {
		c.Admin = "127.0.0.1:0"
	}
	if err := c.checkExposure(); err != nil {
		return err
	}
	if len(c.Secret) == 0 {
		c.Secret = []byte(ticket.DevSecret)
	}
	// A negative timeout would be a deadline already past: every
	// connection dropped at once.
	if c.HelloTimeout < 0 || c.IdleTimeout < 0 || c.WriteTimeout < 0 || c.StaleAfter < 0 || c.ReapInterval < 0 {
		return errors.New("-hello-timeout, -idle-timeout, -write-timeout and -stale-after must not be negative")
	}
	if c.MaxConns < 0 || c.MaxUnauthConns < 0 || c.RedeliveryPage < 0 || c.BetHistory < 0 {
		return errors.New("-max-conns, -max-unauth-conns, -redelivery-page and -bet-history must not be negative")
	}
	if c.MaxConns == 0 {
		c.MaxConns = defaultMaxConns()
	}
	if c.MaxUnauthConns == 0 {
		c.MaxUnauthConns = max(1, min(1024, c.MaxConns/4))
	}
	if c.MaxUnauthConns > c.MaxConns {
		return fmt.Errorf("-max-unauth-conns %d exceeds -max-conns %d", c.MaxUnauthConns, c.MaxConns)
	}
	switch {
	case c.WalletLatency == 0:
		c.WalletLatency = DefaultWalletLatency
	case c.WalletLatency < 0:
		c.WalletLatency = 0
	}
	if c.MemoryLimit <= 0 {
		c.MemoryLimit = DefaultMemoryLimit
	}
	def(&c.HelloTimeout, 10*time.Second)
	def(&c.IdleTimeout, 60*time.Second)
	def(&c.WriteTimeout, 5*time.Second)
	def(&c.StaleAfter, 30*time.Second)
	def(&c.ReapInterval, c.StaleAfter/3)
	return nil
}

// checkExposure refuses the insecure set-ups beyond loopback, like the
// sidecar's token rule: a game listener on the public development secret
// (anyone could forge tickets), and goroutine dumps, which carry player
// data (and fault injection, which can kill the process), served on a
// non-loopback listener.
func (c *Config) checkExposure() error {
	if !isLoopback(c.Listen) && (len(c.Secret) == 0 || string(c.Secret) == ticket.DevSecret) {
		return fmt.Errorf("-listen %s is not loopback: set -secret-file (the built-in development secret lets anyone forge tickets)", c.Listen)
	}
	flag, addr := "pprof", c.Pprof // where /debug/pprof is served
	if addr == "" {
		flag, addr = "admin", c.Admin
	}
	switch {
	case isLoopback(addr):
		return nil
	case c.FaultInjection:
		return fmt.Errorf("-%s %s: fault injection refused: it would be served beyond loopback", flag, addr)
	case flag == "admin":
		return fmt.Errorf("-admin %s is not loopback: set -pprof 127.0.0.1:PORT so goroutine dumps, which carry player data, stay on loopback", addr)
	}
	return fmt.Errorf("-pprof %s is not loopback: goroutine dumps carry player data", addr)
}

// isLoopback reports whether addr (host:port) binds loopback only. An empty
// host binds every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Mode is "legacy" or "patched".
func (c *Config) Mode() string {
	if c.Legacy {
		return "legacy"
	}
	return "patched"
}

package gameserver

import (
	"fmt"
	"runtime/debug"
	"time"

	"github.com/stackwatch/stackwatch/gameserver/game"
	"github.com/stackwatch/stackwatch/gameserver/task"
	"github.com/stackwatch/stackwatch/gameserver/ticket"
)

// LegacyVersion is the build stamp of the incident's build, reported by a
// server running with Legacy.
const LegacyVersion = "20251030111505"

// Config configures a Server. Its fields mirror cmd/gameserver's flags; zero
// values take the defaults noted.
type Config struct {
	Game    string // goldenclover, wilddig or forestteaparty (required)
	Service string // service name; defaults from Game (wilddig → wilddiggr)
	Listen  string // game listener; default 127.0.0.1:0
	Admin   string // admin listener (/metrics, health, and pprof unless Pprof is set); default 127.0.0.1:0
	Pprof   string // optional separate /debug/pprof listener, e.g. 127.0.0.1:6061 beside a pod-wide Admin
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
	InitialBalance int64         // a new player's balance; default 1,000,000
	Retry          task.RetryPolicy
	Version        string // build stamp; default LegacyVersion in legacy mode, else from the build
}

// DefaultMemoryLimit is the memory limit reported when nothing else sets one.
const DefaultMemoryLimit = 512 << 20

// DefaultWalletLatency widens the disconnect race a little by default.
const DefaultWalletLatency = 5 * time.Millisecond

func (c *Config) setDefaults() error {
	g, err := game.Lookup(c.Game)
	if err != nil {
		return err
	}
	if c.Service == "" {
		c.Service = g.Service
	}
	if c.LogDir == "" || c.DataDir == "" {
		return fmt.Errorf("gameserver: LogDir and DataDir are required")
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
	if len(c.Secret) == 0 {
		c.Secret = []byte(ticket.DevSecret)
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
	if c.Version == "" {
		c.Version = buildVersion(c.Legacy)
	}
	return nil
}

// buildVersion stamps a patched build like the original's
// YYYYMMDDhhmmss, from the VCS time when the binary has one.
func buildVersion(legacy bool) string {
	if legacy {
		return LegacyVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t.UTC().Format("20060102150405")
				}
			}
		}
	}
	return "20251106000000"
}

// Mode is "legacy" or "patched".
func (c *Config) Mode() string {
	if c.Legacy {
		return "legacy"
	}
	return "patched"
}

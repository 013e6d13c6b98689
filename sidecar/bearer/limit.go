package bearer

import (
	"crypto/sha256"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound failed token checks. Zero fields take the defaults shown.
//
// Only failures are charged: a right token costs nothing, and a client
// sending its last wrong token again (a script with a stale secret) is not
// charged twice, since a repeat guesses nothing new.
type Limits struct {
	// A client may fail Burst times at once, then once more every Every
	// (10, 1s). Beyond that it gets 429 without its token being compared,
	// even when it is the right one: an operator behind the address of
	// someone guessing (a NAT, a proxy, every kubectl port-forward) is
	// refused until the guessing stops or slows below the limit.
	Burst int
	Every time.Duration
	// All clients together may fail GlobalBurst times at once, then once
	// more every GlobalEvery (100, 200ms: 5 a second), which bounds a
	// guess spread over many addresses. Loopback clients (kubectl
	// port-forward, a proxy in the pod: one client, bound by its own
	// limit) and clients that presented the right token within KnownFor are
	// not held by it, so a distributed flood cannot lock them out; any
	// other client gets 429 while it lasts.
	GlobalBurst int
	GlobalEvery time.Duration
	// MaxClients caps the clients remembered (4096), least recently seen
	// evicted first; MaxKnown caps the clients remembered as having
	// presented the right token (256), for KnownFor (24h).
	MaxClients int
	MaxKnown   int
	KnownFor   time.Duration
	// LogEvery is the least time between two log lines about one client,
	// or about the global bound (1m).
	LogEvery time.Duration
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.Burst, 10)
	defDur(&l.Every, time.Second)
	def(&l.GlobalBurst, 100)
	defDur(&l.GlobalEvery, 200*time.Millisecond)
	def(&l.MaxClients, 4096)
	def(&l.MaxKnown, 256)
	defDur(&l.KnownFor, 24*time.Hour)
	defDur(&l.LogEvery, time.Minute)
	return l
}

// Stats counts a Limiter's decisions.
type Stats struct {
	Failures        uint64 // wrong tokens compared
	Throttled       uint64 // 429s for a client over its own limit
	ThrottledGlobal uint64 // 429s for the global bound
	Evicted         uint64 // clients forgotten before their bucket was full again (table full)
	Clients         int    // clients remembered now
}

// A Limiter limits failed token checks per client: the remote address
// (never X-Forwarded-For), an IPv6 client by its /64, every loopback
// address and a Unix socket together as one. Each client and the
// whole are token buckets kept as GCRA times: a bucket is full again at
// its time, so a client whose time has passed needs no entry, and the
// table holds only clients with recent failures. Use one Limiter for every
// place that checks the same token (see NewChecker).
type Limiter struct {
	lim Limits
	log atomic.Pointer[slog.Logger]

	mu      sync.Mutex
	clients map[netip.Prefix]*client
	lru     client // ring sentinel: lru.next is the most recently seen, lru.prev the least
	global  time.Time
	gLogged time.Time
	gDenied int
	known   map[netip.Prefix]time.Time
	stats   Stats
}

type client struct {
	key        netip.Prefix
	tat        time.Time // its bucket is full again then
	bad        [sha256.Size]byte
	hasBad     bool // bad is the hash of its last wrong token
	loggedAt   time.Time
	denied     int // 429s since the last log line
	prev, next *client
}

// NewLimiter returns a Limiter for l; it logs to slog.Default until
// SetLogger.
func NewLimiter(l Limits) *Limiter {
	lm := &Limiter{lim: l.withDefaults(), clients: map[netip.Prefix]*client{}, known: map[netip.Prefix]time.Time{}}
	lm.lru.next, lm.lru.prev = &lm.lru, &lm.lru
	return lm
}

// SetLogger sets where throttling is logged (at most once per client, and
// once for the global bound, per LogEvery).
func (l *Limiter) SetLogger(log *slog.Logger) { l.log.Store(log) }

func (l *Limiter) logger() *slog.Logger {
	if lg := l.log.Load(); lg != nil {
		return lg
	}
	return slog.Default()
}

// Stats returns the counts so far.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Clients = len(l.clients)
	return s
}

// clientKey groups a remote address: IPv4 by address, IPv6 by /64. local
// is true for loopback and for what is no IP address (a Unix socket),
// which only something inside the host or pod can use; all of them are
// one client, the zero key: whatever can connect from 127.0.0.1 can from
// any of the 16 million addresses of 127.0.0.0/8, and each its own client
// exempt from the global bound would be no limit at all.
func clientKey(remoteAddr string) (key netip.Prefix, local bool) {
	ap, err := netip.ParseAddrPort(remoteAddr)
	var a netip.Addr
	if err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(remoteAddr); err != nil {
		return netip.Prefix{}, true
	}
	a = a.Unmap().WithZone("")
	if a.IsLoopback() {
		return netip.Prefix{}, true
	}
	bits := 32
	if a.Is6() {
		bits = 64
	}
	key, _ = a.Prefix(bits)
	return key, false
}

// clientName is key for the logs.
func clientName(key netip.Prefix) string {
	if !key.IsValid() {
		return "local"
	}
	if key.Addr().Is4() {
		return key.Addr().String()
	}
	return key.String()
}

// verdict is what reserve decided.
type verdict int

const (
	compare   verdict = iota // compare the token; its failure is charged already
	repeated                 // the client's last wrong token again: wrong, not charged
	throttled                // 429 without comparing
)

// wait is how long until one more charge fits in a bucket of burst whose
// GCRA time is tat: 0 if it fits now.
func wait(tat, now time.Time, every time.Duration, burst int) time.Duration {
	return max(later(tat, now).Add(every).Sub(now)-time.Duration(burst)*every, 0)
}

func later(t, now time.Time) time.Time {
	if t.Before(now) {
		return now
	}
	return t
}

// reserve decides whether key may have the token hashed to sum compared.
// If so it charges a failure in advance, to the client and, unless the
// client is exempt, to the global bound (global is then true); settle
// refunds them when the token is right. Charging first keeps concurrent
// guesses from one client within its burst.
func (l *Limiter) reserve(key netip.Prefix, local bool, sum *[sha256.Size]byte, now time.Time) (v verdict, retry time.Duration, global bool) {
	var logClient, logGlobal bool
	var denied int
	defer func() {
		switch {
		case logClient:
			l.logger().Warn("too many wrong tokens from a client; answering 429 without checking its token",
				"client", clientName(key), "retry_after", retry, "refused_since_last_log", denied)
		case logGlobal:
			l.logger().Warn("too many wrong tokens from all clients; answering 429 to all but loopback and recently authenticated clients",
				"client", clientName(key), "retry_after", retry, "refused_since_last_log", denied)
		}
	}()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.purge(now)
	c := l.clients[key]
	if c != nil {
		l.touch(c)
		if retry = wait(c.tat, now, l.lim.Every, l.lim.Burst); retry > 0 {
			l.stats.Throttled++
			c.denied++
			if c.loggedAt.IsZero() || now.Sub(c.loggedAt) >= l.lim.LogEvery {
				logClient, denied, c.loggedAt, c.denied = true, c.denied, now, 0
			}
			return throttled, retry, false
		}
		if c.hasBad && c.bad == *sum {
			return repeated, 0, false
		}
	}
	if !local && !l.isKnown(key, now) {
		if retry = wait(l.global, now, l.lim.GlobalEvery, l.lim.GlobalBurst); retry > 0 {
			l.stats.ThrottledGlobal++
			l.gDenied++
			if l.gLogged.IsZero() || now.Sub(l.gLogged) >= l.lim.LogEvery {
				logGlobal, denied, l.gLogged, l.gDenied = true, l.gDenied, now, 0
			}
			return throttled, retry, false
		}
		l.global = later(l.global, now).Add(l.lim.GlobalEvery)
		global = true
	}
	if c == nil {
		c = l.add(key)
	}
	c.tat = later(c.tat, now).Add(l.lim.Every)
	return compare, 0, global
}

// settle finishes what reserve began: a right token gets its charges back
// and marks the client known; a wrong one is remembered, so that sending
// it again is not charged again.
func (l *Limiter) settle(key netip.Prefix, local, ok, global bool, sum *[sha256.Size]byte, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.clients[key] // nil if evicted meanwhile
	if !ok {
		l.stats.Failures++
		if c != nil {
			c.bad, c.hasBad = *sum, true
		}
		return
	}
	if global {
		l.global = l.global.Add(-l.lim.GlobalEvery)
	}
	if c != nil {
		if c.tat = c.tat.Add(-l.lim.Every); !c.tat.After(now) {
			l.remove(c) // full again: nothing to remember
		}
	}
	if !local {
		l.markKnown(key, now)
	}
}

func (l *Limiter) isKnown(key netip.Prefix, now time.Time) bool {
	t, ok := l.known[key]
	return ok && now.Sub(t) < l.lim.KnownFor
}

func (l *Limiter) markKnown(key netip.Prefix, now time.Time) {
	if _, ok := l.known[key]; !ok && len(l.known) >= l.lim.MaxKnown {
		// Only a right token adds a client, so this is rare and small.
		var oldest netip.Prefix
		var at time.Time
		for k, t := range l.known {
			if at.IsZero() || t.Before(at) {
				oldest, at = k, t
			}
		}
		delete(l.known, oldest)
	}
	l.known[key] = now
}

// purge forgets the least recently seen clients whose buckets are full
// again, which loses nothing. Each client is purged once, so it costs
// O(1) per call over time.
func (l *Limiter) purge(now time.Time) {
	for c := l.lru.prev; c != &l.lru && !c.tat.After(now); c = l.lru.prev {
		l.remove(c)
	}
}

// add remembers a new client, evicting the least recently seen one when
// the table is full: a flood from many addresses costs at most
// MaxClients entries, and what an evicted client regains is still held
// by the global bound.
func (l *Limiter) add(key netip.Prefix) *client {
	if len(l.clients) >= l.lim.MaxClients {
		l.remove(l.lru.prev)
		l.stats.Evicted++ // purge left the last one with failures still counted
	}
	c := &client{key: key}
	l.clients[key] = c
	l.touch(c)
	return c
}

// touch moves c to the front of the ring, inserting it if new.
func (l *Limiter) touch(c *client) {
	if c.next != nil {
		c.prev.next, c.next.prev = c.next, c.prev
	}
	c.prev, c.next = &l.lru, l.lru.next
	l.lru.next.prev = c
	l.lru.next = c
}

func (l *Limiter) remove(c *client) {
	c.prev.next, c.next.prev = c.next, c.prev
	c.prev, c.next = nil, nil
	delete(l.clients, c.key)
}

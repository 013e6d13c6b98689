// Package wallet is the game server's durable ledger, kept in a bbolt file
// under the data directory.
//
// A bet moves through two transactions. Deduct takes the stake and records
// the bet in one transaction; Settle credits the win, records the result and
// (with an outbox) stores the result for delivery in another. Both are
// idempotent by (player, bet id): a resent bet never deducts twice and a
// settled bet never credits twice. Bets deducted but never settled — the
// process died in between — are settled on Open, deterministically, so a
// SIGKILL loses nothing. Results stay in the outbox until the player acks
// them.
//
// # Bet history
//
// With Options.BetHistory set, a background pruner deletes bet records that
// are settled, acknowledged (no longer in the outbox) and received longer
// ago than the history, a few hundred per short transaction; bbolt reuses
// the freed pages, so the file stops growing. A bet deducted but unsettled,
// or whose result still awaits its ack, is never pruned.
//
// Forgetting a bet must not let its resend deduct again. Bet ids are
// opaque, so the ledger keeps, per player, the greatest bet id it pruned,
// ordered shorter first, then bytewise (so "p-b9" < "p-b10"), and refuses
// with ErrForgotten a bet id it does not know that is not greater than that
// mark. A client whose bet ids increase (a counter, a ULID) never meets the
// refusal for a new bet; a resend of a pruned bet always does. Clients
// resend only bets whose result they have not acked, and those are never
// pruned, so the refusal means a client bug or a replay.
package wallet

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/stackwatch/stackwatch/gameserver/game"
	"github.com/stackwatch/stackwatch/gameserver/protocol"
	"github.com/stackwatch/stackwatch/internal/fsutil"
)

// FileName is the ledger's file name inside the data directory.
const FileName = "wallet.db"

// DefaultInitialBalance is a new player's balance.
const DefaultInitialBalance = 1_000_000

var (
	bucketAccounts = []byte("accounts")     // player → balance (int64, big endian)
	bucketBets     = []byte("bets")         // player\x00betID → Bet (JSON)
	bucketOutbox   = []byte("outbox")       // player\x00betID → outboxEntry (JSON)
	bucketOrder    = []byte("outbox_order") // player\x00seq(8, big endian)betID → nil: the outbox in bet order
	bucketPruned   = []byte("pruned")       // player → greatest pruned bet id (see ErrForgotten)
	bucketMeta     = []byte("meta")
	keySchema      = []byte("schema")
	schemaVersion  = []byte("stackwatch-wallet-v1")
)

// Errors.
var (
	ErrInsufficientFunds = errors.New("wallet: insufficient funds")
	ErrUnknownBet        = errors.New("wallet: unknown bet")
	ErrLocked            = errors.New("wallet: ledger is locked by another process")
	ErrBadBet            = errors.New("wallet: invalid bet")
	// ErrForgotten refuses a bet id not greater than the player's greatest
	// pruned one: it may be a resend of a bet the ledger no longer holds.
	ErrForgotten = errors.New("wallet: bet id is not above the player's pruned bet history")
)

// State of a bet in the ledger.
type State string

// Bet states.
const (
	Deducted State = "deducted" // stake taken, not yet settled
	Settled  State = "settled"  // win credited, result recorded
)

// Bet is one bet's ledger record.
type Bet struct {
	Player  string              `json:"player"`
	BetID   string              `json:"bet_id"`
	Game    string              `json:"game"`
	Amount  int64               `json:"amount"`
	State   State               `json:"state"`
	Created time.Time           `json:"created"`
	Seq     uint64              `json:"seq,omitempty"` // bet order: when the server received it (Unix ns)
	Result  *protocol.BetResult `json:"result,omitempty"`
}

type outboxEntry struct {
	Result protocol.BetResult `json:"result"`
	Seq    uint64             `json:"seq,omitempty"` // the bet's Seq
	Dead   bool               `json:"dead,omitempty"`
}

// orderKey is the entry's key in the bet-order index.
func orderKey(player string, seq uint64, betID string) []byte {
	k := append([]byte(player), 0)
	k = binary.BigEndian.AppendUint64(k, seq)
	return append(k, betID...)
}

// Options configure a Wallet.
type Options struct {
	// InitialBalance is a new player's balance (DefaultInitialBalance if 0).
	InitialBalance int64
	// Latency is slept inside Deduct, before the stake is taken, and inside
	// Settle, before the win is credited, the way a remote cash API would
	// answer; it widens the disconnect race. Deduct's sleep honours the
	// context (a cancelled bet is not deducted); Settle's does not, since a
	// deducted bet must settle.
	Latency time.Duration
	// Outbox keeps every settled result until acked. The legacy server had
	// none.
	Outbox bool
	// LockTimeout bounds the wait for the file lock (1s if 0).
	LockTimeout time.Duration
	// MaxBatchDelay is how long concurrent updates wait to share one
	// transaction and fsync (1ms if 0).
	MaxBatchDelay time.Duration
	// New allows a fresh ledger where the marker shows one was kept but
	// wallet.db is missing or empty. Without it Open refuses, so a lost
	// ledger is never replaced silently by one where every balance is new.
	New bool
	// BetHistory is how long a settled, acknowledged bet is kept before a
	// background pruner deletes it (see the package doc); 0 keeps every bet.
	BetHistory time.Duration
}

// Wallet is the ledger. Its methods are safe for concurrent use.
type Wallet struct {
	db      *bolt.DB
	opts    Options
	dead    atomic.Int64 // dead-lettered outbox entries
	pending atomic.Int64 // outbox entries
	pruned  atomic.Int64 // bet records pruned since Open
	refused atomic.Int64 // bets refused with ErrForgotten since Open

	// Acks are applied by a background flusher, many per transaction, so a
	// connection never waits for an ack's commit. Until flushed they are
	// hidden from Outbox and InOutbox. An ack lost to a crash only means
	// one more redelivery, which at-least-once delivery allows.
	ackMu   sync.Mutex
	acks    map[string]struct{}
	ackKick chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	pruning sync.WaitGroup
	closeMu sync.Once
}

// MarkerName is the file Open keeps beside the ledger once it holds one: a
// ledger that goes missing or empty later is then refused, not remade.
const MarkerName = "wallet.marker"

// Errors Open returns for a ledger it will not use. Each message says how to
// recover.
var (
	ErrLedgerLost    = errors.New("wallet: ledger missing or empty where one was kept")
	ErrLedgerDamaged = errors.New("wallet: ledger damaged")
)

const recoverHint = "restore wallet.db from a backup, or move the data directory aside to start an empty ledger"

// Open opens the ledger in dir, creating it if dir never held one. It
// checks the file before use: a ledger that is truncated, damaged, holds
// values of the wrong type, or vanished (the marker remains) is refused
// with an error saying how to recover.
func Open(dir string, opts Options) (*Wallet, error) {
	if opts.InitialBalance == 0 {
		opts.InitialBalance = DefaultInitialBalance
	}
	if opts.LockTimeout == 0 {
		opts.LockTimeout = time.Second
	}
	if opts.MaxBatchDelay == 0 {
		opts.MaxBatchDelay = time.Millisecond
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("wallet: data dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	marker := filepath.Join(dir, MarkerName)
	if err := checkFile(path, marker, opts.New); err != nil {
		return nil, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("%w: %s (is another gameserver using this -data-dir?)", ErrLocked, path)
	case err != nil:
		return nil, fmt.Errorf("%w: open %s: %v; %s", ErrLedgerDamaged, path, err, recoverHint)
	}
	db.MaxBatchDelay = opts.MaxBatchDelay
	w := &Wallet{db: db, opts: opts, acks: make(map[string]struct{}), ackKick: make(chan struct{}, 1),
		stop: make(chan struct{}), stopped: make(chan struct{})}
	if err := w.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("%w: %s: %v; %s", ErrLedgerDamaged, path, err, recoverHint)
	}
	if _, err := os.Stat(marker); errors.Is(err, fs.ErrNotExist) {
		if err := fsutil.WriteFile(marker, []byte("stackwatch wallet ledger, created "+time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
			db.Close()
			return nil, fmt.Errorf("wallet: marker: %w", err)
		}
	}
	go w.flushAcks()
	if opts.BetHistory > 0 {
		w.pruning.Add(1)
		go w.pruneLoop()
	}
	return w, nil
}

// checkFile refuses a ledger bbolt must not map: one that vanished where
// the marker says a ledger was kept, or one shorter than its meta page says
// (bbolt would die of SIGBUS reading past the end).
func checkFile(path, marker string, fresh bool) error {
	fi, err := os.Stat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("wallet: %w", err)
	}
	if err != nil || fi.Size() == 0 {
		m, merr := os.ReadFile(marker)
		if merr != nil || fresh {
			if fresh {
				os.Remove(marker) // rewritten once the fresh ledger exists
			}
			return nil
		}
		return fmt.Errorf("%w: %s is missing or empty, but %s says: %q. "+
			"Restore wallet.db from a backup; to start a fresh ledger (every balance reset, pending results lost) pass -new-ledger",
			ErrLedgerLost, path, marker, strings.TrimSpace(string(m)))
	}
	if fresh {
		return fmt.Errorf("wallet: -new-ledger given, but %s holds a ledger: move it aside first", path)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrLedgerDamaged, path)
	}
	need, err := metaSize(path)
	if err != nil {
		return fmt.Errorf("%w: %s: %v; %s", ErrLedgerDamaged, path, err, recoverHint)
	}
	if fi.Size() < need {
		return fmt.Errorf("%w: %s is truncated: %d bytes, its meta page needs %d; %s",
			ErrLedgerDamaged, path, fi.Size(), need, recoverHint)
	}
	return nil
}

// bbolt's meta page: a 16-byte page header, then magic, version, page size,
// flags (uint32 each), root bucket (16 bytes), freelist page, high-water
// page id, txid, and an FNV-64a checksum of everything before it.
const (
	boltMagic        = 0xED0CDAED
	boltMetaOffset   = 16
	boltChecksumSpan = 56
)

// metaSize reads both bbolt meta pages and returns the file size the newer
// valid one requires (high-water page id × page size).
func metaSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	read := func(off int64) (pageSize uint32, need int64, txid uint64, ok bool) {
		buf := make([]byte, boltChecksumSpan+8)
		if _, err := f.ReadAt(buf, off+boltMetaOffset); err != nil {
			return 0, 0, 0, false
		}
		le := binary.NativeEndian
		h := fnv.New64a()
		h.Write(buf[:boltChecksumSpan])
		if le.Uint32(buf[0:]) != boltMagic || le.Uint64(buf[boltChecksumSpan:]) != h.Sum64() {
			return 0, 0, 0, false
		}
		pageSize = le.Uint32(buf[8:])
		hwm := le.Uint64(buf[40:])
		return pageSize, int64(hwm) * int64(pageSize), le.Uint64(buf[48:]), pageSize >= 512
	}
	ps, need0, tx0, ok0 := read(0)
	if !ok0 {
		ps = uint32(os.Getpagesize())
	}
	_, need1, tx1, ok1 := read(int64(ps))
	switch {
	case ok0 && (!ok1 || tx0 >= tx1):
		return need0, nil
	case ok1:
		return need1, nil
	}
	return 0, errors.New("no valid bbolt meta page")
}

// init checks the ledger and prepares it. bbolt panics on some damage it
// meets; that is a damaged ledger too, not a crash.
func (w *Wallet) init() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("bbolt: %v", r)
		}
	}()
	return w.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := meta.Get(keySchema); {
		case v == nil:
			if err := meta.Put(keySchema, schemaVersion); err != nil {
				return err
			}
		case !bytes.Equal(v, schemaVersion):
			return fmt.Errorf("unknown ledger schema %q", v)
		}
		for _, b := range [][]byte{bucketAccounts, bucketBets, bucketOutbox, bucketPruned} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketOrder) == nil {
			if err := backfillOrder(tx); err != nil {
				return err
			}
		}
		var damage error
		for err := range tx.Check() { // drained whole: Check's goroutine sends them all
			damage = cmp.Or(damage, err)
		}
		if damage != nil {
			return damage
		}
		if err := tx.Bucket(bucketAccounts).ForEach(func(k, v []byte) error {
			_, err := decodeBalance(k, v)
			return err
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketBets).ForEach(func(k, v []byte) error {
			_, err := decodeBet(k, v)
			return err
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketPruned).ForEach(func(k, v []byte) error {
			if !ValidBetID(string(v)) {
				return fmt.Errorf("pruned mark of %q: %q is not a bet id", k, v)
			}
			return nil
		}); err != nil {
			return err
		}
		var n, dead int64
		err = tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			var e outboxEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("outbox entry %q: %w", k, err)
			}
			n++
			if e.Dead {
				dead++
			}
			return nil
		})
		w.pending.Store(n)
		w.dead.Store(dead)
		return err
	})
}

// backfillOrder builds the bet-order index for a ledger written before it
// existed; such entries have no Seq and sort by bet id.
func backfillOrder(tx *bolt.Tx) error {
	order, err := tx.CreateBucket(bucketOrder)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
		var e outboxEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("outbox entry %q: %w", k, err)
		}
		return order.Put(orderKey(e.Result.PlayerID, e.Seq, e.Result.BetID), nil)
	})
}

// Close applies pending acks and closes the ledger.
func (w *Wallet) Close() error {
	w.closeMu.Do(func() {
		close(w.stop)
		<-w.stopped
		w.pruning.Wait()
	})
	return w.db.Close()
}

// Path is the ledger file.
func (w *Wallet) Path() string { return w.db.Path() }

func key(player, betID string) []byte { return []byte(player + "\x00" + betID) }

// ValidBetID reports whether id is usable as a bet id: 1-128 bytes of
// printable ASCII without spaces.
func ValidBetID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// balance reads the player's balance; a player never seen has the initial
// balance. A malformed value is an error, never a default.
func (w *Wallet) balance(tx *bolt.Tx, player string) (int64, error) {
	v := tx.Bucket(bucketAccounts).Get([]byte(player))
	if v == nil {
		return w.opts.InitialBalance, nil
	}
	return decodeBalance([]byte(player), v)
}

func decodeBalance(k, v []byte) (int64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("wallet: account %q: balance is %d bytes, want 8", k, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// decodeBet parses a bet record and checks it names its own key.
func decodeBet(k, v []byte) (Bet, error) {
	var b Bet
	if err := json.Unmarshal(v, &b); err != nil {
		return Bet{}, fmt.Errorf("wallet: bet record %q: %w", k, err)
	}
	if !bytes.Equal(key(b.Player, b.BetID), k) || (b.State != Deducted && b.State != Settled) {
		return Bet{}, fmt.Errorf("wallet: bet record %q: names %q/%q in state %q", k, b.Player, b.BetID, b.State)
	}
	return b, nil
}

func putBalance(tx *bolt.Tx, player string, bal int64) error {
	return tx.Bucket(bucketAccounts).Put([]byte(player), binary.BigEndian.AppendUint64(nil, uint64(bal)))
}

func getBet(tx *bolt.Tx, k []byte) (Bet, bool, error) {
	v := tx.Bucket(bucketBets).Get(k)
	if v == nil {
		return Bet{}, false, nil
	}
	b, err := decodeBet(k, v)
	return b, err == nil, err
}

func putBet(tx *bolt.Tx, b Bet) error {
	v, err := json.Marshal(b)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketBets).Put(key(b.Player, b.BetID), v)
}

// Balance is the player's balance now.
func (w *Wallet) Balance(player string) (int64, error) {
	var bal int64
	err := w.db.View(func(tx *bolt.Tx) (err error) {
		bal, err = w.balance(tx, player)
		return err
	})
	return bal, err
}

// Deduct takes a bet's stake and records the bet, in one transaction. If
// the player already placed this bet id, nothing changes and the recorded
// bet is returned with existed set. If ctx ends during the wallet latency,
// nothing is deducted and ctx's error is returned.
func (w *Wallet) Deduct(ctx context.Context, gameName, player, betID string, amount int64) (b Bet, existed bool, err error) {
	return w.DeductReceived(ctx, gameName, player, betID, amount, time.Now())
}

// DeductReceived is Deduct for a bet the server received at received: the
// player's results are redelivered in that order.
func (w *Wallet) DeductReceived(ctx context.Context, gameName, player, betID string, amount int64, received time.Time) (b Bet, existed bool, err error) {
	if !ValidBetID(betID) || amount <= 0 || amount > game.MaxBet || player == "" {
		return Bet{}, false, fmt.Errorf("%w: id %q amount %d", ErrBadBet, betID, amount)
	}
	if w.opts.Latency > 0 {
		t := time.NewTimer(w.opts.Latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return Bet{}, false, ctx.Err()
		}
	}
	// Checked here rather than inside the transaction: a failing function
	// makes bbolt rerun its whole batch. A cancel landing later means the
	// stake is taken and the bet settles for a client that has gone.
	if err := ctx.Err(); err != nil {
		return Bet{}, false, err
	}
	k := key(player, betID)
	err = w.db.Batch(func(tx *bolt.Tx) error {
		got, ok, err := getBet(tx, k)
		if err != nil {
			return err
		}
		if ok {
			b, existed = got, true
			return nil
		}
		if m := tx.Bucket(bucketPruned).Get([]byte(player)); m != nil && !idBefore(string(m), betID) {
			return fmt.Errorf("%w: bet %q, greatest pruned %q", ErrForgotten, betID, m)
		}
		bal, err := w.balance(tx, player)
		if err != nil {
			return err
		}
		if bal < amount {
			return ErrInsufficientFunds
		}
		if err := putBalance(tx, player, bal-amount); err != nil {
			return err
		}
		seq := uint64(received.UnixNano())
		b, existed = Bet{Player: player, BetID: betID, Game: gameName, Amount: amount, State: Deducted, Created: time.Now().UTC(), Seq: seq}, false
		return putBet(tx, b)
	})
	if errors.Is(err, ErrForgotten) {
		w.refused.Add(1)
	}
	return b, existed, err
}

// Settle credits a deducted bet's win and records its result (and puts it in
// the outbox), in one transaction. Settling a settled bet returns the
// recorded result and changes nothing.
func (w *Wallet) Settle(player, betID string, card game.Card) (protocol.BetResult, error) {
	if w.opts.Latency > 0 {
		time.Sleep(w.opts.Latency)
	}
	return w.settle(player, betID, card)
}

func (w *Wallet) settle(player, betID string, card game.Card) (protocol.BetResult, error) {
	k := key(player, betID)
	var res protocol.BetResult
	err := w.db.Batch(func(tx *bolt.Tx) error {
		b, ok, err := getBet(tx, k)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: %s/%s", ErrUnknownBet, player, betID)
		}
		if b.State == Settled && b.Result != nil {
			res = *b.Result
			return nil
		}
		bal, err := w.balance(tx, player)
		if err != nil {
			return err
		}
		bal += card.Win
		if err := putBalance(tx, player, bal); err != nil {
			return err
		}
		res = protocol.BetResult{BetID: betID, PlayerID: player, Game: b.Game, Amount: b.Amount,
			Win: card.Win, Balance: bal, Symbols: card.Symbols}
		b.State, b.Result = Settled, &res
		if err := putBet(tx, b); err != nil {
			return err
		}
		if !w.opts.Outbox {
			return nil
		}
		v, err := json.Marshal(outboxEntry{Result: res, Seq: b.Seq})
		if err != nil {
			return err
		}
		tx.OnCommit(func() { w.pending.Add(1) })
		if err := tx.Bucket(bucketOrder).Put(orderKey(player, b.Seq, betID), nil); err != nil {
			return err
		}
		return tx.Bucket(bucketOutbox).Put(k, v)
	})
	return res, err
}

// Lookup returns a player's bet record.
func (w *Wallet) Lookup(player, betID string) (Bet, bool, error) {
	var b Bet
	var ok bool
	err := w.db.View(func(tx *bolt.Tx) (err error) {
		b, ok, err = getBet(tx, key(player, betID))
		return err
	})
	return b, ok, err
}

// Unsettled lists bets deducted but not settled.
func (w *Wallet) Unsettled() ([]Bet, error) {
	var out []Bet
	err := w.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBets).ForEach(func(k, v []byte) error {
			b, err := decodeBet(k, v)
			if err != nil {
				return err
			}
			if b.State != Settled {
				out = append(out, b)
			}
			return nil
		})
	})
	return out, err
}

// Recover settles every unsettled bet with its deterministic draw and
// returns the results. Run it before serving, when no bet is in flight.
func (w *Wallet) Recover() ([]protocol.BetResult, error) {
	bets, err := w.Unsettled()
	if err != nil {
		return nil, err
	}
	out := make([]protocol.BetResult, 0, len(bets))
	for _, b := range bets {
		g, err := game.Lookup(b.Game)
		if err != nil {
			return out, fmt.Errorf("wallet: recover %s/%s: %w", b.Player, b.BetID, err)
		}
		res, err := w.settle(b.Player, b.BetID, g.Draw(b.Player, b.BetID, b.Amount))
		if err != nil {
			return out, fmt.Errorf("wallet: recover %s/%s: %w", b.Player, b.BetID, err)
		}
		out = append(out, res)
	}
	return out, nil
}

// Outbox lists the player's unacknowledged results in bet order.
func (w *Wallet) Outbox(player string) ([]protocol.BetResult, error) {
	var out []protocol.BetResult
	var after []byte
	for {
		page, next, err := w.OutboxPage(player, after, 1024)
		if err != nil || len(page) == 0 {
			return out, err
		}
		out, after = append(out, page...), next
	}
}

// OutboxPage returns up to limit of the player's unacknowledged results in
// bet order, starting after the cursor after (nil: from the first), and the
// cursor to pass for the next page.
func (w *Wallet) OutboxPage(player string, after []byte, limit int) ([]protocol.BetResult, []byte, error) {
	var out []protocol.BetResult
	prefix := append([]byte(player), 0)
	next := after
	err := w.db.View(func(tx *bolt.Tx) error {
		outbox := tx.Bucket(bucketOutbox)
		c := tx.Bucket(bucketOrder).Cursor()
		k, _ := c.Seek(prefix)
		if after != nil {
			if k, _ = c.Seek(after); bytes.Equal(k, after) {
				k, _ = c.Next()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Next() {
			next = bytes.Clone(k)
			ok := key(player, string(k[len(prefix)+8:]))
			v := outbox.Get(ok)
			if v == nil || w.acked(ok) {
				continue
			}
			var e outboxEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("wallet: outbox entry %q: %w", ok, err)
			}
			out = append(out, e.Result)
		}
		return nil
	})
	return out, next, err
}

// InOutbox reports whether the player's result still awaits an ack.
func (w *Wallet) InOutbox(player, betID string) bool {
	k := key(player, betID)
	if w.acked(k) {
		return false
	}
	var ok bool
	w.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketOutbox).Get(k) != nil
		return nil
	})
	return ok
}

// MarkDead flags an outbox entry as dead-lettered: live retries gave up and
// it waits for the player's reconnect.
func (w *Wallet) MarkDead(player, betID string) error {
	k := key(player, betID)
	return w.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		v := b.Get(k)
		if v == nil {
			return nil // acked meanwhile
		}
		var e outboxEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("wallet: outbox entry %q: %w", k, err)
		}
		if e.Dead {
			return nil
		}
		e.Dead = true
		nv, err := json.Marshal(e)
		if err != nil {
			return err
		}
		tx.OnCommit(func() { w.dead.Add(1) })
		return b.Put(k, nv)
	})
}

// Ack removes a player's result from the outbox. It returns at once; the
// removal is committed shortly after (see Flush). Only the owner can ack: the
// key includes the player.
func (w *Wallet) Ack(player, betID string) {
	w.ackMu.Lock()
	w.acks[string(key(player, betID))] = struct{}{}
	w.ackMu.Unlock()
	select {
	case w.ackKick <- struct{}{}:
	default:
	}
}

func (w *Wallet) acked(k []byte) bool {
	w.ackMu.Lock()
	defer w.ackMu.Unlock()
	_, ok := w.acks[string(k)]
	return ok
}

func (w *Wallet) flushAcks() {
	defer close(w.stopped)
	for {
		select {
		case <-w.ackKick:
			if err := w.Flush(); err != nil {
				// The acks stay queued and are retried with the next ones.
				time.Sleep(10 * time.Millisecond)
			}
		case <-w.stop:
			w.Flush()
			return
		}
	}
}

// Flush commits the acks received so far, in one transaction.
func (w *Wallet) Flush() error {
	w.ackMu.Lock()
	n := len(w.acks)
	keys := make([]string, 0, n)
	for k := range w.acks {
		keys = append(keys, k)
	}
	w.ackMu.Unlock()
	if n == 0 {
		return nil
	}
	err := w.db.Update(func(tx *bolt.Tx) error {
		b, order := tx.Bucket(bucketOutbox), tx.Bucket(bucketOrder)
		var removed, dead int64
		for _, k := range keys {
			v := b.Get([]byte(k))
			if v == nil {
				continue
			}
			var e outboxEntry
			_ = json.Unmarshal(v, &e) // a corrupt entry is still removed
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
			player, betID, _ := strings.Cut(k, "\x00")
			if err := order.Delete(orderKey(player, e.Seq, betID)); err != nil {
				return err
			}
			removed++
			if e.Dead {
				dead++
			}
		}
		tx.OnCommit(func() {
			w.pending.Add(-removed)
			w.dead.Add(-dead)
		})
		return nil
	})
	if err != nil {
		return fmt.Errorf("wallet: apply acks: %w", err)
	}
	w.ackMu.Lock()
	for _, k := range keys {
		delete(w.acks, k)
	}
	w.ackMu.Unlock()
	return nil
}

// DeadLetters is the number of dead-lettered results awaiting a reconnect.
func (w *Wallet) DeadLetters() int64 { return w.dead.Load() }

// OutboxLen is the number of unacknowledged results.
func (w *Wallet) OutboxLen() int64 { return w.pending.Load() }

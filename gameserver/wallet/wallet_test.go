package wallet_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/stackwatch/stackwatch/gameserver/game"
	"github.com/stackwatch/stackwatch/gameserver/wallet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t testing.TB, dir string, opts wallet.Options) *wallet.Wallet {
	t.Helper()
	w, err := wallet.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

var wd, _ = game.Lookup(game.WildDig)

func TestDeductIsIdempotent(t *testing.T) {
	w := open(t, t.TempDir(), wallet.Options{Outbox: true})
	ctx := context.Background()
	// Many concurrent resends of one bet id deduct once.
	var wg sync.WaitGroup
	var fresh sync.Map
	for i := range 20 {
		wg.Go(func() {
			_, existed, err := w.Deduct(ctx, wd.Name, "p1", "bet-1", 100)
			if err != nil {
				t.Error(err)
			}
			if !existed {
				fresh.Store(i, true)
			}
		})
	}
	wg.Wait()
	var n int
	fresh.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Fatalf("%d deductions reported fresh, want 1", n)
	}
	if bal, _ := w.Balance("p1"); bal != wallet.DefaultInitialBalance-100 {
		t.Fatalf("balance %d", bal)
	}
	card := wd.Draw("p1", "bet-1", 100)
	r1, err := w.Settle("p1", "bet-1", card)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := w.Settle("p1", "bet-1", game.Card{Win: 999999}) // a second settlement changes nothing
	if err != nil {
		t.Fatal(err)
	}
	if r1.Balance != wallet.DefaultInitialBalance-100+card.Win || r2.Balance != r1.Balance || r2.Win != r1.Win {
		t.Fatalf("settled %+v then %+v", r1, r2)
	}
	b, existed, err := w.Deduct(ctx, wd.Name, "p1", "bet-1", 100)
	if err != nil || !existed || b.State != wallet.Settled || b.Result.Balance != r1.Balance {
		t.Fatalf("resend after settlement: %+v %v %v", b, existed, err)
	}
	// The same bet id is a different bet for another player.
	if _, existed, _ := w.Deduct(ctx, wd.Name, "p2", "bet-1", 100); existed {
		t.Fatal("p2's bet-1 was taken for p1's")
	}
}

func TestDeductRespectsContextAndFunds(t *testing.T) {
	w := open(t, t.TempDir(), wallet.Options{InitialBalance: 100, Latency: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := w.Deduct(ctx, wd.Name, "p", "b", 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled deduct: %v", err)
	}
	if _, ok, _ := w.Lookup("p", "b"); ok {
		t.Fatal("a cancelled bet was recorded")
	}
	w2 := open(t, t.TempDir(), wallet.Options{InitialBalance: 100})
	if _, _, err := w2.Deduct(context.Background(), wd.Name, "p", "b", 101); !errors.Is(err, wallet.ErrInsufficientFunds) {
		t.Fatalf("overdraft: %v", err)
	}
	for _, bad := range []struct {
		id  string
		amt int64
	}{{"", 1}, {"x", 0}, {"x", -1}, {"x", game.MaxBet + 1}, {"a b", 1}, {strings.Repeat("x", 129), 1}} {
		if _, _, err := w2.Deduct(context.Background(), wd.Name, "p", bad.id, bad.amt); !errors.Is(err, wallet.ErrBadBet) {
			t.Errorf("Deduct(%q, %d) = %v, want ErrBadBet", bad.id, bad.amt, err)
		}
	}
}

// A bet deducted but not settled when the process died settles on the next
// Open exactly as it would have live, and waits in the outbox.
func TestRecoverSettlesUnsettledBets(t *testing.T) {
	dir := t.TempDir()
	w, err := wallet.Open(dir, wallet.Options{Outbox: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, _, err := w.Deduct(context.Background(), wd.Name, "p", fmt.Sprint("b", i), 1000); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Settle("p", "b0", wd.Draw("p", "b0", 1000)); err != nil {
		t.Fatal(err)
	}
	w.Close() // as if killed: b1-b4 deducted, not settled

	w = open(t, dir, wallet.Options{Outbox: true})
	un, err := w.Unsettled()
	if err != nil || len(un) != 4 {
		t.Fatalf("unsettled %v %v", un, err)
	}
	res, err := w.Recover()
	if err != nil || len(res) != 4 {
		t.Fatalf("recovered %v %v", res, err)
	}
	want := int64(wallet.DefaultInitialBalance)
	for i := range 5 {
		want += wd.Draw("p", fmt.Sprint("b", i), 1000).Win - 1000
	}
	if bal, _ := w.Balance("p"); bal != want {
		t.Fatalf("balance %d after recovery, want %d", bal, want)
	}
	for _, r := range res {
		if card := wd.Draw("p", r.BetID, 1000); r.Win != card.Win || fmt.Sprint(r.Symbols) != fmt.Sprint(card.Symbols) {
			t.Fatalf("recovered %+v, live draw %+v", r, card)
		}
	}
	if again, _ := w.Recover(); len(again) != 0 {
		t.Fatalf("second recovery settled %d bets", len(again))
	}
	if out, _ := w.Outbox("p"); len(out) != 5 || w.OutboxLen() != 5 {
		t.Fatalf("outbox %d (len %d), want 5", len(out), w.OutboxLen())
	}
}

func TestOutboxAckAndDeadLetters(t *testing.T) {
	dir := t.TempDir()
	w, err := wallet.Open(dir, wallet.Options{Outbox: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "b"} {
		for i := range 3 {
			id := fmt.Sprint("bet", i)
			w.Deduct(context.Background(), wd.Name, p, id, 10)
			if _, err := w.Settle(p, id, wd.Draw(p, id, 10)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.MarkDead("a", "bet0"); err != nil {
		t.Fatal(err)
	}
	w.MarkDead("a", "bet0") // twice counts once
	w.MarkDead("a", "nope") // unknown: nothing
	if w.DeadLetters() != 1 || w.OutboxLen() != 6 {
		t.Fatalf("dead %d outbox %d", w.DeadLetters(), w.OutboxLen())
	}
	// Only the owner can ack.
	w.Ack("b", "bet0")
	if out, _ := w.Outbox("b"); len(out) != 2 {
		t.Fatalf("b's outbox after b's ack: %d, want 2 (hidden before the flush)", len(out))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if out, _ := w.Outbox("a"); len(out) != 3 {
		t.Fatalf("b's ack of bet0 touched a's outbox: %d left", len(out))
	}
	for _, r := range must(w.Outbox("a")) {
		if r.PlayerID != "a" {
			t.Fatalf("a's outbox holds %+v", r)
		}
	}
	w.Ack("a", "bet0")
	if w.InOutbox("a", "bet0") {
		t.Fatal("acked result still reported in the outbox")
	}
	w.Ack("a", "bet0") // twice: harmless
	w.Ack("a", "never-settled")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.DeadLetters() != 0 || w.OutboxLen() != 4 {
		t.Fatalf("after acks: dead %d outbox %d, want 0 and 4", w.DeadLetters(), w.OutboxLen())
	}
	w.MarkDead("a", "bet1")
	w.Ack("a", "bet2") // applied by Close
	w.Close()
	// Counts survive a restart.
	w = open(t, dir, wallet.Options{Outbox: true})
	if w.DeadLetters() != 1 || w.OutboxLen() != 3 {
		t.Fatalf("after reopen: dead %d outbox %d", w.DeadLetters(), w.OutboxLen())
	}
}

func TestLegacyKeepsNoOutbox(t *testing.T) {
	w := open(t, t.TempDir(), wallet.Options{})
	w.Deduct(context.Background(), wd.Name, "p", "b", 10)
	if _, err := w.Settle("p", "b", wd.Draw("p", "b", 10)); err != nil {
		t.Fatal(err)
	}
	if out, _ := w.Outbox("p"); len(out) != 0 {
		t.Fatalf("outbox %v", out)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Run("locked", func(t *testing.T) {
		dir := t.TempDir()
		open(t, dir, wallet.Options{})
		_, err := wallet.Open(dir, wallet.Options{LockTimeout: 100 * time.Millisecond})
		if !errors.Is(err, wallet.ErrLocked) || !strings.Contains(err.Error(), "-data-dir") {
			t.Fatalf("second open: %v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		dir := t.TempDir()
		junk := []byte(strings.Repeat("not a bbolt file ", 1000))
		if err := os.WriteFile(filepath.Join(dir, wallet.FileName), junk, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := wallet.Open(dir, wallet.Options{})
		if !errors.Is(err, wallet.ErrLedgerDamaged) || !strings.Contains(err.Error(), "restore wallet.db from a backup") {
			t.Fatalf("open garbage: %v", err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, wallet.FileName)); string(b) != string(junk) {
			t.Fatal("the bad file was modified")
		}
	})
	t.Run("empty, never used", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, wallet.FileName), nil, 0o600)
		// No marker: this directory never held a ledger, so start one.
		w := open(t, dir, wallet.Options{})
		if bal, _ := w.Balance("p"); bal != wallet.DefaultInitialBalance {
			t.Fatal(bal)
		}
	})
}

// usedLedger makes a ledger holding enough bets to span many pages, closes
// it and returns its directory and file.
func usedLedger(t *testing.T) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	w, err := wallet.Open(dir, wallet.Options{Outbox: true, MaxBatchDelay: time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		id := fmt.Sprint("b", i)
		if _, _, err := w.Deduct(context.Background(), wd.Name, fmt.Sprint("p", i%7), id, 10); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(dir, wallet.FileName)
}

// Every bad ledger is refused with a message saying how to recover, and is
// left as it was: never a fresh ledger over an old one, never a crash.
func TestOpenRefusesBadLedgers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
		want   error
	}{
		{"emptied", func(t *testing.T, path string) { truncate(t, path, 0) }, wallet.ErrLedgerLost},
		{"deleted", func(t *testing.T, path string) { os.Remove(path) }, wallet.ErrLedgerLost},
		{"cut to a third", func(t *testing.T, path string) { truncate(t, path, size(t, path)/3) }, wallet.ErrLedgerDamaged},
		{"meta pages zeroed", func(t *testing.T, path string) { overwrite(t, path, 0, make([]byte, 8192)) }, wallet.ErrLedgerDamaged},
		{"data page scribbled", func(t *testing.T, path string) {
			overwrite(t, path, 3*4096, bytes.Repeat([]byte{0xA5}, 4096))
		}, wallet.ErrLedgerDamaged},
		{"3-byte balance", func(t *testing.T, path string) { put(t, path, "accounts", "p1", []byte{1, 2, 3}) }, wallet.ErrLedgerDamaged},
		{"bet record not JSON", func(t *testing.T, path string) { put(t, path, "bets", "p1\x00b1", []byte("{nope")) }, wallet.ErrLedgerDamaged},
		{"bet record under another key", func(t *testing.T, path string) {
			put(t, path, "bets", "p1\x00b1", []byte(`{"player":"p2","bet_id":"b9","state":"settled"}`))
		}, wallet.ErrLedgerDamaged},
		{"outbox entry not JSON", func(t *testing.T, path string) { put(t, path, "outbox", "p1\x00b1", []byte("x")) }, wallet.ErrLedgerDamaged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, path := usedLedger(t)
			tc.damage(t, path)
			before, _ := os.ReadFile(path)
			_, err := wallet.Open(dir, wallet.Options{Outbox: true})
			if !errors.Is(err, tc.want) {
				t.Fatalf("open: %v, want %v", err, tc.want)
			}
			if !strings.Contains(strings.ToLower(err.Error()), "restore wallet.db from a backup") {
				t.Errorf("error does not say how to recover: %v", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("the refused ledger was modified")
			}
		})
	}
}

// -new-ledger is the explicit way past a lost ledger, and only that.
func TestOpenNewLedger(t *testing.T) {
	dir, path := usedLedger(t)
	truncate(t, path, 0)
	w := open(t, dir, wallet.Options{New: true})
	if bal, _ := w.Balance("p1"); bal != wallet.DefaultInitialBalance {
		t.Fatalf("fresh ledger balance %d", bal)
	}
	w.Close()
	// Now in use: New is refused rather than hiding the ledger.
	if _, err := wallet.Open(dir, wallet.Options{New: true}); err == nil || !strings.Contains(err.Error(), "move it aside") {
		t.Fatalf("New over a ledger: %v", err)
	}
	// The marker was rewritten: emptying it again is refused again.
	truncate(t, path, 0)
	if _, err := wallet.Open(dir, wallet.Options{}); !errors.Is(err, wallet.ErrLedgerLost) {
		t.Fatalf("open: %v", err)
	}
}

func truncate(t *testing.T, path string, n int64) {
	t.Helper()
	if err := os.Truncate(path, n); err != nil {
		t.Fatal(err)
	}
}

func size(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func overwrite(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// put writes a raw value into the closed ledger with bbolt itself, the way
// a bug or a hand edit would.
func put(t *testing.T, path, bucket, key string, v []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucket)).Put([]byte(key), v) }); err != nil {
		t.Fatal(err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// BenchmarkSettle measures one bet's two ledger transactions (deduct, then
// settle with the outbox), with concurrent bettors sharing fsyncs.
func BenchmarkSettle(b *testing.B) {
	w := open(b, b.TempDir(), wallet.Options{Outbox: true, InitialBalance: 1 << 60})
	var n atomic.Int64
	b.SetParallelism(8)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			p, id := fmt.Sprint("p", i%64), fmt.Sprint("b", i)
			if _, _, err := w.Deduct(context.Background(), wd.Name, p, id, 10); err != nil {
				b.Fatal(err)
			}
			if _, err := w.Settle(p, id, wd.Draw(p, id, 10)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "bets/s")
}

func BenchmarkDraw(b *testing.B) {
	for i := 0; b.Loop(); i++ {
		wd.Draw("player", fmt.Sprint(i), 100)
	}
}

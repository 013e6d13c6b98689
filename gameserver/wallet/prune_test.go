package wallet_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stackwatch/stackwatch/gameserver/wallet"
)

// playRound runs n bets per player through w as the server does — deduct,
// settle, ack — all received at t, concurrently so bbolt batches them.
func playRound(t *testing.T, w *wallet.Wallet, round, players, n int, at time.Time) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, players*n)
	for p := range players {
		player := fmt.Sprintf("p%d", p)
		for i := range n {
			id := fmt.Sprintf("%s-b%d", player, round*n+i)
			wg.Go(func() {
				if _, _, err := w.DeductReceived(context.Background(), wd.Name, player, id, 10, at); err != nil {
					errs <- err
					return
				}
				if _, err := w.Settle(player, id, wd.Draw(player, id, 10)); err != nil {
					errs <- err
					return
				}
				w.Ack(player, id)
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestPruningBoundsTheFile runs the same bets through two real ledgers, one
// pruning everything older than two rounds after each round, one keeping
// every bet: the pruned file stops growing, the other does not.
func TestPruningBoundsTheFile(t *testing.T) {
	const rounds, players, perRound = 16, 4, 250
	start := time.Now().Add(-time.Hour)
	grow := func(prune bool) []int64 {
		dir := t.TempDir()
		w := open(t, dir, wallet.Options{Outbox: true})
		var sizes []int64
		for r := range rounds {
			at := start.Add(time.Duration(r) * time.Minute)
			playRound(t, w, r, players, perRound, at)
			if prune {
				n, err := w.Prune(at.Add(-time.Minute)) // keeps this round and the last
				if err != nil {
					t.Fatal(err)
				}
				if want := players * perRound; r >= 2 && n != want {
					t.Fatalf("round %d: pruned %d, want the round before last's %d", r, n, want)
				}
			}
			sizes = append(sizes, size(t, w.Path()))
		}
		return sizes
	}
	kept, pruned := grow(false), grow(true)
	t.Logf("file size by round, keeping every bet: %v", kept)
	t.Logf("file size by round, pruning:           %v", pruned)
	if last, mid := pruned[rounds-1], pruned[rounds/2-1]; last != mid {
		t.Errorf("pruned ledger still grows: %d bytes after round %d, %d after round %d", mid, rounds/2, last, rounds)
	}
	if last, mid := kept[rounds-1], kept[rounds/2-1]; last < mid*3/2 {
		t.Errorf("unpruned ledger grew only from %d to %d bytes: the test bets too little to tell", mid, last)
	}
}

// TestPruneKeepsWhatIsStillNeeded: only settled, acknowledged, old bets go;
// a resend of a pruned bet is refused, never deducted twice, and the ledger
// still passes its checks on reopening.
func TestPruneKeepsWhatIsStillNeeded(t *testing.T) {
	dir := t.TempDir()
	w, err := wallet.Open(dir, wallet.Options{Outbox: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	old, recent := time.Now().Add(-2*time.Hour), time.Now()
	deduct := func(id string, at time.Time) {
		t.Helper()
		if _, _, err := w.DeductReceived(ctx, wd.Name, "alice", id, 10, at); err != nil {
			t.Fatal(err)
		}
	}
	settle := func(id string) {
		t.Helper()
		if _, err := w.Settle("alice", id, wd.Draw("alice", id, 10)); err != nil {
			t.Fatal(err)
		}
	}
	deduct("b1", old) // unsettled
	deduct("b2", old) // settled, result not acked
	settle("b2")
	deduct("b3", old) // settled and acked: the only one to go
	settle("b3")
	w.Ack("alice", "b3")
	deduct("b5", recent) // too recent
	settle("b5")
	w.Ack("alice", "b5")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}

	n, err := w.Prune(time.Now().Add(-time.Hour))
	if err != nil || n != 1 || w.Pruned() != 1 {
		t.Fatalf("Prune = %d, %v (Pruned %d); want only b3", n, err, w.Pruned())
	}
	for id, want := range map[string]bool{"b1": true, "b2": true, "b3": false, "b5": true} {
		if _, ok, err := w.Lookup("alice", id); err != nil || ok != want {
			t.Errorf("after pruning, Lookup(%s) = %v, %v; want %v", id, ok, err, want)
		}
	}

	bal := must(w.Balance("alice"))
	for _, id := range []string{"b3", "b0", "a9"} { // the pruned bet, and ids not above it
		if _, _, err := w.DeductReceived(ctx, wd.Name, "alice", id, 10, time.Now()); !errors.Is(err, wallet.ErrForgotten) {
			t.Errorf("bet %s after pruning b3: err %v, want ErrForgotten", id, err)
		}
	}
	if got := must(w.Balance("alice")); got != bal || w.Refused() != 3 {
		t.Errorf("refused bets moved the balance from %d to %d (Refused %d, want 3)", bal, got, w.Refused())
	}
	deduct("b6", recent) // above the mark: a new bet
	deduct("b10", recent)
	if _, _, err := w.DeductReceived(ctx, wd.Name, "bob", "b3", 10, time.Now()); err != nil {
		t.Errorf("another player's b3: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	w = open(t, dir, wallet.Options{Outbox: true}) // the startup check passes
	res, err := w.Recover()
	if err != nil || len(res) != 4 { // alice's b1, b6, b10 and bob's b3 were never settled
		t.Fatalf("Recover after pruning = %d results, %v", len(res), err)
	}
	if _, _, err := w.DeductReceived(ctx, wd.Name, "alice", "b3", 10, time.Now()); !errors.Is(err, wallet.ErrForgotten) {
		t.Errorf("after reopening, resend of pruned b3: err %v, want ErrForgotten", err)
	}
}

// TestPrunerRunsInBackground: with BetHistory set, Open starts a pruner on
// the interval the history implies, and Close stops it.
func TestPrunerRunsInBackground(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		const history = time.Minute
		w, err := wallet.Open(dir, wallet.Options{Outbox: true, BetHistory: history})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		playRound(t, w, 0, 2, 3, time.Now())
		time.Sleep(history) // not yet older than the history at any tick
		synctest.Wait()
		if n := w.Pruned(); n != 0 {
			t.Fatalf("pruned %d bets younger than the history", n)
		}
		time.Sleep(wallet.PruneInterval(history))
		synctest.Wait()
		if n := w.Pruned(); n != 6 {
			t.Fatalf("one interval past the history, pruned %d of 6 bets", n)
		}
	})
}

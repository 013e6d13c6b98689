package wallet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// pruneBatch bounds the bet records one pruning transaction looks at, so a
// bet waiting for the write lock waits a few milliseconds at most.
const pruneBatch = 512

// PruneInterval is how often a wallet with the given bet history prunes:
// a tenth of the history, between a second and a minute.
func PruneInterval(history time.Duration) time.Duration {
	return min(max(history/10, time.Second), time.Minute)
}

func (w *Wallet) pruneLoop() {
	defer w.pruning.Done()
	t := time.NewTicker(PruneInterval(w.opts.BetHistory))
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case now := <-t.C:
			// A failed pass is retried whole on the next tick; what it
			// pruned before failing stays pruned.
			_, _ = w.prune(now.Add(-w.opts.BetHistory), w.stop)
		}
	}
}

// Prune deletes the records of settled, acknowledged bets received before
// cutoff, in short transactions, and returns how many it deleted. The
// background pruner calls it; it is exported for tools and tests.
func (w *Wallet) Prune(cutoff time.Time) (int, error) { return w.prune(cutoff, nil) }

func (w *Wallet) prune(cutoff time.Time, stop <-chan struct{}) (int, error) {
	total := 0
	var after []byte
	for {
		select {
		case <-stop:
			return total, nil
		default:
		}
		n, next, err := w.pruneBatch(cutoff, after)
		total += n
		if err != nil || next == nil {
			return total, err
		}
		after = next
	}
}

// pruneBatch prunes among up to pruneBatch records after the key after (nil:
// from the first) and returns the last key it looked at, or nil at the end.
func (w *Wallet) pruneBatch(cutoff time.Time, after []byte) (int, []byte, error) {
	var n int
	var last []byte
	err := w.db.Update(func(tx *bolt.Tx) error {
		n, last = 0, nil
		bets, outbox, marks := tx.Bucket(bucketBets), tx.Bucket(bucketOutbox), tx.Bucket(bucketPruned)
		c := bets.Cursor()
		k, v := c.First()
		if after != nil {
			if k, v = c.Seek(after); bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		var doomed [][]byte
		for seen := 0; k != nil && seen < pruneBatch; k, v = c.Next() {
			seen++
			last = bytes.Clone(k)
			var b struct { // the fields pruning needs, not the whole record
				State   State     `json:"state"`
				Created time.Time `json:"created"`
				Seq     uint64    `json:"seq"`
			}
			if err := json.Unmarshal(v, &b); err != nil {
				return fmt.Errorf("wallet: bet record %q: %w", k, err)
			}
			received := b.Created
			if b.Seq != 0 {
				received = time.Unix(0, int64(b.Seq))
			}
			if b.State != Settled || !received.Before(cutoff) || outbox.Get(k) != nil {
				continue
			}
			doomed = append(doomed, last)
		}
		if k == nil {
			last = nil
		}
		for _, k := range doomed {
			player, betID, _ := bytes.Cut(k, []byte{0})
			if m := marks.Get(player); m == nil || idBefore(string(m), string(betID)) {
				if err := marks.Put(player, betID); err != nil { // doomed holds copies
					return err
				}
			}
			if err := bets.Delete(k); err != nil {
				return err
			}
		}
		n = len(doomed)
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("wallet: prune: %w", err)
	}
	w.pruned.Add(int64(n))
	return n, last, nil
}

// idBefore orders bet ids the way ErrForgotten compares them: shorter
// first, then bytewise, so counter suffixes sort numerically.
func idBefore(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// Pruned is the number of bet records pruned since Open.
func (w *Wallet) Pruned() int64 { return w.pruned.Load() }

// Refused is the number of bets refused with ErrForgotten since Open.
func (w *Wallet) Refused() int64 { return w.refused.Load() }

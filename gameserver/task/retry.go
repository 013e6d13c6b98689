package task

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// retrier redelivers results whose session was gone (fix: retry with
// exponential backoff). One goroutine serves the whole queue, so the
// goroutine count stays flat however many results wait. Each try looks the
// player's current session up afresh.
type retrier struct {
	t      *Task
	policy RetryPolicy

	mu    sync.Mutex
	items retryHeap
	byKey map[retryKey]*retryItem
	wake  chan struct{}
}

type retryKey struct{ player, betID string }

type retryItem struct {
	b     *bet
	data  []byte
	tries int
	next  time.Time
	index int
}

func newRetrier(t *Task, p RetryPolicy) *retrier {
	return &retrier{t: t, policy: p, byKey: make(map[retryKey]*retryItem), wake: make(chan struct{}, 1)}
}

// backoff is the delay before try n (1-based): Base·2^(n-1), capped at Max,
// with up to 50% random jitter so retries after a mass disconnect spread out.
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.Base
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	return d/2 + rand.N(d/2+1)
}

func (r *retrier) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.items)
}

// add queues a result; false if the queue is full.
func (r *retrier) add(b *bet, data []byte) bool {
	r.mu.Lock()
	k := retryKey{b.player, b.id}
	if _, dup := r.byKey[k]; dup {
		r.mu.Unlock()
		return true
	}
	if len(r.items) >= r.policy.MaxQueue {
		r.mu.Unlock()
		return false
	}
	it := &retryItem{b: b, data: data, next: time.Now().Add(r.policy.backoff(1))}
	heap.Push(&r.items, it)
	r.byKey[k] = it
	r.mu.Unlock()
	r.poke()
	return true
}

func (r *retrier) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *retrier) removeLocked(it *retryItem) {
	heap.Remove(&r.items, it.index)
	delete(r.byKey, retryKey{it.b.player, it.b.id})
}

// drop forgets one result (acked).
func (r *retrier) drop(player, betID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if it, ok := r.byKey[retryKey{player, betID}]; ok {
		r.removeLocked(it)
	}
}

// dropPlayer forgets a player's results: they reconnected and get the whole
// outbox at once.
func (r *retrier) dropPlayer(player string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, it := range r.byKey {
		if k.player == player {
			r.removeLocked(it)
		}
	}
}

func (r *retrier) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var due []*retryItem
		wait := time.Hour
		r.mu.Lock()
		for len(r.items) > 0 && !r.items[0].next.After(now) {
			it := heap.Pop(&r.items).(*retryItem)
			delete(r.byKey, retryKey{it.b.player, it.b.id})
			due = append(due, it)
		}
		if len(r.items) > 0 {
			wait = r.items[0].next.Sub(now)
		}
		r.mu.Unlock()

		for _, it := range due {
			r.try(it)
		}
		if len(due) > 0 {
			continue // retries may have rescheduled: recompute the wait
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
			if !timer.Stop() {
				<-timer.C
			}
		case <-timer.C:
		}
	}
}

// try makes one delivery attempt and reschedules or dead-letters on failure.
func (r *retrier) try(it *retryItem) {
	t := r.t
	it.tries++
	if !t.wallet.InOutbox(it.b.player, it.b.id) {
		return // acked (or redelivered and acked) meanwhile
	}
	if s := t.lookup(it.b.player); s != nil && !s.IsClosed() {
		m, unlock := t.box(it.b.player)
		if m.backlog != nil {
			unlock()
			return // goes out with the player's backlog, in bet order
		}
		err := t.deliver(s, it.b.player, it.data)
		unlock()
		if err == nil {
			t.m.BetDuration.Observe(time.Since(it.b.start).Seconds())
			return
		}
	}
	if it.tries >= r.policy.Tries {
		t.deadLetter(it.b)
		return
	}
	it.next = time.Now().Add(r.policy.backoff(it.tries + 1))
	r.mu.Lock()
	k := retryKey{it.b.player, it.b.id}
	if _, dup := r.byKey[k]; !dup {
		heap.Push(&r.items, it)
		r.byKey[k] = it
	}
	r.mu.Unlock()
}

type retryHeap []*retryItem

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h retryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *retryHeap) Push(x any) {
	it := x.(*retryItem)
	it.index = len(*h)
	*h = append(*h, it)
}
func (h *retryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}

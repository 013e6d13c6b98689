package task

import (
	"runtime/pprof"
	"sync"
	"weak"
)

// leakProfileBuiltIn reports whether the binary was built with
// GOEXPERIMENT=goroutineleakprofile, whose profile can mark goroutines as
// leaked for good.
func leakProfileBuiltIn() bool { return pprof.Lookup("goroutineleak") != nil }

// waiter is the legacy handler's confirmation to the reckon goroutine.
type waiter struct {
	ch   chan struct{}
	once sync.Once
	reg  *leakRegistry
	id   uint64
}

// release confirms; safe to call more than once and on nil.
func (w *waiter) release() {
	if w == nil {
		return
	}
	w.once.Do(func() {
		close(w.ch)
		w.reg.remove(w.id)
	})
}

// leakRegistry remembers legacy waiters weakly, so Close can release the
// goroutines legacy mode leaks (where that is safe, see Task.Close) while a leaked goroutine's channel stays
// reachable only from that goroutine — as in the original, where nothing
// could ever wake it (and the runtime's goroutineleak profile can prove it).
type leakRegistry struct {
	mu     sync.Mutex
	next   uint64
	m      map[uint64]weak.Pointer[waiter]
	closed bool
}

func (r *leakRegistry) init() { r.m = make(map[uint64]weak.Pointer[waiter]) }

func (r *leakRegistry) add() *waiter {
	w := &waiter{ch: make(chan struct{}), reg: r}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		w.once.Do(func() { close(w.ch) }) // later release() calls must not close it again
		return w
	}
	r.next++
	w.id = r.next
	r.m[w.id] = weak.Make(w)
	return w
}

func (r *leakRegistry) remove(id uint64) {
	r.mu.Lock()
	delete(r.m, id)
	r.mu.Unlock()
}

func (r *leakRegistry) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

func (r *leakRegistry) releaseAll() {
	r.mu.Lock()
	r.closed = true
	ws := make([]*waiter, 0, len(r.m))
	for _, p := range r.m {
		if w := p.Value(); w != nil {
			ws = append(ws, w)
		}
	}
	r.mu.Unlock()
	for _, w := range ws {
		w.release()
	}
}

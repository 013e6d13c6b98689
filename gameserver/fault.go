package gameserver

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"

	"github.com/stackwatch/stackwatch/gameserver/stacktool"
)

// Fault kinds served by POST /debug/fault?kind=… with Config.FaultInjection,
// for demos and end-to-end tests of the crash pipeline.
const (
	// FaultFatal kills the process with "fatal error: concurrent map
	// writes", which recover cannot catch: only the crash output file
	// (see CaptureCrashes) keeps its trace.
	FaultFatal = "fatal"
	// FaultPanic panics in a goroutine guarded by the server's recover
	// helper, which writes one stacktrace file; the server stays up.
	FaultPanic = "panic"
	// FaultLeak parks n goroutines (query parameter n, default
	// DefaultFaultLeak) on channels nothing else can reach, as the legacy
	// leak does.
	FaultLeak = "leak"
)

// Bounds on FaultLeak: per request, and in total over the process's life.
const (
	DefaultFaultLeak = 100
	MaxFaultLeak     = 10_000
	MaxFaultLeaked   = 100_000
)

// faults serves POST /debug/fault.
type faults struct {
	rec    *stacktool.Recorder
	log    *slog.Logger
	leaked atomic.Int64
}

// registerFault adds POST /debug/fault to mux, which addr serves: only a
// loopback listener may carry it, as anyone reaching it can kill the process.
func (s *Server) registerFault(mux *http.ServeMux, addr net.Addr) error {
	if t, ok := addr.(*net.TCPAddr); !ok || !t.IP.IsLoopback() {
		return fmt.Errorf("gameserver: fault injection refused: %s is beyond loopback", addr)
	}
	f := &faults{rec: s.rec, log: s.log}
	mux.HandleFunc("POST /debug/fault", f.serveHTTP) // other methods: 405 from the mux
	return nil
}

func (f *faults) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch kind := r.URL.Query().Get("kind"); kind {
	case FaultFatal:
		f.log.Warn("fault injection: fatal error: concurrent map writes")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintln(w, "crashing: fatal error: concurrent map writes")
		http.NewResponseController(w).Flush()
		go concurrentMapWrites()
	case FaultPanic:
		f.log.Warn("fault injection: panic")
		func() {
			defer f.rec.RecoverFunc()
			settleInjectedBet(nil)
		}()
		fmt.Fprintln(w, "panic recovered; its stacktrace file is in the log directory")
	case FaultLeak:
		n := DefaultFaultLeak
		if v := r.URL.Query().Get("n"); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n < 1 || n > MaxFaultLeak {
				http.Error(w, fmt.Sprintf("n must be 1..%d, got %q", MaxFaultLeak, v), http.StatusBadRequest)
				return
			}
		}
		if total := f.leaked.Add(int64(n)); total > MaxFaultLeaked {
			f.leaked.Add(-int64(n))
			http.Error(w, fmt.Sprintf("refused: would park more than %d goroutines in all", MaxFaultLeaked), http.StatusConflict)
			return
		}
		f.log.Warn("fault injection: parking goroutines", "n", n)
		parkGoroutines(n)
		fmt.Fprintf(w, "parked %d goroutines (%d in all)\n", n, f.leaked.Load())
	default:
		http.Error(w, fmt.Sprintf("unknown kind %q: want %s, %s or %s", kind, FaultFatal, FaultPanic, FaultLeak), http.StatusBadRequest)
	}
}

// concurrentMapWrites writes one map from many goroutines without a lock
// until the runtime notices and dies with "fatal error: concurrent map
// writes" (the crash site is the closure below). The detection needs two
// writers truly in parallel, hence at least two Ps.
func concurrentMapWrites() {
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
	balances := make(map[int]int)
	for w := range 8 {
		go func() {
			for i := 0; ; i++ {
				balances[i%64] = w
			}
		}()
	}
}

// injectedBet stands in for game state a handler reads.
type injectedBet struct{ stake int64 }

// settleInjectedBet dereferences a nil bet: a nil-pointer panic in game code.
//
//go:noinline
func settleInjectedBet(b *injectedBet) int64 { return b.stake }

// parkGoroutines starts n goroutines that each wait on a channel no one
// else holds, so the runtime's goroutineleak profile proves them leaked.
func parkGoroutines(n int) {
	for range n {
		go func() {
			never := make(chan struct{})
			<-never
		}()
	}
}

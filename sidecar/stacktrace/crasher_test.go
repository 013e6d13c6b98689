package stacktrace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime/debug"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The tests re-execute their own binary with crasherEnv set to a shape name;
// the child then dies (or logs) in that shape and the parent parses the real
// bytes the installed Go runtime printed.
const crasherEnv = "STACKTRACE_TEST_CRASHER"

func TestMain(m *testing.M) {
	if shape := os.Getenv(crasherEnv); shape != "" {
		crash(shape)
		fmt.Fprintln(os.Stderr, "crasher: shape", shape, "did not crash")
		os.Exit(3)
	}
	goleak.VerifyTestMain(m)
}

// Session stands in for the game server's gate session.
type Session struct{ conn io.Writer }

// Write dereferences s: with a nil *Session it is the incident's panic.
//
//go:noinline
func (s *Session) Write(b []byte) error {
	_, err := s.conn.Write(b)
	return err
}

//go:noinline
func clientWrite(s *Session, data []byte, size int) error { return s.Write(data[:size]) }

//go:noinline
func clientWriteIface(w io.Writer, data []byte, size int) error {
	_, err := w.Write(data[:size])
	return err
}

//go:noinline
func onWildDigBetClientResp(s *Session) { _ = clientWrite(s, make([]byte, 0x56, 0x80), 0x56) }

// overflow recurses until the runtime's stack limit stops it: n only grows.
//
//go:noinline
func overflow(n int) int {
	if n == 0 {
		return 0
	}
	return overflow(n+1) + 1
}

//go:noinline
func onBetIface(w io.Writer) { _ = clientWriteIface(w, make([]byte, 0x56, 0x80), 0x56) }

// stacktoolRecoverFunc mimics the game server's recovery helper: the panic
// value on the first line, then debug.Stack().
func stacktoolRecoverFunc() {
	if r := recover(); r != nil {
		fmt.Fprintf(os.Stderr, "%v\n%s", r, debug.Stack())
	}
}

// inlinedIndex is small enough to be inlined: its frame prints as "(...)".
func inlinedIndex(s []int, i int) int { return s[i] }

//go:noinline
func recurse(n int) {
	if n == 0 {
		panic("deep")
	}
	recurse(n - 1)
}

var sink any

// nilMap hides the nil map from the compiler and linters.
//
//go:noinline
func nilMap() map[string]int { return nil }

func inGoroutine(f func()) {
	done := make(chan struct{})
	go func() {
		f()
		close(done) // not deferred: a panicking f must not release the caller
	}()
	<-done
}

// crash dies in the given shape. It runs only in the child process.
func crash(shape string) {
	switch shape {
	case "nil_goroutine":
		inGoroutine(func() { onWildDigBetClientResp(nil) })
	case "nil_iface":
		inGoroutine(func() { onBetIface(nil) })
	case "server_shape":
		// The game server recovers, writes the file and carries on.
		inGoroutine(func() {
			defer stacktoolRecoverFunc()
			onWildDigBetClientResp(nil)
		})
		os.Exit(0)
	case "server_shape_iface":
		inGoroutine(func() {
			defer stacktoolRecoverFunc()
			onBetIface(nil)
		})
		os.Exit(0)
	case "repanicked":
		func() {
			defer func() { panic(recover()) }()
			onWildDigBetClientResp(nil)
		}()
	case "recovered_new_value":
		func() {
			defer func() {
				r := recover()
				panic(fmt.Sprintf("wrapped: %v", r))
			}()
			panic("first")
		}()
	case "index":
		s := []int{1, 2, 3}
		n := len(os.Args) + 10
		sink = inlinedIndex(s, n)
	case "slice_bounds":
		s := []int{1, 2, 3}
		n := len(os.Args) + 10
		sink = s[:n]
	case "closed_channel":
		c := make(chan int, 1)
		close(c)
		c <- 1
	case "close_closed":
		c := make(chan int)
		close(c)
		close(c)
	case "nil_map":
		m := nilMap()
		m["x"] = 1
	case "divide":
		a, b := 1, len(os.Getenv(crasherEnv+"_UNSET"))
		sink = a / b
	case "type_assertion":
		var v any = "string"
		sink = v.(int)
	case "custom_error":
		panic(errors.New("bet store unavailable"))
	case "custom_multiline":
		panic("first line\nsecond line\nthird line")
	case "deep":
		recurse(300)
	case "concurrent_map_writes":
		m := map[int]int{}
		for range 4 {
			go func() {
				for i := 0; ; i++ {
					m[i%64] = i
				}
			}()
		}
		time.Sleep(20 * time.Second)
	case "stack_overflow":
		debug.SetMaxStack(1 << 20)
		sink = overflow(1)
	case "unlock_unlocked":
		var mu sync.Mutex
		mu.Unlock()
	case "http_serving":
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			onWildDigBetClientResp(nil)
		}))
		resp, err := http.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		srv.Close()
		os.Exit(0)
	case "ancestors":
		// GODEBUG=tracebackancestors prints the creating goroutines.
		inGoroutine(func() { inGoroutine(func() { onWildDigBetClientResp(nil) }) })
	case "sigquit":
		// kill -QUIT: the runtime dumps every goroutine and exits.
		_ = syscall.Kill(os.Getpid(), syscall.SIGQUIT)
		time.Sleep(20 * time.Second)
	case "nested_multiline":
		func() {
			defer func() {
				recover()
				panic("outer\nmore")
			}()
			panic("line1\nline2")
		}()
	}
}

// crasherOutput runs the test binary in shape and returns its stderr.
func crasherOutput(t testing.TB, shape string, env ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crasherEnv+"="+shape)
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("crasher %s timed out", shape)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("crasher %s: %v", shape, err)
	}
	if bytes.Contains(stderr.Bytes(), []byte("did not crash")) {
		t.Fatalf("crasher %s did not crash:\n%s", shape, stderr.Bytes())
	}
	return stderr.Bytes()
}

package crash

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
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The tests re-execute their own binary with crasherEnv set to a shape; the
// child panics in that shape and the parent groups the real output.
const crasherEnv = "CRASH_TEST_CRASHER"

func TestMain(m *testing.M) {
	if shape := os.Getenv(crasherEnv); shape != "" {
		crasher(shape)
		fmt.Fprintln(os.Stderr, "crasher: shape", shape, "did not crash")
		os.Exit(3)
	}
	goleak.VerifyTestMain(m)
}

// Session stands in for the game server's gate session.
type Session struct{ conn io.Writer }

//go:noinline
func (s *Session) Write(b []byte) error {
	_, err := s.conn.Write(b)
	return err
}

// clientWrite takes an interface, like the incident's: a nil session is
// "{0x0, 0x0}" and the nil dereference happens in clientWrite itself.
//
//go:noinline
func clientWrite(w io.Writer, data []byte, size int) error {
	_, err := w.Write(data[:size])
	return err
}

//go:noinline
func onWildDigBetClientResp(w io.Writer) { _ = clientWrite(w, make([]byte, 0x56, 0x80), 0x56) }

//go:noinline
func onGoldenCloverBetClientResp(w io.Writer) { _ = clientWrite(w, make([]byte, 0x55, 0x80), 0x55) }

//go:noinline
func repeatBanner(n int) string { return strings.Repeat("=", n) }

//go:noinline
func settle(wg *sync.WaitGroup) { wg.Add(-1) }

// stacktoolRecoverFunc writes the game server's stacktrace file shape.
func stacktoolRecoverFunc() {
	if r := recover(); r != nil {
		fmt.Fprintf(os.Stderr, "%v\n%s", r, debug.Stack())
	}
}

func recovered(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer stacktoolRecoverFunc()
		f()
	}()
	<-done
}

func crasher(shape string) {
	switch shape {
	case "wilddig":
		recovered(func() { onWildDigBetClientResp(nil) })
	case "goldenclover":
		recovered(func() { onGoldenCloverBetClientResp(nil) })
	case "nil_method":
		recovered(func() { _ = (*Session)(nil).Write([]byte("x")) })
	case "unrecovered_goroutine":
		done := make(chan struct{})
		go func() {
			onWildDigBetClientResp(nil)
			close(done)
		}()
		<-done
	case "stdlib_panics":
		// strings.Repeat panics inside the standard library; the crash
		// site is the application function that called it.
		recovered(func() { sinkString = repeatBanner(-1 - len(os.Args)) })
	case "waitgroup":
		recovered(func() { settle(&sync.WaitGroup{}) })
	case "http_serving":
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			onWildDigBetClientResp(nil)
		}))
		resp, err := http.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		srv.Close()
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
		return
	case "outermost":
		// The crash site is the goroutine's own function: its caller is
		// the creator, with or without runtime frames printed.
		done := make(chan struct{})
		go func() {
			var w io.Writer
			_, _ = w.Write(nil)
			close(done)
		}()
		<-done
	default:
		return
	}
	os.Exit(0)
}

var sinkString string

var traces sync.Map

// trace returns the stderr of the crasher in shape (cached), run with env.
func trace(t testing.TB, shape string, env ...string) []byte {
	t.Helper()
	k := shape + strings.Join(env, ",")
	if b, ok := traces.Load(k); ok {
		return b.([]byte)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), crasherEnv+"="+shape), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if ctx.Err() != nil || err != nil && !errors.As(err, &ee) || bytes.Contains(stderr.Bytes(), []byte("did not crash")) {
		t.Fatalf("crasher %s: %v\n%s", shape, err, stderr.Bytes())
	}
	traces.Store(k, stderr.Bytes())
	return stderr.Bytes()
}

package goroutines_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stackwatch/stackwatch/sidecar/goroutines"
)

// syntheticDebug2 is a debug=2 dump of n goroutines in the shapes a server
// holds: connection handlers in IO wait, workers parked on channels, each
// with arguments, a created-by line and the Go 1.23 header fields.
func syntheticDebug2(n int) []byte {
	var b strings.Builder
	for i := range n {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, "goroutine %d gp=0xc000%06x m=nil [IO wait, %d minutes]:\n", i+1, i, i%7)
			b.WriteString("internal/poll.runtime_pollWait(0x7f2b1c3d4e50, 0x72)\n\t/usr/local/go/src/runtime/netpoll.go:351 +0x85\n")
			b.WriteString("internal/poll.(*pollDesc).wait(0xc000123400?, 0xc000456000?, 0x0)\n\t/usr/local/go/src/internal/poll/fd_poll_runtime.go:84 +0x27\n")
			b.WriteString("internal/poll.(*FD).Read(0xc000123400, {0xc000456000, 0x1000, 0x1000})\n\t/usr/local/go/src/internal/poll/fd_unix.go:165 +0x27a\n")
			b.WriteString("net/http.(*connReader).backgroundRead(0xc000789000)\n\t/usr/local/go/src/net/http/server.go:690 +0x37\n")
			b.WriteString("created by net/http.(*connReader).startBackgroundRead in goroutine 42\n\t/usr/local/go/src/net/http/server.go:686 +0xb6\n\n")
		case 1:
			fmt.Fprintf(&b, "goroutine %d [chan send, %d minutes]:\n", i+1, i%11)
			b.WriteString("github.com/example/game/task.(*Reckon).wait(0xc000a1b2c0, {0x1e2f3a0, 0xc000b3c4d0})\n\t/src/game/task/reckon.go:208 +0x5d\n")
			b.WriteString("github.com/example/game/task.ClientGetWilddigReckonBetRes.func1()\n\t/src/game/task/reckon.go:190 +0x1f\n")
			b.WriteString("created by github.com/example/game/task.ClientGetWilddigReckonBetRes in goroutine 17\n\t/src/game/task/reckon.go:185 +0x10a\n\n")
		default:
			fmt.Fprintf(&b, "goroutine %d [select]:\n", i+1)
			b.WriteString("github.com/example/game/bus.(*Bus).loop(0xc000200000)\n\t/src/game/bus/bus.go:77 +0x145\n")
			b.WriteString("github.com/example/game/bus.New.gowrap1()\n\t/src/game/bus/bus.go:40 +0x25\n")
			b.WriteString("created by github.com/example/game/bus.New in goroutine 1\n\t/src/game/bus/bus.go:40 +0x1b5\n\n")
		}
	}
	return []byte(b.String())
}

// BenchmarkParseDebug2 parses a deterministic dump, so that a change to the
// scanner is measured on the same bytes before and after.
func BenchmarkParseDebug2(b *testing.B) {
	data := syntheticDebug2(30_000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		s, err := goroutines.ParseDebug2(data)
		if err != nil || s.Total != 30_000 {
			b.Fatal(s, err)
		}
	}
}

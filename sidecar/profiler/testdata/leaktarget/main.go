// Command leaktarget is a test and benchmark target for the profiler. It
// serves net/http/pprof on -listen and prints "msg=listening addr=ADDR" on
// stdout, the game server's log line for it.
//
// -leak N leaks N goroutines the way a lost response does: each blocked
// forever sending on a channel nobody else can reach, so that, built with
// GOEXPERIMENT=goroutineleakprofile, the runtime's goroutineleak profile
// proves them leaked. GET /leak?n=N leaks N more.
//
// -park N parks N goroutines that are blocked but reachable (not leaked), in
// the incident's shape: 90% on a channel send, 5% in a select, 5% on a
// receive, at stack depths 0..1.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"strconv"
)

//go:noinline
func lostResponse(result int) {
	ch := make(chan int) // only this goroutine holds ch: the send can never complete
	ch <- result         // leaktarget:send
}

// Reachable from a global, so the GC cannot call the parked goroutines leaked.
var send, recv, sel = make(chan int), make(chan int), make(chan int)

//go:noinline
func deepSend(depth int) {
	if depth > 0 {
		deepSend(depth - 1)
		return
	}
	send <- 1
}

//go:noinline
func deepRecv(depth int) {
	if depth > 0 {
		deepRecv(depth - 1)
		return
	}
	<-recv
}

//go:noinline
func deepSelect(depth int) {
	if depth > 0 {
		deepSelect(depth - 1)
		return
	}
	select {
	case <-sel:
	case <-recv:
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address")
	leak := flag.Int("leak", 0, "goroutines to leak at start")
	park := flag.Int("park", 0, "reachable goroutines to park at start")
	flag.Parse()
	for i := range *leak {
		go lostResponse(i)
	}
	for i := range *park {
		switch depth := i % 2; i % 20 {
		case 0:
			go deepRecv(depth)
		case 1:
			go deepSelect(depth)
		default:
			go deepSend(depth)
		}
	}
	http.HandleFunc("/leak", func(w http.ResponseWriter, r *http.Request) {
		k, _ := strconv.Atoi(r.URL.Query().Get("n"))
		for i := range k {
			go lostResponse(i)
		}
		fmt.Fprintln(w, "leaked", k)
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "msg=listening addr=%s\n", ln.Addr())
	log.Fatal(http.Serve(ln, nil))
}

// Command fatalcrash dies the way the game server does when two handlers
// write one map: "fatal error: concurrent map writes", which recover cannot
// stop. Like the game server it first sends its crash output, with
// runtime/debug.SetCrashOutput, to fatal-<start time>-<pid>.stacktrace.log
// in the directory named by its argument.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"
)

func main() {
	name := fmt.Sprintf("fatal-%s-%d.stacktrace.log", time.Now().UTC().Format("20060102T150405Z"), os.Getpid())
	f, err := os.Create(filepath.Join(os.Args[1], name))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := debug.SetCrashOutput(f, debug.CrashOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	f.Close() // SetCrashOutput holds its own descriptor
	bets := map[int]int{}
	for range 2 {
		go func() {
			for n := 0; ; n++ {
				recordBet(bets, n)
			}
		}()
	}
	select {}
}

// recordBet is the map write the runtime catches.
//
//go:noinline
func recordBet(bets map[int]int, n int) {
	bets[n%512] = n
}

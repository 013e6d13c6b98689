// Package goroutines reads goroutine dumps — pprof goroutine profiles
// (debug=0, protobuf, usually gzipped) and debug=2 text dumps — into one
// model: a Snapshot of stack Groups, each the goroutines that share a stack.
//
// Groups are keyed by their frames (function, file, line; never arguments or
// addresses), so the same code path gets the same key in every dump of the
// same binary and dumps can be diffed. The two formats show different frames
// (the proto keeps runtime frames such as runtime.gopark, debug=2 hides them
// and names the wait state in the header instead), so keys are comparable
// within one format only.
package goroutines

import (
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stackwatch/stackwatch/sidecar/traceback"
)

// Format names the encoding of a goroutine dump.
type Format string

// Formats recognised by ParseAny.
const (
	FormatProfile Format = "pprof"  // runtime/pprof goroutine profile, debug=0
	FormatDebug2  Format = "debug2" // runtime.Stack(all) text, /debug/pprof/goroutine?debug=2
)

// Wait is what a goroutine is blocked on, as the runtime names it ("chan
// send", "select", "IO wait" ...). Empty when unknown or running.
type Wait string

// Wait states that LeakProf's rule looks for: a goroutine parked on a channel
// operation only the program itself can release.
const (
	WaitChanSend    Wait = "chan send"
	WaitChanReceive Wait = "chan receive"
	WaitSelect      Wait = "select"
)

// IsChannel reports whether w is a channel send, receive or select,
// including the nil-channel and no-cases variants.
func (w Wait) IsChannel() bool {
	return strings.HasPrefix(string(w), string(WaitChanSend)) ||
		strings.HasPrefix(string(w), string(WaitChanReceive)) ||
		strings.HasPrefix(string(w), string(WaitSelect))
}

// Frame is one call in a stack. The debug=2 parser and profiles fill
// Function, Pkg, File and Line.
type Frame = traceback.Frame

// Group is a set of goroutines that share one stack.
type Group struct {
	Key         string  `json:"key"`                    // stable id of the stack: hash of its frames
	Count       int     `json:"count"`                  // goroutines with this stack
	Wait        Wait    `json:"wait,omitempty"`         // what they are blocked on, when known
	WaitMinutes int     `json:"wait_minutes,omitempty"` // longest wait a debug=2 header printed
	Location    Frame   `json:"location"`               // first non-runtime frame
	Frames      []Frame `json:"frames"`                 // innermost first
}

// Snapshot is one goroutine dump, grouped.
type Snapshot struct {
	Format Format    `json:"format"`
	Time   time.Time `json:"time,omitzero"` // when the dump was taken, if it says
	Total  int       `json:"total"`         // goroutines in the dump
	// Truncated is set when a debug=2 dump was cut short (the runtime stops
	// at 64 MiB); Total then undercounts.
	Truncated bool     `json:"truncated,omitempty"`
	Groups    []*Group `json:"groups"` // largest first
}

// Group returns the group with key, or nil.
func (s *Snapshot) Group(key string) *Group {
	for _, g := range s.Groups {
		if g.Key == key {
			return g
		}
	}
	return nil
}

// keyOf hashes frames into a group key. FNV-64 is plenty: a dump holds at
// most tens of thousands of distinct stacks.
func keyOf(frames []Frame) string {
	var h keyHash
	h.reset()
	for _, f := range frames {
		h.frame(f.Function, f.File, f.Line)
	}
	return h.key()
}

// keyHash is an inlined FNV-1a 64 over (function, NUL, file, line, LF) per
// frame; the debug=2 parser feeds it straight from the input bytes.
type keyHash uint64

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func (h *keyHash) reset() { *h = fnvOffset }

func (h *keyHash) byte(c byte) { *h = (*h ^ keyHash(c)) * fnvPrime }

func (h *keyHash) frame(function, file string, line int) {
	for i := 0; i < len(function); i++ {
		h.byte(function[i])
	}
	h.byte(0)
	for i := 0; i < len(file); i++ {
		h.byte(file[i])
	}
	var buf [20]byte
	for _, c := range strconv.AppendInt(buf[:0], int64(line), 10) {
		h.byte(c)
	}
	h.byte('\n')
}

func (h keyHash) key() string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(h))
	return hex.EncodeToString(b[:])
}

// locationOf returns the first non-runtime frame, or the innermost frame when
// every frame is runtime.
func locationOf(frames []Frame) Frame {
	for _, f := range frames {
		if !f.IsRuntime() {
			return f
		}
	}
	if len(frames) > 0 {
		return frames[0]
	}
	return Frame{}
}

// waitFromFrames infers the wait state from the runtime frames a pprof
// profile keeps on top of a parked goroutine's stack.
func waitFromFrames(frames []Frame) Wait {
	for _, f := range frames {
		if !f.IsRuntime() {
			break
		}
		switch f.Function {
		case "runtime.chansend", "runtime.chansend1":
			return WaitChanSend
		case "runtime.chanrecv", "runtime.chanrecv1", "runtime.chanrecv2":
			return WaitChanReceive
		case "runtime.selectgo":
			return WaitSelect
		case "runtime.block":
			return "select (no cases)"
		case "internal/poll.runtime_pollWait":
			return "IO wait"
		case "time.Sleep", "runtime.timeSleep":
			return "sleep"
		case "sync.runtime_SemacquireWaitGroup":
			return "sync.WaitGroup.Wait"
		case "sync.runtime_SemacquireMutex":
			return "sync.Mutex.Lock"
		case "sync.runtime_notifyListWait":
			return "sync.Cond.Wait"
		}
	}
	return ""
}

// finish sorts groups largest first (ties by key, so output is stable) and
// totals the counts.
func (s *Snapshot) finish() {
	s.Total = 0
	for _, g := range s.Groups {
		s.Total += g.Count
	}
	slices.SortFunc(s.Groups, func(a, b *Group) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Key, b.Key)
	})
}

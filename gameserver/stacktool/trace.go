// Package stacktool recovers panics and records each one as a stacktrace
// file, the way the incident's bg-libtools-golang/stacktool did: one
// "*.stacktrace.log" per panic, the panic value on the first line and the
// output of runtime/debug.Stack after it.
package stacktool

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/stackwatch/stackwatch/internal/fsutil"
)

// Suffix ends every stacktrace file's name.
const Suffix = ".stacktrace.log"

// Recorder writes one stacktrace file per recovered panic into Dir.
type Recorder struct {
	Dir     string
	Service string
	// Legacy makes the recorder behave like build 20251030111505: create the
	// file, then write it, so a reader can see it empty or half written.
	// Otherwise files are written to a temporary name, synced and renamed
	// into place, so they appear complete or not at all.
	Legacy bool
	Logger *slog.Logger
	// OnPanic, if set, is called after each recovered panic with the file
	// written ("" if writing failed).
	OnPanic func(value any, path string)

	seq atomic.Uint64
}

// RecoverFunc recovers a panic in the calling goroutine and records it. It
// must be deferred directly: defer rec.RecoverFunc().
func (r *Recorder) RecoverFunc() {
	v := recover()
	if v == nil {
		return
	}
	stack := debug.Stack()
	path, err := r.Record(v, stack)
	logger := r.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if err != nil {
		path = ""
		logger.Error("panic recovered; stacktrace file not written", "panic", fmt.Sprint(v), "err", err)
	} else {
		logger.Error("panic recovered", "panic", fmt.Sprint(v), "file", path)
	}
	if r.OnPanic != nil {
		r.OnPanic(v, path)
	}
}

// Record writes one stacktrace file for panic value v with the given stack
// (as returned by debug.Stack) and returns its path.
func (r *Recorder) Record(v any, stack []byte) (string, error) {
	name := r.fileName(time.Now(), stack)
	path := filepath.Join(r.Dir, name)
	head := []byte(fmt.Sprint(v) + "\n")
	if r.Legacy {
		return path, writeCreateThenWrite(path, head, stack)
	}
	return path, writeAtomic(r.Dir, name, head, stack)
}

// fileName is <service>-<UTC timestamp, ns>-<goroutine id>-<seq>.stacktrace.log.
// The goroutine id and time make it readable; seq makes it unique even when
// two panics share a nanosecond.
func (r *Recorder) fileName(now time.Time, stack []byte) string {
	service := r.Service
	if service == "" {
		service = "gameserver"
	}
	gid := "g" + strconv.FormatUint(goroutineID(stack), 10)
	return fmt.Sprintf("%s-%s-%s-%d%s", service, now.UTC().Format("20060102T150405.000000000Z"),
		gid, r.seq.Add(1), Suffix)
}

// goroutineID reads the id from the "goroutine N [running]:" line that
// starts debug.Stack's output; 0 if absent.
func goroutineID(stack []byte) uint64 {
	rest, ok := bytes.CutPrefix(stack, []byte("goroutine "))
	if !ok {
		return 0
	}
	end := bytes.IndexByte(rest, ' ')
	if end < 0 {
		return 0
	}
	id, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	if err != nil {
		return 0
	}
	return id
}

// writeCreateThenWrite is the original's non-atomic write: a reader can find
// the file empty or holding only the error line.
func writeCreateThenWrite(path string, head, stack []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(head); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(stack); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeAtomic writes the file through a dot-prefixed temporary file in
// dir, which never matches *.stacktrace.log, so a reader sees it whole.
func writeAtomic(dir, name string, head, stack []byte) error {
	return fsutil.Write(filepath.Join(dir, name), 0o644, func(w io.Writer) error {
		if _, err := w.Write(head); err != nil {
			return err
		}
		_, err := w.Write(stack)
		return err
	})
}

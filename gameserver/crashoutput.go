package gameserver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stackwatch/stackwatch/gameserver/stacktool"
)

// FatalPrefix starts the name of the file that receives the runtime's fatal
// error output: fatal-<start time UTC>-<pid>.stacktrace.log. It matches the
// stacktrace pattern, so the sidecar reads it beside the recovered panics.
const FatalPrefix = "fatal-"

// CrashOutput is the file the runtime copies fatal errors to: the
// "fatal error: …" and unrecovered panics that recover cannot catch and that
// otherwise reach stderr only.
type CrashOutput struct {
	path string
}

// CaptureCrashes sends the process's fatal error output to a new
// fatal-*.stacktrace.log file in dir (runtime/debug.SetCrashOutput), after
// removing the empty ones earlier runs left when they were killed. It is
// process-wide: call it once, from main, after start-up succeeded.
func CaptureCrashes(dir string, start time.Time) (*CrashOutput, error) {
	removeEmptyFatalFiles(dir)
	name := FatalPrefix + start.UTC().Format("20060102T150405.000Z") + "-" + strconv.Itoa(os.Getpid()) + stacktool.Suffix
	path := filepath.Join(dir, name)
	// O_EXCL: never truncate an earlier run's trace.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("crash output: %w", err)
	}
	defer f.Close() // SetCrashOutput holds its own duplicate
	if err := debug.SetCrashOutput(f, debug.CrashOptions{}); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("crash output: %w", err)
	}
	return &CrashOutput{path: path}, nil
}

// Path is the file's path.
func (c *CrashOutput) Path() string { return c.path }

// Close stops the capture and removes the file if nothing crashed into it,
// as after a clean shutdown.
func (c *CrashOutput) Close() error {
	if err := debug.SetCrashOutput(nil, debug.CrashOptions{}); err != nil {
		return err
	}
	if fi, err := os.Stat(c.path); err == nil && fi.Size() == 0 {
		return os.Remove(c.path)
	}
	return nil
}

// removeEmptyFatalFiles deletes the empty fatal files of earlier runs that
// were killed before they could remove their own. A file whose process
// still runs (another server sharing the directory) is left alone.
func removeEmptyFatalFiles(dir string) {
	paths, _ := filepath.Glob(filepath.Join(dir, FatalPrefix+"*"+stacktool.Suffix))
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
			continue
		}
		if pid, ok := fatalFilePID(filepath.Base(p)); ok && running(pid) {
			continue
		}
		os.Remove(p)
	}
}

// fatalFilePID reads the pid from fatal-<time>-<pid>.stacktrace.log.
func fatalFilePID(name string) (int, bool) {
	rest := strings.TrimSuffix(name, stacktool.Suffix)
	i := strings.LastIndexByte(rest, '-')
	if i < 0 {
		return 0, false
	}
	pid, err := strconv.Atoi(rest[i+1:])
	return pid, err == nil && pid > 0
}

// running reports whether another process with this pid exists. Our own
// pid is not "another": a file with it was left by an earlier process that
// had the same pid (pid 1 in a restarted container).
func running(pid int) bool {
	if pid == os.Getpid() {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	defer p.Release()
	// Signal 0 probes without signalling; any answer but "done" (EPERM,
	// or no signals at all on Windows) keeps the file.
	return !errors.Is(p.Signal(syscall.Signal(0)), os.ErrProcessDone)
}

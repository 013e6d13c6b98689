//go:build unix

package fsutil

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"
)

func TestOpenRegularFIFODoesNotBlock(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo.stacktrace.log")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// A plain open of a FIFO with no writer blocks forever; this must not.
	if _, _, err := OpenRegular(fifo); !errors.Is(err, ErrNotRegular) {
		t.Errorf("fifo: %v", err)
	}
}

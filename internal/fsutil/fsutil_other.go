//go:build !unix

package fsutil

import (
	"fmt"
	"os"
)

func idOf(os.FileInfo) ID { return ID{} }

// openNoFollow refuses a symlink by Lstat, then checks that the opened file
// is the one stat'ed. Without O_NOFOLLOW the window is closed by SameFile.
func openNoFollow(path string) (*os.File, error) {
	li, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if li.Mode()&os.ModeSymlink != 0 {
		return nil, &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (symlink)", ErrNotRegular)}
	}
	if !li.Mode().IsRegular() {
		return nil, &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, li.Mode().Type())}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !os.SameFile(li, fi) {
		f.Close()
		return nil, &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (replaced while opening)", ErrNotRegular)}
	}
	return f, nil
}

// SyncDir is a no-op where directories cannot be synced (Windows).
func SyncDir(string) error { return nil }

// Package fsutil is the one place stackwatch writes files atomically and
// opens files it does not trust. Platform differences (inode identity,
// O_NOFOLLOW, directory fsync) live behind build tags, so every binary
// builds for Linux, macOS and Windows.
package fsutil

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ErrNotRegular is returned by OpenRegular for symlinks, FIFOs, devices,
// sockets and directories.
var ErrNotRegular = errors.New("not a regular file")

// WriteFile writes data to path atomically: see Write.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write creates path atomically with the bytes write produces: a temporary
// file in the same directory is written, synced and renamed over path, then
// the directory is synced, so after a crash path holds either the old or
// the new content, never a mix. Every error is returned; on error nothing
// is left behind.
func Write(path string, perm os.FileMode, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = write(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// ID identifies a file across renames: device and inode where the platform
// has them. The zero ID means unknown.
type ID struct {
	Dev, Ino uint64
}

// IsZero reports whether the identity is unknown.
func (id ID) IsZero() bool { return id == ID{} }

// IDOf returns fi's identity, or the zero ID on platforms without inodes.
func IDOf(fi os.FileInfo) ID { return idOf(fi) }

// OpenRegular opens path for reading without following a symlink and
// without blocking on a FIFO or device, and fails with ErrNotRegular unless
// the opened file is a regular file. The check is on the opened descriptor
// (fstat), so a file swapped in between a stat and the open is caught.
func OpenRegular(path string) (*os.File, os.FileInfo, error) {
	f, err := openNoFollow(path)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, fi.Mode().Type())}
	}
	return f, fi, nil
}

// Package readfile reads the head of a file the sidecar does not trust:
// without following a symlink, without blocking on a FIFO or a device
// (internal/fsutil.OpenRegular checks the opened descriptor, so a file
// swapped in after the directory listing is caught), and never more than a
// limit, into a buffer reused from one file to the next.
package readfile

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/stackwatch/stackwatch/internal/fsutil"
	"github.com/stackwatch/stackwatch/sidecar/decide"
)

// ErrNotRegular is returned for symlinks, FIFOs, devices, sockets and
// directories.
var ErrNotRegular = fsutil.ErrNotRegular

// Reader reads files into one reused buffer. It is not safe for
// concurrent use.
type Reader struct {
	limit int64
	buf   []byte
}

// New returns a Reader that reads at most limit+1 bytes of a file: the
// byte past the limit tells the parser the file was cut.
func New(limit int64) *Reader { return &Reader{limit: limit} }

// Read opens path, fstats it and reads its head. The bytes are valid until
// the next Read. The Stat is of the opened file, not of the path; when the
// file cannot be opened (permissions), it is the path's lstat, so an
// unreadable file still has an identity: the caller counts its failure once,
// yet again for another file put in its place.
func (r *Reader) Read(path string) ([]byte, decide.Stat, error) {
	f, fi, err := fsutil.OpenRegular(path)
	if err != nil {
		var st decide.Stat
		if fi, lerr := os.Lstat(path); lerr == nil {
			st = statOf(fi)
		}
		return nil, st, err
	}
	defer f.Close()
	st := statOf(fi)
	want := min(fi.Size(), r.limit+1)
	if int64(cap(r.buf)) < want {
		r.buf = make([]byte, want)
	}
	n, err := io.ReadFull(f, r.buf[:want])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, st, fmt.Errorf("read %s: %w", path, err)
	}
	return r.buf[:n], st, nil
}

func statOf(fi os.FileInfo) decide.Stat {
	return decide.Stat{ID: fsutil.IDOf(fi), Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
}

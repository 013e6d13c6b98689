// Package logtail counts matching lines of a growing log file, surviving
// rename rotation and copytruncate, and resumes from a saved position
// without counting a line twice.
//
// The tailer never keeps the file open: every round opens it, reads what is
// new, and closes it. It opens only regular files, never following a
// symlink nor waiting on a FIFO (internal/fsutil.OpenRegular), so a
// hostile file at the log's path cannot block it or the shutdown. A position is the file's device and inode, the offset
// of the first unread line, and a hash of the file's first bytes:
//
//   - a different inode at the path means rename rotation; the rest of the
//     old file is read first if it can still be found in the same directory
//     (logrotate's "gameserver.log.1"), then the new file from its start;
//   - the same inode with a size below the offset, or with different first
//     bytes, means copytruncate; the file is read again from its start (lines
//     written between logrotate's copy and its truncate are lost, as with any
//     copytruncate reader);
//   - an unfinished last line is left for the next round.
package logtail

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/stackwatch/stackwatch/internal/fsutil"
)

// HeadLen is how many leading bytes identify a file's content.
const HeadLen = 256

// Position is where the tailer stands in a file.
type Position struct {
	Dev    uint64
	Ino    uint64
	Offset int64
	Head   uint64 // xxhash64 of the first HeadN bytes
	HeadN  int64
}

// Config configures a Tailer.
type Config struct {
	Path     string
	Interval time.Duration // between rounds; default 250ms
	// Match reports whether a complete line (without its newline) counts.
	Match func(line []byte) bool
	// MaxLine bounds one line; longer lines are skipped (and not matched)
	// so a runaway writer cannot make the tailer buffer without limit.
	MaxLine int // default 1 MiB
	// ReadChunk bounds how much one read call takes; default 256 KiB.
	ReadChunk int
	// StartAtEnd makes a tailer with no position skip what the file holds
	// now and count only lines written later.
	StartAtEnd bool
	Logger     *slog.Logger
}

// Tailer follows one file. Run it with Run, or drive it with Poll.
type Tailer struct {
	cfg   Config
	pos   Position
	skip  bool   // inside an over-long line
	chunk []byte // read buffer
	line  []byte // partial line carried between chunks
}

// New returns a tailer resuming at pos (the zero Position reads the file
// from its start).
func New(cfg Config, pos Position) (*Tailer, error) {
	if cfg.Path == "" {
		return nil, errors.New("logtail: no path")
	}
	if cfg.Match == nil {
		return nil, errors.New("logtail: no match function")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = 1 << 20
	}
	if cfg.ReadChunk <= 0 {
		cfg.ReadChunk = 256 << 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Tailer{cfg: cfg, pos: pos}, nil
}

// Position returns the current position.
func (t *Tailer) Position() Position { return t.pos }

// Run polls every interval until ctx is done. After each round with any
// progress it calls report with the number of matching lines found and the
// position after them, so the caller can persist both together.
func (t *Tailer) Run(ctx context.Context, report func(matches int, pos Position)) error {
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	var lastErr string
	for {
		before := t.pos
		n, err := t.Poll()
		if err != nil && err.Error() != lastErr {
			t.cfg.Logger.Warn("cannot read server log", "path", t.cfg.Path, "err", err)
		}
		if err != nil {
			lastErr = err.Error()
		} else {
			lastErr = ""
		}
		if n > 0 || t.pos != before {
			report(n, t.pos)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Poll reads everything new once and returns the number of matching lines.
// A missing file is not an error: the server may not have started yet.
func (t *Tailer) Poll() (int, error) {
	fi, err := os.Lstat(t.cfg.Path)
	if errors.Is(err, fs.ErrNotExist) {
		t.cfg.StartAtEnd = false // whatever appears later is new
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	id := fsutil.IDOf(fi)
	if t.pos.Ino == 0 && t.cfg.StartAtEnd {
		t.cfg.StartAtEnd = false
		return 0, t.seekEnd()
	}
	n := 0
	if t.pos.Ino != 0 && (t.pos.Dev != id.Dev || t.pos.Ino != id.Ino) {
		// Rotated by rename: finish the old file if it is still nearby.
		if old := t.findRotated(); old != "" {
			m, err := t.read(old, false)
			n += m
			if err != nil {
				t.cfg.Logger.Warn("cannot finish rotated log", "path", old, "err", err)
			}
		}
		t.pos = Position{}
	}
	m, err := t.read(t.cfg.Path, true)
	return n + m, err
}

// seekEnd positions the tailer after the file's last complete line.
func (t *Tailer) seekEnd() error {
	f, fi, err := fsutil.OpenRegular(t.cfg.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	id := fsutil.IDOf(fi)
	head, err := readHead(f, fi.Size())
	if err != nil {
		return err
	}
	tail := make([]byte, min(fi.Size(), 64<<10))
	if _, err := f.ReadAt(tail, fi.Size()-int64(len(tail))); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	t.pos = Position{Dev: id.Dev, Ino: id.Ino, Offset: fi.Size(), HeadN: int64(len(head)), Head: xxhash.Sum64(head)}
	if i := bytes.LastIndexByte(tail, '\n'); i >= 0 {
		t.pos.Offset -= int64(len(tail) - i - 1)
	} else if len(tail) > 0 {
		t.skip = true // somewhere inside a very long line: skip to its end
	}
	return nil
}

// findRotated looks in the log's directory for the file holding the
// position's inode.
func (t *Tailer) findRotated() string {
	dir := filepath.Dir(t.cfg.Path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if id := fsutil.IDOf(fi); id.Dev == t.pos.Dev && id.Ino == t.pos.Ino {
			return filepath.Join(dir, e.Name())
		}
	}
	return ""
}

// read consumes complete lines of path from the position. current says
// whether path is the live file (whose identity becomes the position).
func (t *Tailer) read(path string, current bool) (int, error) {
	f, fi, err := fsutil.OpenRegular(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	defer f.Close()
	id := fsutil.IDOf(fi)
	if current && (t.pos.Dev != id.Dev || t.pos.Ino != id.Ino) {
		t.pos = Position{Dev: id.Dev, Ino: id.Ino}
	}
	head, err := readHead(f, fi.Size())
	if err != nil {
		return 0, err
	}
	switch {
	case fi.Size() < t.pos.Offset:
		t.cfg.Logger.Info("server log truncated; reading from its start", "path", path,
			"offset", t.pos.Offset, "size", fi.Size())
		t.pos.Offset, t.skip = 0, false
	case t.pos.Offset > 0 && t.pos.HeadN > 0 &&
		(int64(len(head)) < t.pos.HeadN || xxhash.Sum64(head[:t.pos.HeadN]) != t.pos.Head):
		t.cfg.Logger.Info("server log replaced in place; reading from its start", "path", path)
		t.pos.Offset, t.skip = 0, false
	}
	// The head matched (or is read afresh): remember the longest one seen.
	if t.pos.Offset == 0 || int64(len(head)) > t.pos.HeadN {
		t.pos.HeadN, t.pos.Head = int64(len(head)), xxhash.Sum64(head)
	}
	if _, err := f.Seek(t.pos.Offset, io.SeekStart); err != nil {
		return 0, err
	}
	return t.scan(f, fi.Size()-t.pos.Offset)
}

func readHead(f *os.File, size int64) ([]byte, error) {
	b := make([]byte, min(size, HeadLen))
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:n], nil
}

// scan reads n bytes (what was there when the round began) in chunks and
// counts matching complete lines, advancing the offset past each. An
// unfinished last line is left for the next round.
func (t *Tailer) scan(r io.Reader, n int64) (int, error) {
	if cap(t.chunk) < t.cfg.ReadChunk {
		t.chunk = make([]byte, t.cfg.ReadChunk)
	}
	matches := 0
	line := t.line[:0]
	for n > 0 {
		got, err := io.ReadFull(r, t.chunk[:min(int64(len(t.chunk)), n)])
		n -= int64(got)
		data := t.chunk[:got]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				switch {
				case t.skip:
					t.pos.Offset += int64(len(data))
				case len(line)+len(data) > t.cfg.MaxLine:
					// Over-long line: drop it up to its end, even across rounds.
					t.pos.Offset += int64(len(line) + len(data))
					line, t.skip = line[:0], true
				default:
					line = append(line, data...)
				}
				data = nil
				continue
			}
			// Offset stays at the start of the buffered line until its end.
			t.pos.Offset += int64(len(line) + i + 1)
			if !t.skip && len(line)+i <= t.cfg.MaxLine {
				line = append(line, data[:i]...)
				if t.cfg.Match(line) {
					matches++
				}
			}
			line, t.skip = line[:0], false
			data = data[i+1:]
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				break // the file shrank under us; the next round sorts it out
			}
			return matches, fmt.Errorf("logtail: read: %w", err)
		}
	}
	if cap(line) <= 64<<10 {
		t.line = line[:0]
	} else {
		t.line = nil
	}
	return matches, nil
}

// JSONMsg returns a Match function for JSON log lines (log/slog's JSON
// handler and most others) whose "msg" field equals msg. Lines that do not
// contain msg at all are rejected without decoding.
func JSONMsg(msg string) func(line []byte) bool {
	quoted, _ := json.Marshal(msg)
	needle := quoted[1 : len(quoted)-1] // as it appears escaped inside a JSON string
	return func(line []byte) bool {
		if !bytes.Contains(line, needle) {
			return false
		}
		var rec struct {
			Msg *string `json:"msg"`
		}
		if json.Unmarshal(line, &rec) != nil || rec.Msg == nil {
			return false
		}
		return *rec.Msg == msg
	}
}

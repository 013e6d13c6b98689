package logtail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stackwatch/stackwatch/internal/fsutil"
)

const msg = "[Client] Gate session closed, message cannot be sent"

// line is one log record as the game server's slog JSON handler writes it.
func line(m, player string) string {
	return fmt.Sprintf(`{"time":"2026-11-26T04:00:00.000Z","level":"WARN","msg":%q,"player":%q}`+"\n", m, player)
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func newTailer(t *testing.T, path string, pos Position) *Tailer {
	t.Helper()
	tl, err := New(Config{Path: path, Match: JSONMsg(msg)}, pos)
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

func poll(t *testing.T, tl *Tailer, want int) {
	t.Helper()
	got, err := tl.Poll()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("poll counted %d, want %d", got, want)
	}
}

func TestPartialLinesAndResume(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gameserver.log")
	tl := newTailer(t, p, Position{})
	poll(t, tl, 0) // no file yet
	appendTo(t, p, line(msg, "p1")+line("bet settled", "p1")+line(msg, "p2"))
	full := line(msg, "p3")
	appendTo(t, p, full[:20]) // half a line
	poll(t, tl, 2)
	appendTo(t, p, full[20:])
	poll(t, tl, 1)
	poll(t, tl, 0)

	// A new tailer from the saved position counts nothing twice.
	tl2 := newTailer(t, p, tl.Position())
	poll(t, tl2, 0)
	appendTo(t, p, line(msg, "p4"))
	poll(t, tl2, 1)
}

func TestRenameRotation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "gameserver.log")
	tl := newTailer(t, p, Position{})
	appendTo(t, p, line(msg, "a")+line(msg, "b")+line(msg, "c"))
	poll(t, tl, 3)
	appendTo(t, p, line(msg, "d")+line(msg, "e")) // written before rotation, not yet read
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, p, line(msg, "f"))
	poll(t, tl, 3) // d and e from gameserver.log.1, f from the new file
	poll(t, tl, 0)

	// Rotated again, and the old file is gone (compressed away): only the new one counts.
	appendTo(t, p, line(msg, "g"))
	os.Rename(p, p+".2")
	os.Remove(p + ".2")
	appendTo(t, p, line(msg, "h"))
	poll(t, tl, 1)
}

func TestCopyTruncate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gameserver.log")
	tl := newTailer(t, p, Position{})
	appendTo(t, p, line(msg, "a")+line(msg, "b")+line(msg, "c"))
	poll(t, tl, 3)
	ino := idOf(t, p)

	// logrotate copytruncate: copy, then truncate the same inode in place.
	b, _ := os.ReadFile(p)
	os.WriteFile(p+".1", b, 0o644)
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	appendTo(t, p, line(msg, "d"))
	poll(t, tl, 1)

	// Truncated and regrown past the old offset before the tailer looked:
	// the first bytes differ, so it still starts over.
	os.Truncate(p, 0)
	appendTo(t, p, line(msg, "zz-much-longer-player-name-to-change-the-head")+line(msg, "e")+line(msg, "f"))
	poll(t, tl, 3)
	if idOf(t, p) != ino {
		t.Fatalf("test broke: inode changed")
	}
}

func TestOverlongLineSkipped(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gameserver.log")
	tl, err := New(Config{Path: p, Match: JSONMsg(msg), MaxLine: 200, ReadChunk: 64}, Position{})
	if err != nil {
		t.Fatal(err)
	}
	huge := line(msg, strings.Repeat("x", 1000))
	appendTo(t, p, line(msg, "a")+huge[:500])
	poll(t, tl, 1)
	appendTo(t, p, huge[500:]+line(msg, "b"))
	poll(t, tl, 1) // the huge line is dropped whole, "b" counts
}

func TestJSONMsg(t *testing.T) {
	m := JSONMsg(msg)
	for _, c := range []struct {
		line string
		want bool
	}{
		{strings.TrimSuffix(line(msg, "p"), "\n"), true},
		{`{"msg":"[Client] Gate session closed, message cannot be sent"}`, true},
		{`{"msg":"[Client] Gate session closed, message cannot be sent (retrying)"}`, false},
		{`{"other":"[Client] Gate session closed, message cannot be sent"}`, false},
		{`not json [Client] Gate session closed, message cannot be sent`, false},
		{``, false},
	} {
		if got := m([]byte(c.line)); got != c.want {
			t.Errorf("%q: got %v", c.line, got)
		}
	}
}

// FuzzTail checks that however a log is cut into appends, the tailer counts
// exactly the matching lines of its complete part.
func FuzzTail(f *testing.F) {
	f.Add([]byte(line(msg, "a")+line("x", "b")+line(msg, "c")), uint16(10), uint16(3))
	f.Add([]byte("garbage\n\x00\xff\n"+line(msg, "a")), uint16(0), uint16(1))
	f.Add([]byte(line(msg, "a")), uint16(5), uint16(64))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16, chunk uint16) {
		if len(data) > 1<<16 {
			return
		}
		m := JSONMsg(msg)
		want := 0
		complete := data[:bytes.LastIndexByte(data, '\n')+1]
		for _, l := range bytes.SplitAfter(complete, []byte("\n")) {
			if l = bytes.TrimSuffix(l, []byte("\n")); len(l) <= 128 && m(l) {
				want++
			}
		}
		p := filepath.Join(t.TempDir(), "log")
		tl, err := New(Config{Path: p, Match: m, MaxLine: 128, ReadChunk: int(chunk%200) + 1}, Position{})
		if err != nil {
			t.Fatal(err)
		}
		c := int(cut) % (len(data) + 1)
		os.WriteFile(p, data[:c], 0o644)
		n1, err := tl.Poll()
		if err != nil {
			t.Fatal(err)
		}
		appendTo(t, p, string(data[c:]))
		n2, err := tl.Poll()
		if err != nil {
			t.Fatal(err)
		}
		if n1+n2 != want {
			t.Fatalf("counted %d+%d, want %d", n1, n2, want)
		}
		if tl.Position().Offset != int64(len(complete)) {
			t.Fatalf("offset %d, want %d", tl.Position().Offset, len(complete))
		}
	})
}

func TestStartAtEnd(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gameserver.log")
	full := line(msg, "c")
	appendTo(t, p, line(msg, "a")+line(msg, "b")+full[:10])
	tl, err := New(Config{Path: p, Match: JSONMsg(msg), StartAtEnd: true}, Position{})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, tl, 0)
	appendTo(t, p, full[10:]+line(msg, "d"))
	poll(t, tl, 2) // the line that was being written, and the next
}

// TestFIFONeverBlocks: a FIFO (no writer) or a symlink at the log's path is
// an error for the round, never a blocked open, with or without a saved
// position; Run still stops at once when its context ends.
func TestFIFONeverBlocks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gameserver.log")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for _, cfg := range []Config{{Path: path, Match: JSONMsg(msg)}, {Path: path, Match: JSONMsg(msg), StartAtEnd: true}} {
		tl, err := New(cfg, Position{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tl.Poll(); !errors.Is(err, fsutil.ErrNotRegular) {
			t.Fatalf("poll of a FIFO: %v, want ErrNotRegular", err)
		}
	}
	// A symlink to a real log is not followed either.
	real := filepath.Join(dir, "real.log")
	appendTo(t, real, line(msg, "a"))
	link := filepath.Join(dir, "link.log")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if n, err := newTailer(t, link, Position{}).Poll(); n != 0 || !errors.Is(err, fsutil.ErrNotRegular) {
		t.Fatalf("poll of a symlink: %d, %v", n, err)
	}

	tl := newTailer(t, path, Position{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tl.Run(ctx, func(int, Position) {}) }()
	cancel()
	if err := <-done; err != nil { // a blocked open would hang here
		t.Fatal(err)
	}
}

func idOf(t *testing.T, path string) fsutil.ID {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fsutil.IDOf(fi)
}

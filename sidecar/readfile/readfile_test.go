package readfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	r := New(8)
	small := filepath.Join(dir, "small")
	os.WriteFile(small, []byte("abc"), 0o644)
	b, st, err := r.Read(small)
	if err != nil || string(b) != "abc" || st.Size != 3 || st.MTime == 0 {
		t.Fatalf("small: %q %+v %v", b, st, err)
	}
	// Past the limit: limit+1 bytes, so the parser knows it was cut.
	big := filepath.Join(dir, "big")
	os.WriteFile(big, []byte(strings.Repeat("x", 100)), 0o644)
	if b, st, err := r.Read(big); err != nil || len(b) != 9 || st.Size != 100 {
		t.Fatalf("big: %d bytes, %+v, %v", len(b), st, err)
	}
	// Not regular: a symlink (to a readable file) and a FIFO without a
	// writer are refused, never followed or waited on.
	link := filepath.Join(dir, "link")
	os.Symlink(small, link)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, fifo, dir} {
		if _, _, err := r.Read(p); !errors.Is(err, ErrNotRegular) {
			t.Errorf("%s: %v, want ErrNotRegular", filepath.Base(p), err)
		}
	}
	if _, _, err := r.Read(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
}

package fsutil

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestWriteFileReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	if err := WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "two" {
		t.Fatalf("content %q, %v", b, err)
	}
	if fi, _ := os.Stat(p); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o644 {
		t.Errorf("perm %v", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temp files left: %v", ents)
	}
}

func TestWriteLeavesNothingOnError(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x")
	boom := errors.New("boom")
	if err := Write(p, 0o600, func(io.Writer) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x"), nil, 0o600); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "a.stacktrace.log")
	os.WriteFile(reg, []byte("panic"), 0o644)
	f, fi, err := OpenRegular(reg)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if id := IDOf(fi); runtime.GOOS != "windows" && id.IsZero() {
		t.Error("no file identity on a unix system")
	}

	link := filepath.Join(dir, "link.stacktrace.log")
	if err := os.Symlink(reg, link); err != nil {
		t.Skip("symlinks unsupported:", err)
	}
	if _, _, err := OpenRegular(link); !errors.Is(err, ErrNotRegular) {
		t.Errorf("symlink: %v", err)
	}
	if _, _, err := OpenRegular(dir); !errors.Is(err, ErrNotRegular) {
		t.Errorf("directory: %v", err)
	}
}

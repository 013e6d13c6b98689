package wallet

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzCheckFile feeds arbitrary ledger files to the pre-open check: it must
// never panic, and a file it passes must be as long as its meta page says,
// so bbolt never maps past the end.
func FuzzCheckFile(f *testing.F) {
	dir := f.TempDir()
	w, err := Open(dir, Options{Outbox: true})
	if err != nil {
		f.Fatal(err)
	}
	w.Close()
	valid, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(valid[:8192])
	f.Add(bytes.Repeat([]byte{0xff}, 8192))
	f.Add([]byte("not a ledger"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, FileName)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := checkFile(path, filepath.Join(dir, MarkerName), false); err != nil {
			return
		}
		if len(data) == 0 {
			return // no marker: a fresh ledger
		}
		need, err := metaSize(path)
		if err != nil || int64(len(data)) < need {
			t.Fatalf("passed a file of %d bytes needing %d (%v)", len(data), need, err)
		}
	})
}

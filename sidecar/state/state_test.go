package state

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/decide"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := NewStore(filepath.Join(dir, "data"), nil)
	if err != nil {
		t.Fatal(err)
	}
	st, loaded, err := s.Load()
	if err != nil || !loaded.Fresh || loaded.Corrupt {
		t.Fatalf("first load: %+v %v", loaded, err)
	}
	st.Files["/logs/a.stacktrace.log"] = decide.Record{Dev: 1, Ino: 2, Size: 3, MTime: 4, Hash: 5, Hashed: 3, Status: decide.StatusCounted, Group: "k"}
	st.Log = Log{Path: "/logs/gameserver.log", Dev: 1, Ino: 9, Offset: 100, Head: 7, HeadN: 64}
	st.Counters = []Series{{Metric: "m", Labels: []string{"a", "b"}, Value: 3}}
	st.SeenBefore = 42
	st.Groups = []crash.Group{{Key: "k", Kind: "custom", Count: 2, Files: []string{"/logs/a.stacktrace.log"}, Example: "panic: \"x\"\n\tat\n"}, {Key: "other", Count: 7}}
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	got, loaded, err := s.Load()
	if err != nil || loaded.Fresh || loaded.Corrupt {
		t.Fatalf("second load: %+v %v", loaded, err)
	}
	got.Saved, st.Saved = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, st) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, st)
	}
	// Nothing but the state file is left behind.
	ents, _ := os.ReadDir(filepath.Join(dir, "data"))
	if len(ents) != 1 || ents[0].Name() != FileName {
		t.Fatalf("data dir holds %v", ents)
	}
}

func TestCorruptStateMovedAside(t *testing.T) {
	for name, content := range map[string][]byte{
		"garbage":   []byte("\x00\xffnot json at all"),
		"truncated": []byte(`{"version":1,"files":{"/a":{"dev":1`),
		"empty":     {},
		"version":   []byte(`{"version":99,"files":{}}`),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			var logs bytes.Buffer
			s, err := NewStore(dir, slog.New(slog.NewJSONHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(s.Path(), content, 0o600); err != nil {
				t.Fatal(err)
			}
			st, loaded, err := s.Load()
			if err != nil {
				t.Fatal(err)
			}
			if !loaded.Corrupt || loaded.Fresh || loaded.CorruptBy == nil || len(st.Files) != 0 {
				t.Fatalf("loaded %+v, %d files", loaded, len(st.Files))
			}
			kept, err := os.ReadFile(loaded.MovedTo)
			if err != nil || !bytes.Equal(kept, content) {
				t.Fatalf("corrupt file not kept intact at %s: %v", loaded.MovedTo, err)
			}
			if !strings.HasPrefix(filepath.Base(loaded.MovedTo), FileName+".corrupt-") {
				t.Fatalf("moved to %s", loaded.MovedTo)
			}
			if _, err := os.Stat(s.Path()); !os.IsNotExist(err) {
				t.Fatalf("state file still there: %v", err)
			}
			if !strings.Contains(logs.String(), loaded.MovedTo) {
				t.Fatalf("log does not name the moved file: %s", logs.String())
			}
			// The rebuilt state saves and loads cleanly.
			if err := s.Save(st); err != nil {
				t.Fatal(err)
			}
			if _, l, err := s.Load(); err != nil || l.Corrupt {
				t.Fatalf("reload after rebuild: %+v %v", l, err)
			}
		})
	}
}

func TestSaveReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	s, _ := NewStore(dir, nil)
	st := New()
	for i := range 3 {
		st.Files[filepath.Join("/x", string(rune('a'+i)))] = decide.Record{Ino: uint64(i)}
		if err := s.Save(st); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := s.Load()
	if err != nil || len(got.Files) != 3 {
		t.Fatalf("got %d files, %v", len(got.Files), err)
	}
	// A save into a directory that vanished fails cleanly.
	s2 := &Store{dir: filepath.Join(dir, "gone"), logger: slog.New(slog.DiscardHandler), now: time.Now}
	if err := s2.Save(st); err == nil {
		t.Fatal("save into a missing dir succeeded")
	}
}

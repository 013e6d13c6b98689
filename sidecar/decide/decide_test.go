package decide

import (
	"errors"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/stackwatch/stackwatch/internal/fsutil"
)

func rec(id uint64, content string, status Status) Record {
	return Record{Dev: 1, Ino: id, Size: int64(len(content)), MTime: 100, Hash: xxhash.Sum64String(content),
		Hashed: int64(len(content)), Status: status, Group: "g"}
}

func stat(id uint64, size int, mtime int64) Stat {
	return Stat{ID: fsutil.ID{Dev: 1, Ino: id}, Size: int64(size), MTime: mtime}
}

func TestDecide(t *testing.T) {
	const head = "panic: boom\n\ngoroutine 1 [running]:\n"
	counted := rec(7, head, StatusCounted)
	for _, tc := range []struct {
		name    string
		prev    Record
		known   bool
		st      Stat
		data    string
		err     error
		want    Verdict
		carried bool // Status and Group carried over
	}{
		{"no record", Record{}, false, stat(7, len(head), 100), head, nil, New, false},
		{"same bytes, touched", counted, true, stat(7, len(head), 200), head, nil, Unchanged, true},
		{"appended", counted, true, stat(7, len(head)+5, 200), head + "main.", nil, Grown, true},
		{"other inode", counted, true, stat(8, len(head), 100), head, nil, Replaced, false},
		{"shrank", counted, true, stat(7, 5, 200), head[:5], nil, Replaced, false},
		{"rewritten, same size", counted, true, stat(7, len(head), 200), "panic: b00m\n\ngoroutine 1 [running]:\n", nil, Replaced, false},
		{"rewritten, longer", counted, true, stat(7, len(head)+1, 200), "x" + head, nil, Replaced, false},
		{"unreadable", counted, true, stat(7, len(head), 100), "", errors.New("permission denied"), Failed, false},
		{"was unreadable, now read", Record{Dev: 1, Ino: 7, Size: 9, Status: StatusUnreadable}, true, stat(7, 9, 100), "panic: x\n", nil, New, false},
		// Read capped at the limit: the same head, the file grew past it.
		{"grew past the read cap", counted, true, stat(7, 1<<30, 200), head, nil, Grown, true},
		// No inode (Windows): content alone decides.
		{"no identity, appended", Record{Size: 3, Hash: xxhash.Sum64String("abc"), Hashed: 3, Status: StatusIncomplete}, true,
			Stat{Size: 4, MTime: 1}, "abcd", nil, Grown, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, r := Decide(tc.prev, tc.known, tc.st, []byte(tc.data), tc.err)
			if got != tc.want {
				t.Fatalf("verdict %v, want %v", got, tc.want)
			}
			if r.Size != tc.st.Size || r.MTime != tc.st.MTime || r.ID() != tc.st.ID {
				t.Errorf("record %+v does not describe stat %+v", r, tc.st)
			}
			if got != Failed && (r.Hash != xxhash.Sum64String(tc.data) || r.Hashed != int64(len(tc.data))) {
				t.Errorf("record hash does not cover what was read: %+v", r)
			}
			if carried := r.Status == tc.prev.Status && r.Group == tc.prev.Group && r.Status != ""; carried != tc.carried {
				t.Errorf("status/group carried over = %v, want %v (%+v)", carried, tc.carried, r)
			}
			if got == Failed && r.Status != StatusUnreadable {
				t.Errorf("failed read recorded as %q", r.Status)
			}
		})
	}
}

func TestSkip(t *testing.T) {
	counted := rec(7, "abc", StatusCounted)
	for _, tc := range []struct {
		name  string
		prev  Record
		known bool
		st    Stat
		want  bool
	}{
		{"same stat", counted, true, stat(7, 3, 100), true},
		{"unknown", counted, false, stat(7, 3, 100), false},
		{"new mtime", counted, true, stat(7, 3, 101), false},
		{"new size", counted, true, stat(7, 4, 100), false},
		{"new inode", counted, true, stat(8, 3, 100), false},
		// chmod changes neither size nor mtime: unreadable files are re-read.
		{"unreadable", rec(7, "abc", StatusUnreadable), true, stat(7, 3, 100), false},
	} {
		if got := Skip(tc.prev, tc.known, tc.st); got != tc.want {
			t.Errorf("%s: Skip = %v, want %v", tc.name, got, tc.want)
		}
	}
}

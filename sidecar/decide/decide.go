// Package decide says what a stacktrace file is now, compared with what was
// recorded when it was last read: new, unchanged, grown, replaced or
// failed. It is a pure function of the record, the new stat and the bytes
// read, so every case is table-tested without touching a file.
//
// A file is the same file as its record when its identity (device and
// inode) is the same, it did not shrink, and its content still starts with
// the bytes hashed last time; then it only grew. Anything else at a known
// path (a reused inode, a rewrite, a copy over it) is another file.
package decide

import (
	"github.com/cespare/xxhash/v2"

	"github.com/stackwatch/stackwatch/internal/fsutil"
)

// Status says what became of a file when it was last read.
type Status string

// File statuses.
const (
	StatusCounted Status = "counted" // parsed as a panic and counted
	StatusFailed  Status = "failed"  // not a panic; its parse failure counted
	// StatusUnreadable: could not be read (permissions); its failure is
	// counted once, and it is read again at every rescan.
	StatusUnreadable Status = "unreadable"
	StatusEmpty      Status = "empty" // nothing in it yet; waiting for content
	// StatusIncomplete: a panic cut short (the message only, or a traceback
	// without its end); waiting for the rest of an in-place write.
	StatusIncomplete Status = "incomplete"
)

// Record is a file as it was last read. Its JSON is the state file's.
type Record struct {
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	Size   int64  `json:"size"`
	MTime  int64  `json:"mtime_ns"`
	Hash   uint64 `json:"hash"`   // xxhash64 of the first Hashed bytes
	Hashed int64  `json:"hashed"` // bytes covered by Hash (the read is bounded)
	Status Status `json:"status"`
	// Group is the crash group a counted file was counted in, so a file
	// that grows into another crash site can move its count.
	Group string `json:"group,omitempty"`
}

// ID is the record's file identity.
func (r Record) ID() fsutil.ID { return fsutil.ID{Dev: r.Dev, Ino: r.Ino} }

// Stat is what a stat of the file says now.
type Stat struct {
	ID    fsutil.ID
	Size  int64
	MTime int64 // ns
}

// Verdict is what a file is, compared with its record.
type Verdict uint8

// Verdicts.
const (
	// New: no record for the path (or the record was of an unreadable
	// file, never parsed).
	New Verdict = iota + 1
	// Unchanged: the same file with the same content (perhaps touched).
	Unchanged
	// Grown: the same file with bytes appended.
	Grown
	// Replaced: another file now has the path.
	Replaced
	// Failed: the file could not be read.
	Failed
)

func (v Verdict) String() string {
	switch v {
	case New:
		return "new"
	case Unchanged:
		return "unchanged"
	case Grown:
		return "grown"
	case Replaced:
		return "replaced"
	case Failed:
		return "failed"
	}
	return "Verdict(?)"
}

// Skip reports whether a file can be left unread: its record is of this
// very stat, and it was read fine then. Unreadable files are always read
// again, since permissions change without touching size or mtime.
func Skip(prev Record, known bool, st Stat) bool {
	return known && prev.Status != StatusUnreadable && prev.ID() == st.ID &&
		prev.Size == st.Size && prev.MTime == st.MTime
}

// Decide compares the record of a path (known=false when there is none)
// with the file read now: st is the fstat of the opened file (the lstat of
// the path when it could not be opened), data its first bytes (bounded) and
// readErr the error of opening or reading it. It returns the verdict and
// the record of the file as read now, with the previous Status and Group
// when it is the same file (the caller sets them after parsing).
func Decide(prev Record, known bool, st Stat, data []byte, readErr error) (Verdict, Record) {
	now := Record{Dev: st.ID.Dev, Ino: st.ID.Ino, Size: st.Size, MTime: st.MTime}
	if readErr != nil {
		now.Status = StatusUnreadable
		return Failed, now
	}
	now.Hash, now.Hashed = xxhash.Sum64(data), int64(len(data))
	if !known || prev.Status == StatusUnreadable {
		return New, now
	}
	same := prev.ID() == st.ID && st.Size >= prev.Size && prev.Hashed <= now.Hashed &&
		xxhash.Sum64(data[:prev.Hashed]) == prev.Hash
	if !same {
		return Replaced, now
	}
	now.Status, now.Group = prev.Status, prev.Group
	if st.Size == prev.Size && now.Hash == prev.Hash {
		return Unchanged, now
	}
	return Grown, now
}

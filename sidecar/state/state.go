// Package state keeps the sidecar's durable memory in one JSON file in the
// data directory: which stacktrace files were already counted, how far the
// server log was read, and the values of the sidecar's counters. Because the
// seen set, the log position and the counters are saved in one atomic write,
// a restart neither counts a file or a log line twice nor resets a counter.
//
// # Writes
//
// Save streams the state through internal/fsutil.Write (a temporary file in
// the same directory, fsync, rename over state.json, fsync of the
// directory), so a crash leaves either the old or the new state, never a
// mix, and a save holds no second copy of the crash groups in memory.
//
// # Size
//
// The state is bounded whatever the number of files and crash sites: the
// crash groups are capped by the sidecar (the rest roll into one "other"
// group that keeps the counts), and per-file records are kept for at most
// a cap of files on disk (ingest.DefaultMaxFiles). Past that, the oldest records are dropped and
// SeenBefore remembers the newest modification time dropped: a file with no
// record and an older time is taken as seen. Counters are a handful of
// series. At the default caps the file stays under about 32 MB.
//
// The sidecar saves when something changed, at most every -state-interval
// (1 s), and on shutdown. After a SIGKILL the seen set and the counters roll
// back together to the last save, and the files and log lines since are
// counted again on start, so the totals come out the same.
//
// # Corrupt state policy
//
// A state file that cannot be decoded (garbage, truncated by a full disk,
// written by an unknown future version) is never deleted and never stops the
// sidecar: Load moves it aside to state.json.corrupt-<UTC timestamp>, logs an
// error naming that file, and returns an empty State with Loaded.Corrupt set.
// The sidecar then rebuilds its state from the log directory and treats every
// stacktrace file already there as seen: those files are grouped and shown
// but not added to stackwatch_panics_total again, because they were most
// likely counted before the state was lost. Counters restart at zero (a
// counter reset, which Prometheus' rate and increase handle), and the server
// log is read from its current end. Missing a few increments is preferred over
// counting a burst of old panics as new, which would fire alerts.
//
// A missing state file is not corrupt: it is a first start, and every file in
// the directory is new.
package state

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/stackwatch/stackwatch/internal/fsutil"
	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/decide"
)

// FileName is the state file's name inside the data directory.
const FileName = "state.json"

// Version is the format written by this package. Files with a different
// version are handled by the corrupt state policy.
const Version = 1

// maxStateBytes bounds how much Load reads: a state file past this is treated
// as corrupt rather than exhausting memory. Files this package writes stay
// far below it (see Size in the package documentation).
const maxStateBytes = 256 << 20

// Log is the position of the server log tailer.
type Log struct {
	Path   string `json:"path"`
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	Offset int64  `json:"offset"`   // bytes consumed (always at a line start)
	Head   uint64 `json:"head"`     // xxhash64 of the file's first HeadLen bytes
	HeadN  int64  `json:"head_len"` // detects copytruncate followed by regrowth
}

// Series is one saved counter value.
type Series struct {
	Metric string   `json:"metric"`
	Labels []string `json:"labels,omitempty"` // label values, in the metric's label order
	Value  float64  `json:"value"`
}

// State is everything the sidecar persists.
type State struct {
	Version int                      `json:"version"`
	Saved   time.Time                `json:"saved"`
	Files   map[string]decide.Record `json:"files"` // by path
	// SeenBefore: files without a record and modified at or before this
	// time (ns) were seen and their records dropped (see Size).
	SeenBefore int64    `json:"seen_before_ns,omitempty"`
	Log        Log      `json:"log"`
	Counters   []Series `json:"counters"`
	// Groups are the crash groups, so that a restart keeps groups whose
	// files retention has deleted.
	Groups []crash.Group `json:"groups,omitempty"`
}

// New returns an empty state.
func New() *State { return &State{Version: Version, Files: map[string]decide.Record{}} }

// Loaded describes how Load found the state file.
type Loaded struct {
	Fresh     bool   // no state file: first start
	Corrupt   bool   // a state file existed but was unusable
	MovedTo   string // where a corrupt file was moved
	CorruptBy error  // why it was unusable
}

// Store reads and writes the state file of one data directory.
type Store struct {
	dir    string
	logger *slog.Logger
	now    func() time.Time
}

// NewStore returns a Store for dir, creating dir if needed.
func NewStore(dir string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("state: data dir: %w", err)
	}
	return &Store{dir: dir, logger: logger, now: time.Now}, nil
}

// Path is the state file's path.
func (s *Store) Path() string { return filepath.Join(s.dir, FileName) }

// Load reads the state, applying the corrupt state policy (see the package
// documentation). It fails only when the data directory itself cannot be
// used (for example a corrupt file that cannot be moved aside).
func (s *Store) Load() (*State, Loaded, error) {
	b, err := readBounded(s.Path(), maxStateBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return New(), Loaded{Fresh: true}, nil
	}
	if err == nil {
		var st State
		if err = decode(b, &st); err == nil {
			return &st, Loaded{}, nil
		}
	}
	moved := fmt.Sprintf("%s.corrupt-%s", s.Path(), s.now().UTC().Format("20060102T150405.000000000Z"))
	if rerr := os.Rename(s.Path(), moved); rerr != nil {
		return nil, Loaded{}, fmt.Errorf("state: %s is unusable (%v) and cannot be moved aside: %w", s.Path(), err, rerr)
	}
	s.logger.Error("state file unusable; moved aside, rebuilding from the log directory with existing files counted as seen",
		"path", s.Path(), "moved_to", moved, "err", err)
	return New(), Loaded{Corrupt: true, MovedTo: moved, CorruptBy: err}, nil
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("state file is %d bytes, over the %d byte limit", fi.Size(), limit)
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, err
	}
	return b, nil
}

func decode(b []byte, st *State) error {
	if err := json.Unmarshal(b, st); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if st.Version != Version {
		return fmt.Errorf("unsupported state version %d (want %d)", st.Version, Version)
	}
	if st.Files == nil {
		st.Files = map[string]decide.Record{}
	}
	return nil
}

// Save writes st atomically. The crash groups are encoded one at a time
// straight to the file.
func (s *Store) Save(st *State) error {
	st.Version = Version
	st.Saved = s.now().UTC()
	head := *st
	head.Groups = nil
	b, err := json.Marshal(&head)
	if err != nil {
		return fmt.Errorf("state: encode: %w", err)
	}
	err = fsutil.Write(s.Path(), 0o600, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 64<<10)
		// The head without its closing brace, then the groups.
		bw.Write(bytes.TrimSuffix(b, []byte("}")))
		bw.WriteString(`,"groups":[`)
		enc := json.NewEncoder(bw)
		for i := range st.Groups {
			if i > 0 {
				bw.WriteByte(',')
			}
			if err := enc.Encode(&st.Groups[i]); err != nil {
				return err
			}
		}
		bw.WriteString("]}\n")
		return bw.Flush()
	})
	if err != nil {
		return fmt.Errorf("state: save: %w", err)
	}
	return nil
}

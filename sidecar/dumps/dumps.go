// Package dumps keeps goroutine dumps in a bounded ring on disk.
//
// Each dump is two files in the ring's directory: <id>.pb.gz, the raw pprof
// profile exactly as the target served it (so `go tool pprof` opens it as
// is), and <id>.json, its metadata. Both are written atomically
// (fsutil.WriteFile) and the metadata goes last, so a dump is visible only
// when whole; a profile without metadata, or a temporary file, is the
// remains of an interrupted write and is deleted on Open.
//
// Ids are timestamps plus randomness ("20261126T040925.123456789Z-3fa9c2"),
// sort in capture order and are checked against a strict pattern before
// they touch the file system, so no id can name a path outside the ring.
package dumps

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stackwatch/stackwatch/internal/fsutil"
)

// Errors.
var (
	ErrNotFound  = errors.New("dumps: no such dump")
	ErrInvalidID = errors.New("dumps: invalid dump id")
	ErrTooLarge  = errors.New("dumps: dump larger than the ring's byte limit")
	ErrNoSpace   = errors.New("dumps: no space left in the data dir")
)

const (
	profileExt = ".pb.gz"
	metaExt    = ".json"
	idLayout   = "20060102T150405.000000000Z"
)

var idPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}\.[0-9]{9}Z-[0-9a-f]{6}$`)

// ValidID reports whether id is a well-formed dump id.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Meta describes one dump.
type Meta struct {
	ID         string    `json:"id"`
	Service    string    `json:"service"`
	Time       time.Time `json:"time"`
	Profile    string    `json:"profile"`    // pprof profile name, "goroutine"
	Goroutines int       `json:"goroutines"` // goroutines in the profile
	Groups     int       `json:"groups"`     // distinct stacks
	Trigger    string    `json:"trigger"`    // why it was captured (schedule, threshold, panics, alert, manual)
	Reason     string    `json:"reason,omitempty"`
	Bytes      int64     `json:"bytes"` // profile size
}

// Limits bound the ring. Zero fields take the defaults.
type Limits struct {
	MaxCount int   // dumps kept; default 50
	MaxBytes int64 // bytes kept (profiles and metadata); default 64 MiB
}

func (l Limits) withDefaults() Limits {
	if l.MaxCount <= 0 {
		l.MaxCount = 50
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = 64 << 20
	}
	return l
}

type entry struct {
	meta Meta
	size int64 // on disk: profile plus metadata
}

// Store is a ring of dumps in one directory. It is safe for concurrent use.
type Store struct {
	dir    string
	limits Limits

	mu      sync.Mutex
	entries []entry // oldest first
	bytes   int64
}

// Open opens (creating it if needed) the ring in dir, loads the dumps there,
// removes leftovers of interrupted writes, and trims to limits.
func Open(dir string, limits Limits) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dumps: %w", err)
	}
	s := &Store{dir: dir, limits: limits.withDefaults()}
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("dumps: %w", err)
	}
	profiles := map[string]int64{}
	var metas []string
	for _, de := range names {
		name := de.Name()
		switch {
		case strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-"): // fsutil's temporary files
			os.Remove(filepath.Join(dir, name))
		case strings.HasSuffix(name, profileExt) && ValidID(strings.TrimSuffix(name, profileExt)):
			if info, err := de.Info(); err == nil {
				profiles[strings.TrimSuffix(name, profileExt)] = info.Size()
			}
		case strings.HasSuffix(name, metaExt) && ValidID(strings.TrimSuffix(name, metaExt)):
			metas = append(metas, strings.TrimSuffix(name, metaExt))
		}
	}
	for _, id := range metas {
		size, ok := profiles[id]
		delete(profiles, id)
		m, msize, err := s.readMeta(id)
		if !ok || err != nil || m.ID != id {
			s.removeFiles(id) // half a dump, or unreadable metadata
			continue
		}
		s.entries = append(s.entries, entry{meta: m, size: size + msize})
		s.bytes += size + msize
	}
	for id := range profiles { // profile without metadata: interrupted write
		s.removeFiles(id)
	}
	slices.SortFunc(s.entries, func(a, b entry) int { return strings.Compare(a.meta.ID, b.meta.ID) })
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evict(0, 0)
	return s, nil
}

// Dir returns the ring's directory.
func (s *Store) Dir() string { return s.dir }

// Limits returns the ring's effective limits.
func (s *Store) Limits() Limits { return s.limits }

// Usage returns the dumps kept and their bytes on disk.
func (s *Store) Usage() (count int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries), s.bytes
}

// Put stores profile with meta (ID, Time and Bytes are filled in) and
// evicts the oldest dumps to stay within the limits. On a write error —
// including a full disk, reported as ErrNoSpace — nothing is left behind.
func (s *Store) Put(profile []byte, meta Meta) (Meta, error) {
	if meta.Time.IsZero() {
		meta.Time = time.Now()
	}
	meta.Time = meta.Time.UTC()
	var rnd [3]byte
	rand.Read(rnd[:])
	meta.ID = meta.Time.Format(idLayout) + "-" + hex.EncodeToString(rnd[:])
	meta.Bytes = int64(len(profile))
	mdata, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return Meta{}, fmt.Errorf("dumps: %w", err)
	}
	size := int64(len(profile) + len(mdata))
	if size > s.limits.MaxBytes {
		return Meta{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, s.limits.MaxBytes)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// Make room first: on a nearly full disk the space is needed now.
	s.evict(1, size)
	if err := fsutil.WriteFile(filepath.Join(s.dir, meta.ID+profileExt), profile, 0o600); err != nil {
		return Meta{}, storageError(err)
	}
	if err := fsutil.WriteFile(filepath.Join(s.dir, meta.ID+metaExt), mdata, 0o600); err != nil {
		os.Remove(filepath.Join(s.dir, meta.ID+profileExt))
		return Meta{}, storageError(err)
	}
	s.entries = append(s.entries, entry{meta: meta, size: size})
	s.bytes += size
	return meta, nil
}

// evict removes the oldest dumps until n more dumps of size more bytes fit.
// Callers hold s.mu.
func (s *Store) evict(n int, size int64) {
	for len(s.entries) > 0 && (len(s.entries)+n > s.limits.MaxCount || s.bytes+size > s.limits.MaxBytes) {
		old := s.entries[0]
		s.entries = s.entries[1:]
		s.bytes -= old.size
		s.removeFiles(old.meta.ID)
	}
}

// List returns the dumps, newest first.
func (s *Store) List() []Meta {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Meta, len(s.entries))
	for i, e := range s.entries {
		out[len(out)-1-i] = e.meta
	}
	return out
}

// Get returns a dump's metadata.
func (s *Store) Get(id string) (Meta, error) {
	if !ValidID(id) {
		return Meta{}, ErrInvalidID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		if e.meta.ID == id {
			return e.meta, nil
		}
	}
	return Meta{}, ErrNotFound
}

// Read returns a dump's raw profile and metadata.
func (s *Store) Read(id string) ([]byte, Meta, error) {
	f, m, err := s.Open(id)
	if err != nil {
		return nil, Meta{}, err
	}
	defer f.Close()
	data := make([]byte, m.Bytes)
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, Meta{}, fmt.Errorf("dumps: read %s: %w", id, err)
	}
	return data, m, nil
}

// Open opens a dump's raw profile for reading; the caller closes it. The
// file stays readable even if the ring evicts the dump meanwhile.
func (s *Store) Open(id string) (*os.File, Meta, error) {
	m, err := s.Get(id)
	if err != nil {
		return nil, Meta{}, err
	}
	f, _, err := fsutil.OpenRegular(filepath.Join(s.dir, id+profileExt))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Meta{}, ErrNotFound
	}
	if err != nil {
		return nil, Meta{}, fmt.Errorf("dumps: %w", err)
	}
	return f, m, nil
}

func (s *Store) readMeta(id string) (Meta, int64, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, id+metaExt))
	if err != nil {
		return Meta{}, 0, err
	}
	var m Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return Meta{}, 0, err
	}
	return m, int64(len(data)), nil
}

func (s *Store) removeFiles(id string) {
	os.Remove(filepath.Join(s.dir, id+metaExt)) // metadata first: the dump disappears at once
	os.Remove(filepath.Join(s.dir, id+profileExt))
}

// storageError marks a full disk or quota as ErrNoSpace.
func storageError(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return fmt.Errorf("dumps: %w", err)
}

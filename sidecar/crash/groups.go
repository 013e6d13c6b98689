package crash

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Bounds on what groups keep, so memory and the state file do not grow
// with the panic count or the number of distinct crash sites.
const (
	// MaxFiles is how many file paths a group keeps (the newest).
	MaxFiles = 100
	// MaxExampleBytes caps a group's example trace.
	MaxExampleBytes = 16 << 10
	// DefaultMaxGroups is how many groups are kept before the least
	// recent are rolled into the Other group.
	DefaultMaxGroups = 1000
	// MinRateSpan is the shortest first-to-last span over which a rate per
	// hour is shown: over seconds, a burst would read as thousands per hour.
	MinRateSpan = 10 * time.Minute
)

// OtherKey is the key (and kind) of the group that holds the counts of
// groups rolled out past the cap.
const OtherKey = "other"

// File identifies one panic file for grouping.
type File struct {
	Path string
	Size int64
	// ModTime is when the panic happened: its own time when the file says
	// (see TimeOf), else the file's modification time.
	ModTime time.Time
}

// Group is one crash group. Its JSON is the contract of
// `sidecar analyze -json` and GET /api/v1/crashes.
type Group struct {
	Key       string `json:"key"`
	Kind      string `json:"kind"`
	Message   string `json:"message"`
	CrashSite Site   `json:"crash_site"`
	// Caller is the frame that called the crash site; empty when the site
	// is its goroutine's outermost frame.
	Caller string `json:"caller"`
	// CreatedBy is the function that started the crashing goroutine.
	CreatedBy   string `json:"created_by,omitempty"`
	NilReceiver bool   `json:"nil_receiver"`
	Count       int    `json:"count"`
	// FirstSeen and LastSeen are the oldest and newest panic times.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// RatePerHour is Count over the first-to-last span; null while the span
	// is under MinRateSpan.
	RatePerHour *float64 `json:"rate_per_hour"`
	// Files are the newest MaxFiles paths, newest first; FilesDropped
	// counts the older ones no longer listed.
	Files        []string `json:"files"`
	FilesDropped int      `json:"files_dropped"`
	// Bytes is the total size of the group's files.
	Bytes int64 `json:"bytes"`
	// Example is the first trace seen, cut to MaxExampleBytes.
	Example string `json:"example"`
}

// Groups accumulates crash groups, at most a maximum number of them: past
// it, the least recently seen group is rolled into the Other group, which
// keeps its counts. It is safe for concurrent use.
type Groups struct {
	mu    sync.Mutex
	max   int
	m     map[string]*group
	other *group // nil until a group is rolled out
}

type group struct {
	Group
	// files are kept oldest first, so the usual arrival (newest last) is an
	// append; beyond MaxFiles the oldest are dropped in batches.
	files []File
}

// NewGroups returns an empty set of groups with the default cap.
func NewGroups() *Groups { return NewGroupsMax(DefaultMaxGroups) }

// NewGroupsMax returns an empty set of at most max groups besides Other
// (DefaultMaxGroups when max <= 0).
func NewGroupsMax(max int) *Groups {
	if max <= 0 {
		max = DefaultMaxGroups
	}
	return &Groups{max: max, m: make(map[string]*group)}
}

// Add counts one panic file in the group of sig, creating the group if
// needed, and returns the group as it now is, except that Files is nil:
// copying the file list halved the ingest rate, so it is left to Snapshot.
// example is kept (capped) if the group is new.
func (g *Groups) Add(sig Signature, f File, example string) Group {
	g.mu.Lock()
	defer g.mu.Unlock()
	gr, ok := g.m[sig.Key]
	if !ok {
		gr = &group{Group: Group{
			Key: sig.Key, Kind: sig.Kind, Message: sig.Message, CrashSite: sig.Site,
			Caller: sig.Caller, CreatedBy: sig.CreatedBy, NilReceiver: sig.NilReceiver,
			FirstSeen: f.ModTime, LastSeen: f.ModTime,
			Example: capString(example, MaxExampleBytes),
		}}
		g.m[sig.Key] = gr
		g.evict()
	}
	gr.add(f)
	if !f.ModTime.Before(gr.LastSeen) {
		// Show the newest occurrence's line: after a redeploy it is the current one.
		gr.CrashSite = sig.Site
	}
	return gr.summary()
}

// Has reports whether a group of key is kept (not rolled into Other), so
// a caller can skip copying an example it would not keep.
func (g *Groups) Has(key string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.m[key]
	return ok
}

func (gr *group) add(f File) {
	gr.Count++
	gr.Bytes += f.Size
	if f.ModTime.Before(gr.FirstSeen) {
		gr.FirstSeen = f.ModTime
	}
	if f.ModTime.After(gr.LastSeen) {
		gr.LastSeen = f.ModTime
	}
	gr.addFile(f)
}

// Remove takes one panic file out of the group of key (or out of Other if
// that group was rolled out), e.g. when a file that grew turns out to be
// another crash site. First and last seen stay as they were.
func (g *Groups) Remove(key string, f File) {
	g.mu.Lock()
	defer g.mu.Unlock()
	gr, ok := g.m[key]
	if !ok {
		gr = g.other
	}
	if gr == nil || gr.Count == 0 {
		return
	}
	gr.Count--
	gr.Bytes = max(0, gr.Bytes-f.Size)
	if i := slices.IndexFunc(gr.files, func(x File) bool { return x.Path == f.Path }); i >= 0 {
		gr.files = slices.Delete(gr.files, i, i+1)
	}
	if gr.Count == 0 && gr != g.other {
		delete(g.m, key)
	}
}

// evict rolls the least recently seen group into Other while there are
// more than max.
func (g *Groups) evict() {
	for len(g.m) > g.max {
		var oldest *group
		for _, gr := range g.m {
			if oldest == nil || gr.LastSeen.Before(oldest.LastSeen) ||
				gr.LastSeen.Equal(oldest.LastSeen) && gr.Key < oldest.Key {
				oldest = gr
			}
		}
		delete(g.m, oldest.Key)
		if g.other == nil {
			g.other = &group{Group: Group{
				Key: OtherKey, Kind: OtherKey, Message: "crash groups past the cap, rolled together (least recently seen first)",
				FirstSeen: oldest.FirstSeen, LastSeen: oldest.LastSeen,
			}}
		}
		g.other.merge(oldest)
	}
}

// merge adds src's counts and files to gr.
func (gr *group) merge(src *group) {
	gr.Count += src.Count
	gr.Bytes += src.Bytes
	gr.FilesDropped += src.FilesDropped
	if src.FirstSeen.Before(gr.FirstSeen) {
		gr.FirstSeen = src.FirstSeen
	}
	if src.LastSeen.After(gr.LastSeen) {
		gr.LastSeen = src.LastSeen
	}
	for _, f := range src.files {
		gr.addFile(f)
	}
}

// addFile inserts f in ModTime order, keeping at most MaxFiles newest.
func (gr *group) addFile(f File) {
	n := len(gr.files)
	// Usually f is the newest: search from the end.
	i := n
	for i > 0 && f.ModTime.Before(gr.files[i-1].ModTime) {
		i--
	}
	if n >= MaxFiles && i <= n-MaxFiles {
		gr.FilesDropped++ // older than every listed file
		return
	}
	f.Path = strings.Clone(f.Path)
	gr.files = slices.Insert(gr.files, i, f)
	if len(gr.files) >= 2*MaxFiles {
		// Drop the excess in one batch rather than one shift per file.
		drop := len(gr.files) - MaxFiles
		gr.FilesDropped += drop
		gr.files = append(gr.files[:0], gr.files[drop:]...)
	}
}

// summary is the group without its file list.
func (gr *group) summary() Group {
	out := gr.Group
	out.FilesDropped += max(0, len(gr.files)-MaxFiles)
	out.RatePerHour = Rate(out.Count, out.FirstSeen, out.LastSeen)
	return out
}

// Rate is count per hour over the span from first to last, or nil when the
// span is under MinRateSpan.
func Rate(count int, first, last time.Time) *float64 {
	span := last.Sub(first)
	if span < MinRateSpan {
		return nil
	}
	r := float64(count) / span.Hours()
	return &r
}

func (gr *group) snapshot() Group {
	out := gr.summary()
	listed := gr.files[max(0, len(gr.files)-MaxFiles):]
	out.Files = make([]string, len(listed))
	for i, f := range listed {
		out.Files[len(listed)-1-i] = f.Path // newest first
	}
	return out
}

// Len returns the number of groups, Other included.
func (g *Groups) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.other != nil {
		return len(g.m) + 1
	}
	return len(g.m)
}

// Get returns the group of key (OtherKey for Other) with its files.
func (g *Groups) Get(key string) (Group, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	gr, ok := g.m[key]
	if !ok && key == OtherKey && g.other != nil {
		gr, ok = g.other, true
	}
	if !ok {
		return Group{}, false
	}
	return gr.snapshot(), true
}

// Snapshot returns copies of all groups, largest first (then newest, then
// by key), Other among them.
func (g *Groups) Snapshot() []Group {
	g.mu.Lock()
	out := make([]Group, 0, len(g.m)+1)
	for _, gr := range g.m {
		out = append(out, gr.snapshot())
	}
	if g.other != nil {
		out = append(out, g.other.snapshot())
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b Group) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out
}

// capString returns a copy of s cut to at most n bytes on a rune boundary.
func capString(s string, n int) string {
	if len(s) > n {
		s = s[:n]
		for len(s) > 0 && !utf8.ValidString(s[max(0, len(s)-utf8.UTFMax):]) {
			s = s[:len(s)-1]
		}
	}
	return strings.Clone(s)
}

// Restore merges groups saved from an earlier Snapshot, e.g. from the
// sidecar's state file after a restart. A restored group's counts add to
// any group of the same key already present; past the cap the least
// recent roll into Other as they would have.
func (g *Groups) Restore(saved []Group) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range saved {
		src := &group{Group: s}
		src.Files, src.RatePerHour = nil, nil
		src.Example = capString(s.Example, MaxExampleBytes)
		// Per-file times are not saved: space the files out below LastSeen
		// so they keep their newest-first order.
		for i, p := range s.Files {
			src.addFile(File{Path: p, ModTime: s.LastSeen.Add(-time.Duration(i))})
		}
		src.FilesDropped = s.FilesDropped
		switch gr, ok := g.m[s.Key]; {
		case s.Key == OtherKey && g.other == nil:
			g.other = src
		case s.Key == OtherKey:
			g.other.merge(src)
		case ok:
			gr.merge(src)
		default:
			g.m[s.Key] = src
		}
	}
	g.evict()
}

// RateText is RatePerHour for people: "12.0" per hour, or "-" while the
// span is too short for a rate.
func (g Group) RateText() string {
	if g.RatePerHour == nil {
		return "-"
	}
	return strconv.FormatFloat(*g.RatePerHour, 'f', 1, 64)
}

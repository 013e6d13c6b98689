package crash

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Bounds on what a group keeps, so memory does not grow with the panic count.
const (
	// MaxFiles is how many file paths a group keeps (the newest).
	MaxFiles = 100
	// MaxExampleBytes caps a group's example trace.
	MaxExampleBytes = 16 << 10
)

// File identifies one panic file for grouping.
type File struct {
	Path    string
	Size    int64
	ModTime time.Time
}

// Group is one crash group. Its JSON is the contract of
// `sidecar analyze -json` and GET /api/v1/crashes.
type Group struct {
	Key         string `json:"key"`
	Kind        string `json:"kind"`
	Message     string `json:"message"`
	CrashSite   Site   `json:"crash_site"`
	Caller      string `json:"caller"`
	NilReceiver bool   `json:"nil_receiver"`
	Count       int    `json:"count"`
	// FirstSeen and LastSeen are the oldest and newest file modification times.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// RatePerHour is Count over the first-to-last span, the span counted as
	// at least one hour so that a burst does not read as thousands per hour.
	RatePerHour float64 `json:"rate_per_hour"`
	// Files are the newest MaxFiles paths, newest first; FilesDropped
	// counts the older ones no longer listed.
	Files        []string `json:"files"`
	FilesDropped int      `json:"files_dropped"`
	// Bytes is the total size of the group's files.
	Bytes int64 `json:"bytes"`
	// Example is the first trace seen, cut to MaxExampleBytes.
	Example string `json:"example"`
}

// Groups accumulates crash groups. It is safe for concurrent use.
type Groups struct {
	mu sync.Mutex
	m  map[string]*group
}

type group struct {
	Group
	// files are kept oldest first, so the usual arrival (newest last) is an
	// append; beyond MaxFiles the oldest are dropped in batches.
	files []File
}

// NewGroups returns an empty set of groups.
func NewGroups() *Groups {
	return &Groups{m: make(map[string]*group)}
}

// Add counts one panic file in the group of sig, creating the group if
// needed, and returns the group as it now is, except that Files is nil:
// copying the file list halved the ingest rate, so it is left to Snapshot.
// The file's ModTime is when the panic was seen; example is kept (capped)
// if the group is new.
func (g *Groups) Add(sig Signature, f File, example string) Group {
	g.mu.Lock()
	defer g.mu.Unlock()
	gr, ok := g.m[sig.Key]
	if !ok {
		gr = &group{Group: Group{
			Key: sig.Key, Kind: sig.Kind, Message: sig.Message, CrashSite: sig.Site,
			Caller: sig.Caller, NilReceiver: sig.NilReceiver,
			FirstSeen: f.ModTime, LastSeen: f.ModTime,
			Example: capString(example, MaxExampleBytes),
		}}
		g.m[sig.Key] = gr
	}
	gr.Count++
	gr.Bytes += f.Size
	if f.ModTime.Before(gr.FirstSeen) {
		gr.FirstSeen = f.ModTime
	}
	if f.ModTime.After(gr.LastSeen) {
		gr.LastSeen = f.ModTime
		// Show the newest occurrence's line: after a redeploy it is the current one.
		gr.CrashSite = sig.Site
	}
	gr.addFile(f)
	return gr.summary()
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
	hours := out.LastSeen.Sub(out.FirstSeen).Hours()
	out.RatePerHour = float64(out.Count) / max(hours, 1)
	return out
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

// Len returns the number of groups.
func (g *Groups) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.m)
}

// Snapshot returns copies of all groups, largest first (then newest, then by key).
func (g *Groups) Snapshot() []Group {
	g.mu.Lock()
	out := make([]Group, 0, len(g.m))
	for _, gr := range g.m {
		out = append(out, gr.snapshot())
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
// any group of the same key already present.
func (g *Groups) Restore(saved []Group) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range saved {
		gr, ok := g.m[s.Key]
		if !ok {
			gr = &group{Group: s}
			gr.Files, gr.RatePerHour = nil, 0
			gr.Example = capString(s.Example, MaxExampleBytes)
			g.m[s.Key] = gr
		} else {
			gr.Count += s.Count
			gr.Bytes += s.Bytes
			gr.FilesDropped += s.FilesDropped
			if s.FirstSeen.Before(gr.FirstSeen) {
				gr.FirstSeen = s.FirstSeen
			}
			if s.LastSeen.After(gr.LastSeen) {
				gr.LastSeen = s.LastSeen
			}
		}
		// Per-file times are not saved: space the files out below LastSeen
		// so they keep their newest-first order.
		for i, p := range s.Files {
			gr.addFile(File{Path: p, ModTime: s.LastSeen.Add(-time.Duration(i))})
		}
	}
}

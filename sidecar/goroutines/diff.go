package goroutines

import (
	"cmp"
	"slices"
	"strings"
)

// Change is one stack group whose goroutine count differs between two
// snapshots.
type Change struct {
	Key      string  `json:"key"`
	Location Frame   `json:"location"`
	Wait     Wait    `json:"wait,omitempty"`
	Base     int     `json:"base"`  // goroutines in the base snapshot
	Count    int     `json:"count"` // goroutines now
	Delta    int     `json:"delta"` // Count - Base
	Frames   []Frame `json:"frames"`
}

// Diff returns the groups that grew, shrank, appeared or vanished from base
// to cur, largest absolute change first. Both should come from the same
// binary and format for keys to match.
func Diff(base, cur *Snapshot) []Change {
	before := make(map[string]*Group, len(base.Groups))
	for _, g := range base.Groups {
		before[g.Key] = g
	}
	var out []Change
	for _, g := range cur.Groups {
		b := 0
		if bg := before[g.Key]; bg != nil {
			b = bg.Count
			delete(before, g.Key)
		}
		if g.Count != b {
			out = append(out, Change{Key: g.Key, Location: g.Location, Wait: g.Wait, Base: b, Count: g.Count, Delta: g.Count - b, Frames: g.Frames})
		}
	}
	for _, g := range before {
		out = append(out, Change{Key: g.Key, Location: g.Location, Wait: g.Wait, Base: g.Count, Delta: -g.Count, Frames: g.Frames})
	}
	slices.SortFunc(out, func(a, b Change) int {
		if c := cmp.Compare(abs(b.Delta), abs(a.Delta)); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

package goroutines

import (
	"cmp"
	"slices"
	"strings"
)

// Change is how many goroutines one code location holds in a wait state,
// in two snapshots. The stack groups that share the location and the wait
// (one blocked call reached along several paths) are merged into one
// Change, so a location shows once, and goroutines that only moved between
// such stacks cancel out.
type Change struct {
	Location Frame    `json:"location"`
	Wait     Wait     `json:"wait,omitempty"`
	Base     int      `json:"base"`   // goroutines at the location in the base snapshot
	Count    int      `json:"count"`  // goroutines there now
	Delta    int      `json:"delta"`  // Count - Base
	Groups   []string `json:"groups"` // keys of the stack groups that changed, largest change first
	Frames   []Frame  `json:"frames"` // the stack of Groups[0]
}

// Diff returns the locations whose goroutine count grew, shrank, appeared
// or vanished from base to cur, largest absolute change first. Both
// snapshots should come from the same binary and format for stacks to
// match.
func Diff(base, cur *Snapshot) []Change {
	type group struct {
		g           *Group
		base, count int
	}
	groups := make(map[string]*group, len(cur.Groups))
	for i, s := range []*Snapshot{base, cur} {
		for _, g := range s.Groups {
			e := groups[g.Key]
			if e == nil {
				e = &group{g: g}
				groups[g.Key] = e
			}
			if i == 0 {
				e.base += g.Count
			} else {
				e.count += g.Count
			}
		}
	}
	type row struct {
		Change
		moved []*group // groups whose count changed
	}
	rows := map[string]*row{}
	for _, e := range groups {
		k := e.g.Location.String() + "\x00" + string(e.g.Wait)
		r := rows[k]
		if r == nil {
			r = &row{Change: Change{Location: e.g.Location, Wait: e.g.Wait}}
			rows[k] = r
		}
		r.Base += e.base
		r.Count += e.count
		if e.count != e.base {
			r.moved = append(r.moved, e)
		}
	}
	var out []Change
	for _, r := range rows {
		if r.Delta = r.Count - r.Base; r.Delta == 0 {
			continue
		}
		slices.SortFunc(r.moved, func(a, b *group) int {
			if c := cmp.Compare(abs(b.count-b.base), abs(a.count-a.base)); c != 0 {
				return c
			}
			return strings.Compare(a.g.Key, b.g.Key)
		})
		for _, e := range r.moved {
			r.Groups = append(r.Groups, e.g.Key)
		}
		r.Frames = r.moved[0].g.Frames
		out = append(out, r.Change)
	}
	slices.SortFunc(out, func(a, b Change) int {
		if c := cmp.Compare(abs(b.Delta), abs(a.Delta)); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(a.Location.String(), b.Location.String()), strings.Compare(string(a.Wait), string(b.Wait)))
	})
	return out
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

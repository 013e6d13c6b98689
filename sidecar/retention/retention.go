// Package retention decides which stacktrace files to delete: those older
// than a maximum age, then the oldest beyond a file count, then the oldest
// beyond a byte budget. It replaces the incident's manual
// `find -mtime +7 -delete`. A zero Policy deletes nothing.
package retention

import (
	"cmp"
	"slices"
	"time"
)

// Reasons a file is deleted (values of the metrics.LabelReason label).
const (
	ReasonAge   = "age"
	ReasonCount = "count"
	ReasonSize  = "size"
)

// Policy bounds what is kept. Zero fields are off.
type Policy struct {
	MaxAge   time.Duration
	MaxFiles int
	MaxBytes int64
}

// Enabled reports whether any bound is set.
func (p Policy) Enabled() bool { return p.MaxAge > 0 || p.MaxFiles > 0 || p.MaxBytes > 0 }

// File is a candidate for deletion.
type File struct {
	Path    string
	Size    int64
	ModTime time.Time
}

// Deletion is a file to delete and why.
type Deletion struct {
	File
	Reason string
}

// Plan returns the files to delete under p at now, oldest first. Files
// newer than now (clock skew) are never deleted for age. Ties in ModTime
// are broken by path so that the plan is deterministic.
func Plan(files []File, p Policy, now time.Time) []Deletion {
	if !p.Enabled() || len(files) == 0 {
		return nil
	}
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b File) int {
		if c := a.ModTime.Compare(b.ModTime); c != 0 {
			return c
		}
		return cmp.Compare(a.Path, b.Path)
	})
	var out []Deletion
	var bytes int64
	for _, f := range sorted {
		bytes += f.Size
	}
	kept := len(sorted)
	for _, f := range sorted {
		reason := ""
		switch {
		case p.MaxAge > 0 && now.Sub(f.ModTime) > p.MaxAge:
			reason = ReasonAge
		case p.MaxFiles > 0 && kept > p.MaxFiles:
			reason = ReasonCount
		case p.MaxBytes > 0 && bytes > p.MaxBytes:
			reason = ReasonSize
		default:
			// Sorted oldest first: once a file is kept, all newer ones are
			// within the count and byte bounds too, and younger.
			return out
		}
		out = append(out, Deletion{File: f, Reason: reason})
		kept--
		bytes -= f.Size
	}
	return out
}

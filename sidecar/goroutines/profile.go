package goroutines

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/google/pprof/profile"

	"github.com/stackwatch/stackwatch/sidecar/traceback"
)

// MaxProfileSize bounds a profile's uncompressed size. A goroutine profile
// is aggregated by stack, so even 100,000 goroutines with distinct stacks
// take a few MiB; the bound stops a gzip bomb from a broken or hostile
// target.
const MaxProfileSize = 64 << 20

// ParseProfile parses a pprof goroutine profile (gzipped or not) as served by
// /debug/pprof/goroutine and /debug/pprof/goroutineleak.
func ParseProfile(data []byte) (*Snapshot, error) {
	if len(data) == 0 {
		return nil, errors.New("goroutines: empty profile")
	}
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("goroutines: not a pprof profile: %w", err)
		}
		raw, err := io.ReadAll(io.LimitReader(zr, MaxProfileSize+1))
		if err != nil {
			return nil, fmt.Errorf("goroutines: not a pprof profile: %w", err)
		}
		if len(raw) > MaxProfileSize {
			return nil, fmt.Errorf("goroutines: profile inflates beyond %d bytes", MaxProfileSize)
		}
		data = raw
	} else if len(data) > MaxProfileSize {
		return nil, fmt.Errorf("goroutines: profile larger than %d bytes", MaxProfileSize)
	}
	p, err := profile.ParseUncompressed(data)
	if err != nil {
		return nil, fmt.Errorf("goroutines: not a pprof profile: %w", err)
	}
	return FromProfile(p)
}

// FromProfile groups a parsed goroutine profile. Samples that differ only in
// their pprof labels are merged.
func FromProfile(p *profile.Profile) (*Snapshot, error) {
	if len(p.SampleType) != 1 || p.SampleType[0].Unit != "count" {
		return nil, fmt.Errorf("goroutines: not a goroutine profile (sample types %v)", p.SampleType)
	}
	if t := p.SampleType[0].Type; t != "goroutine" && t != "goroutineleak" {
		return nil, fmt.Errorf("goroutines: not a goroutine profile (sample type %q)", t)
	}
	s := &Snapshot{Format: FormatProfile}
	if p.TimeNanos > 0 {
		s.Time = time.Unix(0, p.TimeNanos).UTC()
	}
	byKey := make(map[string]*Group, len(p.Sample))
	var frames []Frame
	for _, smp := range p.Sample {
		if len(smp.Value) != 1 {
			return nil, fmt.Errorf("goroutines: sample has %d values, want 1", len(smp.Value))
		}
		n := smp.Value[0]
		if n < 0 || n > 1<<31 {
			return nil, fmt.Errorf("goroutines: sample count %d out of range", n)
		}
		frames = frames[:0]
		for _, loc := range smp.Location {
			if loc == nil {
				continue
			}
			for _, ln := range loc.Line {
				f := Frame{Line: int(ln.Line)}
				if ln.Function != nil {
					f.Function, f.Pkg, f.File = ln.Function.Name, traceback.PackageOf(ln.Function.Name), ln.Function.Filename
				}
				frames = append(frames, f)
			}
			if len(loc.Line) == 0 { // unsymbolized: keep the address so stacks stay distinct
				frames = append(frames, Frame{Function: fmt.Sprintf("0x%x", loc.Address)})
			}
		}
		key := keyOf(frames)
		g := byKey[key]
		if g == nil {
			fs := slices.Clone(frames)
			g = &Group{Key: key, Frames: fs, Wait: waitFromFrames(fs), Location: locationOf(fs)}
			byKey[key] = g
		}
		g.Count += int(n)
	}
	s.Groups = make([]*Group, 0, len(byKey))
	for _, g := range byKey {
		s.Groups = append(s.Groups, g)
	}
	s.finish()
	return s, nil
}

package retention

import (
	"fmt"
	"testing"
	"time"
)

func TestPlan(t *testing.T) {
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	files := []File{
		{Path: "e", Size: 100, ModTime: now.Add(-1 * time.Hour)},
		{Path: "a", Size: 100, ModTime: now.Add(-10 * day)},
		{Path: "b", Size: 100, ModTime: now.Add(-8 * day)},
		{Path: "c", Size: 100, ModTime: now.Add(-3 * day)},
		{Path: "d", Size: 300, ModTime: now.Add(-2 * day)},
		{Path: "f", Size: 100, ModTime: now.Add(time.Hour)}, // clock skew: never for age
	}
	for _, c := range []struct {
		p    Policy
		want string
	}{
		{Policy{}, ""},
		{Policy{MaxAge: 7 * day}, "a:age b:age"},
		{Policy{MaxFiles: 4}, "a:count b:count"},
		{Policy{MaxBytes: 500}, "a:size b:size c:size"},
		{Policy{MaxAge: 9 * day, MaxFiles: 3, MaxBytes: 10000}, "a:age b:count c:count"},
		{Policy{MaxFiles: 100, MaxBytes: 10000}, ""},
	} {
		got := ""
		for _, d := range Plan(files, c.p, now) {
			got += fmt.Sprintf(" %s:%s", d.Path, d.Reason)
		}
		if len(got) > 0 {
			got = got[1:]
		}
		if got != c.want {
			t.Errorf("%+v: got %q, want %q", c.p, got, c.want)
		}
	}
}

func FuzzPlan(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6}, int64(3), 2, int64(7))
	f.Add([]byte{}, int64(0), 0, int64(0))
	f.Fuzz(func(t *testing.T, sizes []byte, ageHours int64, maxFiles int, maxBytes int64) {
		now := time.Unix(1e9, 0)
		var files []File
		var total int64
		for i, s := range sizes {
			files = append(files, File{Path: fmt.Sprint(i), Size: int64(s), ModTime: now.Add(-time.Duration(i) * time.Hour)})
			total += int64(s)
		}
		p := Policy{MaxAge: time.Duration(ageHours) * time.Hour, MaxFiles: maxFiles, MaxBytes: maxBytes}
		del := Plan(files, p, now)
		keptN, keptB := len(files)-len(del), total
		seen := map[string]bool{}
		for _, d := range del {
			if seen[d.Path] {
				t.Fatalf("%s deleted twice", d.Path)
			}
			seen[d.Path] = true
			keptB -= d.Size
		}
		if p.MaxFiles > 0 && keptN > p.MaxFiles {
			t.Fatalf("kept %d files over %d", keptN, p.MaxFiles)
		}
		if p.MaxBytes > 0 && keptB > p.MaxBytes {
			t.Fatalf("kept %d bytes over %d", keptB, p.MaxBytes)
		}
		for _, f := range files {
			if !seen[f.Path] && p.MaxAge > 0 && now.Sub(f.ModTime) > p.MaxAge {
				t.Fatalf("kept %s past max age", f.Path)
			}
		}
	})
}

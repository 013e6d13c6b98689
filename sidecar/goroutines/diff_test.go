package goroutines_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/stackwatch/stackwatch/sidecar/goroutines"
)

// frame is at line 7 of its own file.
func frame(fn string) goroutines.Frame {
	return goroutines.Frame{Function: fn, File: "/src/" + fn + ".go", Line: 7}
}

func group(key string, n int, wait goroutines.Wait, frames ...goroutines.Frame) *goroutines.Group {
	return &goroutines.Group{Key: key, Count: n, Wait: wait, Location: frames[0], Frames: frames}
}

// TestDiffMergesByLocation: stacks that share a location and wait state
// are one row, and a goroutine that only changed stacks at one location
// (the pprof handler serving each dump) leaves no row.
func TestDiffMergesByLocation(t *testing.T) {
	recv, handler, sel := frame("app.reckon.func1"), frame("app.serve"), frame("app.tick")
	base := &goroutines.Snapshot{Groups: []*goroutines.Group{
		group("a", 5, goroutines.WaitChanReceive, recv, frame("app.viaBet")),
		group("h1", 1, "", handler, frame("app.pprofA")),
		group("s", 2, goroutines.WaitSelect, sel),
		group("u", 4, goroutines.WaitChanReceive, frame("app.steady")),
	}}
	cur := &goroutines.Snapshot{Groups: []*goroutines.Group{
		group("a", 10, goroutines.WaitChanReceive, recv, frame("app.viaBet")),
		group("b", 3, goroutines.WaitChanReceive, recv, frame("app.viaReplay")),
		group("h2", 1, "", handler, frame("app.pprofB")),
		group("u", 4, goroutines.WaitChanReceive, frame("app.steady")),
	}}
	changes := goroutines.Diff(base, cur)
	if len(changes) != 2 {
		t.Fatalf("%d changes, want 2 (reckon merged, handler cancelled, steady unchanged): %+v", len(changes), changes)
	}
	c := changes[0]
	if c.Location.String() != recv.String() || c.Base != 5 || c.Count != 13 || c.Delta != 8 || !slices.Equal(c.Groups, []string{"a", "b"}) || c.Frames[1].Function != "app.viaBet" {
		t.Errorf("top change %+v, want reckon 5 → 13 from groups a and b", c)
	}
	if c := changes[1]; c.Location.String() != sel.String() || c.Delta != -2 || c.Count != 0 || !slices.Equal(c.Groups, []string{"s"}) {
		t.Errorf("second change %+v, want tick 2 → 0", c)
	}

	var out bytes.Buffer
	if err := goroutines.WriteDiff(&out, changes); err != nil {
		t.Fatal(err)
	}
	want := "+8\t(5 → 13)\t[chan receive]\tapp.reckon.func1 /src/app.reckon.func1.go:7\t(2 stacks)\n" +
		"-2\t(2 → 0)\t[select]\tapp.tick /src/app.tick.go:7\n"
	if out.String() != want {
		t.Errorf("WriteDiff:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	goroutines.WriteDiff(&out, goroutines.Diff(cur, cur))
	if !strings.HasPrefix(out.String(), "no location") {
		t.Errorf("diff with itself printed %q", out.String())
	}
}

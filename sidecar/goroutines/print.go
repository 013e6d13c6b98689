package goroutines

import (
	"bufio"
	"fmt"
	"io"
)

// WriteText prints s for a developer: a summary line, then each group
// largest first with its count, wait state, location and frames.
func WriteText(w io.Writer, s *Snapshot) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%d goroutines in %d stack groups (%s)\n", s.Total, len(s.Groups), s.Format)
	if s.Truncated {
		fmt.Fprintln(bw, "warning: the dump was cut short (the runtime stops debug=2 output at 64 MiB); counts are low")
	}
	for _, g := range s.Groups {
		wait := string(g.Wait)
		if wait == "" {
			wait = "-"
		}
		if g.WaitMinutes > 0 {
			wait = fmt.Sprintf("%s, %d minutes", wait, g.WaitMinutes)
		}
		fmt.Fprintf(bw, "\n%d × [%s] %s  (group %s)\n", g.Count, wait, g.Location, g.Key)
		for _, f := range g.Frames {
			fmt.Fprintf(bw, "    %s\n        %s\n", f.Function, f.Site())
		}
	}
	return bw.Flush()
}

// WriteDiff prints one line per change, "+delta (base → count) [wait]
// location", with the number of stacks merged into it when more than one.
func WriteDiff(w io.Writer, changes []Change) error {
	bw := bufio.NewWriter(w)
	if len(changes) == 0 {
		fmt.Fprintln(bw, "no location's goroutine count changed")
	}
	for _, c := range changes {
		wait, loc := string(c.Wait), c.Location.String()
		if wait == "" {
			wait = "-"
		}
		if loc == "" {
			loc = "(no frames)"
		}
		fmt.Fprintf(bw, "%+d\t(%d → %d)\t[%s]\t%s", c.Delta, c.Base, c.Count, wait, loc)
		if len(c.Groups) > 1 {
			fmt.Fprintf(bw, "\t(%d stacks)", len(c.Groups))
		}
		fmt.Fprintln(bw)
	}
	return bw.Flush()
}

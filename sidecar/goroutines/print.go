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

// WriteDiff prints changes as "+delta (base → count) [wait] location".
func WriteDiff(w io.Writer, changes []Change) error {
	bw := bufio.NewWriter(w)
	if len(changes) == 0 {
		fmt.Fprintln(bw, "no stack group changed")
	}
	for _, c := range changes {
		fmt.Fprintf(bw, "%+d\t(%d → %d)\t[%s]\t%s\n", c.Delta, c.Base, c.Count, c.Wait, c.Location)
	}
	return bw.Flush()
}

// Package analyze implements `sidecar analyze [-json] PATH...`: the
// sidecar's parsing and grouping, run once for developers over what they
// have at hand. Each input is sniffed: a pprof goroutine profile, a debug=2
// goroutine dump, a panic file, or any log text with Go traces in it
// (`kubectl logs --previous pod | sidecar analyze -`).
package analyze

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stackwatch/stackwatch/internal/cli"
	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/goroutines"
	"github.com/stackwatch/stackwatch/sidecar/stacktrace"
	"github.com/stackwatch/stackwatch/sidecar/traceback"
)

// DefaultPattern is the file name pattern looked for when walking folders.
const DefaultPattern = "*.stacktrace.log"

// MaxProfileBytes bounds how much of an input is read as a goroutine
// profile or dump (a debug=2 dump of 100k goroutines runs to tens of MB).
const MaxProfileBytes = 256 << 20

// Report is the JSON output of `sidecar analyze -json`.
type Report struct {
	// Files is how many inputs were read.
	Files    int           `json:"files"`
	Groups   []crash.Group `json:"groups"`
	Failures []Failure     `json:"failures"`
	Profiles []Profile     `json:"profiles,omitempty"`
}

// Failure is an input that could not be analyzed.
type Failure struct {
	File  string `json:"file"`
	Error string `json:"error"`
}

// Profile is a goroutine profile or debug=2 dump, grouped.
type Profile struct {
	File   string               `json:"file"`
	Result *goroutines.Snapshot `json:"result"`
}

// Run runs the analyze subcommand with args (without "analyze"); the path
// "-" reads stdin. Usage errors and unreadable named paths return an
// error; inputs that hold nothing to analyze are reported as failures, and
// an error is returned when every input failed.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("analyze", flag.ContinueOnError)
	fset.SetOutput(stderr)
	asJSON := fset.Bool("json", false, "print JSON (groups, failures, profiles) instead of a table")
	pattern := fset.String("pattern", DefaultPattern, "file name pattern looked for in folders")
	maxBytes := fset.Int64("max-bytes", stacktrace.DefaultMaxBytes, "bytes of each panic file parsed")
	showFiles := fset.Int("show-files", 5, "files listed per group in the table")
	fset.Usage = func() {
		fmt.Fprintf(stderr, "usage: sidecar analyze [-json] PATH...\n\n"+
			"Groups the Go panics and fatal errors in stacktrace files, log files\n"+
			"and log streams (PATH \"-\" is stdin), and summarises goroutine profiles\n"+
			"and debug=2 dumps. Folders are searched for %s; files named\n"+
			"explicitly are read whatever their name.\n\n", DefaultPattern)
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return cli.Usagef("analyze: %v", err)
	}
	if fset.NArg() == 0 {
		fset.Usage()
		return cli.Usagef("analyze: no PATH given")
	}
	if _, err := filepath.Match(*pattern, ""); err != nil {
		return cli.Usagef("analyze: bad -pattern: %v", err)
	}
	// A read from a terminal, a pipe or a FIFO without a writer cannot be
	// interrupted, so Ctrl-C returns at once and leaves the read behind.
	type result struct {
		rep *Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := Analyze(ctx, fset.Args(), Options{Pattern: *pattern, MaxBytes: *maxBytes, Stdin: stdin})
		done <- result{rep, err}
	}()
	var rep *Report
	var err error
	select {
	case r := <-done:
		rep, err = r.rep, r.err
	case <-ctx.Done():
		return fmt.Errorf("analyze: interrupted: %w", context.Cause(ctx))
	}
	if rep != nil {
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if werr := enc.Encode(rep); werr != nil {
				return werr
			}
		} else if werr := WriteText(stdout, rep, *showFiles); werr != nil {
			return werr
		}
		// Like promtool check: a run that could analyze none of its inputs
		// fails (exit 1), so a script piping logs in sees it.
		if err == nil && len(rep.Groups) == 0 && len(rep.Profiles) == 0 && len(rep.Failures) > 0 {
			return fmt.Errorf("analyze: none of the %d inputs holds a Go trace or goroutine profile", len(rep.Failures))
		}
	}
	return err
}

// Options tunes Analyze.
type Options struct {
	Pattern  string    // DefaultPattern when empty
	MaxBytes int64     // stacktrace.DefaultMaxBytes when <= 0
	Stdin    io.Reader // read for the path "-"
}

// Analyze parses and groups every input under paths. It returns the report
// even when some named path could not be read, with an error naming them.
// Cancelling ctx stops the walk; the report then covers what was read.
func Analyze(ctx context.Context, paths []string, opt Options) (*Report, error) {
	if opt.Pattern == "" {
		opt.Pattern = DefaultPattern
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = stacktrace.DefaultMaxBytes
	}
	a := &analyzer{opt: opt, groups: crash.NewGroups(), rep: &Report{Failures: []Failure{}}}
	var errs []error
	for _, p := range paths {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		if err := a.path(ctx, p); err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
	}
	a.rep.Groups = a.groups.Snapshot()
	return a.rep, errors.Join(errs...)
}

type analyzer struct {
	opt    Options
	groups *crash.Groups
	rep    *Report
}

func (a *analyzer) path(ctx context.Context, root string) error {
	if root == "-" {
		if a.opt.Stdin == nil {
			return errors.New("analyze: no stdin to read")
		}
		a.rep.Files++
		a.input(ctx, "-", a.opt.Stdin, crash.File{Path: "-", ModTime: time.Now()}, true)
		return nil
	}
	fi, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	if !fi.IsDir() {
		a.file(ctx, root, fi, true)
		return nil
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			// An unreadable subfolder is a failure, not the end of the walk.
			a.fail(p, err)
			if d != nil && d.IsDir() && p != root {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if ok, _ := filepath.Match(a.opt.Pattern, d.Name()); !ok {
			return nil
		}
		// os.Stat follows a symlinked file; anything else that is not a
		// regular file (fifo, socket, device) is never opened.
		fi, err := os.Stat(p)
		if err != nil {
			a.fail(p, err)
			return nil
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		// The game server opens its crash output file,
		// fatal-<start>-<pid>.stacktrace.log, empty at start; it fills
		// only if the process dies (as the sidecar treats it).
		if fi.Size() == 0 && strings.HasPrefix(d.Name(), "fatal-") {
			return nil
		}
		a.file(ctx, p, fi, false)
		return nil
	})
}

func (a *analyzer) fail(p string, err error) {
	a.rep.Failures = append(a.rep.Failures, Failure{File: p, Error: err.Error()})
}

// file analyzes one file. Files found by walking a folder match the
// stacktrace pattern and are read for panics only; files named on the
// command line may also be goroutine profiles and dumps.
func (a *analyzer) file(ctx context.Context, p string, fi fs.FileInfo, explicit bool) {
	a.rep.Files++
	// Symlinks named or found are followed: this is the developer's own
	// copy, not a watched directory.
	f, err := os.Open(p)
	if err != nil {
		a.fail(p, err)
		return
	}
	defer f.Close()
	a.input(ctx, p, f, crash.File{Path: p, Size: fi.Size(), ModTime: fi.ModTime()}, explicit)
}

// input sniffs one input and analyzes it as what it is: a goroutine
// profile or debug=2 dump (explicit inputs only), a panic file, or log text
// holding any number of traces.
func (a *analyzer) input(ctx context.Context, name string, r io.Reader, file crash.File, explicit bool) {
	br := bufio.NewReaderSize(r, int(a.opt.MaxBytes)+1)
	head, err := br.Peek(int(a.opt.MaxBytes) + 1)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		a.fail(name, err)
		return
	}
	if _, ok := goroutines.Detect(head); ok && explicit {
		data, err := io.ReadAll(io.LimitReader(br, MaxProfileBytes))
		if err != nil {
			a.fail(name, err)
			return
		}
		snap, err := goroutines.ParseAny(data)
		if err != nil {
			a.fail(name, err)
			return
		}
		a.rep.Profiles = append(a.rep.Profiles, Profile{File: name, Result: snap})
		return
	}
	// A panic file as the game server writes it, read as the sidecar does.
	one, perr := stacktrace.Parse(bytes.NewReader(head), a.opt.MaxBytes)
	// Log text: every trace in it.
	var traces []traceback.Trace
	sc := traceback.NewScanner(br)
	for sc.Scan() && ctx.Err() == nil {
		traces = append(traces, sc.Trace())
	}
	if err := sc.Err(); err != nil {
		a.fail(name, err)
	}
	if perr == nil && len(traces) <= 1 {
		a.add(one, file, head)
		return
	}
	n := 0
	for _, t := range traces {
		p, err := stacktrace.ParseBytes(t.Text)
		if err != nil {
			a.fail(fmt.Sprintf("%s:%d", name, t.Line), err)
			continue
		}
		p.Time = t.Time
		tf := file
		tf.Path = fmt.Sprintf("%s:%d", name, t.Line)
		a.add(p, tf, t.Text)
		n++
	}
	if n == 0 && len(traces) == 0 {
		a.fail(name, perr)
	}
}

// add groups one panic; its own time, when it has one, is when it was seen.
func (a *analyzer) add(p *stacktrace.Panic, f crash.File, text []byte) {
	if !p.Time.IsZero() {
		f.ModTime = p.Time
	}
	example := string(text[:min(len(text), crash.MaxExampleBytes)])
	a.groups.Add(crash.Classify(p), f, example)
}

// WriteText prints rep as a summary table followed by one block per group.
func WriteText(w io.Writer, rep *Report, showFiles int) error {
	var b strings.Builder
	total := 0
	for _, g := range rep.Groups {
		total += g.Count
	}
	fmt.Fprintf(&b, "%d panics in %d crash groups (%d files read, %d failed)\n\n",
		total, len(rep.Groups), rep.Files, len(rep.Failures))
	if len(rep.Groups) > 0 {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tCOUNT\tRATE/H\tKIND\tCRASH SITE\tCALLER\tNIL RECEIVER")
		for i, g := range rep.Groups {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\n", i+1, g.Count, g.RateText(), g.Kind,
				siteString(g.CrashSite), short(g.Caller), yesNo(g.NilReceiver))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for i, g := range rep.Groups {
		fmt.Fprintf(&b, "\n#%d  %s  key %s\n", i+1, g.Kind, g.Key)
		fmt.Fprintf(&b, "  message:  %s\n", firstLine(g.Message))
		fmt.Fprintf(&b, "  site:     %s\n", g.CrashSite.Function)
		fmt.Fprintf(&b, "            %s:%d\n", g.CrashSite.File, g.CrashSite.Line)
		if g.Caller != "" {
			fmt.Fprintf(&b, "  caller:   %s\n", g.Caller)
		}
		if g.NilReceiver {
			b.WriteString("  nil receiver: the crashing call's first argument is nil (a nil session?)\n")
		}
		fmt.Fprintf(&b, "  seen:     %d times, %s .. %s, %s/h\n", g.Count,
			g.FirstSeen.UTC().Format(time.RFC3339), g.LastSeen.UTC().Format(time.RFC3339), g.RateText())
		n := min(len(g.Files), max(showFiles, 0))
		for _, f := range g.Files[:n] {
			fmt.Fprintf(&b, "  file:     %s\n", f)
		}
		if more := len(g.Files) - n + g.FilesDropped; more > 0 {
			fmt.Fprintf(&b, "  ... and %d more files\n", more)
		}
	}
	for _, p := range rep.Profiles {
		fmt.Fprintf(&b, "\nprofile %s:\n", p.File)
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
		b.Reset()
		if err := goroutines.WriteText(w, p.Result); err != nil {
			return err
		}
	}
	if len(rep.Failures) > 0 {
		b.WriteString("\nnot analyzed:\n")
		for _, f := range rep.Failures {
			fmt.Fprintf(&b, "  %s: %s\n", f.File, f.Error)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func siteString(s crash.Site) string {
	if s.Function == "" {
		return "(no frames)"
	}
	return fmt.Sprintf("%s:%d", short(s.Function), s.Line)
}

func short(fn string) string { return fn[strings.LastIndexByte(fn, '/')+1:] }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

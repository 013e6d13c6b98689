// Package analyze implements `sidecar analyze [-json] PATH...`: the
// sidecar's parsing and grouping, run once over stacktrace files or folders
// copied out of a pod (kubectl cp), for developers.
package analyze

import (
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

	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/stacktrace"
)

// DefaultPattern is the file name pattern looked for when walking folders.
const DefaultPattern = "*.stacktrace.log"

// MaxProfileBytes bounds how much of an input is read for the profile
// analyzers (a debug=2 dump of 100k goroutines runs to tens of MB); longer
// inputs reach them cut at this size.
const MaxProfileBytes = 256 << 20

// ProfileAnalyzer inspects an input named on the command line that did not
// parse as a panic, such as a goroutine profile (pprof proto) or a debug=2
// text dump. It returns its result and true when it recognised the input,
// or false to pass. The
// result is printed as JSON under "profiles"; in text output it is printed
// with its WriteText(io.Writer) error method when it has one, else as
// indented JSON.
type ProfileAnalyzer func(name string, data []byte) (result any, ok bool)

// ProfileAnalyzers are tried in order on inputs that are not panics. The
// goroutine-profile package appends to it from its init function.
var ProfileAnalyzers []ProfileAnalyzer

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

// Profile is the result of a ProfileAnalyzer for one input.
type Profile struct {
	File   string `json:"file"`
	Result any    `json:"result"`
}

// Run runs the analyze subcommand with args (without "analyze"). Usage
// errors and unreadable named paths return an error; files that do not
// parse are reported as failures, not errors.
func Run(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("analyze", flag.ContinueOnError)
	fset.SetOutput(stderr)
	asJSON := fset.Bool("json", false, "print JSON (groups, failures) instead of a table")
	pattern := fset.String("pattern", DefaultPattern, "file name pattern looked for in folders")
	maxBytes := fset.Int64("max-bytes", stacktrace.DefaultMaxBytes, "bytes of each file parsed as a panic")
	showFiles := fset.Int("show-files", 5, "files listed per group in the table")
	fset.Usage = func() {
		fmt.Fprintf(stderr, "usage: sidecar analyze [-json] PATH...\n\n"+
			"Groups Go panics in stacktrace files (folders are searched for %s;\n"+
			"files named explicitly are read whatever their name).\n\n", DefaultPattern)
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return err
	}
	if fset.NArg() == 0 {
		fset.Usage()
		return errors.New("analyze: no PATH given")
	}
	if _, err := filepath.Match(*pattern, ""); err != nil {
		return fmt.Errorf("analyze: bad -pattern: %w", err)
	}
	rep, err := Analyze(context.Background(), fset.Args(), Options{Pattern: *pattern, MaxBytes: *maxBytes})
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
	}
	return err
}

// Options tunes Analyze.
type Options struct {
	Pattern  string // DefaultPattern when empty
	MaxBytes int64  // stacktrace.DefaultMaxBytes when <= 0
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
		if err := a.path(ctx, p); err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
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
	fi, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	if !fi.IsDir() {
		a.file(root, fi, true)
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
		a.file(p, fi, false)
		return nil
	})
}

func (a *analyzer) fail(p string, err error) {
	a.rep.Failures = append(a.rep.Failures, Failure{File: p, Error: err.Error()})
}

// file analyzes one input. explicit inputs (named on the command line) that
// are not panics go on to the profile analyzers; files found by walking a
// folder match the stacktrace pattern and are read as panics only.
func (a *analyzer) file(p string, fi fs.FileInfo, explicit bool) {
	a.rep.Files++
	data, err := readHead(p, fi.Size(), a.opt.MaxBytes)
	if err != nil {
		a.fail(p, err)
		return
	}
	pn, perr := stacktrace.Parse(bytes.NewReader(data), a.opt.MaxBytes)
	if perr == nil {
		sig := crash.Classify(pn)
		example := string(data[:min(len(data), crash.MaxExampleBytes)])
		a.groups.Add(sig, crash.File{Path: p, Size: fi.Size(), ModTime: fi.ModTime()}, example)
		return
	}
	if explicit && len(ProfileAnalyzers) > 0 {
		if int64(len(data)) > a.opt.MaxBytes {
			// The panic parser saw the head only; a profile needs it whole.
			if data, err = readHead(p, fi.Size(), MaxProfileBytes); err != nil {
				a.fail(p, err)
				return
			}
		}
		for _, pa := range ProfileAnalyzers {
			if res, ok := pa(p, data); ok {
				a.rep.Profiles = append(a.rep.Profiles, Profile{File: p, Result: res})
				return
			}
		}
	}
	a.fail(p, perr)
}

// readHead reads at most limit+1 bytes of the file at p, so that a caller
// can tell a file of exactly limit bytes from a longer one. size, the
// file's size when it was listed, sizes the buffer: one read for the
// usual small file.
func readHead(p string, size, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, min(max(size, 0), limit)+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if n == len(buf) && int64(n) <= limit {
		// The file grew since it was listed: read on up to the limit.
		rest, err := io.ReadAll(io.LimitReader(f, limit+1-int64(n)))
		if err != nil {
			return nil, err
		}
		return append(buf, rest...), nil
	}
	return buf[:n], nil
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
		if wt, ok := p.Result.(interface{ WriteText(io.Writer) error }); ok {
			if _, err := io.WriteString(w, b.String()); err != nil {
				return err
			}
			b.Reset()
			if err := wt.WriteText(w); err != nil {
				return err
			}
			continue
		}
		js, err := json.MarshalIndent(p.Result, "  ", "  ")
		if err != nil {
			return err
		}
		b.WriteString("  ")
		b.Write(js)
		b.WriteByte('\n')
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

// Package dumpcli is the `dumps` subcommand (`sidecar dumps`, `stackwatch
// dumps`): it lists, pulls and diffs the goroutine dumps a sidecar keeps,
// for a developer reaching the sidecar through `kubectl port-forward`.
//
//	sidecar dumps list    [-sidecar URL] [-json]
//	sidecar dumps pull    [-sidecar URL] [-o FILE] [ID|latest]
//	sidecar dumps diff    [-sidecar URL] [-json] BASE ID
//	sidecar dumps leaks   [-sidecar URL] [-json]
//	sidecar dumps capture [-sidecar URL] [-reason TEXT]
//
// -sidecar defaults to $STACKWATCH_SIDECAR, else DefaultSidecar (the
// sidecar's default listen address, for kubectl port-forward 39190). The
// bearer token is read from -token-file, else $STACKWATCH_TOKEN_FILE, else
// taken from $STACKWATCH_TOKEN.
//
// Everything the sidecar sends is untrusted: answers are size-capped, ids
// are checked before they name a file or a path, and control characters
// (terminal escapes) are stripped from every string printed, errors
// included.
package dumpcli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stackwatch/stackwatch/internal/cli"
	"github.com/stackwatch/stackwatch/internal/fsutil"
	"github.com/stackwatch/stackwatch/sidecar/bearer"
	"github.com/stackwatch/stackwatch/sidecar/dumps"
	"github.com/stackwatch/stackwatch/sidecar/goroutines"
	"github.com/stackwatch/stackwatch/sidecar/profiler"
)

// DefaultSidecar is where the sidecar listens by default.
const DefaultSidecar = "http://127.0.0.1:39190"

const (
	maxJSON    = 64 << 20
	maxProfile = goroutines.MaxProfileSize
)

// usage is printed after the program's name, so it reads right under any
// binary that mounts the command.
const usage = ` dumps <command> [flags] [args]

commands:
  list     list the dumps the sidecar keeps, newest first
  pull     download a dump's raw pprof profile (ID, or the latest by default)
  diff     show the code locations whose goroutine count changed from BASE to ID
  leaks    show the current goroutine leak suspects
  capture  ask the sidecar to capture a dump now

flags (every command):
  -sidecar URL      the sidecar's API (default $STACKWATCH_SIDECAR, else http://127.0.0.1:39190)
  -token-file FILE  bearer token file (default $STACKWATCH_TOKEN_FILE, or the token in $STACKWATCH_TOKEN)
  -timeout D        per request (default 60s)
  -json             list, diff, leaks: print the sidecar's JSON
  -o FILE           pull: output file (default <service>-<id>.pb.gz; - for stdout)
  -reason TEXT      capture: why, kept with the dump
`

// Run runs the dumps command with args (the words after "dumps"). It is a
// cli.Command: ctx ends every request (Ctrl-C), usage errors are
// cli.Usagef (exit 2) and anything else a runtime failure (exit 1).
func Run(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	err := run(ctx, args, stdout, stderr)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return sanitized{err}
}

// program is the binary's name, as the flag package names it.
func program() string { return filepath.Base(os.Args[0]) }

func printUsage(w io.Writer) { fmt.Fprint(w, "usage: "+program()+usage) }

// sanitized prints its error without control characters: messages can
// carry what the sidecar answered.
type sanitized struct{ err error }

func (e sanitized) Error() string { return clean(e.err.Error()) }
func (e sanitized) Unwrap() error { return e.err }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printUsage(stderr)
		return cli.Usagef("dumps: missing command")
	}
	if h := args[0]; h == "-h" || h == "-help" || h == "--help" || h == "help" {
		printUsage(stdout)
		return flag.ErrHelp
	}
	cmd, args := args[0], args[1:]
	commands := map[string]func(*client, context.Context, []string, *options) error{
		"list": (*client).list, "pull": (*client).pull, "diff": (*client).diff,
		"leaks": (*client).leaks, "capture": (*client).capture,
	}
	do, ok := commands[cmd]
	if !ok {
		printUsage(stderr)
		return cli.Usagef("dumps: unknown command %q", cmd)
	}
	fs := flag.NewFlagSet(program()+" dumps "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the error is returned, and printed once
	c := &client{}
	def := os.Getenv("STACKWATCH_SIDECAR")
	if def == "" {
		def = DefaultSidecar
	}
	fs.StringVar(&c.base, "sidecar", def, "")
	tokenFile := fs.String("token-file", os.Getenv("STACKWATCH_TOKEN_FILE"), "")
	timeout := fs.Duration("timeout", 60*time.Second, "")
	o := &options{stdout: stdout, stderr: stderr}
	fs.BoolVar(&o.json, "json", false, "")
	fs.StringVar(&o.out, "o", "", "")
	fs.StringVar(&o.reason, "reason", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return err
		}
		return cli.Usagef("dumps %s: %v (see %s dumps -h)", cmd, err, program())
	}
	if c.base == "" {
		return cli.Usagef("dumps: -sidecar URL is empty")
	}
	u, err := url.Parse(c.base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cli.Usagef("dumps: -sidecar %q is not an http(s) URL", c.base)
	}
	c.base = strings.TrimSuffix(c.base, "/")
	c.token = os.Getenv("STACKWATCH_TOKEN")
	if *tokenFile != "" {
		if c.token, err = bearer.ReadTokenFile(*tokenFile); err != nil {
			return err
		}
	}
	c.http = &http.Client{Timeout: *timeout}
	return do(c, ctx, fs.Args(), o)
}

// options are the per-command flags and outputs.
type options struct {
	json        bool
	out, reason string
	stdout      io.Writer
	stderr      io.Writer
}

type client struct {
	base, token string
	http        *http.Client
}

// do sends a request and returns the body of a 2xx answer, at most max
// bytes; other answers become errors carrying the sidecar's message.
func (c *client) do(ctx context.Context, method, path string, body io.Reader, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("dumps: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dumps: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("dumps: %s %s: %w", method, path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("dumps: %s %s: answer larger than %d bytes", method, path, max)
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		msg := strings.TrimSpace(string(data[:min(len(data), 1024)]))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if resp.StatusCode == http.StatusUnauthorized {
			msg += " (pass -token-file or set $STACKWATCH_TOKEN)"
		}
		return nil, fmt.Errorf("dumps: %s %s: %s: %s", method, path, resp.Status, msg)
	}
	return data, nil
}

// getJSON decodes the answer into v and returns it re-encoded for -json:
// the sidecar's bytes never reach the terminal as they came.
func (c *client) getJSON(ctx context.Context, path string, v any) ([]byte, error) {
	data, err := c.do(ctx, http.MethodGet, path, nil, maxJSON)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("dumps: GET %s: %w", path, err)
	}
	return asJSON(v)
}

// asJSON encodes v indented, with every control character escaped: Go
// escapes C0 itself, but passes C1 (U+0080–U+009F, 8-bit terminal
// escapes) and DEL through.
func asJSON(v any) ([]byte, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for len(data) > 0 {
		r, n := utf8.DecodeRune(data)
		if unicode.IsControl(r) && r != '\n' {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.Write(data[:n])
		}
		data = data[n:]
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// clean strips control characters, terminal escapes among them, and
// invalid UTF-8 from a string the sidecar sent, before it is printed.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
}

func wantArgs(args []string, min, max int, names string) error {
	if len(args) < min || len(args) > max {
		return cli.Usagef("dumps: want %s, got %d argument(s)", names, len(args))
	}
	return nil
}

func (c *client) list(ctx context.Context, args []string, o *options) error {
	if err := wantArgs(args, 0, 0, "no arguments"); err != nil {
		return err
	}
	var l profiler.DumpList
	raw, err := c.getJSON(ctx, "/api/v1/dumps", &l)
	if err != nil {
		return err
	}
	if o.json {
		_, err := o.stdout.Write(raw)
		return err
	}
	tw := tabwriter.NewWriter(o.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tGOROUTINES\tGROUPS\tBYTES\tTRIGGER\tREASON")
	for _, m := range l.Dumps {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\n", clean(m.ID), m.Time.Format(time.RFC3339), m.Goroutines, m.Groups, m.Bytes, clean(m.Trigger), clean(m.Reason))
	}
	return tw.Flush()
}

// resolve turns "latest" into the newest dump's id; other ids are checked
// locally before they go anywhere.
func (c *client) resolve(ctx context.Context, id string) (dumps.Meta, error) {
	if id != "latest" && !dumps.ValidID(id) {
		return dumps.Meta{}, cli.Usagef("dumps: %q is not a dump id (see `%s dumps list`)", id, program())
	}
	var l profiler.DumpList
	if _, err := c.getJSON(ctx, "/api/v1/dumps", &l); err != nil {
		return dumps.Meta{}, err
	}
	if id == "latest" {
		if len(l.Dumps) == 0 {
			return dumps.Meta{}, fmt.Errorf("dumps: the sidecar keeps no dumps yet (capture one with `%s dumps capture`)", program())
		}
		// The sidecar's answer names a file and a URL path: check it too.
		if !dumps.ValidID(l.Dumps[0].ID) {
			return dumps.Meta{}, fmt.Errorf("dumps: the sidecar listed an invalid dump id %q", l.Dumps[0].ID)
		}
		return l.Dumps[0], nil
	}
	for _, m := range l.Dumps {
		if m.ID == id {
			return m, nil
		}
	}
	return dumps.Meta{}, fmt.Errorf("dumps: no dump %s on the sidecar (evicted from the ring?)", id)
}

func (c *client) pull(ctx context.Context, args []string, o *options) error {
	if err := wantArgs(args, 0, 1, "at most one dump id (default latest)"); err != nil {
		return err
	}
	id := "latest"
	if len(args) == 1 {
		id = args[0]
	}
	m, err := c.resolve(ctx, id)
	if err != nil {
		return err
	}
	data, err := c.do(ctx, http.MethodGet, "/api/v1/dumps/"+m.ID, nil, maxProfile)
	if err != nil {
		return err
	}
	if _, err := goroutines.ParseProfile(data); err != nil {
		return fmt.Errorf("dumps: pulled %s is not a goroutine profile: %w", m.ID, err)
	}
	if o.out == "-" {
		_, err := o.stdout.Write(data)
		return err
	}
	out := o.out
	if out == "" {
		out = fmt.Sprintf("%s-%s.pb.gz", safeName(m.Service), m.ID)
	}
	if err := fsutil.WriteFile(out, data, 0o600); err != nil {
		return fmt.Errorf("dumps: %w", err)
	}
	// -top would lead with runtime.gopark at 99.9%: every parked goroutine
	// ends there. The stacks themselves are what a developer wants.
	fmt.Fprintf(o.stderr, "wrote %s (%d bytes, %d goroutines, trigger %s)\nopen with: go tool pprof -traces %[1]s\n       or: go tool pprof -http=: %[1]s\n",
		filepath.Clean(out), len(data), m.Goroutines, clean(m.Trigger))
	return nil
}

func (c *client) diff(ctx context.Context, args []string, o *options) error {
	if err := wantArgs(args, 2, 2, "BASE and ID"); err != nil {
		return err
	}
	base, err := c.resolve(ctx, args[0])
	if err != nil {
		return err
	}
	cur, err := c.resolve(ctx, args[1])
	if err != nil {
		return err
	}
	var d profiler.DiffResponse
	raw, err := c.getJSON(ctx, "/api/v1/dumps/"+cur.ID+"/diff?base="+url.QueryEscape(base.ID), &d)
	if err != nil {
		return err
	}
	if o.json {
		_, err := o.stdout.Write(raw)
		return err
	}
	for i := range d.Changes {
		ch := &d.Changes[i]
		ch.Location = cleanFrame(ch.Location)
		ch.Wait = goroutines.Wait(clean(string(ch.Wait)))
	}
	fmt.Fprintf(o.stdout, "%s (%d goroutines) → %s (%d goroutines)\n", base.ID, base.Goroutines, cur.ID, cur.Goroutines)
	return goroutines.WriteDiff(o.stdout, d.Changes)
}

func cleanFrame(f goroutines.Frame) goroutines.Frame {
	f.Function, f.File = clean(f.Function), clean(f.File)
	return f
}

func (c *client) leaks(ctx context.Context, args []string, o *options) error {
	if err := wantArgs(args, 0, 0, "no arguments"); err != nil {
		return err
	}
	var st profiler.Status
	raw, err := c.getJSON(ctx, "/api/v1/leaks", &st)
	if err != nil {
		return err
	}
	w := o.stdout
	if o.json {
		_, err := w.Write(raw)
		return err
	}
	fmt.Fprintf(w, "%s: %d goroutines in %d stack groups; goroutineleak profile %s", clean(st.Service), st.Goroutines, st.StackGroups, clean(st.LeakProfile))
	if st.LastError != "" {
		fmt.Fprintf(w, "; last scrape failed: %s", clean(st.LastError))
	}
	fmt.Fprintln(w)
	if len(st.Suspects) == 0 {
		fmt.Fprintln(w, "no leak suspects")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "COUNT\tLEAKED\tDELTA\tSIGNALS\tWAIT\tLOCATION")
	for _, s := range st.Suspects {
		fmt.Fprintf(tw, "%d\t%d\t%+d\t%s\t%s\t%s\n", s.Count, s.Leaked, s.Delta, clean(strings.Join(s.Signals, ",")), clean(string(s.Wait)), cleanFrame(s.Location))
	}
	return tw.Flush()
}

func (c *client) capture(ctx context.Context, args []string, o *options) error {
	if err := wantArgs(args, 0, 0, "no arguments"); err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"reason": o.reason})
	data, err := c.do(ctx, http.MethodPost, "/api/v1/dumps", bytes.NewReader(body), maxJSON)
	if err != nil {
		return err
	}
	var m dumps.Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("dumps: capture answer: %w", err)
	}
	fmt.Fprintf(o.stdout, "captured %s (%d goroutines, %d bytes)\n", clean(m.ID), m.Goroutines, m.Bytes)
	return nil
}

// safeName keeps a sidecar-supplied service name from steering a file name
// out of the working directory.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "dump"
	}
	return string(b)
}

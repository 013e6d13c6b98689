// Package dumpcli is the `sidecar dumps` command: it lists, pulls and diffs
// the goroutine dumps a sidecar keeps, for a developer reaching the sidecar
// through `kubectl port-forward`.
//
//	sidecar dumps list    -sidecar URL [-json]
//	sidecar dumps pull    -sidecar URL [-o FILE] ID|latest
//	sidecar dumps diff    -sidecar URL [-json] BASE ID
//	sidecar dumps leaks   -sidecar URL [-json]
//	sidecar dumps capture -sidecar URL [-reason TEXT]
//
// -sidecar defaults to $STACKWATCH_SIDECAR, else DefaultSidecar (the
// sidecar's default listen address, for kubectl port-forward 9091). The bearer token is read from
// -token-file, else $STACKWATCH_TOKEN_FILE, else taken from $STACKWATCH_TOKEN.
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

	"github.com/stackwatch/stackwatch/sidecar/bearer"
	"github.com/stackwatch/stackwatch/sidecar/dumps"
	"github.com/stackwatch/stackwatch/sidecar/goroutines"
	"github.com/stackwatch/stackwatch/sidecar/profiler"
)

// DefaultSidecar is where the sidecar listens by default.
const DefaultSidecar = "http://127.0.0.1:9091"

const (
	maxJSON    = 64 << 20
	maxProfile = 512 << 20
)

const usage = `usage: sidecar dumps <command> [flags] [args]

commands:
  list     list the dumps the sidecar keeps, newest first
  pull     download a dump's raw pprof profile (ID or "latest"); open it with go tool pprof
  diff     show the stack groups that grew or shrank from BASE to ID
  leaks    show the current goroutine leak suspects
  capture  ask the sidecar to capture a dump now

flags (every command):
  -sidecar URL      the sidecar's API (default $STACKWATCH_SIDECAR, else http://127.0.0.1:9091)
  -token-file FILE  bearer token file (default $STACKWATCH_TOKEN_FILE, or the token in $STACKWATCH_TOKEN)
  -timeout D        per request (default 60s)
`

// Run runs `sidecar dumps` with args (the words after "dumps").
func Run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return errors.New("dumps: missing command")
		}
		return nil
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("sidecar dumps "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	c := client{}
	def := os.Getenv("STACKWATCH_SIDECAR")
	if def == "" {
		def = DefaultSidecar
	}
	fs.StringVar(&c.base, "sidecar", def, "sidecar API base URL")
	tokenFile := fs.String("token-file", os.Getenv("STACKWATCH_TOKEN_FILE"), "bearer token file")
	timeout := fs.Duration("timeout", 60*time.Second, "per request")
	asJSON := fs.Bool("json", false, "print JSON")
	out := fs.String("o", "", "pull: output file (default <service>-<id>.pb.gz; - for stdout)")
	reason := fs.String("reason", "", "capture: why")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.base == "" {
		return errors.New("dumps: -sidecar URL is empty")
	}
	u, err := url.Parse(c.base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("dumps: -sidecar %q is not an http(s) URL", c.base)
	}
	c.base = strings.TrimSuffix(c.base, "/")
	c.token = os.Getenv("STACKWATCH_TOKEN")
	if *tokenFile != "" {
		if c.token, err = bearer.ReadTokenFile(*tokenFile); err != nil {
			return err
		}
	}
	c.http = &http.Client{Timeout: *timeout}
	ctx := context.Background()

	switch cmd {
	case "list":
		return c.list(ctx, fs.Args(), stdout, *asJSON)
	case "pull":
		return c.pull(ctx, fs.Args(), stdout, stderr, *out)
	case "diff":
		return c.diff(ctx, fs.Args(), stdout, *asJSON)
	case "leaks":
		return c.leaks(ctx, fs.Args(), stdout, *asJSON)
	case "capture":
		return c.capture(ctx, fs.Args(), stdout, *reason)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("dumps: unknown command %q", cmd)
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
		return nil, err
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
		msg := strings.TrimSpace(string(data))
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

func (c *client) getJSON(ctx context.Context, path string, v any) ([]byte, error) {
	data, err := c.do(ctx, http.MethodGet, path, nil, maxJSON)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("dumps: GET %s: %w", path, err)
	}
	return data, nil
}

func wantArgs(args []string, n int, names string) error {
	if len(args) != n {
		return fmt.Errorf("dumps: want %s, got %d argument(s)", names, len(args))
	}
	return nil
}

func (c *client) list(ctx context.Context, args []string, w io.Writer, asJSON bool) error {
	if err := wantArgs(args, 0, "no arguments"); err != nil {
		return err
	}
	var l profiler.DumpList
	raw, err := c.getJSON(ctx, "/api/v1/dumps", &l)
	if err != nil {
		return err
	}
	if asJSON {
		_, err := w.Write(raw)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tGOROUTINES\tGROUPS\tBYTES\tTRIGGER\tREASON")
	for _, m := range l.Dumps {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\n", m.ID, m.Time.Format(time.RFC3339), m.Goroutines, m.Groups, m.Bytes, m.Trigger, m.Reason)
	}
	return tw.Flush()
}

// resolve turns "latest" into the newest dump's id; other ids are checked
// locally before they go anywhere.
func (c *client) resolve(ctx context.Context, id string) (dumps.Meta, error) {
	var l profiler.DumpList
	if _, err := c.getJSON(ctx, "/api/v1/dumps", &l); err != nil {
		return dumps.Meta{}, err
	}
	if id == "latest" {
		if len(l.Dumps) == 0 {
			return dumps.Meta{}, errors.New("dumps: the sidecar keeps no dumps yet")
		}
		// The sidecar's answer names a file and a URL path: check it too.
		if !dumps.ValidID(l.Dumps[0].ID) {
			return dumps.Meta{}, fmt.Errorf("dumps: the sidecar listed an invalid dump id %q", l.Dumps[0].ID)
		}
		return l.Dumps[0], nil
	}
	if !dumps.ValidID(id) {
		return dumps.Meta{}, fmt.Errorf("dumps: %q is not a dump id (see `sidecar dumps list`)", id)
	}
	for _, m := range l.Dumps {
		if m.ID == id {
			return m, nil
		}
	}
	return dumps.Meta{}, fmt.Errorf("dumps: no dump %s on the sidecar (evicted from the ring?)", id)
}

func (c *client) pull(ctx context.Context, args []string, stdout, stderr io.Writer, out string) error {
	if err := wantArgs(args, 1, "one dump id (or latest)"); err != nil {
		return err
	}
	m, err := c.resolve(ctx, args[0])
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
	if out == "-" {
		_, err := stdout.Write(data)
		return err
	}
	if out == "" {
		out = fmt.Sprintf("%s-%s.pb.gz", safeName(m.Service), m.ID)
	}
	tmp := out + ".part"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("dumps: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("dumps: %w", err)
	}
	fmt.Fprintf(stderr, "wrote %s (%d bytes, %d goroutines, %s); open with: go tool pprof -top %s\n",
		out, len(data), m.Goroutines, m.Trigger, filepath.Clean(out))
	return nil
}

func (c *client) diff(ctx context.Context, args []string, w io.Writer, asJSON bool) error {
	if err := wantArgs(args, 2, "BASE and ID"); err != nil {
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
	if asJSON {
		_, err := w.Write(raw)
		return err
	}
	fmt.Fprintf(w, "%s (%d goroutines) → %s (%d goroutines)\n", base.ID, base.Goroutines, cur.ID, cur.Goroutines)
	return goroutines.WriteDiff(w, d.Changes)
}

func (c *client) leaks(ctx context.Context, args []string, w io.Writer, asJSON bool) error {
	if err := wantArgs(args, 0, "no arguments"); err != nil {
		return err
	}
	var st profiler.Status
	raw, err := c.getJSON(ctx, "/api/v1/leaks", &st)
	if err != nil {
		return err
	}
	if asJSON {
		_, err := w.Write(raw)
		return err
	}
	fmt.Fprintf(w, "%s: %d goroutines in %d stack groups; goroutineleak profile %s", st.Service, st.Goroutines, st.StackGroups, st.LeakProfile)
	if st.LastError != "" {
		fmt.Fprintf(w, "; last scrape failed: %s", st.LastError)
	}
	fmt.Fprintln(w)
	if len(st.Suspects) == 0 {
		fmt.Fprintln(w, "no leak suspects")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "COUNT\tLEAKED\tDELTA\tSIGNALS\tWAIT\tLOCATION")
	for _, s := range st.Suspects {
		fmt.Fprintf(tw, "%d\t%d\t%+d\t%s\t%s\t%s\n", s.Count, s.Leaked, s.Delta, strings.Join(s.Signals, ","), s.Wait, s.Location)
	}
	return tw.Flush()
}

func (c *client) capture(ctx context.Context, args []string, w io.Writer, reason string) error {
	if err := wantArgs(args, 0, "no arguments"); err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"reason": reason})
	data, err := c.do(ctx, http.MethodPost, "/api/v1/dumps", bytes.NewReader(body), maxJSON)
	if err != nil {
		return err
	}
	var m dumps.Meta
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("dumps: %w", err)
	}
	fmt.Fprintf(w, "captured %s (%d goroutines, %d bytes)\n", m.ID, m.Goroutines, m.Bytes)
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

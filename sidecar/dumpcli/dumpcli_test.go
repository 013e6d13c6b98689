package dumpcli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"path/filepath"
	rpprof "runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/stackwatch/stackwatch/internal/cli"
	"github.com/stackwatch/stackwatch/sidecar/bearer"
	"github.com/stackwatch/stackwatch/sidecar/dumpcli"
	"github.com/stackwatch/stackwatch/sidecar/dumps"
	"github.com/stackwatch/stackwatch/sidecar/goroutines"
	"github.com/stackwatch/stackwatch/sidecar/leak"
	"github.com/stackwatch/stackwatch/sidecar/profiler"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func parkedRecv(ch chan int) { <-ch }

const token = "dumpcli-test-token-0123456789"

// setup runs a real pprof target with parked goroutines and a real profiler
// API guarded by a bearer token; it returns the API URL and a token file.
func setup(t *testing.T) (string, string, func(n int)) {
	ch := make(chan int)
	var wg sync.WaitGroup
	parked := 0
	park := func(n int) {
		for range n {
			wg.Go(func() { parkedRecv(ch) })
		}
		parked += n
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			var b strings.Builder
			rpprof.Lookup("goroutine").WriteTo(&b, 2)
			if strings.Count(b.String(), "dumpcli_test.parkedRecv(") >= parked {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("goroutines did not park")
			}
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	target := httptest.NewServer(mux)
	p, err := profiler.New(profiler.Config{Target: target.URL, Service: "goldenclover", DataDir: t.TempDir(),
		Interval: time.Hour, KeepEvery: -1, Auth: bearer.Middleware(token)},
		prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	api := http.NewServeMux()
	p.Register(api)
	srv := httptest.NewServer(api)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
		target.Close()
		close(ch)
		wg.Wait()
	})
	tf := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tf, []byte(token+"\n"), 0o600)
	return srv.URL, tf, park
}

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := dumpcli.Run(t.Context(), args, nil, &out, &errb)
	return out.String(), errb.String(), err
}

func TestListPullDiff(t *testing.T) {
	url, tf, park := setup(t)
	park(5)
	if _, _, err := run(t, "capture", "-sidecar", url, "-token-file", tf, "-reason", "before"); err != nil {
		t.Fatal(err)
	}
	park(12)
	out, _, err := run(t, "capture", "-sidecar", url, "-token-file", tf)
	if err != nil || !strings.HasPrefix(out, "captured ") {
		t.Fatalf("capture: %v %s", err, out)
	}

	out, _, err = run(t, "list", "-sidecar", url, "-token-file", tf)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[2], "before") {
		t.Fatalf("list:\n%s", out)
	}
	late, early := strings.Fields(lines[1])[0], strings.Fields(lines[2])[0]
	if !dumps.ValidID(late) || !dumps.ValidID(early) {
		t.Fatalf("ids %q %q", late, early)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "late.pb.gz")
	// No id: the latest. The hint names the views that show stacks, not
	// -top, whose top line is runtime.gopark.
	msg := ""
	if _, msg, err = run(t, "pull", "-sidecar", url, "-token-file", tf, "-o", file); err != nil ||
		!strings.Contains(msg, "go tool pprof -traces "+file) || !strings.Contains(msg, "go tool pprof -http=: "+file) || strings.Contains(msg, "-top") {
		t.Fatalf("pull: %v %s", err, msg)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s, err := goroutines.ParseProfile(data)
	if err != nil {
		t.Fatalf("pulled file: %v", err)
	}
	found := false
	for _, g := range s.Groups {
		if strings.HasSuffix(g.Location.Function, "dumpcli_test.parkedRecv") && g.Count == 17 {
			found = true
		}
	}
	if !found {
		t.Errorf("pulled profile lacks the 17 parked goroutines")
	}

	out, _, err = run(t, "diff", "-sidecar", url, "-token-file", tf, early, late)
	if err != nil || !strings.Contains(out, "+12\t(5 → 17)\t[chan receive]") || !strings.Contains(out, "parkedRecv") {
		t.Errorf("diff: %v\n%s", err, out)
	}
	// One row per location: the goroutine serving each profile request
	// changed stacks between the dumps but not places, so it nets out.
	rows := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Split(line, "\t")
		if len(f) < 4 || f[2] == "[]" || f[3] == "" || rows[f[2]+f[3]] {
			t.Errorf("diff row %q: empty or duplicate\n%s", line, out)
		}
		rows[f[2]+f[3]] = true
	}
	out, _, err = run(t, "leaks", "-sidecar", url, "-token-file", tf)
	if err != nil || !strings.Contains(out, "goldenclover: ") {
		t.Errorf("leaks: %v\n%s", err, out)
	}
}

func TestErrors(t *testing.T) {
	url, tf, _ := setup(t)
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("wrong-token-0123456789"), 0o600)
	dead := httptest.NewServer(nil)
	deadURL := dead.URL
	dead.Close()
	for _, c := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"list", "-sidecar", url}, "401 Unauthorized", cli.ExitFailure},
		{[]string{"list", "-sidecar", url, "-token-file", bad}, "401 Unauthorized", cli.ExitFailure},
		{[]string{"list", "-sidecar", deadURL, "-token-file", tf}, "connection refused", cli.ExitFailure},
		{[]string{"list", "-sidecar", url, "-token-file", filepath.Join(t.TempDir(), "none")}, "no such file", cli.ExitFailure},
		{[]string{"pull", "-sidecar", url, "-token-file", tf, "latest"}, "no dumps yet", cli.ExitFailure},
		{[]string{"pull", "-sidecar", url, "-token-file", tf, "20990101T000000.000000000Z-000000"}, "no dump", cli.ExitFailure},
		{[]string{"list", "-sidecar", ""}, "-sidecar URL is empty", cli.ExitUsage},
		{[]string{"list", "-sidecar", "ftp://x"}, "not an http(s) URL", cli.ExitUsage},
		{[]string{"list", "-nope"}, "flag provided but not defined: -nope", cli.ExitUsage},
		{[]string{"list", "-sidecar", url, "extra"}, "want no arguments", cli.ExitUsage},
		{[]string{"pull", "-sidecar", url, "-token-file", tf, "../../etc/passwd"}, "not a dump id", cli.ExitUsage},
		{[]string{"pull", "-sidecar", url, "a", "b"}, "at most one dump id", cli.ExitUsage},
		{[]string{"diff", "-sidecar", url, "-token-file", tf, "x"}, "BASE and ID", cli.ExitUsage},
		{[]string{"frobnicate", "-sidecar", url}, "unknown command", cli.ExitUsage},
		{[]string{}, "missing command", cli.ExitUsage},
	} {
		t.Setenv("STACKWATCH_SIDECAR", "")
		t.Setenv("STACKWATCH_TOKEN", "")
		_, _, err := run(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) || cli.ExitCode(err) != c.code {
			t.Errorf("%v: err %v (exit %d), want %q (exit %d)", c.args, err, cli.ExitCode(err), c.want, c.code)
		}
	}
	for _, h := range [][]string{{"-h"}, {"--help"}, {"list", "-h"}} {
		if out, _, err := run(t, h...); cli.ExitCode(err) != cli.ExitOK || !strings.Contains(out, "usage: dumpcli.test dumps <command>") {
			t.Errorf("%v: exit %d, printed %q", h, cli.ExitCode(err), out)
		}
	}
	// The token may also come from the environment.
	t.Setenv("STACKWATCH_SIDECAR", url)
	t.Setenv("STACKWATCH_TOKEN", token)
	if _, _, err := run(t, "list"); err != nil {
		t.Errorf("env config: %v", err)
	}
}

// hostile is a sidecar that answers every route with terminal escapes in
// every string, and an error whose message carries them too.
func hostile(t *testing.T) string {
	const esc = "\x1b]2;pwned\x07\x1b[2J\u009b31m"
	id := "20261126T040925.123456789Z-3fa9c2"
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/dumps", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(profiler.DumpList{Service: "svc" + esc, Dumps: []dumps.Meta{
			{ID: id, Service: "svc" + esc, Trigger: "manual" + esc, Reason: "why" + esc}}})
	})
	mux.HandleFunc("GET /api/v1/leaks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(profiler.Status{Service: "svc" + esc, LastError: "boom" + esc, LeakProfile: esc,
			Suspects: []leak.Suspect{{Location: goroutines.Frame{Function: "main.f" + esc, File: "/x" + esc}, Wait: goroutines.Wait(esc), Signals: []string{esc}}}})
	})
	mux.HandleFunc("GET /api/v1/dumps/{id}/diff", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(profiler.DiffResponse{Changes: []goroutines.Change{
			{Location: goroutines.Frame{Function: "main.g" + esc}, Wait: goroutines.Wait(esc), Delta: 1, Count: 1}}})
	})
	mux.HandleFunc("POST /api/v1/dumps", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		json.NewEncoder(w).Encode(map[string]string{"error": "no" + esc})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestHostileSidecarEscapes: nothing a sidecar sends reaches the terminal
// as a control character, in text, JSON or an error.
func TestHostileSidecarEscapes(t *testing.T) {
	url := hostile(t)
	id := "20261126T040925.123456789Z-3fa9c2"
	for _, c := range []struct {
		args []string
		want string // what of the answer shows, stripped
	}{
		{[]string{"list"}, "manual]2;pwned[2J31m"},
		{[]string{"list", "-json"}, `"trigger": "manual\u001b]2;pwned\u0007\u001b[2J\u009b31m"`},
		{[]string{"leaks"}, "last scrape failed: boom]2;pwned"},
		{[]string{"leaks", "-json"}, `"function": "main.f\u001b]2;pwned`},
		{[]string{"diff", id, id}, "main.g]2;pwned"},
		{[]string{"diff", "-json", id, id}, `"function": "main.g\u001b]2;pwned`},
		{[]string{"capture"}, "502 Bad Gateway: no"},
	} {
		out, errOut, err := run(t, append([]string{c.args[0], "-sidecar", url}, c.args[1:]...)...)
		all := out + errOut
		if err != nil {
			all += err.Error()
		}
		if !strings.Contains(all, c.want) {
			t.Errorf("%v printed %q, want %q in it", c.args, all, c.want)
		}
		if i := strings.IndexFunc(all, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }); i >= 0 {
			t.Errorf("%v printed a control character at %d: %q", c.args, i, all)
		}
	}
}

// TestCtrlC: cancelling the context ends a request the sidecar never
// answers, at once rather than at -timeout.
func TestCtrlC(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- dumpcli.Run(ctx, []string{"list", "-sidecar", srv.URL, "-timeout", "1h"}, nil, io.Discard, io.Discard)
	}()
	<-arrived
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || cli.ExitCode(err) != cli.ExitFailure {
		t.Fatalf("after Ctrl-C: %v", err)
	}
}

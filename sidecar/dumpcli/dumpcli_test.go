package dumpcli_test

import (
	"bytes"
	"context"
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

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/stackwatch/stackwatch/sidecar/bearer"
	"github.com/stackwatch/stackwatch/sidecar/dumpcli"
	"github.com/stackwatch/stackwatch/sidecar/dumps"
	"github.com/stackwatch/stackwatch/sidecar/goroutines"
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
	err := dumpcli.Run(args, &out, &errb)
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
	if _, msg, err := run(t, "pull", "-sidecar", url, "-token-file", tf, "-o", file, "latest"); err != nil || !strings.Contains(msg, "go tool pprof") {
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
	}{
		{[]string{"list", "-sidecar", url}, "401 Unauthorized"},
		{[]string{"list", "-sidecar", url, "-token-file", bad}, "401 Unauthorized"},
		{[]string{"list", "-sidecar", deadURL, "-token-file", tf}, "connection refused"},
		{[]string{"list", "-sidecar", ""}, "-sidecar URL is empty"},
		{[]string{"list", "-sidecar", "ftp://x"}, "not an http(s) URL"},
		{[]string{"pull", "-sidecar", url, "-token-file", tf, "../../etc/passwd"}, "not a dump id"},
		{[]string{"pull", "-sidecar", url, "-token-file", tf, "latest"}, "no dumps yet"},
		{[]string{"pull", "-sidecar", url, "-token-file", tf, "20990101T000000.000000000Z-000000"}, "no dump"},
		{[]string{"diff", "-sidecar", url, "-token-file", tf, "x"}, "BASE and ID"},
		{[]string{"frobnicate", "-sidecar", url}, "unknown command"},
		{[]string{}, "missing command"},
	} {
		t.Setenv("STACKWATCH_SIDECAR", "")
		t.Setenv("STACKWATCH_TOKEN", "")
		_, _, err := run(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", c.args, err, c.want)
		}
	}
	// The token may also come from the environment.
	t.Setenv("STACKWATCH_SIDECAR", url)
	t.Setenv("STACKWATCH_TOKEN", token)
	if _, _, err := run(t, "list"); err != nil {
		t.Errorf("env config: %v", err)
	}
}

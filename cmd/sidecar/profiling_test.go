package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/gameservertest"
	"github.com/stackwatch/stackwatch/metrics"
	"github.com/stackwatch/stackwatch/sidecar/bearer"
)

// TestProfilingWired runs the sidecar binary against a real game server's
// admin port with a token: it scrapes goroutine profiles, keeps a dump, and
// the dumps subcommand lists and pulls it with the token, and analyze reads
// the pulled profile.
func TestProfilingWired(t *testing.T) {
	ctx := t.Context()
	srv := gameservertest.Start(t, gameserver.Config{})

	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("a-long-enough-test-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "-service", "wilddiggr", "-log-dir", t.TempDir(), "-data-dir", t.TempDir(),
		"-listen", "127.0.0.1:0", "-target", "http://"+srv.AdminAddr().String(),
		"-scrape-interval", "100ms", "-token-file", tokenFile)
	deadline := time.Now().Add(15 * time.Second)
	for p.scrape(t, metrics.Goroutines) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no goroutine profile scraped; logs:\n%s", p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}

	url := "http://" + p.addr
	var out, errb bytes.Buffer
	if err := run(ctx, []string{"dumps", "list", "-sidecar", url}, &out, &errb); err == nil {
		t.Fatalf("dumps list without a token succeeded:\n%s", out.String())
	}
	out.Reset()
	errb.Reset()
	for {
		err := run(ctx, []string{"dumps", "list", "-sidecar", url, "-token-file", tokenFile}, &out, &errb)
		if err != nil {
			t.Fatalf("dumps list: %v\n%s", err, errb.String())
		}
		if strings.Contains(out.String(), "schedule") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scheduled dump listed:\n%s", out.String())
		}
		out.Reset()
		time.Sleep(50 * time.Millisecond)
	}

	dump := filepath.Join(t.TempDir(), "latest.pb.gz")
	if err := run(ctx, []string{"dumps", "pull", "-sidecar", url, "-token-file", tokenFile, "-o", dump, "latest"}, io.Discard, &errb); err != nil {
		t.Fatalf("dumps pull: %v\n%s", err, errb.String())
	}
	out.Reset()
	if err := run(ctx, []string{"analyze", dump}, &out, &errb); err != nil {
		t.Fatalf("analyze %s: %v\n%s", dump, err, errb.String())
	}
	if !strings.Contains(out.String(), "goroutines in") || !strings.Contains(out.String(), "gameserver") {
		t.Fatalf("analyze of a pulled dump printed:\n%s", out.String())
	}
}

// TestTokenRequiredBeyondLocalhost: the API carries player data, so the
// sidecar refuses to listen beyond localhost without a token.
func TestTokenRequiredBeyondLocalhost(t *testing.T) {
	err := run(context.Background(), []string{"-service", "x", "-log-dir", t.TempDir(), "-data-dir", t.TempDir(),
		"-listen", "0.0.0.0:0"}, io.Discard, io.Discard)
	if !errors.Is(err, bearer.ErrTokenRequired) {
		t.Fatalf("err = %v, want %v", err, bearer.ErrTokenRequired)
	}
}

// gzipBomb returns about n/1000 bytes that gunzip to n zero bytes: one
// member holding 1 MiB of zeros, repeated (gzip readers read every member).
func gzipBomb(t *testing.T, n int64) []byte {
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	zw.Write(make([]byte, 1<<20))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.Repeat(member.Bytes(), int(n>>20))
}

// TestGzipBombStaysInBudget runs the sidecar binary under the chart's
// memory limit (GOMEMLIMIT=256MiB) against a target whose every profile is
// a gzip bomb: about 1 MB that inflates to 1 GiB of zeros. Scheduled
// scrapes and developers' captures run at once. Every scrape must fail as
// too large and the peak RSS (VmHWM) stay far inside the budget. Measured
// on 2026-11-30: 23 MB; 341 MB before the profiler inflated without
// buffering and took the target one fetch at a time (issue 10 saw 279–308).
func TestGzipBombStaysInBudget(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the peak RSS from /proc")
	}
	if testing.Short() {
		t.Skip("inflates gigabytes")
	}
	bomb := gzipBomb(t, 1<<30)
	var debug2 atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("debug") != "" {
			debug2.Add(1)
		}
		w.Write(bomb)
	}))
	defer target.Close()
	t.Setenv("GOMEMLIMIT", "256MiB") // the child's environment
	p := startProc(t, "-service", "wilddiggr", "-log-dir", t.TempDir(), "-data-dir", t.TempDir(),
		"-listen", "127.0.0.1:0", "-target", target.URL, "-scrape-interval", "50ms")

	// Developers capture meanwhile, four at a time.
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.addr+"/api/v1/dumps", nil)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	const scrapes = 40
	deadline := time.Now().Add(2 * time.Minute)
	for p.scrape(t, metrics.ScrapeErrors) < scrapes {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d failed scrapes in 2 minutes; logs:\n%s", scrapes, p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	http.DefaultClient.CloseIdleConnections()

	peak := peakRSS(t, p)
	t.Logf("peak RSS %.1f MB after %v failed scrapes of a %d-byte gzip bomb", float64(peak)/(1<<20), p.scrape(t, metrics.ScrapeErrors), len(bomb))
	if peak > 64<<20 {
		t.Errorf("peak RSS %.1f MB, want ≤ 64 MiB (the chart allows 256Mi)", float64(peak)/(1<<20))
	}
	if tooLarge := strings.Count(p.Logs(), "inflates beyond"); tooLarge == 0 {
		t.Errorf("no scrape was refused as inflating too far; logs:\n%s", p.Logs())
	}
	if n := debug2.Load(); n != 0 {
		t.Errorf("the sidecar fetched debug=2 %d times unasked", n)
	}
}

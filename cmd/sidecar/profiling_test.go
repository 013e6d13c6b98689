package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
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
			t.Fatalf("no goroutine profile scraped; logs:\n%s", p.logText())
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

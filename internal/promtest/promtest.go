// Package promtest runs the real Prometheus and Alertmanager for tests, on
// a loopback port of their own, and finds the binaries the tests need.
//
// Neither daemon can listen on port 0 and report the port it got, so a
// port is picked by listening on 127.0.0.1:0 and closing, and handed over.
// Another test may take it in between; a daemon that exits saying
// "address already in use" is started again on a new port. The port comes
// from the kernel's ephemeral range on purpose: the ports below it are
// where tests with fixed ports (e2e's TestDemo) live.
package promtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/internal/proctest"
)

// Test timings: how long a daemon has to answer /-/ready, and how many
// ports are tried. It is stopped as proctest stops a process.
const (
	ReadyTimeout = 30 * time.Second
	attempts     = 3
)

// debianPackage names the package a binary comes from, for the message
// that tells CI what to install.
var debianPackage = map[string]string{
	"prometheus":              "prometheus",
	"promtool":                "prometheus",
	"prometheus-alertmanager": "prometheus-alertmanager",
	"amtool":                  "prometheus-alertmanager",
}

// Binary finds a binary the test needs. In CI (CI=true) a missing one
// fails the test, naming the Debian package to install; elsewhere the test
// is skipped with a message. Tests that build or start other things first
// call it at the top, so that they skip before the expensive part.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	pkg := debianPackage[name]
	if pkg == "" {
		pkg = name
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required in CI (Debian package %s): %v", name, pkg, err)
	}
	t.Skipf("%s not installed (Debian package %s), skipping (in CI this fails): %v", name, pkg, err)
	return ""
}

// Daemon is a started Prometheus or Alertmanager, ready to answer.
type Daemon struct {
	Addr string // host:port it listens on
	URL  string // "http://" + Addr

	name string
	proc *proctest.Proc
}

// Logs is everything the daemon wrote to stdout and stderr so far.
func (d *Daemon) Logs() string { return d.proc.Logs() }

// StartPrometheus starts the installed prometheus with configFile, fresh
// storage and extra flags, and waits until it is ready.
func StartPrometheus(t testing.TB, configFile string, extra ...string) *Daemon {
	t.Helper()
	return Start(t, Binary(t, "prometheus"), func(addr string) []string {
		return append([]string{"--config.file=" + configFile, "--storage.tsdb.path=" + t.TempDir(),
			"--web.listen-address=" + addr}, extra...)
	})
}

// StartAlertmanager starts the installed prometheus-alertmanager with
// configFile, fresh storage, clustering off and extra flags, and waits
// until it is ready.
func StartAlertmanager(t testing.TB, configFile string, extra ...string) *Daemon {
	t.Helper()
	return Start(t, Binary(t, "prometheus-alertmanager"), func(addr string) []string {
		return append([]string{"--config.file=" + configFile, "--storage.path=" + t.TempDir(),
			"--web.listen-address=" + addr, "--cluster.listen-address="}, extra...)
	})
}

// Start runs bin with args(addr) for a free loopback addr and waits up to
// ReadyTimeout for GET URL/-/ready to answer 200. A start that loses its
// port to another process is retried on a new one; args is called again
// for each attempt, so create storage directories (t.TempDir()) inside it:
// each attempt then starts from empty storage. Any other exit, or no
// answer in time, fails t with the log's tail.
//
// The daemon is stopped when the test ends (SIGTERM, killed after
// proctest.StopTimeout); if the test failed, the tail of its log is
// logged.
func Start(t testing.TB, bin string, args func(addr string) []string) *Daemon {
	t.Helper()
	d, err := start(t, bin, args, freeAddr)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// errExited is start's error for a daemon that exited before it was ready.
var errExited = errors.New("exited before it was ready")

// start is Start with the port picker as a seam, and an error instead of
// a failed test, so that the retry can be tested.
func start(t testing.TB, bin string, args func(addr string) []string, pick func() (string, error)) (*Daemon, error) {
	t.Helper()
	name := filepath.Base(bin)
	for attempt := 1; ; attempt++ {
		addr, err := pick()
		if err != nil {
			return nil, err
		}
		d := &Daemon{Addr: addr, URL: "http://" + addr, name: name, proc: proctest.Start(t, bin, args(addr)...)}
		err = d.waitReady(ReadyTimeout)
		if err == nil {
			return d, nil
		}
		if attempt < attempts && errors.Is(err, errExited) && strings.Contains(d.Logs(), "address already in use") {
			t.Logf("%s: port %s was taken before it bound (attempt %d of %d); retrying on another", name, addr, attempt, attempts)
			continue
		}
		return nil, err
	}
}

// waitReady polls /-/ready until it answers 200, the daemon exits, or
// timeout passes. An exit cancels the request in flight: on a port taken
// by a listener that never answers, it would hang.
func (d *Daemon) waitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		select {
		case <-d.proc.Exited():
			cancel()
		case <-ctx.Done():
		}
	}()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.URL+"/-/ready", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		select {
		case <-d.proc.Exited():
			return fmt.Errorf("%s on %s %w (%v):\n%s", d.name, d.Addr, errExited, d.proc.Err(), d.proc.Tail())
		default:
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s not ready at %s within %v (last: %v):\n%s", d.name, d.URL, timeout, err, d.proc.Tail())
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// freeAddr is a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

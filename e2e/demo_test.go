package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/stackwatch/stackwatch/alerts"
	"github.com/stackwatch/stackwatch/internal/proctest"
	"github.com/stackwatch/stackwatch/internal/promtest"
)

// demoPageWithin is issue 11's promise: the demo pages within three minutes.
const demoPageWithin = 3 * time.Minute

// TestDemo runs scripts/demo.sh as make demo does, against the real
// Prometheus and Alertmanager: HighNilSessionRate must fire for the two
// legacy services that panic (wilddiggr, goldenclover) within three minutes,
// never for forestteaparty (legacy, graceful path) or the patched wilddiggr;
// the page must reach a sidecar's webhook; Ctrl-C must stop everything with
// no output after "stopping...".
func TestDemo(t *testing.T) {
	t.Parallel()
	promtest.Binary(t, "prometheus")
	promtest.Binary(t, "prometheus-alertmanager")
	promtest.Binary(t, "curl")
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	bin := t.TempDir()
	for _, b := range []struct{ name, env string }{{"gameserver", "GOEXPERIMENT=goroutineleakprofile"}, {"sidecar", ""}, {"loadgen", ""}} {
		var env []string
		if b.env != "" {
			env = append(env, b.env)
		}
		if err := os.Symlink(proctest.Build(t, "../cmd/"+b.name, env...), filepath.Join(bin, b.name)); err != nil {
			t.Fatal(err)
		}
	}
	state := t.TempDir()
	// Fixed ports, moved by a random offset so parallel tests and a
	// developer's own make demo do not collide. All of them stay below
	// 32768, where the kernel hands out ephemeral ports (to every other
	// test's listeners and outgoing connections): the sidecars move from
	// 39191 to between the game ports (7001+) and Prometheus (9090).
	off := 10000 + rand.IntN(12000)
	const sidecarPort = 8001
	var out bytes.Buffer
	var mu sync.Mutex
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "demo.sh"))
	cmd.Env = append(os.Environ(), "DEMO_BIN="+bin, "DEMO_ROOT="+state, fmt.Sprintf("DEMO_PORT_OFFSET=%d", off),
		fmt.Sprintf("DEMO_SIDECAR_PORT=%d", sidecarPort), "DEMO_CLIENTS=20")
	cmd.Stdout = writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) })
	cmd.Stderr = cmd.Stdout
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	output := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Signal(syscall.SIGINT)
			<-exited
		}
		if t.Failed() {
			t.Logf("demo output:\n%s", output())
			logs, _ := filepath.Glob(filepath.Join(state, "*", "*.stderr"))
			for _, l := range logs {
				t.Logf("--- %s:\n%s", l, tail(l, 5))
			}
		}
	})

	// The banner names where to look; wait for it.
	promURL := fmt.Sprintf("http://127.0.0.1:%d", 9090+off)
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(output(), "Ctrl-C stops everything.") {
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("demo.sh exited before its banner: %v\n%s", err, output())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner within 90s:\n%s", output())
		}
	}
	began := time.Now()
	banner := output()
	for _, want := range []string{"/classic/alerts", "amtool alert query --alertmanager.url=http://127.0.0.1:", "goroutine dump captured"} {
		if !strings.Contains(banner, want) && !(want == "/classic/alerts" && strings.Contains(banner, promURL+"/alerts")) {
			t.Errorf("banner lacks %q", want)
		}
	}
	// Whichever alerts URL the banner prints must answer.
	for _, p := range []string{"/classic/alerts", "/alerts"} {
		if strings.Contains(banner, promURL+p+"\n") || strings.Contains(banner, promURL+p+" ") {
			if r, err := http.Get(promURL + p); err != nil || r.StatusCode != http.StatusOK {
				t.Errorf("banner's %s does not answer: %v %v", p, err, r)
			} else {
				r.Body.Close()
			}
		}
	}

	pc, err := api.NewClient(api.Config{Address: promURL})
	if err != nil {
		t.Fatal(err)
	}
	papi := promv1.NewAPI(pc)
	want := map[string]bool{"wilddiggr": true, "goldenclover": true}
	q := fmt.Sprintf(`ALERTS{alertname=%q,alertstate="firing"}`, alerts.HighNilSessionRate)
	for {
		firing := map[string]bool{}
		if v, _, _, err := papi.Query(ctx, q, time.Now()); err == nil {
			for _, s := range v.(model.Vector) {
				firing[string(s.Metric["service"])] = true
			}
		}
		if firing["wilddiggr"] && firing["goldenclover"] {
			t.Logf("HighNilSessionRate firing for wilddiggr and goldenclover %v after the banner", time.Since(began).Round(time.Second))
			break
		}
		if time.Since(began) > demoPageWithin {
			t.Fatalf("HighNilSessionRate not firing for both legacy services within %v (firing: %v)", demoPageWithin, firing)
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("demo.sh exited: %v", err)
		case <-time.After(2 * time.Second):
		}
	}
	v, _, _, err := papi.QueryRange(ctx, fmt.Sprintf(`ALERTS{alertname=%q}`, alerts.HighNilSessionRate),
		promv1.Range{Start: began.Add(-time.Minute), End: time.Now(), Step: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range v.(model.Matrix) {
		if svc := string(s.Metric["service"]); !want[svc] {
			t.Errorf("HighNilSessionRate was %s for %s", s.Metric["alertstate"], svc)
		}
	}

	// The page reaches the paged service's sidecar, which logs its dump.
	deadline = time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(state, "wilddiggr", "sidecar.stderr"))
		if bytes.Contains(b, []byte("goroutine dump captured")) && bytes.Contains(b, []byte("alert")) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the wilddiggr sidecar logged no goroutine dump for the page:\n%s", tail(filepath.Join(state, "wilddiggr", "sidecar.stderr"), 10))
			break
		}
		time.Sleep(time.Second)
	}

	// Ctrl-C: everything stops, nothing is printed after "stopping...".
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("demo.sh after Ctrl-C: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo.sh did not stop within 30s of Ctrl-C")
	}
	o := output()
	_, after, ok := strings.Cut(o, "stopping...")
	if !ok {
		t.Errorf("no \"stopping...\" after Ctrl-C")
	} else if strings.TrimSpace(after) != "" {
		t.Errorf("output after \"stopping...\": %q", after)
	}
	if strings.Contains(o, "not a child of this shell") {
		t.Errorf("wait complained about a child")
	}
	if r, err := http.Get(promURL + "/-/ready"); err == nil {
		r.Body.Close()
		t.Errorf("Prometheus still answers after Ctrl-C")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

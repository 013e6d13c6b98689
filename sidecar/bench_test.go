package sidecar

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/internal/proctest"
	"github.com/stackwatch/stackwatch/metrics"
)

// benchTrace is a real stacktrace file's content, as the server writes it.
func benchTrace(b *testing.B) []byte {
	b.Helper()
	content, err := os.ReadFile(recorder(b.TempDir(), false).crash(b, 0))
	if err != nil {
		b.Fatal(err)
	}
	return content
}

// BenchmarkIngest measures the backlog ingest rate on one core: b.N
// stacktrace files are on disk when the sidecar starts; the clock runs from
// start until every one is counted. Run with -benchtime=20000x.
func BenchmarkIngest(b *testing.B) {
	content := benchTrace(b)
	logDir, dataDir := filepath.Join(b.TempDir(), "logs"), b.TempDir()
	os.MkdirAll(logDir, 0o755)
	for i := range b.N {
		if err := os.WriteFile(filepath.Join(logDir, fmt.Sprintf("f%07d.stacktrace.log", i)), content, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(2 * watchSettle()) // all quiet: the start scan takes them at once
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuSeconds()
	t0 := time.Now()
	// Ready means the start scan's files were all ingested.
	h := start(b, Config{LogDir: logDir, DataDir: dataDir, ServerLog: "-"})
	elapsed, cpu := time.Since(t0), cpuSeconds()-cpu0
	b.StopTimer()
	h.stop()
	if got := h.value(metrics.Panics); got != float64(b.N) {
		b.Fatalf("panics_total %v, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "files/s")
	// Wall-clock rate depends on what else the machine runs; the rate per
	// CPU second of this process (one core) does not.
	b.ReportMetric(float64(b.N)/cpu, "files/cpu-s")
}

// cpuSeconds is this process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func watchSettle() time.Duration { return 10 * time.Millisecond }

// BenchmarkLatency measures file-written → counter-updated latency at 1,000
// files/s, in-process (OnPanics fires right after the counter is updated),
// for files renamed into place (patched server) and written in place
// (legacy server, which waits out the settle period). Run with
// -benchtime=2000x.
func BenchmarkLatency(b *testing.B) {
	content := benchTrace(b)
	nl := bytes.IndexByte(content, '\n') + 1
	for _, mode := range []string{"renamed", "in-place"} {
		b.Run(mode, func(b *testing.B) {
			logDir, dataDir := filepath.Join(b.TempDir(), "logs"), b.TempDir()
			os.MkdirAll(logDir, 0o755)
			var mu sync.Mutex
			var counted []time.Time
			h := start(b, Config{LogDir: logDir, DataDir: dataDir, ServerLog: "-", OnPanics: func(n int) {
				now := time.Now()
				mu.Lock()
				for range n {
					counted = append(counted, now)
				}
				mu.Unlock()
			}})
			written := make([]time.Time, b.N)
			b.ResetTimer()
			t0 := time.Now()
			for i := range b.N {
				if d := time.Until(t0.Add(time.Duration(i) * time.Millisecond)); d > 0 {
					time.Sleep(d)
				}
				p := filepath.Join(logDir, fmt.Sprintf("f%07d.stacktrace.log", i))
				if mode == "renamed" {
					written[i] = renameInAt(b, p, content)
				} else {
					f, err := os.Create(p)
					if err != nil {
						b.Fatal(err)
					}
					f.Write(content[:nl])
					written[i] = time.Now() // complete with the next write
					f.Write(content[nl:])
					f.Close()
				}
			}
			h.waitValue(metrics.Panics, float64(b.N))
			b.StopTimer()
			h.stop()
			rate := float64(b.N) / written[b.N-1].Sub(t0).Seconds()
			mu.Lock()
			lat := latencies(written, counted)
			mu.Unlock()
			b.ReportMetric(rate, "files/s")
			b.ReportMetric(ms(percentile(lat, 0.5)), "p50-ms")
			b.ReportMetric(ms(percentile(lat, 0.99)), "p99-ms")
		})
	}
}

// renameInAt writes content to a temporary name and renames it to path,
// returning the time just before the rename made it visible.
func renameInAt(b *testing.B, path string, content []byte) time.Time {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		b.Fatal(err)
	}
	at := time.Now()
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	return at
}

// latencies pairs the i-th write with the i-th count.
func latencies(written, counted []time.Time) []time.Duration {
	n := min(len(written), len(counted))
	out := make([]time.Duration, 0, n)
	for i := range n {
		if !counted[i].IsZero() && !written[i].IsZero() {
			out = append(out, max(0, counted[i].Sub(written[i])))
		}
	}
	slices.Sort(out)
	return out
}

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return -1
	}
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// mtailProg counts one panic per "goroutine N [running]:" line, by file.
const mtailProg = `counter stackwatch_mtail_panics by file
/^goroutine \d+ \[running\]:$/ {
  stackwatch_mtail_panics[getfilename()]++
}
`

// BenchmarkSidecarVsMtail runs the built sidecar binary and mtail side by
// side on one stream of panics at 1,000/s. The sidecar gets one new file per
// panic (renamed in, as the patched server writes them); mtail tails a file
// the same panics are appended to, because it never counts a new one-panic
// file (it seeks to the end of files it discovers; that is measured too, as
// mtail-new-files). Both are measured the same way, by scraping /metrics in
// a loop. Then: RSS and CPU idle, and under the same load without scraping.
// Run with -benchtime=2000x. In CI a missing mtail fails the benchmark.
func BenchmarkSidecarVsMtail(b *testing.B) {
	mtailBin, err := exec.LookPath("mtail")
	if err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatalf("mtail is required in CI (Debian package mtail): %v", err)
		}
		b.Skipf("mtail not installed (Debian package mtail): %v", err)
	}
	content := benchTrace(b)
	root := b.TempDir()
	logDir, dataDir, progDir := filepath.Join(root, "logs"), filepath.Join(root, "data"), filepath.Join(root, "progs")
	streamDir := filepath.Join(root, "stream")
	for _, d := range []string{logDir, dataDir, progDir, streamDir} {
		os.MkdirAll(d, 0o755)
	}
	stream := filepath.Join(streamDir, "stream.stacktrace.log")
	os.WriteFile(stream, nil, 0o644)
	os.WriteFile(filepath.Join(progDir, "panics.mtail"), []byte(mtailProg), 0o644)

	bin := proctest.Build(b, "github.com/stackwatch/stackwatch/cmd/sidecar")
	sc := startProcess(b, "", bin, "-log.format=json", "-service", "wilddiggr", "-log-dir", logDir, "-data-dir", dataDir,
		"-listen", "127.0.0.1:0", "-server-log", "-")
	port := freePort(b)
	mt := startProcess(b, "127.0.0.1:"+port, mtailBin, "-progs", progDir, "-logs", stream,
		"-logs", filepath.Join(logDir, "*.stacktrace.log"), "-address", "127.0.0.1", "-port", port,
		"-logtostderr")
	sidecarURL, mtailURL := "http://"+sc.addr+"/metrics", "http://"+mt.addr+"/metrics"

	// Idle.
	time.Sleep(time.Second)
	scIdle, mtIdle := sc.usage(), mt.usage()
	time.Sleep(2 * time.Second)
	scIdleCPU, mtIdleCPU := sc.usage().cpuSince(scIdle), mt.usage().cpuSince(mtIdle)
	scIdleRSS, mtIdleRSS := sc.rss(), mt.rss()

	// Latency: write at 1,000/s while scraping both.
	sf, err := os.OpenFile(stream, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer sf.Close()
	written := make([]time.Time, b.N)
	var (
		mu             sync.Mutex
		scSeen, mtSeen []time.Time
		mtNewFiles     float64
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	// One scraper per target, so neither waits for the other.
	observe := func(seen *[]time.Time, n float64) {
		now := time.Now()
		mu.Lock()
		for len(*seen) < int(n) {
			*seen = append(*seen, now)
		}
		mu.Unlock()
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			n, _ := scrapeSum(sidecarURL, metrics.Panics.Name, "")
			observe(&scSeen, n)
			time.Sleep(2 * time.Millisecond) // resolution ~2 ms; leaves CPU for the writer
		}
	})
	wg.Go(func() {
		for ctx.Err() == nil {
			n, other := scrapeSum(mtailURL, "stackwatch_mtail_panics", stream)
			observe(&mtSeen, n)
			mu.Lock()
			mtNewFiles = other
			mu.Unlock()
			time.Sleep(10 * time.Millisecond) // mtail polls every 250 ms: 10 ms resolution is plenty
		}
	})
	b.ResetTimer() // (it also clears reported metrics: report idle figures after it)
	b.ReportMetric(scIdleCPU, "sidecar-cpu-idle-%")
	b.ReportMetric(mtIdleCPU, "mtail-cpu-idle-%")
	scIdleRSS.report(b, "sidecar", "idle")
	mtIdleRSS.report(b, "mtail", "idle")
	t0 := time.Now()
	for i := range b.N {
		if d := time.Until(t0.Add(time.Duration(i) * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
		// Both see the panic at once: mtail's copy is appended right
		// after the sidecar's file is renamed in.
		written[i] = renameInAt(b, filepath.Join(logDir, fmt.Sprintf("f%07d.stacktrace.log", i)), content)
		if _, err := sf.Write(content); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/written[b.N-1].Sub(t0).Seconds(), "files/s")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		done := len(scSeen) >= b.N && len(mtSeen) >= b.N
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	mu.Lock()
	scLat, mtLat := latencies(written, scSeen), latencies(written, mtSeen)
	b.ReportMetric(float64(len(scSeen)), "sidecar-counted")
	b.ReportMetric(float64(len(mtSeen)), "mtail-counted")
	b.ReportMetric(mtNewFiles, "mtail-new-files")
	mu.Unlock()
	b.ReportMetric(ms(percentile(scLat, 0.5)), "sidecar-p50-ms")
	b.ReportMetric(ms(percentile(scLat, 0.99)), "sidecar-p99-ms")
	b.ReportMetric(ms(percentile(mtLat, 0.5)), "mtail-p50-ms")
	b.ReportMetric(ms(percentile(mtLat, 0.99)), "mtail-p99-ms")
	if p := percentile(scLat, 0.5); p > 0 {
		b.ReportMetric(float64(percentile(mtLat, 0.5))/float64(p), "latency-ratio")
	}

	// Load without scraping: CPU and peak RSS at 1,000 files/s for 2 s.
	scLoad, mtLoad := sc.usage(), mt.usage()
	var scPeak, mtPeak rss
	t1 := time.Now()
	for i := range 2000 {
		if d := time.Until(t1.Add(time.Duration(i) * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
		renameIn(b, filepath.Join(logDir, fmt.Sprintf("load%07d.stacktrace.log", i)), content)
		sf.Write(content)
		if i%100 == 0 {
			scPeak, mtPeak = scPeak.max(sc.rss()), mtPeak.max(mt.rss())
		}
	}
	b.ReportMetric(2000/time.Since(t1).Seconds(), "load-files/s")
	time.Sleep(300 * time.Millisecond) // let both finish the tail
	b.ReportMetric(sc.usage().cpuSince(scLoad), "sidecar-cpu-load-%")
	b.ReportMetric(mt.usage().cpuSince(mtLoad), "mtail-cpu-load-%")
	scPeak.max(sc.rss()).report(b, "sidecar", "load")
	mtPeak.max(mt.rss()).report(b, "mtail", "load")
	if n, _ := scrapeSum(sidecarURL, metrics.Panics.Name, ""); int(n) != b.N+2000 {
		b.Errorf("sidecar counted %v of %d panics", n, b.N+2000)
	}
}

// process is a benchmarked child process.
type process struct {
	*proctest.Proc
	addr string
}

// startProcess starts bin; with addr empty it reads the sidecar's
// "listening" log line, else it waits until addr answers HTTP.
func startProcess(b *testing.B, addr, bin string, args ...string) *process {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	p := &process{Proc: proctest.Start(b, bin, args...), addr: addr}
	if p.addr == "" {
		p.addr = p.Listening(b, time.Until(deadline), "addr")["addr"]
	}
	for {
		if r, err := http.Get("http://" + p.addr + "/metrics"); err == nil {
			r.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s did not come up", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type usage struct {
	at  time.Time
	cpu float64 // seconds
}

func (p *process) usage() usage {
	u := usage{at: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
	if err != nil {
		return u
	}
	// Fields after the command name: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	u.cpu = (utime + stime) / 100 // USER_HZ
	return u
}

func (u usage) cpuSince(prev usage) float64 {
	return 100 * (u.cpu - prev.cpu) / u.at.Sub(prev.at).Seconds()
}

// rss is a process's resident memory in MB, split as the kernel counts it:
// anonymous pages (heap, stacks: the program's own memory) and file pages
// (the binary's code and data that were touched, shared and reclaimable).
// A larger binary raises file pages with no change in what the program
// holds, so the benchmark reports both.
type rss struct{ total, anon, file float64 }

func (p *process) rss() rss {
	m, err := p.Memory()
	if err != nil {
		return rss{}
	}
	return rss{total: float64(m.RSS) / (1 << 20), anon: float64(m.Anon) / (1 << 20), file: float64(m.File) / (1 << 20)}
}

// max keeps the sample with the larger total.
func (r rss) max(o rss) rss {
	if o.total > r.total {
		return o
	}
	return r
}

func (r rss) report(b *testing.B, who, when string) {
	b.ReportMetric(r.total, who+"-rss-"+when+"-MB")
	b.ReportMetric(r.anon, who+"-anon-"+when+"-MB")
}

func freePort(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

var scrapeClient = &http.Client{Timeout: 2 * time.Second}

// scrapeSum sums the samples of metric name at url, reading the text
// format line by line (cheap, so the scrape loop stays tight). With file
// set, it returns the series whose file label is file, and the rest apart.
func scrapeSum(url, name, file string) (kept, rest float64) {
	r, err := scrapeClient.Get(url)
	if err != nil {
		return 0, 0
	}
	defer r.Body.Close()
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || len(line) <= len(name) || (line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			continue
		}
		if file == "" || strings.Contains(line, `file="`+file+`"`) {
			kept += v
		} else {
			rest += v
		}
	}
	return kept, rest
}

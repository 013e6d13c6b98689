package goroutines_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stackwatch/stackwatch/sidecar/goroutines"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The parkers block at lines tagged "park:" so tests can find the expected
// file:line in this file instead of hard-coding it.
func parkSend(ch chan int)    { ch <- 1 } // park:send
func parkReceive(ch chan int) { <-ch }    // park:receive
func parkSelect(a, b chan int) {
	select { // park:select
	case <-a:
	case <-b:
	}
}

// parked holds goroutines blocked at known places until release.
type parked struct {
	send, recv, sel chan int
	wg              sync.WaitGroup
}

func park(t testing.TB, nSend, nRecv, nSel int) *parked {
	p := &parked{send: make(chan int), recv: make(chan int), sel: make(chan int)}
	p.spawnSend(nSend)
	for range nRecv {
		p.wg.Go(func() { parkReceive(p.recv) })
	}
	for range nSel {
		p.wg.Go(func() { parkSelect(p.sel, p.sel) })
	}
	// Wait until they are all parked, not merely started, counting with
	// plain string search so the parser under test is not its own judge.
	waitParked(t, map[string]int{"parkSend": nSend, "parkReceive": nRecv, "parkSelect": nSel})
	if tt, ok := t.(*testing.T); ok {
		tt.Cleanup(p.release)
	}
	return p
}

//go:noinline // one closure name whoever calls it, so one stack group
func (p *parked) spawnSend(n int) {
	for range n {
		p.wg.Go(func() { parkSend(p.send) })
	}
}

func waitParked(t testing.TB, want map[string]int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		var buf bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&buf, 2)
		ok := true
		for fn, n := range want {
			if strings.Count(buf.String(), "goroutines_test."+fn+"(") < n {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines did not park: want %v", want)
		}
		time.Sleep(time.Millisecond)
	}
}

func (p *parked) release() {
	if p.send == nil {
		return
	}
	close(p.recv)
	close(p.sel)
	go func() {
		for range p.send {
		}
	}()
	p.wg.Wait()
	close(p.send)
	p.send = nil
}

// lineOf returns the line in this file tagged with marker.
func lineOf(t testing.TB, marker string) int {
	t.Helper()
	f, err := os.Open("goroutines_test.go")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if strings.HasSuffix(sc.Text(), "// "+marker) {
			return n
		}
	}
	t.Fatalf("marker %q not found", marker)
	return 0
}

func profileBytes(t testing.TB, name string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup(name).WriteTo(&buf, 0); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func debug2Bytes(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 2); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type want struct {
	fn     string
	marker string
	wait   goroutines.Wait
	count  int
}

func checkParked(t *testing.T, s *goroutines.Snapshot, wants []want) {
	t.Helper()
	if s.Total < 30+20+10 {
		t.Errorf("Total = %d, want at least the 60 parked", s.Total)
	}
	sum := 0
	for _, g := range s.Groups {
		sum += g.Count
		if g.Key == "" || g.Count <= 0 || len(g.Frames) == 0 {
			t.Errorf("bad group %+v", g)
		}
	}
	if sum != s.Total {
		t.Errorf("groups sum to %d, Total %d", sum, s.Total)
	}
	for _, w := range wants {
		var found *goroutines.Group
		for _, g := range s.Groups {
			if strings.HasSuffix(g.Location.Function, w.fn) {
				found = g
			}
		}
		if found == nil {
			t.Errorf("no group located in %s", w.fn)
			continue
		}
		if found.Count != w.count {
			t.Errorf("%s: count %d, want %d", w.fn, found.Count, w.count)
		}
		if found.Wait != w.wait || !found.Wait.IsChannel() {
			t.Errorf("%s: wait %q, want %q", w.fn, found.Wait, w.wait)
		}
		if line := lineOf(t, w.marker); found.Location.Line != line || !strings.HasSuffix(found.Location.File, "sidecar/goroutines/goroutines_test.go") {
			t.Errorf("%s: location %s, want goroutines_test.go:%d", w.fn, found.Location.Site(), line)
		}
	}
}

var parkedWants = []want{
	{"goroutines_test.parkSend", "park:send", goroutines.WaitChanSend, 30},
	{"goroutines_test.parkReceive", "park:receive", goroutines.WaitChanReceive, 20},
	{"goroutines_test.parkSelect", "park:select", goroutines.WaitSelect, 10},
}

func TestParseProfileOfParkedGoroutines(t *testing.T) {
	park(t, 30, 20, 10)
	data := profileBytes(t, "goroutine")
	s, err := goroutines.ParseProfile(data)
	if err != nil {
		t.Fatal(err)
	}
	if s.Format != goroutines.FormatProfile || s.Time.IsZero() {
		t.Errorf("format %q time %v", s.Format, s.Time)
	}
	checkParked(t, s, parkedWants)
	// The profile keeps runtime frames above the location.
	g := s.Groups[0]
	if !g.Frames[0].IsRuntime() {
		t.Errorf("largest group's top frame %s is not runtime", g.Frames[0])
	}

	// Uncompressed protobuf parses too.
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := goroutines.ParseAny(raw)
	if err != nil {
		t.Fatalf("ParseAny(uncompressed): %v", err)
	}
	checkParked(t, s2, parkedWants)
}

func TestParseDebug2OfParkedGoroutines(t *testing.T) {
	park(t, 30, 20, 10)
	data := debug2Bytes(t)
	if f, ok := goroutines.Detect(data); !ok || f != goroutines.FormatDebug2 {
		t.Fatalf("Detect = %q, %v", f, ok)
	}
	s, err := goroutines.ParseAny(data)
	if err != nil {
		t.Fatal(err)
	}
	if s.Format != goroutines.FormatDebug2 {
		t.Errorf("format %q", s.Format)
	}
	checkParked(t, s, parkedWants)
	if want := strings.Count(string(data), "\ngoroutine ") + 1; s.Total != want {
		t.Errorf("Total %d, dump has %d goroutine headers", s.Total, want)
	}
}

func TestDiffShowsGrowth(t *testing.T) {
	p := park(t, 5, 0, 0)
	before, err := goroutines.ParseProfile(profileBytes(t, "goroutine"))
	if err != nil {
		t.Fatal(err)
	}
	p.spawnSend(7) // same creator, so the same stack group
	waitParked(t, map[string]int{"parkSend": 12})
	after, err := goroutines.ParseProfile(profileBytes(t, "goroutine"))
	if err != nil {
		t.Fatal(err)
	}
	changes := goroutines.Diff(before, after)
	var send *goroutines.Change
	for i, c := range changes {
		if strings.HasSuffix(c.Location.Function, "parkSend") {
			send = &changes[i]
		}
	}
	if send == nil {
		t.Fatalf("diff has no parkSend change: %+v", changes)
	}
	if send.Base != 5 || send.Count != 12 || send.Delta != 7 {
		t.Errorf("parkSend change %d → %d (%+d), want 5 → 12 (+7)", send.Base, send.Count, send.Delta)
	}
	if len(goroutines.Diff(after, after)) != 0 {
		t.Error("diff of a snapshot with itself is not empty")
	}
	var out bytes.Buffer
	if err := goroutines.WriteDiff(&out, changes); err != nil || !strings.Contains(out.String(), "+7\t(5 → 12)") {
		t.Errorf("WriteDiff: %v\n%s", err, out.String())
	}
}

func TestWriteText(t *testing.T) {
	park(t, 3, 0, 0)
	s, err := goroutines.ParseAny(debug2Bytes(t))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := goroutines.WriteText(&out, s); err != nil {
		t.Fatal(err)
	}
	txt := out.String()
	if !strings.Contains(txt, "3 × [chan send] ") || !strings.Contains(txt, "goroutines_test.parkSend") {
		t.Errorf("text output lacks the parked group:\n%s", txt)
	}
}

func TestDebug2Shapes(t *testing.T) {
	dump := `goroutine 1 gp=0xc000002380 m=0 mp=0x6d6ba0 [running]:
main.main()
	/app/main.go:10 +0x1d

goroutine 7 gp=0xc000003c00 m=nil [chan send (leaked), 12 minutes]:
example.com/svc/task.onBetResp({0x0, 0x0}, ...)
	/app/task/bet.go:354 +0x237
example.com/svc/task.inlined(...)
	/app/task/bet.go:20
...additional frames elided...
created by example.com/svc/task.Start in goroutine 1
	/app/task/start.go:38 +0x45

goroutine 8 [chan send, 3 minutes, locked to thread]:
example.com/svc/task.onBetResp({0xc0000, 0x1}, ...)
	/app/task/bet.go:354 +0x237
example.com/svc/task.inlined(...)
	/app/task/bet.go:20
created by example.com/svc/task.Start in goroutine 1
	/app/task/start.go:38 +0x45
`
	s, err := goroutines.ParseDebug2([]byte(strings.ReplaceAll(dump, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	if s.Total != 3 || len(s.Groups) != 2 {
		t.Fatalf("total %d groups %d, want 3 and 2", s.Total, len(s.Groups))
	}
	g := s.Groups[0]
	if g.Count != 2 || g.Location.Function != "example.com/svc/task.onBetResp" || g.Location.Line != 354 ||
		g.WaitMinutes != 12 || !g.Wait.IsChannel() || len(g.Frames) != 3 || g.Frames[2].Function != "example.com/svc/task.Start" {
		t.Errorf("group %+v", g)
	}
}

func TestRejectsGarbage(t *testing.T) {
	for name, in := range map[string]string{
		"empty":        "",
		"text":         "hello world\n",
		"debug1":       "goroutine profile: total 3\n3 @ 0x1 0x2\n",
		"no file line": "goroutine 1 [running]:\nmain.main()\nmain.other()\n",
		"bad line no":  "goroutine 1 [running]:\nmain.main()\n\t/a.go:x +0x1\n",
		"bad header":   "goroutine x [running]:\nmain.main()\n\t/a.go:1\n",
		"stray text":   "goroutine 1 [running]:\nthis is not a frame\n",
		"gzip garbage": "\x1f\x8b\x08\x00garbage",
		"proto junk":   "\x0a\x05\x08\x01\x10\x02\xff\xff",
		"panic file":   "runtime error: invalid memory address or nil pointer dereference\ngoroutine 1 [running]:\nmain.main()\n\t/a.go:1 +0x1\n",
	} {
		if _, err := goroutines.ParseAny([]byte(in)); err == nil {
			t.Errorf("%s: ParseAny accepted %q", name, in)
		}
	}
	// A gzip bomb: just over MaxProfileSize of zeros in ~65 KiB.
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestSpeed)
	zw.Write(make([]byte, goroutines.MaxProfileSize+1<<20))
	zw.Close()
	if _, err := goroutines.ParseProfile(bomb.Bytes()); err == nil || !strings.Contains(err.Error(), "inflates beyond") {
		t.Errorf("gzip bomb: err = %v", err)
	}
	// A heap profile is a valid pprof profile but not a goroutine profile.
	if _, err := goroutines.ParseProfile(profileBytes(t, "heap")); err == nil || !strings.Contains(err.Error(), "not a goroutine profile") {
		t.Errorf("heap profile: err = %v", err)
	}
}

func TestDebug2Truncated(t *testing.T) {
	park(t, 4, 0, 0)
	full := debug2Bytes(t)
	whole, err := goroutines.ParseDebug2(full)
	if err != nil || whole.Truncated {
		t.Fatalf("whole dump: %v truncated=%v", err, whole.Truncated)
	}
	// Cut mid-line inside the last goroutine, as the runtime's 64 MiB cap does.
	last := bytes.LastIndex(full, []byte("\ngoroutine "))
	cut := full[:last+len("\ngoroutine 1 [x]:\nmain.f()\n\t/a")+20]
	cut = cut[:len(cut)-3]
	s, err := goroutines.ParseDebug2(cut)
	if err != nil {
		t.Fatalf("cut dump: %v", err)
	}
	if !s.Truncated || s.Total != whole.Total-1 {
		t.Errorf("cut dump: truncated=%v total %d, want true and %d", s.Truncated, s.Total, whole.Total-1)
	}
}

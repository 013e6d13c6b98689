package traceback_test

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stackwatch/stackwatch/sidecar/crash"
	"github.com/stackwatch/stackwatch/sidecar/stacktrace"
	"github.com/stackwatch/stackwatch/sidecar/traceback"
)

func scanAll(t testing.TB, in []byte) []traceback.Trace {
	t.Helper()
	var out []traceback.Trace
	sc := traceback.NewScanner(bytes.NewReader(in))
	for sc.Scan() {
		tr := sc.Trace()
		tr.Text = bytes.Clone(tr.Text)
		out = append(out, tr)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// baseTraces are plain traces of several Go versions and shapes.
func baseTraces(t testing.TB) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob("../stacktrace/testdata/*.*")
	if err != nil || len(names) == 0 {
		t.Fatal("no base traces", err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		if strings.Contains(n, "stacktrace.log") {
			continue // the recover helper's files: no runtime panic header
		}
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(n)] = b
	}
	return out
}

type summary struct {
	Message string
	Kind    string
	Frames  []string
	N       int
}

func summarize(p *stacktrace.Panic) summary {
	s := summary{Message: p.Message, Kind: p.Kind, N: len(p.Goroutines)}
	for _, f := range p.Goroutines[0].Frames {
		s.Frames = append(s.Frames, f.String())
	}
	return s
}

// TestShapes: every base trace, in every shape a log system gives it,
// reads back as the same panic, and so does a stream of all of them.
func TestShapes(t *testing.T) {
	bases := baseTraces(t)
	for _, sh := range allShapes() {
		t.Run(sh.name, func(t *testing.T) {
			var stream bytes.Buffer
			var want []summary
			for _, name := range slices.Sorted(mapsKeys(bases)) {
				base := bases[name]
				p0, err := stacktrace.ParseBytes(base)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				in := sh.fn(base)
				got := scanAll(t, in)
				if len(got) != 1 {
					t.Errorf("%s: %d traces, want 1\n%s", name, len(got), in)
					continue
				}
				p, err := stacktrace.ParseBytes(got[0].Text)
				if err != nil {
					t.Errorf("%s: %v\n%s", name, err, got[0].Text)
					continue
				}
				if g, w := summarize(p), summarize(p0); !equal(g, w) {
					t.Errorf("%s:\n got %+v\nwant %+v\ntext:\n%s", name, g, w, got[0].Text)
				}
				want = append(want, summarize(p0))
				stream.WriteString("2026-02-03T19:00:15.000Z stdout F {\"level\":\"info\",\"msg\":\"server started\"}\n")
				stream.Write(in)
			}
			got := scanAll(t, stream.Bytes())
			if len(got) != len(want) {
				t.Fatalf("stream of %d traces: found %d", len(want), len(got))
			}
			for i, tr := range got {
				p, err := stacktrace.ParseBytes(tr.Text)
				if err != nil || !equal(summarize(p), want[i]) {
					t.Errorf("stream trace %d: %v %+v, want %+v", i, err, p, want[i])
				}
			}
		})
	}
}

func equal(a, b summary) bool {
	return a.Message == b.Message && a.Kind == b.Kind && a.N == b.N && slices.Equal(a.Frames, b.Frames)
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestCorpus reads real traces pasted into public issues (their sources
// are in testdata/corpus/README.md) and names each one's crash site and
// message, as analyze and the sidecar group them.
func TestCorpus(t *testing.T) {
	for _, tc := range []struct {
		file, kind, msg, site string
	}{
		{"windows-exception-jnigi73.log", "fatal", "Exception 0xc0000005 0x0 0x0 0x177800003b6", "demo/jnigi._Cfunc_dyn_JNI_CreateJavaVM"},
		{"windows-exception-go11710.log", "fatal", "Exception 0xc0000005 0x8 0x0 0x0", "github.com/mattn/go-oci8._Cfunc_WrapOCIEnvCreate"},
		// journald kept one frame before systemd's lines: nothing but panic().
		{"journald-interleaved-systemd3277.log", "index_out_of_range", "runtime error: slice bounds out of range", "panic"},
		{"klog-observed-panic-starboard627.log", "nil_dereference", "runtime error: invalid memory address or nil pointer dereference",
			"github.com/aquasecurity/starboard/pkg/kube.(*logsReader).GetLogsByJobAndContainerName"},
		{"terminal-indented-k8s32206.log", "nil_dereference", "runtime error: invalid memory address or nil pointer dereference",
			"k8s.io/kubernetes/pkg/kubectl/cmd.handleAttachPod"},
		{"cgo-fatal-signal-postfix16.log", "fatal", "unexpected signal during runtime execution",
			"github.com/coreos/go-systemd/sdjournal._Cfunc_my_sd_journal_open"},
		{"spaces-indented-harbor40.log", "index_out_of_range", "runtime error: index out of range",
			"github.com/turnerlabs/harbor-compose/cmd.printMergedLogs"},
		{"bare-errgroup-compose8506.log", "index_out_of_range", "runtime error: index out of range [1] with length 1",
			"github.com/docker/compose-cli/pkg/compose.(*convergence).ensureService"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata/corpus", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got := scanAll(t, b)
			if len(got) != 1 {
				t.Fatalf("%d traces, want 1", len(got))
			}
			p, err := stacktrace.ParseBytes(got[0].Text)
			if err != nil {
				t.Fatalf("%v\n%s", err, got[0].Text)
			}
			sig := crash.Classify(p)
			if p.Kind != tc.kind || p.Message != tc.msg || sig.Site.Function != tc.site {
				t.Errorf("kind %q, message %q, site %q; want %q, %q, %q\n%s", p.Kind, p.Message, sig.Site.Function,
					tc.kind, tc.msg, tc.site, got[0].Text)
			}
		})
	}
}

// TestSmallReads: every base trace in every shape, after more log text
// than the history kept before the read position, reads the same when
// the input comes in small pieces (a pipe) as when it comes at once. A
// line looked at and given back (a viewer's wrap that was none, an
// exception line with no frames after it) used to be returned to by its
// offset in a buffer that reading on had moved: the scanner read the
// wrong text or panicked (slice bounds out of range).
func TestSmallReads(t *testing.T) {
	bases := baseTraces(t)
	var in []byte
	for i := 0; len(in) < 80<<10; i++ {
		in = fmt.Appendf(in, `{"time":"2026-02-03T19:00:16.%03dZ","level":"INFO","msg":"bet settled","player":%d}`+"\n", i%1000, i)
	}
	for _, name := range slices.Sorted(maps.Keys(bases)) {
		for _, sh := range allShapes() {
			trace := sh.fn(bases[name])
			for _, tail := range []string{"", "Exception 0xc0000005 0x0 0x0 0x0\n" + strings.Repeat(strings.Repeat("y", 5000)+"\n", 30)} {
				for skip := 0; skip < 4096; skip += 811 {
					data := slices.Concat(in[skip:], trace, []byte(tail), in[:8<<10], trace)
					want := scanAll(t, data)
					for _, chunk := range []int{4096, 1000} {
						var got []traceback.Trace
						sc := traceback.NewScanner(&chunked{bytes.NewReader(data), chunk})
						for sc.Scan() {
							got = append(got, sc.Trace())
						}
						if len(got) != len(want) {
							t.Fatalf("%s %s, skip %d, %d-byte reads: %d traces, at once %d", name, sh.name, skip, chunk, len(got), len(want))
						}
						for i := range got {
							if !bytes.Equal(got[i].Text, want[i].Text) || got[i].Line != want[i].Line {
								t.Fatalf("%s %s, skip %d, %d-byte reads: trace %d differs", name, sh.name, skip, chunk, i)
							}
						}
					}
				}
			}
		}
	}
}

// TestLongLineByteByByte: a line of 2 MB, between log lines and inside a
// trace, plain or in a partial Docker record, read a byte at a time (a
// pipe may deliver it so), reads as it does at once. The line's start was
// searched for a line break again after every read: 10^12 bytes for one
// such line.
func TestLongLineByteByByte(t *testing.T) {
	base := readBase(t, "go1.16_nil_method.txt")
	long := strings.Repeat("x", 2<<20)
	ls := lines(base)
	inTrace := strings.Join(ls[:5], "\n") + "\nmain.main()" + long + "\n" + strings.Join(ls[5:], "\n") + "\n"
	for name, in := range map[string]string{
		"plain":  "starting up " + long + "\n" + string(base),
		"trace":  inTrace,
		"docker": dockerRecord("starting up", "stderr", 0) + `{"log":"` + long + "\n" + string(dockerLog(base)),
	} {
		t.Run(name, func(t *testing.T) {
			want := scanAll(t, []byte(in))
			if len(want) == 0 {
				t.Fatal("no trace read at once")
			}
			var got []traceback.Trace
			sc := traceback.NewScanner(&oneByte{[]byte(in)})
			for sc.Scan() {
				got = append(got, sc.Trace())
			}
			if len(got) != len(want) {
				t.Fatalf("%d traces read a byte at a time, %d at once", len(got), len(want))
			}
			for i := range got {
				if !bytes.Equal(got[i].Text, want[i].Text) || got[i].Line != want[i].Line {
					t.Errorf("trace %d differs", i)
				}
			}
		})
	}
}

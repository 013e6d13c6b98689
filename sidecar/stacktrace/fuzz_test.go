package stacktrace

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var kinds = map[string]bool{
	KindNilDereference: true, KindIndexOutOfRange: true, KindClosedChannel: true, KindNilMapWrite: true,
	KindDivideByZero: true, KindTypeAssertion: true, KindFatal: true,
	KindCustom: true,
}

func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.*")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, tc := range realShapes {
		f.Add(realTrace(f, tc.shape, tc.env))
	}
	for _, s := range []string{
		"", "\n", "panic: x\n", "goroutine 1 [running]:\n", "goroutine 1 [running]:\nmain.main()\n",
		"goroutine 1 [running]:\n\t/x.go:1\n", "panic: a [recovered]\n\tpanic: b\n\tmore\n\ngoroutine 2 [running]:\nf(...)\n",
		"goroutine 3 [running]:\n[originating from goroutine 2]:\nf({0x0, {0x1, 0x2}})\n\t:7 +0x1 fp=1\ncreated by g in goroutine 999999999999999999999\n",
		"http: panic serving : \ngoroutine 0 []:\n...3 frames elided...\n", "\x00\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseBytes(data)
		if err != nil {
			if p != nil {
				t.Fatalf("result with error %v", err)
			}
			if !errors.Is(err, ErrEmpty) && !errors.Is(err, ErrNotPanic) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		checkInvariants(t, p)
		// The streaming entry point agrees with the in-memory one.
		q, err := Parse(bytes.NewReader(data), 0)
		if err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("Parse and ParseBytes differ: %v\n%+v\n%+v", err, p, q)
		}
	})
}

func checkInvariants(t *testing.T, p *Panic) {
	t.Helper()
	if len(p.Goroutines) == 0 {
		t.Fatal("no goroutines without an error")
	}
	if !kinds[p.Kind] {
		t.Fatalf("Kind %q", p.Kind)
	}
	if len(p.Message) > maxMessageBytes {
		t.Fatalf("Message of %d bytes", len(p.Message))
	}
	var check func(g Goroutine)
	check = func(g Goroutine) {
		if g.ID < 0 || g.Elided < 0 || g.CreatedByGoroutine < 0 {
			t.Fatalf("negative number in %+v", g)
		}
		frames := g.Frames
		if g.CreatedBy != nil {
			frames = append(frames[:len(frames):len(frames)], *g.CreatedBy)
		}
		for _, f := range frames {
			if f.Function == "" || f.Line < 0 || strings.ContainsAny(f.Function+f.File+f.Offset, "\n") {
				t.Fatalf("bad frame %+v", f)
			}
			if f.Pkg != "runtime" && !strings.HasPrefix(f.Function, f.Pkg) {
				t.Fatalf("Pkg %q not a prefix of %q", f.Pkg, f.Function)
			}
			if f.Inlined && len(f.Args) > 0 {
				t.Fatalf("inlined frame with args %+v", f)
			}
		}
		for _, a := range g.Ancestors {
			check(a)
		}
	}
	for _, g := range p.Goroutines {
		check(g)
	}
}

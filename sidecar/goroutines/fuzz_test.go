package goroutines_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	"github.com/stackwatch/stackwatch/sidecar/goroutines"
)

func checkSnapshot(t *testing.T, s *goroutines.Snapshot) {
	sum := 0
	for _, g := range s.Groups {
		if g.Count < 0 || g.Key == "" {
			t.Fatalf("bad group %+v", g)
		}
		sum += g.Count
	}
	if sum != s.Total {
		t.Fatalf("groups sum to %d, Total %d", sum, s.Total)
	}
}

func FuzzParseDebug2(f *testing.F) {
	p := park(f, 2, 2, 2)
	f.Add(debug2Bytes(f))
	p.release()
	f.Add([]byte("goroutine 1 [running]:\nmain.main()\n\t/a.go:1 +0x1\n"))
	f.Add([]byte("goroutine 7 gp=0xc000003c00 m=nil [chan send (leaked), 12 minutes]:\nx.f({0x0, 0x0}, ...)\n\t/x.go:3 +0x2\n...additional frames elided...\ncreated by x.g in goroutine 1\n\t/x.go:9 +0x4\n\n"))
	f.Add([]byte("panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/a.go:1 +0x1\n[originating from goroutine 2]:\nmain.f()\n\t/a.go:2\n"))
	f.Add([]byte("goroutine 1 [select, 5 minutes, locked to thread]:\r\nmain.(*T).m(...)\r\n\t/a b.go:1\r\n"))
	f.Add([]byte("goroutine 18446744073709551616 []:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := goroutines.ParseDebug2(data)
		if err != nil {
			return
		}
		checkSnapshot(t, s)
		if s.Total == 0 {
			t.Fatal("parsed a dump with no goroutines")
		}
	})
}

func FuzzParseProfile(f *testing.F) {
	p := park(f, 2, 2, 2)
	gz := profileBytes(f, "goroutine")
	p.release()
	f.Add(gz)
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		f.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Add(gz[:len(gz)/2])
	f.Add(profileBytes(f, "threadcreate"))
	f.Add([]byte{})
	f.Add([]byte("\x1f\x8b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := goroutines.ParseProfile(data)
		if err != nil {
			return
		}
		checkSnapshot(t, s)
	})
}

func FuzzParseAny(f *testing.F) {
	p := park(f, 1, 1, 1)
	f.Add(profileBytes(f, "goroutine"))
	f.Add(debug2Bytes(f))
	p.release()
	f.Add([]byte("runtime error: index out of range\ngoroutine 1 [running]:\n"))
	f.Add([]byte("goroutine profile: total 1\n1 @ 0x1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := goroutines.ParseAny(data)
		if err != nil {
			return
		}
		checkSnapshot(t, s)
	})
}

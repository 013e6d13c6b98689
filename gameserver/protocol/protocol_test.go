package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := BetResult{BetID: "b1", PlayerID: "p1", Game: "wilddig", Amount: 10, Win: 30, Balance: 1020, Symbols: []int{1, 2, 3}}
	if err := WriteMessage(&buf, TypeBetResult, in); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFrame(&buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != TypeBetResult {
		t.Fatalf("type = %s", f.Type)
	}
	var out BetResult
	if err := f.Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.BetID != in.BetID || out.Win != in.Win || len(out.Symbols) != 3 {
		t.Fatalf("got %+v", out)
	}
	if _, err := ReadFrame(&buf, 0); err != io.EOF {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	hdr := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	cases := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"empty", hdr(0), 0, ErrEmptyFrame},
		{"too large", hdr(DefaultMaxFrameSize + 1), 0, ErrFrameTooLarge},
		{"too large for custom max", hdr(17), 16, ErrFrameTooLarge},
		{"huge length", hdr(0xFFFFFFFF), 0, ErrFrameTooLarge},
		{"truncated header", []byte{0, 0}, 0, io.ErrUnexpectedEOF},
		{"truncated body", append(hdr(10), byte(TypePing), '{'), 0, io.ErrUnexpectedEOF},
		{"header only", hdr(5), 0, io.ErrUnexpectedEOF},
		{"unknown type", append(hdr(3), 0x7f, '{', '}'), 0, ErrUnknownType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(c.in), c.max)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestDecodeGarbage(t *testing.T) {
	f := Frame{Type: TypeBet, Payload: []byte("not json")}
	var b Bet
	if err := f.Decode(&b); err == nil {
		t.Fatal("want error for garbage payload")
	}
}

// FuzzReadFrame feeds arbitrary bytes to the decoder: it must never panic,
// never return a frame longer than the limit, and re-encode what it accepts
// to the same bytes.
func FuzzReadFrame(f *testing.F) {
	good, _ := Marshal(TypeBet, Bet{BetID: "x", Amount: 1})
	f.Add(good)
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Add([]byte{0, 0, 0, 1, byte(TypePing)})
	f.Add(append([]byte{0, 0, 0, 3, 0x7f}, "{}"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 1 << 10
		r := bytes.NewReader(data)
		for {
			fr, err := ReadFrame(r, max)
			if err != nil {
				return
			}
			if len(fr.Payload)+1 > max {
				t.Fatalf("frame of %d bytes passed a %d limit", len(fr.Payload)+1, max)
			}
			if !fr.Type.Known() {
				t.Fatalf("unknown type %s accepted", fr.Type)
			}
			enc := AppendFrame(nil, fr.Type, fr.Payload)
			back, err := ReadFrame(bytes.NewReader(enc), max)
			if err != nil || back.Type != fr.Type || !bytes.Equal(back.Payload, fr.Payload) {
				t.Fatalf("re-encode mismatch: %v", err)
			}
		}
	})
}

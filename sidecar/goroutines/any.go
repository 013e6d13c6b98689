package goroutines

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/stackwatch/stackwatch/sidecar/traceback"
)

// ErrUnknownFormat is returned by ParseAny for input that is neither a pprof
// goroutine profile nor a debug=2 dump.
var ErrUnknownFormat = errors.New("goroutines: neither a pprof goroutine profile nor a debug=2 dump")

// Detect names the format of data without parsing all of it: gzip or
// protobuf is a profile; text whose first non-blank line is a goroutine
// header ("goroutine 1 [running]:") is a debug=2 dump. A stacktrace file
// (first line the panic value) is neither, so callers can try this first and
// fall back to their panic parser.
func Detect(data []byte) (Format, bool) {
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		return FormatProfile, true
	}
	text := bytes.TrimLeft(data, " \t\r\n")
	if bytes.HasPrefix(text, []byte("goroutine ")) {
		first, _, _ := bytes.Cut(text, []byte{'\n'})
		if _, _, ok := traceback.ParseHeader(bytes.TrimSuffix(first, []byte{'\r'})); ok {
			return FormatDebug2, true
		}
		return "", false
	}
	// An uncompressed profile is a protobuf message: binary, where text
	// has only printable UTF-8 and line breaks.
	head := data[:min(len(data), 256)]
	for _, c := range head {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return FormatProfile, true
		}
	}
	if len(head) > 0 && !utf8.Valid(head[:max(0, len(head)-utf8.UTFMax)]) {
		return FormatProfile, true
	}
	return "", false
}

// ParseAny parses a goroutine profile (debug=0 protobuf, gzipped or not) or a
// debug=2 text dump, whichever data is.
func ParseAny(data []byte) (*Snapshot, error) {
	f, ok := Detect(data)
	if !ok {
		if bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("goroutine profile: total")) {
			return nil, fmt.Errorf("%w: this is a debug=1 dump (addresses only); fetch debug=0 or debug=2 instead", ErrUnknownFormat)
		}
		return nil, ErrUnknownFormat
	}
	if f == FormatDebug2 {
		return ParseDebug2(data)
	}
	return ParseProfile(data)
}

package traceback

import (
	"testing"
	"time"
)

func TestPrefixStrip(t *testing.T) {
	for _, tc := range []struct {
		learned, line, rest string
		ok                  bool
	}{
		{"2026-02-03T19:00:16.678Z stderr F ", "2026-02-03T19:00:17.9Z stderr F \t/a.go:1 +0x1", "\t/a.go:1 +0x1", true},
		{"2026-02-03T19:00:16.678Z stderr F ", "2026-02-03T19:00:17.9Z stdout F main.main()", "", false},
		{"Aug 24 16:14:49 host prog[741]: ", "Aug 24 16:14:50 host prog[741]: main.main()", "main.main()", true},
		{"Aug 24 16:14:49 host prog[741]: ", "Aug 24 16:14:50 host systemd[1]: Stopped.", "", false},
		{"worker-1  | ", "worker-1  | goroutine 1 [running]:", "goroutine 1 [running]:", true},
		{"worker-1  | ", "db-1      | LOG: checkpoint", "", false},
		{"  9 | ", " 10 | main.main()", "main.main()", true},
		{"  9 | ", "100 | main.main()", "main.main()", true},
		{"  9 | ", " 10 |     /a.go:1", "    /a.go:1", true},
		{"", "anything", "anything", true},
	} {
		p := learnPrefix([]byte(tc.learned))
		rest, ok := p.strip([]byte(tc.line))
		if ok != tc.ok || ok && string(rest) != tc.rest {
			t.Errorf("%q on %q: %q %v; want %q %v", tc.learned, tc.line, rest, ok, tc.rest, tc.ok)
		}
	}
}

func TestTimeOf(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for prefix, want := range map[string]time.Time{
		"2026-02-03T19:00:16.678901234Z stderr F ": time.Date(2026, 2, 3, 19, 0, 16, 678901234, time.UTC),
		"2026/02/03 19:00:16 ":                     time.Date(2026, 2, 3, 19, 0, 16, 0, time.UTC),
		"2026-02-03 19:00:16,250 ERROR ":           time.Date(2026, 2, 3, 19, 0, 16, 250e6, time.UTC),
		`{"time":"2026-02-03T19:00:16-05:00",`:     time.Date(2026, 2, 4, 0, 0, 16, 0, time.UTC),
		"Feb  3 19:00:16 host prog[1]: ":           time.Date(2026, 2, 3, 19, 0, 16, 0, time.UTC),
		"Dec 31 23:59:59 host prog[1]: ":           time.Date(2025, 12, 31, 23, 59, 59, 0, time.UTC), // last year's
		"worker-1  | ":                             {},
		"  9 | ":                                   {},
	} {
		if got := timeOf([]byte(prefix), now); !got.Equal(want) {
			t.Errorf("timeOf(%q) = %v, want %v", prefix, got, want)
		}
	}
}

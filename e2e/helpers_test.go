package e2e

import "testing"

func TestHumanized(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"x attempted 123.4 writes", 123.4, true},
		{"x attempted 1.5k writes", 1500, true},
		{"x attempted 2M writes", 2e6, true},
		{"x attempted {{ $value }} writes", 0, false},
		{"y attempted 3 writes", 0, false},
	} {
		got, err := humanized(tc.in, "x attempted ", " writes")
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("humanized(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseLogLine(t *testing.T) {
	for in, want := range map[string]map[string]any{
		`{"msg":"listening","addr":"127.0.0.1:1"}`:                                 {"msg": "listening", "addr": "127.0.0.1:1"},
		`time=2026-11-30T14:03:54Z level=INFO msg=listening addr=127.0.0.1:1 x=""`: {"time": "2026-11-30T14:03:54Z", "level": "INFO", "msg": "listening", "addr": "127.0.0.1:1", "x": ""},
		`level=INFO msg="fatal errors are copied" file=/a`:                         {"level": "INFO", "msg": "fatal errors are copied", "file": "/a"},
	} {
		got := parseLogLine([]byte(in))
		if len(got) != len(want) {
			t.Errorf("%s: got %v, want %v", in, got, want)
			continue
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %v, want %v", in, k, got[k], v)
			}
		}
	}
	for _, bad := range []string{"goroutine 1 [running]:", `msg="unterminated`, "plain text"} {
		if m := parseLogLine([]byte(bad)); m["msg"] != nil {
			t.Errorf("%q parsed as %v", bad, m)
		}
	}
}

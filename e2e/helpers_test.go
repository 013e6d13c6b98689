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

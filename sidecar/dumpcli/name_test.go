package dumpcli

import "testing"

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"wilddiggr": "wilddiggr", "../../etc/x": "______etc_x", "a/b": "a_b", "": "dump", "gold.clover": "gold_clover",
	} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}

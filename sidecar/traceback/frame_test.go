package traceback

import "testing"

func TestPackageOf(t *testing.T) {
	for _, tc := range []struct{ fn, pkg string }{
		{"main.main", "main"},
		{"panic", "runtime"},
		{"runtime.gopark", "runtime"},
		{"github.com/x/y/pkg.(*T).Method.func1", "github.com/x/y/pkg"},
		{"gopkg.in/yaml%2ev3.(*parser).parse", "gopkg.in/yaml%2ev3"},
		{"example.com/m/p.Map[go.shape.int,go.shape.string]", "example.com/m/p"},
		{"0x4a1b2c", ""},
		{"", ""},
	} {
		if got := PackageOf(tc.fn); got != tc.pkg {
			t.Errorf("PackageOf(%q) = %q, want %q", tc.fn, got, tc.pkg)
		}
	}
}

func TestIsRuntime(t *testing.T) {
	for fn, want := range map[string]bool{
		"runtime.gopark":                 true,
		"internal/poll.runtime_pollWait": true,
		"sync.(*WaitGroup).Wait":         true,
		"sync/atomic.AddInt32":           true,
		"runtime/debug.Stack":            true,
		"main.main":                      false,
		"net/http.(*conn).serve":         false,
		"0x4a1b2c":                       false,
	} {
		if got := (Frame{Function: fn}).IsRuntime(); got != want {
			t.Errorf("IsRuntime(%q) = %v", fn, got)
		}
	}
}

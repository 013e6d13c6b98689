package metrics_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stackwatch/stackwatch/metrics"
)

// TestDocsNameCatalogMetrics fails when an operator document names a
// stackwatch or game server series the catalog does not define, so the docs
// cannot promise a metric nobody exports.
func TestDocsNameCatalogMetrics(t *testing.T) {
	known := map[string]bool{}
	for _, m := range append(metrics.Gameserver(), metrics.Sidecar()...) {
		known[m.Name] = true
		if m.Type == metrics.Histogram {
			known[m.Bucket()], known[m.Sum()], known[m.Count()] = true, true, true
		}
	}
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	runbooks, _ := filepath.Glob("../docs/runbooks/*.md")
	files = append(append(files, runbooks...), "../README.md")
	name := regexp.MustCompile(`\b(?:stackwatch_|gameserver_|nil_session_|client_write_)[a-z0-9_]*[a-z0-9]\b`)
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range name.FindAllString(string(b), -1) {
			n++
			if !known[m] {
				t.Errorf("%s names %s, which is not in metrics/catalog.go", f, m)
			}
		}
	}
	if n == 0 {
		t.Fatal("no metric names found in the docs: the pattern is wrong")
	}
}

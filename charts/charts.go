// Package charts keeps the stackwatch Helm chart (charts/stackwatch) fed from
// the repository's single source of alert rules and dashboards.
//
// Helm can read no file outside a chart, so the chart carries copies in
// charts/stackwatch/files/: `go generate ./charts` makes them (Sync), and the
// package's tests fail when a copy drifts from its source (Drift). The copies
// are never edited by hand; alerts/ and dashboards/ are generated from the
// metric catalog by their own generators.
package charts

// `go generate ./...` visits charts before dashboards, so regenerate the
// sources first (their generators are idempotent), then copy them.
//go:generate go generate ../alerts ../dashboards
//go:generate go run ./internal/syncfiles -repo .. -chart stackwatch

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// A Mirror is one directory of the chart that mirrors a set of repository files.
type Mirror struct {
	Source  string // glob relative to the repository root, e.g. "alerts/*.rules.yml"
	Target  string // directory relative to the chart, e.g. "files/alerts"
	Pattern string // the files of Target that the mirror owns, e.g. "*.rules.yml"
}

// Mirrors lists what the chart copies: every rule file and every dashboard.
var Mirrors = []Mirror{
	{Source: "alerts/*.rules.yml", Target: "files/alerts", Pattern: "*.rules.yml"},
	{Source: "dashboards/*.json", Target: "files/dashboards", Pattern: "*.json"},
}

// A Change is one difference between a source and the chart's copy.
type Change struct {
	Path   string // chart file, relative to the chart directory
	Action string // "create", "update" or "delete"
}

func (c Change) String() string { return c.Action + " " + c.Path }

// Drift reports how the chart at chartDir differs from the sources under
// repoRoot, without writing anything. No changes means the chart is in sync.
func Drift(repoRoot, chartDir string) ([]Change, error) {
	changes, _, err := plan(repoRoot, chartDir)
	return changes, err
}

// Sync makes the chart's copies equal to the sources: it writes new and
// changed files (atomically) and deletes copies whose source is gone. It
// returns what it changed.
func Sync(repoRoot, chartDir string) ([]Change, error) {
	changes, want, err := plan(repoRoot, chartDir)
	if err != nil {
		return nil, err
	}
	for _, c := range changes {
		dst := filepath.Join(chartDir, c.Path)
		switch c.Action {
		case "delete":
			if err := os.Remove(dst); err != nil {
				return nil, fmt.Errorf("charts: %w", err)
			}
		default:
			if err := writeFileAtomic(dst, want[c.Path]); err != nil {
				return nil, err
			}
		}
	}
	return changes, nil
}

// plan compares sources and copies. want maps chart-relative paths to the
// bytes they must hold.
func plan(repoRoot, chartDir string) (changes []Change, want map[string][]byte, err error) {
	if _, err := os.Stat(filepath.Join(chartDir, "Chart.yaml")); err != nil {
		return nil, nil, fmt.Errorf("charts: %s is not a chart: %w", chartDir, err)
	}
	want = map[string][]byte{}
	for _, m := range Mirrors {
		srcs, err := filepath.Glob(filepath.Join(repoRoot, m.Source))
		if err != nil {
			return nil, nil, fmt.Errorf("charts: %w", err)
		}
		for _, src := range srcs {
			b, err := os.ReadFile(src)
			if err != nil {
				return nil, nil, fmt.Errorf("charts: reading source: %w", err)
			}
			want[filepath.Join(m.Target, filepath.Base(src))] = b
		}
		have, err := filepath.Glob(filepath.Join(chartDir, m.Target, m.Pattern))
		if err != nil {
			return nil, nil, fmt.Errorf("charts: %w", err)
		}
		for _, dst := range have {
			rel := filepath.Join(m.Target, filepath.Base(dst))
			if _, ok := want[rel]; !ok {
				changes = append(changes, Change{Path: rel, Action: "delete"})
			}
		}
	}
	for rel, b := range want {
		got, err := os.ReadFile(filepath.Join(chartDir, rel))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			changes = append(changes, Change{Path: rel, Action: "create"})
		case err != nil:
			return nil, nil, fmt.Errorf("charts: reading copy: %w", err)
		case !bytes.Equal(got, b):
			changes = append(changes, Change{Path: rel, Action: "update"})
		}
	}
	slices.SortFunc(changes, func(a, b Change) int { return cmp.Compare(a.Path, b.Path) })
	return changes, want, nil
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("charts: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".sync-*")
	if err != nil {
		return fmt.Errorf("charts: %w", err)
	}
	defer os.Remove(f.Name()) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("charts: writing %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("charts: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("charts: writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("charts: %w", err)
	}
	return nil
}

// Command gen writes stackwatch's Grafana dashboards as JSON files.
//
//	go run ./dashboards/gen -dir dashboards
//
// go generate runs it with the default thresholds (alerts.Default); the drift
// test in package dashboards compares the committed files with the code.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/stackwatch/stackwatch/dashboards"
)

func main() {
	dir := flag.String("dir", ".", "directory to write <uid>.json into")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	specs, err := dashboards.All()
	if err != nil {
		return err
	}
	for _, s := range specs {
		b, err := dashboards.JSON(s.Model)
		if err != nil {
			return fmt.Errorf("%s: %w", s.UID, err)
		}
		if err := os.WriteFile(filepath.Join(dir, s.File), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Command syncfiles copies the repository's alert rules and dashboards into
// the Helm chart (run by `go generate ./charts`).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/stackwatch/stackwatch/charts"
)

func main() {
	repo := flag.String("repo", "..", "repository root holding alerts/ and dashboards/")
	chart := flag.String("chart", "stackwatch", "chart directory")
	flag.Parse()
	changes, err := charts.Sync(*repo, *chart)
	if err != nil {
		fmt.Fprintln(os.Stderr, "syncfiles:", err)
		os.Exit(1)
	}
	for _, c := range changes {
		fmt.Println("syncfiles:", c)
	}
}

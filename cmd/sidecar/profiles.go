package main

import (
	"io"

	"github.com/stackwatch/stackwatch/sidecar/analyze"
	"github.com/stackwatch/stackwatch/sidecar/goroutines"
)

// `sidecar analyze` also reads goroutine profiles (pprof proto) and debug=2
// dumps, such as those pulled with `sidecar dumps pull`.
func init() {
	analyze.ProfileAnalyzers = append(analyze.ProfileAnalyzers, analyzeProfile)
}

func analyzeProfile(_ string, data []byte) (any, bool) {
	if _, ok := goroutines.Detect(data); !ok {
		return nil, false
	}
	snap, err := goroutines.ParseAny(data)
	if err != nil {
		return nil, false
	}
	return profileReport{snap}, true
}

// profileReport prints as text through goroutines.WriteText and as JSON as
// the snapshot itself.
type profileReport struct{ *goroutines.Snapshot }

func (p profileReport) WriteText(w io.Writer) error { return goroutines.WriteText(w, p.Snapshot) }

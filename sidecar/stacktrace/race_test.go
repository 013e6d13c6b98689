//go:build race

package stacktrace

// raceEnabled: -race changes inlining and argument printing in the real traces.
const raceEnabled = true

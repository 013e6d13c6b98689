//go:build !race

package stacktrace

const raceEnabled = false

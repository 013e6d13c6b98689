package gameserver

import (
	"bytes"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
)

// residentMemory is the process's resident set size, from /proc where there
// is one, else the Go runtime's view of the memory it holds.
func residentMemory() float64 {
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		f := bytes.Fields(b)
		if len(f) >= 2 {
			if pages, err := strconv.ParseInt(string(f[1]), 10, 64); err == nil {
				return float64(pages * int64(os.Getpagesize()))
			}
		}
	}
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		return float64(s[0].Value.Uint64())
	}
	return 0
}

// memoryLimit is the cgroup limit if one is set, else GOMEMLIMIT if set,
// else fallback.
func memoryLimit(fallback int64) int64 {
	for _, p := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		if n, ok := readLimit(p); ok {
			return n
		}
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		if n := debug.SetMemoryLimit(-1); n > 0 && n < math.MaxInt64 {
			return n
		}
	}
	return fallback
}

func readLimit(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	s := string(bytes.TrimSpace(b))
	n, err := strconv.ParseInt(s, 10, 64)
	// "max" (v2) or a page-rounded near-MaxInt64 (v1) mean no limit.
	if err != nil || n <= 0 || n >= 1<<60 {
		return 0, false
	}
	return n, true
}

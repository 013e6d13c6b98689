//go:build unix

package gameserver

import "syscall"

// defaultMaxConns leaves a tenth of the file-descriptor limit (at least 64)
// for the ledger, logs, stacktrace files and the admin listener, so they
// keep working when the game port is full.
func defaultMaxConns() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<20 {
		return 1 << 20
	}
	n := int(rl.Cur)
	return max(1, n-max(64, n/10))
}

//go:build !unix

package gameserver

// defaultMaxConns is a fixed cap where there is no RLIMIT_NOFILE.
func defaultMaxConns() int { return 4096 }

package gameserver_test

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/gameserver/wallet"
)

// newServer runs gameserver.New with logs discarded.
func newServer(cfg gameserver.Config) (*gameserver.Server, error) {
	if cfg.Game == "" {
		cfg.Game = "wilddig"
	}
	return gameserver.New(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
}

// A failed start names the flag and the cause, does not panic, and leaves
// no directory behind.
func TestStartFailuresAreClearAndLeaveNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	badLedger := t.TempDir()
	if err := os.WriteFile(filepath.Join(badLedger, wallet.FileName), []byte(strings.Repeat("junk", 4096)), 0o600); err != nil {
		t.Fatal(err)
	}

	existingLog := t.TempDir()
	for _, tc := range []struct {
		name string
		cfg  func(root string) gameserver.Config
		want []string
	}{
		{"game port in use", func(root string) gameserver.Config {
			return gameserver.Config{Listen: busy.Addr().String(), LogDir: root + "/log", DataDir: root + "/data"}
		}, []string{"-listen " + busy.Addr().String() + ": ", "address already in use"}},
		{"admin port in use", func(root string) gameserver.Config {
			return gameserver.Config{Admin: busy.Addr().String(), LogDir: root + "/log", DataDir: root + "/data"}
		}, []string{"-admin " + busy.Addr().String() + ": ", "address already in use"}},
		{"pprof port in use", func(root string) gameserver.Config {
			return gameserver.Config{Pprof: busy.Addr().String(), LogDir: root + "/log", DataDir: root + "/data"}
		}, []string{"-pprof " + busy.Addr().String() + ": ", "address already in use"}},
		{"bad listen address", func(root string) gameserver.Config {
			return gameserver.Config{Listen: "127.0.0.1:http-nope", LogDir: root + "/log", DataDir: root + "/data"}
		}, []string{"-listen 127.0.0.1:http-nope: "}},
		{"unknown game", func(root string) gameserver.Config {
			return gameserver.Config{Game: "poker", LogDir: root + "/log", DataDir: root + "/data"}
		}, []string{`-game "poker": want one of `}},
		{"damaged ledger", func(root string) gameserver.Config {
			return gameserver.Config{LogDir: root + "/log", DataDir: badLedger}
		}, []string{"-data-dir " + badLedger + ": ", "ledger damaged", "restore wallet.db"}},
		{"damaged ledger, log dir exists", func(root string) gameserver.Config {
			return gameserver.Config{LogDir: existingLog, DataDir: badLedger}
		}, []string{"-data-dir " + badLedger + ": "}},
		{"data dir is a file", func(root string) gameserver.Config {
			os.WriteFile(root+"/file", nil, 0o644)
			return gameserver.Config{LogDir: root + "/log", DataDir: root + "/file/data"}
		}, []string{"-data-dir " + "ROOT/file/data: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			srv, err := newServer(tc.cfg(root))
			if err == nil {
				t.Fatalf("New succeeded: %v", srv.Addr())
			}
			for _, w := range tc.want {
				if w = strings.ReplaceAll(w, "ROOT", root); !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.HasPrefix(err.Error(), "gameserver:") {
				t.Errorf("error %q carries the prefix main adds", err)
			}
			for _, p := range []string{filepath.Join(root, "log"), filepath.Join(root, "data"), filepath.Join(existingLog, gameserver.LogFileName)} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("failed start left %s behind (%v)", p, err)
				}
			}
		})
	}
}

// A bet record that is not JSON used to reach recovery and panic on a nil
// server; now the ledger check refuses it up front, with the ports freed.
func TestStartRefusesCorruptBetRecord(t *testing.T) {
	data := t.TempDir()
	srv := startServer(t, gameserver.Config{DataDir: data})
	srv.Stop()
	db, err := bolt.Open(filepath.Join(data, wallet.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("bets")).Put([]byte("p\x00b"), []byte("not json")) })
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	if _, err := newServer(gameserver.Config{Listen: listen, LogDir: t.TempDir(), DataDir: data}); !errors.Is(err, wallet.ErrLedgerDamaged) {
		t.Fatalf("New: %v", err)
	}
	// The failed start closed its listener.
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("the failed start kept its port: %v", err)
	}
	ln.Close()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Beyond loopback the server refuses the public development secret and
// goroutine dumps on a non-loopback listener.
func TestStartRefusesInsecureExposure(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  gameserver.Config
		want string
	}{
		{"public game port, dev secret", gameserver.Config{Listen: "0.0.0.0:0"}, "-listen 0.0.0.0:0 is not loopback: set -secret-file"},
		{"all interfaces, dev secret", gameserver.Config{Listen: ":0"}, "-listen :0 is not loopback"},
		{"public admin without -pprof", gameserver.Config{Admin: "0.0.0.0:0"}, "-admin 0.0.0.0:0 is not loopback: set -pprof"},
		{"public pprof", gameserver.Config{Admin: "0.0.0.0:0", Pprof: "0.0.0.0:0"}, "-pprof 0.0.0.0:0 is not loopback"},
		{"public pprof beside a loopback admin", gameserver.Config{Pprof: "0.0.0.0:0"}, "-pprof 0.0.0.0:0 is not loopback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.LogDir, tc.cfg.DataDir = t.TempDir(), t.TempDir()
			if _, err := newServer(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want %q", err, tc.want)
			}
		})
	}
	// The explicit set-ups start.
	srv := startServer(t, gameserver.Config{Listen: "0.0.0.0:0", Secret: []byte("a real secret"), Admin: "0.0.0.0:0", Pprof: "127.0.0.1:0"})
	if srv.PprofAddr().String() == srv.AdminAddr().String() {
		t.Fatal("pprof served on the admin listener")
	}
}

// The binary: a port in use ends in one line naming the flag and the cause,
// exit status 1 and no panic, and leaves no directory behind.
func TestBinaryPortInUse(t *testing.T) {
	bin := buildServer(t, "")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	root := t.TempDir()
	cmd := exec.Command(bin, "-game", "wilddig", "-listen", busy.Addr().String(), "-admin", "127.0.0.1:0",
		"-log-dir", filepath.Join(root, "log"), "-data-dir", filepath.Join(root, "data"))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\n%s", err, out)
	}
	line := "gameserver: -listen " + busy.Addr().String() + ": "
	if !strings.Contains(string(out), line) || !strings.Contains(string(out), "address already in use") ||
		strings.Contains(string(out), "panic") || strings.Contains(string(out), "goroutine ") {
		t.Fatalf("output, want %q… address already in use, and no panic:\n%s", line, out)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("failed start left %v behind", entries)
	}
}

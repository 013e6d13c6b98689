package dumps_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/stackwatch/stackwatch/sidecar/dumps"
	"github.com/stackwatch/stackwatch/sidecar/goroutines"
)

func TestMain(m *testing.M) {
	if os.Getenv("DUMPS_FSIZE_CHILD") != "" {
		os.Exit(fsizeChild(os.Getenv("DUMPS_FSIZE_CHILD")))
	}
	goleak.VerifyTestMain(m)
}

func realProfile(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 0); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPutListReadReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := dumps.Open(dir, dumps.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	prof := realProfile(t)
	snap, err := goroutines.ParseProfile(prof)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Put(prof, dumps.Meta{Service: "wilddiggr", Profile: "goroutine", Goroutines: snap.Total, Groups: len(snap.Groups), Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	if !dumps.ValidID(m.ID) || m.Bytes != int64(len(prof)) || m.Time.IsZero() {
		t.Fatalf("meta %+v", m)
	}
	m2, err := s.Put(prof, dumps.Meta{Service: "wilddiggr", Trigger: "schedule"})
	if err != nil {
		t.Fatal(err)
	}
	if l := s.List(); len(l) != 2 || l[0].ID != m2.ID || l[1].ID != m.ID {
		t.Fatalf("List not newest first: %+v", l)
	}
	// The file on disk is the profile byte for byte, so go tool pprof opens it.
	onDisk, err := os.ReadFile(filepath.Join(dir, m.ID+".pb.gz"))
	if err != nil || !bytes.Equal(onDisk, prof) {
		t.Fatalf("profile on disk differs (err %v)", err)
	}
	got, gm, err := s.Read(m.ID)
	if err != nil || !bytes.Equal(got, prof) || gm.Trigger != "manual" || gm.Goroutines != snap.Total {
		t.Fatalf("Read: %v %+v", err, gm)
	}
	count, size := s.Usage()

	s2, err := dumps.Open(dir, dumps.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	c2, b2 := s2.Usage()
	if c2 != count || b2 != size || s2.List()[0].ID != m2.ID {
		t.Errorf("reopened ring: %d dumps %d bytes, want %d %d", c2, b2, count, size)
	}
	if _, err := s2.Get("20990101T000000.000000000Z-000000"); !errors.Is(err, dumps.ErrNotFound) {
		t.Errorf("Get(unknown) = %v", err)
	}
}

func TestRingBounds(t *testing.T) {
	prof := realProfile(t)
	s, err := dumps.Open(t.TempDir(), dumps.Limits{MaxCount: 3})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 7 {
		m, err := s.Put(prof, dumps.Meta{Trigger: "schedule", Reason: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	l := s.List()
	if len(l) != 3 || l[0].ID != ids[6] || l[2].ID != ids[4] {
		t.Fatalf("count-bounded ring kept %+v", l)
	}
	files, _ := os.ReadDir(s.Dir())
	if len(files) != 6 {
		t.Errorf("%d files on disk, want 6 (3 dumps × 2)", len(files))
	}

	// Byte bound: room for two dumps, not three.
	one := int64(len(prof)) + 400
	sb, err := dumps.Open(t.TempDir(), dumps.Limits{MaxBytes: 2*one + one/2})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := sb.Put(prof, dumps.Meta{Trigger: "schedule"}); err != nil {
			t.Fatal(err)
		}
		if _, b := sb.Usage(); b > sb.Limits().MaxBytes {
			t.Fatalf("ring holds %d bytes, limit %d", b, sb.Limits().MaxBytes)
		}
	}
	if c, _ := sb.Usage(); c != 2 {
		t.Errorf("byte-bounded ring kept %d dumps, want 2", c)
	}
	// A single dump over the byte limit is refused, and the ring is untouched.
	if _, err := sb.Put(make([]byte, 3*one), dumps.Meta{}); !errors.Is(err, dumps.ErrTooLarge) {
		t.Errorf("oversize Put: %v", err)
	}
	if c, _ := sb.Usage(); c != 2 {
		t.Errorf("oversize Put evicted dumps: %d left", c)
	}
}

func TestOpenCleansUp(t *testing.T) {
	dir := t.TempDir()
	s, err := dumps.Open(dir, dumps.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	prof := realProfile(t)
	good, err := s.Put(prof, dumps.Meta{Trigger: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	half := "20200101T000000.000000000Z-aaaaaa"   // profile, no metadata: interrupted write
	broken := "20200101T000000.000000000Z-bbbbbb" // metadata is not JSON
	os.WriteFile(filepath.Join(dir, half+".pb.gz"), prof, 0o600)
	os.WriteFile(filepath.Join(dir, broken+".pb.gz"), prof, 0o600)
	os.WriteFile(filepath.Join(dir, broken+".json"), []byte("{not json"), 0o600)
	tmp := "." + half + ".json.tmp-123" // fsutil's temporary file
	os.WriteFile(filepath.Join(dir, tmp), []byte("partial"), 0o600)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("left alone"), 0o600)

	s2, err := dumps.Open(dir, dumps.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if l := s2.List(); len(l) != 1 || l[0].ID != good.ID {
		t.Fatalf("List after cleanup %+v", l)
	}
	for _, name := range []string{half + ".pb.gz", broken + ".pb.gz", broken + ".json", tmp} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s not removed", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Errorf("unrelated file removed: %v", err)
	}
}

func TestInvalidIDs(t *testing.T) {
	s, err := dumps.Open(t.TempDir(), dumps.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "..", "../../etc/passwd", "/etc/passwd", "20261126T040925.123456789Z-3fa9c2/../x",
		"20261126T040925.123456789Z-3FA9C2", "20261126T040925.123456789Z-3fa9c2\x00", "%2e%2e%2f", "20261126T040925.123456789Z-3fa9c2.json"} {
		if dumps.ValidID(id) {
			t.Errorf("ValidID(%q) = true", id)
		}
		if _, _, err := s.Read(id); !errors.Is(err, dumps.ErrInvalidID) {
			t.Errorf("Read(%q) = %v, want ErrInvalidID", id, err)
		}
	}
}

func TestConcurrentPuts(t *testing.T) {
	s, err := dumps.Open(t.TempDir(), dumps.Limits{MaxCount: 5})
	if err != nil {
		t.Fatal(err)
	}
	prof := realProfile(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				if _, err := s.Put(prof, dumps.Meta{Trigger: "schedule"}); err != nil {
					t.Error(err)
				}
				s.List()
			}
		})
	}
	wg.Wait()
	if c, _ := s.Usage(); c != 5 {
		t.Errorf("%d dumps, want 5", c)
	}
	files, _ := os.ReadDir(s.Dir())
	if len(files) != 10 {
		t.Errorf("%d files, want 10", len(files))
	}
}

// TestFullDisk makes the kernel refuse the write: a child process lowers its
// own RLIMIT_FSIZE (root ignores directory permissions, and no small tmpfs can
// be mounted here), so writing past 64 KiB fails with EFBIG the way a full
// volume fails with ENOSPC. The store must report ErrNoSpace, leave no
// partial file, and keep working for dumps that fit.
func TestFullDisk(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DUMPS_FSIZE_CHILD="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "ok: no space reported, small dump stored") {
		t.Fatalf("child output:\n%s", out)
	}
	files, _ := os.ReadDir(dir)
	for _, f := range files {
		if strings.Contains(f.Name(), ".tmp-") {
			t.Errorf("partial file %s left behind", f.Name())
		}
	}
	if len(files) != 2 {
		t.Errorf("%d files, want the small dump's 2", len(files))
	}
}

func fsizeChild(dir string) int {
	lim := syscall.Rlimit{Cur: 64 << 10, Max: 64 << 10}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		return 1
	}
	s, err := dumps.Open(dir, dumps.Limits{})
	if err != nil {
		fmt.Println(err)
		return 1
	}
	_, err = s.Put(bytes.Repeat([]byte{1}, 200<<10), dumps.Meta{Trigger: "manual"})
	if !errors.Is(err, dumps.ErrNoSpace) {
		fmt.Println("big Put: want ErrNoSpace, got", err)
		return 1
	}
	fmt.Println("big Put:", err)
	if c, _ := s.Usage(); c != 0 {
		fmt.Println("failed Put counted")
		return 1
	}
	if _, err := s.Put([]byte("small"), dumps.Meta{Trigger: "manual"}); err != nil {
		fmt.Println("small Put:", err)
		return 1
	}
	fmt.Println("ok: no space reported, small dump stored")
	return 0
}

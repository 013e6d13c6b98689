package bearer_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/stackwatch/stackwatch/sidecar/bearer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const token = "s3cr3t-t0ken-0123456789"

func serve(t *testing.T, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestMiddleware(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "dumps") })
	url := serve(t, bearer.Middleware(token)(ok))
	for _, c := range []struct {
		auth string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer wrong-token-0123456789", http.StatusUnauthorized},
		{"Bearer " + token[:len(token)-1], http.StatusUnauthorized},
		{"Basic " + token, http.StatusUnauthorized},
		{"bearer " + token, http.StatusUnauthorized},
		{"Bearer " + token, http.StatusOK},
	} {
		if code, body := get(t, url, c.auth); code != c.want || (code == 200) != (body == "dumps") {
			t.Errorf("auth %q: %d %q, want %d", c.auth, code, body, c.want)
		}
	}
	// An empty token fails closed.
	closed := serve(t, bearer.Middleware("")(ok))
	if code, _ := get(t, closed, "Bearer "); code != http.StatusUnauthorized {
		t.Errorf("empty token let a request through: %d", code)
	}
	if code, _ := get(t, serve(t, bearer.Guard("", ok)), ""); code != http.StatusOK {
		t.Errorf("Guard without token: %d", code)
	}
}

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	os.WriteFile(good, []byte(token+"\n"), 0o600)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("abc"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	huge := filepath.Join(dir, "huge")
	os.WriteFile(huge, make([]byte, 10<<10), 0o600)

	for _, c := range []struct {
		listen, file string
		want         string
		err          bool
	}{
		{"127.0.0.1:9100", "", "", false},
		{"localhost:9100", "", "", false},
		{"[::1]:9100", "", "", false},
		{":9100", "", "", true},
		{"0.0.0.0:9100", "", "", true},
		{"10.0.0.5:9100", "", "", true},
		{"[::]:9100", "", "", true},
		{"sidecar.example:9100", "", "", true},
		{":9100", good, token, false},
		{"127.0.0.1:9100", good, token, false},
		{":9100", short, "", true},
		{":9100", empty, "", true},
		{":9100", huge, "", true},
		{":9100", filepath.Join(dir, "missing"), "", true},
		{"no-port", "", "", true},
	} {
		got, err := bearer.Resolve(c.listen, c.file)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("Resolve(%q, %q) = %q, %v", c.listen, filepath.Base(c.file), got, err)
		}
	}
	if _, err := bearer.Resolve(":9100", ""); !errors.Is(err, bearer.ErrTokenRequired) {
		t.Errorf("err = %v, want ErrTokenRequired", err)
	}
}

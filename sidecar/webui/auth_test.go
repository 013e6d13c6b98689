package webui_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stackwatch/stackwatch/sidecar/webui"
)

// paths is every page and API route, with a method.
var paths = []struct{ method, path string }{
	{"GET", "/"}, {"GET", "/ui/"}, {"GET", "/ui/crashes/0123456789abcdef"}, {"GET", "/ui/goroutines"},
	{"GET", "/ui/dumps"}, {"GET", "/ui/dumps/diff?base=a&id=b"}, {"GET", "/ui/dumps/20261126T040925.123456789Z-3fa9c2"},
	{"GET", "/ui/dumps/20261126T040925.123456789Z-3fa9c2/pprof/flamegraph"}, {"POST", "/ui/dumps"},
	{"GET", "/api/v1/crashes"}, {"GET", "/api/v1/dumps"}, {"POST", "/api/v1/dumps"}, {"GET", "/api/v1/leaks"},
	{"GET", "/api/v1/stacks"}, {"GET", "/api/v1/dumps/20261126T040925.123456789Z-3fa9c2"},
}

func noRedirects() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// With a token, over real TCP (beyond loopback when this machine has an
// address there), no page and no API route answers without it; a browser
// is sent to the login form, and the token opens everything.
func TestTokenRequired(t *testing.T) {
	host := "127.0.0.1"
	if ip, ok := nonLoopback(); ok {
		host = ip
	} else {
		t.Log("no address beyond loopback: testing the token on 127.0.0.1")
	}
	const token = "auth-test-token-0123456789"
	s := startStack(t, host+":0", token)
	c := noRedirects()
	for _, p := range paths {
		for _, accept := range []string{"application/json", "text/html"} {
			req, _ := http.NewRequest(p.method, s.URL+p.path, nil)
			req.Header.Set("Accept", accept)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusUnauthorized:
			case resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), "/ui/login?next="):
			default:
				t.Errorf("%s %s (Accept %s) without the token: %d %.80q", p.method, p.path, accept, resp.StatusCode, body)
			}
		}
		req, _ := http.NewRequest(p.method, s.URL+p.path, nil)
		req.Header.Set("Authorization", "Bearer wrong-token-0123456789")
		if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s with a wrong token: %v %v", p.method, p.path, resp.Status, err)
		} else {
			resp.Body.Close()
		}
	}
	// The token as a bearer opens the pages and the API.
	for _, p := range []string{"/ui/", "/ui/goroutines", "/ui/dumps", "/api/v1/crashes", "/api/v1/leaks"} {
		req, _ := http.NewRequest("GET", s.URL+p, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s with the token: %v %v", p, resp.Status, err)
			continue
		}
		resp.Body.Close()
	}
}

// The login form turns the token into an HttpOnly, SameSite=Strict
// session; a capture riding the session needs its CSRF token and the same
// origin.
func TestSessionAndCSRF(t *testing.T) {
	const token = "session-test-token-0123456789"
	s := startStack(t, "127.0.0.1:0", token)
	jar, _ := cookiejar.New(nil)
	c := noRedirects()
	c.Jar = jar

	resp, err := c.PostForm(s.URL+"/ui/login", url.Values{"token": {"not-the-token-0123456789"}, "next": {"/ui/dumps"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong token: %s, cookies %v", resp.Status, resp.Cookies())
	}
	// An open redirect in next is ignored.
	resp, err = c.PostForm(s.URL+"/ui/login", url.Values{"token": {token}, "next": {"//evil.example/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		t.Fatalf("login: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	var sess *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == webui.SessionCookie {
			sess = ck
		}
	}
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode || sess.Path != "/" {
		t.Fatalf("session cookie %+v, want HttpOnly, SameSite=Strict, Path=/", sess)
	}

	// The session opens the pages; the dumps page carries the CSRF token.
	resp, err = c.Get(s.URL + "/ui/dumps")
	if err != nil {
		t.Fatal(err)
	}
	page := readAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("dumps page with the session: %s, csrf field found: %v", resp.Status, m != nil)
	}
	csrf := m[1]

	post := func(form url.Values, header map[string]string) int {
		req, _ := http.NewRequest("POST", s.URL+"/ui/dumps", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(url.Values{"reason": {"no csrf"}}, nil); code != http.StatusForbidden {
		t.Errorf("capture without the CSRF token: %d, want 403", code)
	}
	if code := post(url.Values{"reason": {"forged"}, "csrf": {csrf + "x"}}, nil); code != http.StatusForbidden {
		t.Errorf("capture with a wrong CSRF token: %d, want 403", code)
	}
	if code := post(url.Values{"reason": {"cross-site"}, "csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}); code != http.StatusForbidden {
		t.Errorf("cross-site capture: %d, want 403", code)
	}
	if code := post(url.Values{"reason": {"other origin"}, "csrf": {csrf}}, map[string]string{"Origin": "http://evil.example"}); code != http.StatusForbidden {
		t.Errorf("capture from another origin: %d, want 403", code)
	}
	if n := len(s.prof.Store().List()); n != 0 {
		t.Fatalf("%d dumps captured by refused requests", n)
	}
	waitFor(t, 10*time.Second, "the first scrape", func() bool { return !s.prof.Status().LastScrape.IsZero() })
	if code := post(url.Values{"reason": {"from the UI"}, "csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "same-origin"}); code != http.StatusSeeOther {
		t.Errorf("capture with the session and its CSRF token: %d, want 303", code)
	}
	if list := s.prof.Store().List(); len(list) != 1 || list[0].Reason != "from the UI" {
		t.Errorf("dumps after the capture: %+v", list)
	}
}

// Without a token, only loopback clients naming a loopback host are
// served: a handler test, since the listener itself is loopback then.
func TestNoTokenLoopbackOnly(t *testing.T) {
	auth := webui.NewAuth(service, "")
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("data")) })
	h := auth.Middleware(ok)
	for _, tc := range []struct {
		remote, host string
		want         int
	}{
		{"127.0.0.1:5000", "127.0.0.1:9101", http.StatusOK},
		{"[::1]:5000", "localhost:9101", http.StatusOK},
		{"10.1.2.3:5000", "127.0.0.1:9101", http.StatusForbidden},        // a remote client
		{"192.0.2.7:5000", "sidecar.example:9101", http.StatusForbidden}, // a remote client
		{"127.0.0.1:5000", "rebind.example:9101", http.StatusForbidden},  // DNS rebinding
	} {
		for _, p := range paths {
			req := httptest.NewRequest(p.method, p.path, nil)
			req.RemoteAddr, req.Host = tc.remote, tc.host
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("%s %s from %s to %s: %d, want %d", p.method, p.path, tc.remote, tc.host, rec.Code, tc.want)
			}
		}
	}
}

// Bad input gets a page that says why, with the status to match.
func TestErrorPages(t *testing.T) {
	s := startStack(t, "127.0.0.1:0", "")
	for _, tc := range []struct {
		path string
		code int
		says string
	}{
		{"/ui/crashes/0123456789abcdef", http.StatusNotFound, "no crash group"},
		{"/ui/dumps/..%2f..%2fetc/pprof/flamegraph", http.StatusBadRequest, "invalid"},
		{"/ui/dumps/20261126T040925.123456789Z-3fa9c2/pprof/flamegraph", http.StatusNotFound, "no such dump"},
		{"/ui/dumps/20261126T040925.123456789Z-3fa9c2", http.StatusNotFound, "no such dump"},
		{"/ui/dumps/diff", http.StatusBadRequest, "pick two dumps"},
		{"/ui/nowhere", http.StatusNotFound, "no page"},
	} {
		resp, err := http.Get(s.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.says) ||
			resp.Header.Get("Content-Security-Policy") == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s: %d %q (headers %v); want %d saying %q", tc.path, resp.StatusCode, body, resp.Header, tc.code, tc.says)
		}
	}
}

package webui_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stackwatch/stackwatch/sidecar/bearer"
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

// The bearer header and the login form share one limit of wrong tokens
// per client: past it both answer 429 with Retry-After without checking
// the token, while another address gets in with it, a session cookie
// always does, and the wait lets the client try again.
func TestWrongTokensLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const token = "limit-test-token-0123456789"
		auth := webui.NewAuth(service, token)
		var logs bytes.Buffer
		auth.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
		h := auth.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("data")) }))
		const guesser, operator = "192.0.2.1:40000", "198.51.100.2:40000"
		serve := func(req *http.Request, remote string) *httptest.ResponseRecorder {
			req.RemoteAddr, req.Host = remote, "sidecar.example:39190"
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec
		}
		api := func(remote, tok string) *httptest.ResponseRecorder {
			req := httptest.NewRequest("GET", "/api/v1/crashes", nil)
			req.Header.Set("Accept", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			return serve(req, remote)
		}
		login := func(remote, tok string) *httptest.ResponseRecorder {
			req := httptest.NewRequest("POST", "/ui/login", strings.NewReader(url.Values{"token": {tok}, "next": {"/ui/dumps"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return serve(req, remote)
		}
		for i := range 5 {
			if rec := api(guesser, fmt.Sprintf("wrong-api-token-%d", i)); rec.Code != http.StatusUnauthorized {
				t.Fatalf("wrong bearer token %d: %d", i, rec.Code)
			}
			if rec := login(guesser, fmt.Sprintf("wrong-form-token-%d", i)); rec.Code != http.StatusUnauthorized {
				t.Fatalf("wrong token %d in the form: %d", i, rec.Code)
			}
		}
		// Ten wrong tokens, five each way: both are over now.
		rec := login(guesser, "wrong-form-token-5")
		if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" ||
			!strings.Contains(rec.Body.String(), "Too many wrong tokens") || rec.Header().Get("Content-Security-Policy") == "" {
			t.Errorf("login past the limit: %d, Retry-After %q, %.200q", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
		if rec := api(guesser, "wrong-api-token-5"); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
			t.Errorf("bearer past the limit: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
		}
		// The token is not checked: the right one is refused too, and no
		// session is made.
		if rec := login(guesser, token); rec.Code != http.StatusTooManyRequests || len(rec.Result().Cookies()) != 0 {
			t.Errorf("right token in the form from the throttled address: %d, cookies %v", rec.Code, rec.Result().Cookies())
		}
		if rec := api(guesser, token); rec.Code != http.StatusTooManyRequests {
			t.Errorf("right bearer token from the throttled address: %d", rec.Code)
		}

		// Meanwhile another address gets in both ways.
		if rec := api(operator, token); rec.Code != http.StatusOK || rec.Body.String() != "data" {
			t.Errorf("right bearer token from another address: %d", rec.Code)
		}
		rec = login(operator, token)
		var sess *http.Cookie
		for _, c := range rec.Result().Cookies() {
			if c.Name == webui.SessionCookie {
				sess = c
			}
		}
		if rec.Code != http.StatusSeeOther || sess == nil {
			t.Fatalf("login from another address: %d, cookie %v", rec.Code, sess)
		}
		// A session is an HMAC nobody guesses: it is never throttled, even
		// from the throttled address and beside a wrong bearer token.
		req := httptest.NewRequest("GET", "/api/v1/crashes", nil)
		req.AddCookie(sess)
		req.Header.Set("Authorization", "Bearer wrong-api-token-6")
		if rec := serve(req, guesser); rec.Code != http.StatusOK {
			t.Errorf("session cookie from the throttled address: %d", rec.Code)
		}
		// Without credentials nothing is checked: the usual 401 and redirect.
		if rec := serve(httptest.NewRequest("GET", "/api/v1/crashes", nil), guesser); rec.Code != http.StatusUnauthorized {
			t.Errorf("no token from the throttled address: %d", rec.Code)
		}
		if rec := serve(httptest.NewRequest("GET", "/ui/login", nil), guesser); rec.Code != http.StatusOK {
			t.Errorf("the login form for the throttled address: %d", rec.Code)
		}

		time.Sleep(time.Second)
		if rec := login(guesser, token); rec.Code != http.StatusSeeOther {
			t.Errorf("right token in the form after Retry-After: %d", rec.Code)
		}
		if n := strings.Count(logs.String(), "client=192.0.2.1 "); n != 1 {
			t.Errorf("%d log lines about the throttled client, want 1:\n%s", n, &logs)
		}
		// Five refused: four tries past the limit, and the bearer token
		// beside the session cookie.
		if st := auth.LimitStats(); st.Failures != 10 || st.Throttled != 5 {
			t.Errorf("stats %+v, want 10 failures and 5 throttled", st)
		}
	})
}

// Without a token, loopback clients are served however often they ask,
// whatever they send; nothing is counted.
func TestNoTokenLoopbackNotLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		auth := webui.NewAuth(service, "")
		h := auth.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("data")) }))
		for i := range 1000 {
			req := httptest.NewRequest("GET", "/api/v1/crashes", nil)
			req.RemoteAddr, req.Host = "127.0.0.1:5000", "127.0.0.1:39190"
			req.Header.Set("Authorization", fmt.Sprintf("Bearer guess-%d", i))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("request %d from loopback: %d", i, rec.Code)
			}
		}
		if st := auth.LimitStats(); st != (bearer.Stats{}) {
			t.Errorf("stats %+v without a token", st)
		}
	})
}

// The login form is anyone's to post to: a body past 64 KB is refused
// with 413 before any token is compared, in any method and encoding
// (net/http would read 10 MB of a form, and 32 MB of a multipart one in
// memory with the rest on disk, even from a GET), and a form that does
// not parse with 400; the form itself works as ever.
func TestLoginBodyBounded(t *testing.T) {
	const token = "body-test-token-0123456789"
	auth := webui.NewAuth(service, token)
	h := auth.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("data")) }))
	serve := func(method, ctype string, body io.Reader) int {
		req := httptest.NewRequest(method, "/ui/login", body)
		req.RemoteAddr, req.Host = "192.0.2.1:40000", "sidecar.example:39190"
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	big := strings.Repeat("x", 1<<20)
	form := url.Values{"token": {"wrong-token-0123456789"}, "pad": {big}}.Encode()
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	mw.WriteField("token", "wrong-token-0123456789")
	fw, _ := mw.CreateFormFile("upload", "big.bin")
	io.WriteString(fw, big)
	mw.Close()
	for _, tc := range []struct {
		method, ctype string
		body          string
		want          int
	}{
		{"POST", "application/x-www-form-urlencoded", form, http.StatusRequestEntityTooLarge},
		{"POST", mw.FormDataContentType(), mp.String(), http.StatusRequestEntityTooLarge},
		{"GET", mw.FormDataContentType(), mp.String(), http.StatusRequestEntityTooLarge},
		{"POST", "application/x-www-form-urlencoded", "token=%zz", http.StatusBadRequest},
		{"POST", "application/x-www-form-urlencoded", url.Values{"token": {"wrong-token-0123456789"}}.Encode(), http.StatusUnauthorized},
		{"POST", "application/x-www-form-urlencoded", url.Values{"token": {token}}.Encode(), http.StatusSeeOther},
		{"GET", "", "", http.StatusOK},
	} {
		if code := serve(tc.method, tc.ctype, strings.NewReader(tc.body)); code != tc.want {
			t.Errorf("%s %s of %d bytes: %d, want %d", tc.method, tc.ctype, len(tc.body), code, tc.want)
		}
	}
	if st := auth.LimitStats(); st.Failures != 1 {
		t.Errorf("%d wrong tokens compared, want 1 (the form that parsed)", st.Failures)
	}
}

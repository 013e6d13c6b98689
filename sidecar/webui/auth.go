package webui

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stackwatch/stackwatch/sidecar/bearer"
)

// Session cookie and form field names.
const (
	SessionCookie = "stackwatch_session"
	CSRFField     = "csrf"
	// SessionTTL is how long a session lasts after the token was entered.
	SessionTTL = 12 * time.Hour
)

// Auth checks the token and keeps sessions; its Middleware guards the UI
// and the sidecar's API alike. Sessions are stateless: the cookie is a
// random id, an expiry and an HMAC over both under a key made at start, so
// nothing grows with logins and a restart ends every session.
//
// The bearer header and the login form check the token through one
// bearer.Checker, so wrong tokens count against one limit per client
// wherever they are tried (see bearer.Limits): past it, both answer 429
// with Retry-After without comparing the token. A session cookie is an
// HMAC nobody can guess, so it is never limited.
type Auth struct {
	service string
	token   []byte // "" means loopback only
	tokens  *bearer.Checker
	key     []byte
	cop     *http.CrossOriginProtection
}

// NewAuth returns the guard for token, the API's bearer token; with an
// empty token only loopback clients are served. service titles the login
// page. Throttling is logged to slog.Default until SetLogger.
func NewAuth(service, token string) *Auth {
	a := &Auth{service: service, token: []byte(token), tokens: bearer.NewChecker(token, nil), key: make([]byte, 32)}
	rand.Read(a.key) // never fails since Go 1.24
	a.cop = http.NewCrossOriginProtection()
	a.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "forbidden: cross-origin request", http.StatusForbidden)
	}))
	return a
}

// SetLogger sets where Auth logs throttled clients.
func (a *Auth) SetLogger(log *slog.Logger) { a.tokens.Limiter().SetLogger(log) }

// LimitStats counts wrong tokens and the requests refused for them, e.g.
// for a metric.
func (a *Auth) LimitStats() bearer.Stats { return a.tokens.Limiter().Stats() }

type ctxKey struct{}

// session is an authenticated request's session id; "" for a bearer token
// or a loopback request without a token configured.
type session struct{ id string }

// Middleware guards next (the UI, and the sidecar's API):
//
//   - No token configured: only loopback clients asking for a loopback
//     host (no DNS rebinding) get through; everyone else gets 403.
//   - Token configured: a request needs "Authorization: Bearer <token>" or
//     a session cookie. A browser asking for a page without either is sent
//     to the login form at /ui/login, which Auth serves itself.
//   - Unsafe methods from browsers must be same-origin (Sec-Fetch-Site,
//     Origin), and those riding a session cookie carry its CSRF token.
//   - A client past its limit of wrong tokens (bearer or login form) gets
//     429 with Retry-After, unless it has a valid session cookie.
func (a *Auth) Middleware(next http.Handler) http.Handler {
	return a.cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, done := r.Context().Value(ctxKey{}).(session); done {
			next.ServeHTTP(w, r) // already checked by an outer Auth
			return
		}
		if r.URL.Path == "/ui/login" {
			a.login(w, r)
			return
		}
		if len(a.token) > 0 && public(r) { // the login page's stylesheet and icon
			next.ServeHTTP(w, r)
			return
		}
		s, ok := a.check(w, r)
		if !ok {
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)))
	}))
}

// check authenticates r, answering it itself when it fails.
func (a *Auth) check(w http.ResponseWriter, r *http.Request) (session, bool) {
	if len(a.token) == 0 {
		if !loopback(r) {
			http.Error(w, "forbidden: no token is configured, so only localhost is served", http.StatusForbidden)
			return session{}, false
		}
		return session{}, true
	}
	var retry time.Duration // > 0: a bearer token not checked, the client being over its limit
	if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		var valid bool
		if valid, retry = a.tokens.Check(r, strings.TrimSpace(got)); valid {
			return session{}, true
		}
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		if id, ok := a.verify(c.Value); ok {
			if !safeMethod(r.Method) && !a.csrfOK(r, id) {
				http.Error(w, "forbidden: missing or wrong CSRF token; reload the page", http.StatusForbidden)
				return session{}, false
			}
			return session{id: id}, true
		}
	}
	if retry > 0 {
		bearer.TooManyRequests(w, retry)
		return session{}, false
	}
	if safeMethod(r.Method) && strings.Contains(r.Header.Get("Accept"), "text/html") {
		http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return session{}, false
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="stackwatch"`)
	http.Error(w, "unauthorized: a valid bearer token is required", http.StatusUnauthorized)
	return session{}, false
}

// public reports whether r asks for an embedded asset, which carries no
// data and is served to anyone who may reach the login page.
func public(r *http.Request) bool {
	return safeMethod(r.Method) && (strings.HasPrefix(r.URL.Path, "/ui/static/") || r.URL.Path == "/favicon.ico")
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// loopback reports whether r came from a loopback address and names a
// loopback host, so that a page elsewhere cannot reach a localhost UI
// through DNS rebinding.
func loopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil || !isLoopbackHost(host) {
		return false
	}
	h := r.Host
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	return isLoopbackHost(h)
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

func (a *Auth) sign(parts ...string) string {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(strings.Join(parts, "|")))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (a *Auth) newSession(now time.Time) string {
	b := make([]byte, 16)
	rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	exp := strconv.FormatInt(now.Add(SessionTTL).Unix(), 10)
	return id + "." + exp + "." + a.sign("session", id, exp)
}

func (a *Auth) verify(v string) (id string, ok bool) {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return "", false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || time.Now().Unix() > exp {
		return "", false
	}
	if !hmac.Equal([]byte(parts[2]), []byte(a.sign("session", parts[0], parts[1]))) {
		return "", false
	}
	return parts[0], true
}

func (a *Auth) csrfFor(id string) string { return a.sign("csrf", id) }

// csrfOK checks the CSRF token of a request riding session id: the form
// field, or the X-CSRF-Token header for scripts.
func (a *Auth) csrfOK(r *http.Request, id string) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue(CSRFField)
	}
	return hmac.Equal([]byte(got), []byte(a.csrfFor(id)))
}

// csrfToken is the CSRF token for r's session, for the forms on a page;
// "" when r has no session (bearer token or loopback without a token,
// where the same-origin checks alone guard the forms).
func (a *Auth) csrfToken(r *http.Request) string {
	if s, _ := r.Context().Value(ctxKey{}).(session); s.id != "" {
		return a.csrfFor(s.id)
	}
	return ""
}

// maxLoginBody bounds what anyone may send the login form: a token of
// at most 4 KB and a page to go back to.
const maxLoginBody = 64 << 10

// login serves the token form and turns a right token into a session.
func (a *Auth) login(w http.ResponseWriter, r *http.Request) {
	// Anyone may ask, with any method: the form is read from at most
	// maxLoginBody bytes (net/http would take 10 MB of a form, and 32 MB
	// of a multipart one in memory with the rest on disk, even from a
	// GET), and one that does not parse is refused before any token is
	// compared.
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	err := r.ParseForm() // ParseMultipartForm drops its error for a form that is not multipart
	if err == nil {
		if err = r.ParseMultipartForm(maxLoginBody); errors.Is(err, http.ErrNotMultipart) {
			err = nil
		}
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "request entity too large: the login form takes at most 64 KB", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "bad request: the login form does not parse", http.StatusBadRequest)
		return
	}
	next := r.FormValue("next")
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		next = "/ui/"
	}
	if len(a.token) == 0 { // nothing to log in to
		if _, ok := a.check(w, r); ok {
			http.Redirect(w, r, next, http.StatusSeeOther)
		}
		return
	}
	wrong := false
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		ok, retry := a.tokens.Check(r, strings.TrimSpace(r.PostFormValue("token")))
		if retry > 0 {
			w.Header().Set("Retry-After", bearer.RetryAfter(retry))
			render(w, http.StatusTooManyRequests, page{Service: a.service, Title: "Too many wrong tokens", Data: struct {
				Code int
				Err  string
			}{http.StatusTooManyRequests, fmt.Sprintf("Too many wrong tokens from your address: the token was not checked. Try again in %ss.",
				bearer.RetryAfter(retry))}}, "error", slog.New(slog.DiscardHandler))
			return
		}
		if ok {
			http.SetCookie(w, &http.Cookie{
				Name: SessionCookie, Value: a.newSession(time.Now()), Path: "/",
				MaxAge: int(SessionTTL / time.Second), HttpOnly: true, SameSite: http.SameSiteStrictMode,
				Secure: r.TLS != nil,
			})
			http.Redirect(w, r, next, http.StatusSeeOther)
			return
		}
		wrong = true
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	code := http.StatusOK
	if wrong {
		code = http.StatusUnauthorized
	}
	render(w, code, page{Service: a.service, Title: "Sign in", Data: struct {
		Next  string
		Wrong bool
	}{next, wrong}}, "login", slog.New(slog.DiscardHandler))
}

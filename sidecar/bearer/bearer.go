// Package bearer guards the sidecar's API with a static bearer token read
// from a file (a mounted Kubernetes Secret), required whenever the API
// listens beyond localhost.
package bearer

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// MinTokenLen is the shortest token accepted from a token file.
const MinTokenLen = 16

const maxTokenFile = 4 << 10

// Middleware returns a middleware that lets a request through only when its
// Authorization header is "Bearer <token>". The comparison takes constant
// time. An empty token lets nothing through: a missing secret must fail
// closed. Wrong tokens are limited per client (see Limits, with the
// defaults); to share the limit with another check of the same token, use
// NewChecker and its Middleware.
func Middleware(token string) func(http.Handler) http.Handler {
	return NewChecker(token, nil).Middleware
}

// Checker compares the tokens clients present with the token, under a
// Limiter: every place that takes the token (the API's bearer header, the
// web UI's login form) goes through one Checker, so a guess costs the same
// wherever it is made.
type Checker struct {
	want [sha256.Size]byte
	set  bool
	lim  *Limiter
}

// NewChecker returns a Checker for token limited by lim, or by a new
// Limiter with the default Limits when lim is nil. An empty token matches
// nothing.
func NewChecker(token string, lim *Limiter) *Checker {
	if lim == nil {
		lim = NewLimiter(Limits{})
	}
	return &Checker{want: sha256.Sum256([]byte(token)), set: token != "", lim: lim}
}

// Limiter is the Checker's Limiter (for SetLogger and Stats).
func (c *Checker) Limiter() *Limiter { return c.lim }

// Check reports whether presented, a token r carries, is the token. A
// client over its limit gets retry > 0 (answer it with TooManyRequests)
// and its token is not compared, right or not. A right token is never
// charged. Without a token, Check is false and charges nothing.
func (c *Checker) Check(r *http.Request, presented string) (ok bool, retry time.Duration) {
	if !c.set {
		return false, 0
	}
	sum := sha256.Sum256([]byte(presented))
	key, local := clientKey(r.RemoteAddr)
	now := time.Now()
	v, retry, global := c.lim.reserve(key, local, &sum, now)
	switch v {
	case throttled:
		return false, retry
	case repeated:
		return false, 0
	}
	ok = subtle.ConstantTimeCompare(sum[:], c.want[:]) == 1
	c.lim.settle(key, local, ok, global, &sum, now)
	return ok, 0
}

// Middleware lets a request through only when its Authorization header is
// "Bearer <token>" (see Middleware).
func (c *Checker) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			valid, retry := c.Check(r, strings.TrimSpace(got))
			if valid {
				next.ServeHTTP(w, r)
				return
			}
			if retry > 0 {
				TooManyRequests(w, retry)
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="stackwatch"`)
		http.Error(w, "unauthorized: a valid bearer token is required", http.StatusUnauthorized)
	})
}

// RetryAfter is the Retry-After value for retry: whole seconds, at least 1.
func RetryAfter(retry time.Duration) string {
	return strconv.FormatInt(max(int64((retry+time.Second-1)/time.Second), 1), 10)
}

// TooManyRequests answers a client over its limit: 429 with Retry-After.
func TooManyRequests(w http.ResponseWriter, retry time.Duration) {
	w.Header().Set("Retry-After", RetryAfter(retry))
	http.Error(w, "too many requests: too many wrong tokens; retry after "+RetryAfter(retry)+"s", http.StatusTooManyRequests)
}

// ReadTokenFile reads a token from path: surrounding whitespace is trimmed,
// and an empty, short (< MinTokenLen) or oversized file is an error.
func ReadTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("bearer: token file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("bearer: token file %s: %w", path, err)
	}
	if len(data) > maxTokenFile {
		return "", fmt.Errorf("bearer: token file %s is larger than %d bytes", path, maxTokenFile)
	}
	tok := string(bytes.TrimSpace(data))
	switch {
	case tok == "":
		return "", fmt.Errorf("bearer: token file %s is empty", path)
	case len(tok) < MinTokenLen:
		return "", fmt.Errorf("bearer: token in %s is shorter than %d characters", path, MinTokenLen)
	case strings.ContainsAny(tok, " \t\r\n"):
		return "", fmt.Errorf("bearer: token in %s contains whitespace", path)
	}
	return tok, nil
}

// IsLocal reports whether listen (host:port) binds only loopback addresses.
// An empty host, 0.0.0.0, :: and any non-loopback name or address are not
// local; "localhost" is.
func IsLocal(listen string) (bool, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false, fmt.Errorf("bearer: listen address %q: %w", listen, err)
	}
	if strings.EqualFold(host, "localhost") {
		return true, nil
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback(), nil
}

// ErrTokenRequired is returned by Resolve when the API would listen beyond
// localhost without a token file.
var ErrTokenRequired = errors.New("bearer: listening beyond localhost requires a token file")

// Resolve decides the API's token for a listen address and an optional
// token file. With a token file the token is always required. Without one,
// a localhost listener needs none ("" is returned) and any other is refused
// with ErrTokenRequired.
func Resolve(listen, tokenFile string) (string, error) {
	if tokenFile != "" {
		return ReadTokenFile(tokenFile)
	}
	local, err := IsLocal(listen)
	if err != nil {
		return "", err
	}
	if !local {
		return "", fmt.Errorf("%w (listen %s)", ErrTokenRequired, listen)
	}
	return "", nil
}

// Guard wraps h with Middleware(token) when token is set, and returns h
// unchanged otherwise (the localhost case of Resolve).
func Guard(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	return Middleware(token)(h)
}

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
	"strings"
)

// MinTokenLen is the shortest token accepted from a token file.
const MinTokenLen = 16

const maxTokenFile = 4 << 10

// Middleware returns a middleware that lets a request through only when its
// Authorization header is "Bearer <token>". The comparison takes constant
// time. An empty token lets nothing through: a missing secret must fail
// closed.
func Middleware(token string) func(http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
			if !ok || token == "" || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="stackwatch"`)
				http.Error(w, "unauthorized: a valid bearer token is required", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
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

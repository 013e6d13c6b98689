// Package ticket signs and verifies the tickets a gate hands to players: a
// player id and an expiry, signed with HMAC-SHA256 under a shared secret.
//
// A token is "<expiry unix seconds>.<base64url(HMAC(secret, "v1|player|expiry"))>".
package ticket

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DevSecret is the built-in development secret that the game server and the
// load generator both fall back to when none is configured, so the commands
// work out of the box. The server warns when it uses it beyond loopback.
const DevSecret = "stackwatch-dev-secret-not-for-production"

// Errors returned by Verify.
var (
	ErrMalformed    = errors.New("ticket: malformed token")
	ErrBadSignature = errors.New("ticket: bad signature")
	ErrExpired      = errors.New("ticket: token expired")
	ErrBadPlayerID  = errors.New("ticket: player id must be 1-64 characters of [A-Za-z0-9_.-]")
)

var playerIDRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ValidPlayerID reports whether id is an acceptable player id.
func ValidPlayerID(id string) bool { return playerIDRe.MatchString(id) }

func mac(secret []byte, player string, expiry int64) []byte {
	h := hmac.New(sha256.New, secret)
	fmt.Fprintf(h, "v1|%s|%d", player, expiry)
	return h.Sum(nil)
}

// Sign issues a token for player valid until expires.
func Sign(secret []byte, player string, expires time.Time) (string, error) {
	if !ValidPlayerID(player) {
		return "", ErrBadPlayerID
	}
	exp := expires.Unix()
	return strconv.FormatInt(exp, 10) + "." + base64.RawURLEncoding.EncodeToString(mac(secret, player, exp)), nil
}

// Verify checks that token was signed for player under secret and has not
// expired at now.
func Verify(secret []byte, player, token string, now time.Time) error {
	if !ValidPlayerID(player) {
		return ErrBadPlayerID
	}
	expS, sigS, ok := strings.Cut(token, ".")
	if !ok {
		return ErrMalformed
	}
	exp, err := strconv.ParseInt(expS, 10, 64)
	if err != nil {
		return ErrMalformed
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigS)
	if err != nil {
		return ErrMalformed
	}
	if !hmac.Equal(sig, mac(secret, player, exp)) {
		return ErrBadSignature
	}
	if now.Unix() >= exp {
		return ErrExpired
	}
	return nil
}

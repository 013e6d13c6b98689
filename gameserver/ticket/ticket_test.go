package ticket

import (
	"errors"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	secret := []byte("s3cret")
	now := time.Unix(1_700_000_000, 0)
	tok, err := Sign(secret, "player-1", now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(secret, "player-1", tok, now); err != nil {
		t.Fatalf("valid token rejected: %v", err)
	}
	cases := []struct {
		name          string
		secret        []byte
		player, token string
		now           time.Time
		want          error
	}{
		{"other player", secret, "player-2", tok, now, ErrBadSignature},
		{"other secret", []byte("other"), "player-1", tok, now, ErrBadSignature},
		{"expired", secret, "player-1", tok, now.Add(2 * time.Hour), ErrExpired},
		{"no dot", secret, "player-1", "garbage", now, ErrMalformed},
		{"bad expiry", secret, "player-1", "x.abc", now, ErrMalformed},
		{"bad base64", secret, "player-1", "1.!!", now, ErrMalformed},
		{"bad player id", secret, "bad id!", tok, now, ErrBadPlayerID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := Verify(c.secret, c.player, c.token, c.now); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	if _, err := Sign(secret, "", now); !errors.Is(err, ErrBadPlayerID) {
		t.Fatalf("empty player: %v", err)
	}
}

package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/stackwatch/stackwatch/gameserver/client"
	"github.com/stackwatch/stackwatch/gameserver/ticket"
)

// A player logs in with a gate ticket, buys one card and waits for its
// result, which may also come back redelivered after a reconnect.
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := ticket.Sign([]byte(ticket.DevSecret), "alice", time.Now().Add(time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.Dial(ctx, "127.0.0.1:7000", "alice", tok)
	if err != nil {
		log.Fatal(err) // a *protocol.Error when the server refused the ticket
	}
	defer c.Close()
	if err := c.Bet(ctx, "alice-1", 10); err != nil {
		log.Fatal(err)
	}
	for r := range c.Results() {
		if r.BetID != "alice-1" {
			continue // an earlier bet, redelivered
		}
		if r.Err != nil {
			log.Fatal(r.Err)
		}
		fmt.Printf("won %d, balance %d\n", r.Win, r.Balance)
		break
	}
}

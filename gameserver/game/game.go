// Package game holds the three scratch-card games: a card is a 3×3 grid of
// symbols, and three or more of one symbol pay that symbol's multiplier.
//
// A draw is seeded from the game, player and bet id, so the same bet always
// draws the same card. That makes recovery after a crash deterministic: a bet
// deducted but not settled before a SIGKILL settles, after restart, exactly
// as it would have live.
package game

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
)

// Cells is the number of symbols on one card.
const Cells = 9

// MaxBet bounds one bet so that a win (at most MaxBet × the largest
// multiplier) can never overflow the ledger.
const MaxBet = 1_000_000

// Game is one scratch-card game's paytable.
type Game struct {
	Name    string // game id used on the command line and in results
	Service string // default service name
	// Weights[i] is symbol i's relative frequency; Pays[i] its multiplier
	// when it shows three or more times (four or more double it).
	Weights []int
	Pays    []int64
	total   int
}

// Names of the games.
const (
	GoldenClover   = "goldenclover"
	WildDig        = "wilddig"
	ForestTeaParty = "forestteaparty"
)

var games = map[string]*Game{
	GoldenClover:   newGame(GoldenClover, "goldenclover", []int{30, 25, 20, 12, 8, 4, 1}, []int64{0, 0, 1, 3, 6, 25, 100}),
	WildDig:        newGame(WildDig, "wilddiggr", []int{35, 25, 18, 12, 6, 3, 1}, []int64{0, 0, 1, 4, 12, 40, 200}),
	ForestTeaParty: newGame(ForestTeaParty, "forestteaparty", []int{28, 26, 20, 14, 8, 4}, []int64{0, 0, 1, 2, 5, 30}),
}

func newGame(name, service string, weights []int, pays []int64) *Game {
	g := &Game{Name: name, Service: service, Weights: weights, Pays: pays}
	for _, w := range weights {
		g.total += w
	}
	return g
}

// Lookup returns the named game.
func Lookup(name string) (*Game, error) {
	g, ok := games[name]
	if !ok {
		return nil, fmt.Errorf("game: unknown game %q (want %s, %s or %s)", name, GoldenClover, WildDig, ForestTeaParty)
	}
	return g, nil
}

// Names lists the games.
func Names() []string {
	names := make([]string, 0, len(games))
	for n := range games {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Card is one drawn card and what it pays.
type Card struct {
	Symbols []int
	Win     int64
}

// Draw scratches the card for one bet. It is a pure function of its inputs.
func (g *Game) Draw(player, betID string, amount int64) Card {
	sum := sha256.Sum256([]byte(g.Name + "\x00" + player + "\x00" + betID))
	rng := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])))
	card := Card{Symbols: make([]int, Cells)}
	var counts [16]int
	for i := range card.Symbols {
		s := g.symbol(rng.IntN(g.total))
		card.Symbols[i] = s
		counts[s]++
	}
	for s, n := range counts[:len(g.Pays)] {
		if n < 3 {
			continue
		}
		pay := g.Pays[s]
		if n >= 4 {
			pay *= 2
		}
		card.Win = max(card.Win, amount*pay)
	}
	return card
}

func (g *Game) symbol(r int) int {
	for i, w := range g.Weights {
		if r < w {
			return i
		}
		r -= w
	}
	return len(g.Weights) - 1
}

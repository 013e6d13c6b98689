package game

import (
	"fmt"
	"slices"
	"testing"
)

func TestDrawIsDeterministicAndPaysByTable(t *testing.T) {
	for _, name := range Names() {
		g, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		var wins, spent, won int64
		for i := range 50000 {
			id := fmt.Sprint(i)
			c := g.Draw("p", id, 10)
			if d := g.Draw("p", id, 10); !slices.Equal(c.Symbols, d.Symbols) || c.Win != d.Win {
				t.Fatalf("%s: bet %s drew %v then %v", name, id, c, d)
			}
			if len(c.Symbols) != Cells {
				t.Fatal(c)
			}
			counts := map[int]int{}
			var best int64
			for _, s := range c.Symbols {
				if s < 0 || s >= len(g.Pays) {
					t.Fatalf("symbol %d", s)
				}
				counts[s]++
			}
			for s, n := range counts {
				if n >= 3 {
					pay := g.Pays[s] * 10
					if n >= 4 {
						pay *= 2
					}
					best = max(best, pay)
				}
			}
			if c.Win != best {
				t.Fatalf("%s: card %v pays %d, want %d", name, c.Symbols, c.Win, best)
			}
			if c.Win > 0 {
				wins++
			}
			spent += 10
			won += c.Win
		}
		rtp := 100 * float64(won) / float64(spent)
		t.Logf("%s: %.1f%% winning cards, return to player %.1f%%", name, 100*float64(wins)/50000, rtp)
		// The house keeps a margin, but players do win back most stakes.
		if rtp < 80 || rtp >= 100 {
			t.Errorf("%s: return to player %.1f%%, want 80-100%%", name, rtp)
		}
	}
	if _, err := Lookup("poker"); err == nil {
		t.Fatal("unknown game accepted")
	}
	a, _ := Lookup(WildDig)
	if slices.Equal(a.Draw("p1", "b", 1).Symbols, a.Draw("p2", "b", 1).Symbols) && slices.Equal(a.Draw("p1", "c", 1).Symbols, a.Draw("p2", "c", 1).Symbols) {
		t.Error("the draw ignores the player")
	}
}

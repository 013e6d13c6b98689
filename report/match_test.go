package report

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func TestParseMatcher(t *testing.T) {
	for in, want := range map[string]string{
		"namespace=games":         `namespace="games"`,
		`namespace="games"`:       `namespace="games"`,
		"cluster!=staging":        `cluster!="staging"`,
		`cluster=~"eu-.*"`:        `cluster=~"eu-.*"`,
		"cluster!~eu-.*":          `cluster!~"eu-.*"`,
		` namespace = games `:     `namespace="games"`,
		`namespace="a \"b\" c"`:   `namespace="a \"b\" c"`,
		"namespace=":              `namespace=""`,
		`service="wild\u00efggr"`: `service="wildïggr"`,
	} {
		m, err := ParseMatcher(in)
		if err != nil {
			t.Errorf("ParseMatcher(%q): %v", in, err)
			continue
		}
		if got := m.String(); got != want {
			t.Errorf("ParseMatcher(%q) = %s, want %s", in, got, want)
		}
	}
	for _, in := range []string{"", "games", "=games", "!=x", "name~x", "1abc=x", "na-me=x", `ns="unterminated`, `ns=~"(["`} {
		if _, err := ParseMatcher(in); err == nil {
			t.Errorf("ParseMatcher(%q) accepted", in)
		}
	}
}

func TestMatcherMatches(t *testing.T) {
	ls := model.LabelSet{"namespace": "games", "cluster": "eu-1"}
	for in, want := range map[string]bool{
		"namespace=games": true, "namespace=other": false,
		"namespace!=other": true, "namespace!=games": false,
		"cluster=~eu-.*": true, "cluster=~eu": false, // anchored, as in PromQL
		"cluster!~us-.*": true,
		"region=":        true, "region!=": false, // a missing label is ""
	} {
		m, err := ParseMatcher(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Matches(ls); got != want {
			t.Errorf("%s matches %v = %v, want %v", in, ls, got, want)
		}
	}
}

func FuzzParseMatcher(f *testing.F) {
	for _, s := range []string{"namespace=games", `cluster=~"eu-.*"`, "a!=b", "a!~(", `x="\u00e9"`, "=", "a=\"", "a=~\"\\\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMatcher(s)
		if err != nil {
			return
		}
		// What it prints, it reads back the same.
		again, err := ParseMatcher(m.String())
		if err != nil || again.String() != m.String() {
			t.Fatalf("%q printed %s, read back as %s (%v)", s, m.String(), again.String(), err)
		}
		m.Matches(model.LabelSet{"namespace": "games"})
	})
}

// Every query the report runs carries the -match matchers, and alerts
// from the API outside them are left out. Against a stand-in Prometheus
// that records the queries; the real one is in e2e_test.go.
func TestMatchInEveryQuery(t *testing.T) {
	var mu sync.Mutex
	var queries []string
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/v1/alerts" {
			json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"alerts": []map[string]any{
				{"labels": map[string]string{"alertname": "HighNilSessionRate", "service": "wilddiggr", "namespace": "games", "severity": "critical"},
					"annotations": map[string]string{}, "state": "firing", "activeAt": "2026-11-30T10:00:00Z", "value": "1"},
				{"labels": map[string]string{"alertname": "HighNilSessionRate", "service": "wilddiggr", "namespace": "staging", "severity": "critical"},
					"annotations": map[string]string{}, "state": "firing", "activeAt": "2026-11-30T10:00:00Z", "value": "1"},
			}}})
			return
		}
		r.ParseForm()
		mu.Lock()
		queries = append(queries, r.Form.Get("query"))
		mu.Unlock()
		typ := "vector"
		if strings.HasSuffix(r.URL.Path, "query_range") {
			typ = "matrix"
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": typ, "result": []any{}}})
	}))
	defer prom.Close()
	m, err := ParseMatcher("namespace=games")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Gather(t.Context(), Options{Prometheus: prom.URL, Since: time.Hour, Match: []Matcher{m}})
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) < 10 {
		t.Fatalf("only %d queries", len(queries))
	}
	for _, q := range queries {
		// Each metric selector, not just each query: windowCount names its
		// counter three times.
		sels := strings.Count(q, "{")
		if n := strings.Count(q, `namespace="games"`); n == 0 || n != sels {
			t.Errorf("%d of %d selectors carry the matcher: %s", n, sels, q)
		}
	}
	if len(r.Firing) != 1 || r.Firing[0].Service != "wilddiggr" {
		t.Errorf("firing %+v, want the one alert in namespace games", r.Firing)
	}
	if len(r.Match) != 1 || r.Match[0] != `namespace="games"` {
		t.Errorf("report scope %v", r.Match)
	}
}

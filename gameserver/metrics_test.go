package gameserver_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stackwatch/stackwatch/gameserver"
	"github.com/stackwatch/stackwatch/metrics"
)

// metricValue gathers reg and returns the value of the series of family
// name whose labels include want (counter, gauge or histogram count),
// failing if there is no such series.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no series %s%v", name, want)
	return 0
}

// noKeepAlive leaves no idle connection (and no goroutine) behind a request.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := noKeepAlive.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

// Every game-server counter is exported at 0 from the start, with every
// label value the rules and dashboards use, so rate() sees the first event.
func TestCountersStartAtZero(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		srv := startServer(t, gameserver.Config{Legacy: legacy})
		reg := srv.Registry()
		series := map[string][]map[string]string{
			metrics.NilSessionAttempts.Name: {nil},
			metrics.SessionsCreated.Name:    {nil},
			metrics.SessionsClosed.Name:     {nil},
			metrics.PanicsRecovered.Name:    {nil},
			metrics.BetDuration.Name:        {nil},
			metrics.PendingResponses.Name:   {nil},
			metrics.DeadLetters.Name:        {nil},
			metrics.BetsPruned.Name:         {nil},
			metrics.BetsForgotten.Name:      {nil},
		}
		for _, r := range []string{metrics.ReasonNilSession, metrics.ReasonClosedSession, metrics.ReasonIOError, metrics.ReasonTimeout} {
			series[metrics.ClientWriteFailures.Name] = append(series[metrics.ClientWriteFailures.Name], map[string]string{metrics.LabelReason: r})
		}
		for _, o := range []string{metrics.OutcomeDelivered, metrics.OutcomeQueued, metrics.OutcomeDeadLettered, metrics.OutcomeFailed} {
			series[metrics.BetResults.Name] = append(series[metrics.BetResults.Name], map[string]string{metrics.LabelOutcome: o})
		}
		for _, r := range []string{metrics.ReasonMaxConns, metrics.ReasonUnauthenticated} {
			series[metrics.ConnectionsRefused.Name] = append(series[metrics.ConnectionsRefused.Name], map[string]string{metrics.LabelReason: r})
		}
		for name, sets := range series {
			for _, labels := range sets {
				if v := metricValue(t, reg, name, labels); v != 0 {
					t.Errorf("legacy=%v: %s%v = %v at start, want 0", legacy, name, labels, v)
				}
			}
		}
	}
}

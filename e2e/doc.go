// Package e2e holds stackwatch's end-to-end test: the real game servers,
// sidecars and load generator, scraped by a real Prometheus that loads the
// generated rules and notifies a real Alertmanager with the shipped routing.
// Every dashboard query is then run against that Prometheus.
//
// It needs the prometheus and prometheus-alertmanager binaries (Debian
// packages of the same names). Outside CI the test skips without them; with
// CI=true it fails.
package e2e

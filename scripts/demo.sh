#!/usr/bin/env bash
# make demo: replays the incident on localhost.
#
# Starts the three services as build 20251030111505 ran them (-legacy: wilddiggr
# and goldenclover panic on nil sessions, forestteaparty logs the warning), a
# patched wilddiggr beside them for comparison, a sidecar for each, and a load
# generator per service. When prometheus and prometheus-alertmanager are
# installed they run too, on the generated rules and the shipped routing.
#
# DEMO_DURATION (default 5m) is how long the load runs; DEMO_CLIENTS (default 50)
# players per service. Everything lives under .demo/; Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$PWD/bin
root=$PWD/.demo
duration=${DEMO_DURATION:-5m}
clients=${DEMO_CLIENTS:-50}

# service game mode game-port admin-port sidecar-port
services=(
	"wilddiggr wilddig legacy 7001 6061 9101"
	"goldenclover goldenclover legacy 7002 6062 9102"
	"forestteaparty forestteaparty legacy 7003 6063 9103"
	"wilddiggr-patched wilddig patched 7004 6064 9104"
)

pids=()
cleanup() {
	trap - EXIT INT TERM
	echo
	echo "stopping..."
	kill "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	echo "state kept in $root"
}
trap cleanup EXIT INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_http() { # url: wait up to 10 s for a 200
	for _ in $(seq 100); do
		if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "demo: $1 did not come up; see the logs in $root" >&2
	return 1
}

for s in "${services[@]}"; do
	read -r _ _ _ gp ap sp <<<"$s"
	for p in "$gp" "$ap" "$sp"; do
		port_free "$p" || { echo "demo: port $p is in use; stop whatever holds it" >&2; exit 1; }
	done
done

rm -rf "$root"
mkdir -p "$root"

for s in "${services[@]}"; do
	read -r name game mode gp ap sp <<<"$s"
	d=$root/$name
	mkdir -p "$d/log" "$d/data" "$d/sidecar"
	legacy=()
	[ "$mode" = legacy ] && legacy=(-legacy)
	"$bin/gameserver" -game "$game" -service "$name" "${legacy[@]}" \
		-listen "127.0.0.1:$gp" -admin "127.0.0.1:$ap" \
		-log-dir "$d/log" -data-dir "$d/data" -wallet-latency 20ms \
		2>"$d/gameserver.stderr" &
	pids+=($!)
	"$bin/sidecar" -service "$name" -log-dir "$d/log" -data-dir "$d/sidecar" \
		-listen "127.0.0.1:$sp" -target "http://127.0.0.1:$ap" \
		2>"$d/sidecar.stderr" &
	pids+=($!)
done
for s in "${services[@]}"; do
	read -r _ _ _ _ ap sp <<<"$s"
	wait_http "http://127.0.0.1:$ap/healthz"
	wait_http "http://127.0.0.1:$sp/healthz"
done

prom_url="" am_url=""
if command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null; then
	mkdir -p "$root/prometheus" "$root/alertmanager"
	{
		echo "global: {scrape_interval: 5s, evaluation_interval: 5s}"
		echo "rule_files: [$(ls "$PWD"/alerts/*.rules.yml | paste -sd, -)]"
		echo "alerting: {alertmanagers: [{static_configs: [{targets: ['127.0.0.1:9093']}]}]}"
		echo "scrape_configs:"
		for job in gameserver stackwatch-sidecar; do
			echo "  - job_name: $job"
			echo "    static_configs:"
			for s in "${services[@]}"; do
				read -r name _ _ _ ap sp <<<"$s"
				port=$ap
				[ $job = stackwatch-sidecar ] && port=$sp
				echo "      - {targets: ['127.0.0.1:$port'], labels: {service: '$name'}}"
			done
		done
	} >"$root/prometheus/prometheus.yml"
	prometheus --config.file="$root/prometheus/prometheus.yml" --storage.tsdb.path="$root/prometheus/data" \
		--web.listen-address=127.0.0.1:9090 2>"$root/prometheus/stderr" &
	pids+=($!)
	prometheus-alertmanager --config.file="$PWD/alerts/alertmanager.yml" --storage.path="$root/alertmanager" \
		--web.listen-address=127.0.0.1:9093 --cluster.listen-address= 2>"$root/alertmanager/stderr" &
	pids+=($!)
	wait_http http://127.0.0.1:9090/-/ready && prom_url=http://127.0.0.1:9090
	wait_http http://127.0.0.1:9093/-/ready && am_url=http://127.0.0.1:9093
fi

loadpids=()
for s in "${services[@]}"; do
	read -r name _ _ gp _ _ <<<"$s"
	"$bin/loadgen" -addr "127.0.0.1:$gp" -clients "$clients" -duration "$duration" -disconnect 0.2 -json \
		>"$root/$name/loadgen.json" 2>"$root/$name/loadgen.stderr" &
	loadpids+=($!)
	pids+=($!)
done

cat <<MSG

stackwatch demo is running: the incident replays for $duration with $clients players per service.

  service             game server          metrics + pprof                    sidecar
MSG
for s in "${services[@]}"; do
	read -r name _ mode gp ap sp <<<"$s"
	printf '  %-19s 127.0.0.1:%-9s  http://127.0.0.1:%s/metrics     http://127.0.0.1:%s  (%s)\n' "$name" "$gp" "$ap" "$sp" "$mode"
done
cat <<MSG

Where to look:
  crash groups       curl -s http://127.0.0.1:9101/api/v1/crashes
  leak suspects      curl -s http://127.0.0.1:9101/api/v1/leaks
  goroutine dumps    $bin/sidecar dumps list -sidecar http://127.0.0.1:9101
  stacktrace files   ls $root/wilddiggr/log        ($bin/sidecar analyze $root/wilddiggr/log)
  load summaries     $root/<service>/loadgen.json   (progress in loadgen.stderr)
MSG
if [ -n "$prom_url" ]; then
	echo "  Prometheus alerts  $prom_url/alerts   (HighNilSessionRate pages for wilddiggr and goldenclover)"
	echo "  Alertmanager       $am_url"
else
	echo "  (install prometheus and prometheus-alertmanager to see the alerts fire)"
fi
echo "  Grafana            import dashboards/*.json (docs/monitoring.md)"
echo
echo "Ctrl-C stops everything."

for p in "${loadpids[@]}"; do wait "$p" || true; done
echo
echo "load finished:"
for s in "${services[@]}"; do
	read -r name _ mode _ _ _ <<<"$s"
	printf '  %-19s %s\n' "$name" "$(tail -n 1 "$root/$name/loadgen.stderr")"
done
echo
echo "crash groups found by the wilddiggr sidecar:"
"$bin/sidecar" analyze "$root/wilddiggr/log" | sed -n '1,5p'
if [ -t 0 ]; then
	echo "services keep running for you to explore; Ctrl-C stops them."
	wait
fi

#!/usr/bin/env bash
# make demo: replays the incident on localhost until Ctrl-C.
#
# Starts the three services as build 20251030111505 ran them (-legacy: wilddiggr
# and goldenclover panic on nil sessions, forestteaparty takes the graceful
# closed-session path), a patched wilddiggr beside them for comparison, a
# sidecar for each, and a load generator per service. When prometheus and
# prometheus-alertmanager are installed they run too, on the demo's rules
# (alerts/demo/stackwatch.rules.yml: the shipped rules generated on a 5x
# clock, see alerts.Demo) and the shipped routing: HighNilSessionRate pages for
# wilddiggr and goldenclover within three minutes, and the page reaches the
# sidecars' Alertmanager webhook, which logs the goroutine dump it takes.
#
# Environment: DEMO_CLIENTS (default 20) players per service; DEMO_ROOT
# (default .demo) for state and logs; DEMO_BIN (default bin) for the binaries;
# DEMO_PORT_OFFSET (default 0) added to every port; DEMO_SIDECAR_PORT (default
# 39191) the first sidecar's port, before the offset. Disk: stacktrace files and
# the dump ring are capped at 32 MiB per sidecar, Prometheus at 256 MB; the
# game servers keep 2 minutes of settled bets (-bet-history 2m), so their
# wallets stop growing after a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${DEMO_BIN:-$PWD/bin}
root=${DEMO_ROOT:-$PWD/.demo}
clients=${DEMO_CLIENTS:-20}
off=${DEMO_PORT_OFFSET:-0}
sc=$((${DEMO_SIDECAR_PORT:-39191} + off))
prom_port=$((9090 + off)) am_port=$((9093 + off))

# service game mode game-port admin-port sidecar-port
services=(
	"wilddiggr wilddig legacy $((7001 + off)) $((6061 + off)) $((sc + 0))"
	"goldenclover goldenclover legacy $((7002 + off)) $((6062 + off)) $((sc + 1))"
	"forestteaparty forestteaparty legacy $((7003 + off)) $((6063 + off)) $((sc + 2))"
	"wilddiggr-patched wilddig patched $((7004 + off)) $((6064 + off)) $((sc + 3))"
)

pids=()
declare -A gs_pid sc_pid
cleanup() { # exit status: 0 for Ctrl-C, else the failure's
	trap - EXIT INT TERM
	echo
	echo "stopping..."
	if [ ${#pids[@]} -gt 0 ]; then
		kill "${pids[@]}" 2>/dev/null || true
	fi
	wait 2>/dev/null || true
	exit "$1"
}
trap 'cleanup $?' EXIT
trap 'cleanup 0' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_http() { # url pid log: wait up to 60 s for a 200 while pid lives
	for _ in $(seq 600); do
		if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
		if ! kill -0 "$2" 2>/dev/null; then
			echo "demo: the process behind $1 exited: $(tail -n 3 "$3" 2>/dev/null)" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "demo: $1 did not come up; see $3" >&2
	return 1
}

for p in $prom_port $am_port $(for s in "${services[@]}"; do read -r _ _ _ gp ap sp <<<"$s"; echo "$gp $ap $sp"; done); do
	port_free "$p" || { echo "demo: port $p is in use; stop whatever holds it (or set DEMO_PORT_OFFSET)" >&2; exit 1; }
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
		-log-dir "$d/log" -data-dir "$d/data" -wallet-latency 20ms -bet-history 2m \
		>"$d/gameserver.stderr" 2>&1 &
	pids+=($!) gs_pid[$name]=$!
	"$bin/sidecar" -service "$name" -log-dir "$d/log" -data-dir "$d/sidecar" \
		-listen "127.0.0.1:$sp" -target "http://127.0.0.1:$ap" \
		-retention-max-bytes $((32 << 20)) -dump-max-bytes $((32 << 20)) \
		>"$d/sidecar.stderr" 2>&1 &
	pids+=($!) sc_pid[$name]=$!
done
for s in "${services[@]}"; do
	read -r name _ _ _ ap sp <<<"$s"
	wait_http "http://127.0.0.1:$ap/healthz" "${gs_pid[$name]}" "$root/$name/gameserver.stderr"
	wait_http "http://127.0.0.1:$sp/healthz" "${sc_pid[$name]}" "$root/$name/sidecar.stderr"
done

prom_url="" am_url=""
if command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null; then
	mkdir -p "$root/prometheus" "$root/alertmanager"
	# service is a target label, as on Kubernetes: the exporters never set it.
	{
		echo "global: {scrape_interval: 5s, evaluation_interval: 5s}"
		echo "rule_files: ['$PWD/alerts/demo/stackwatch.rules.yml']"
		echo "alerting: {alertmanagers: [{static_configs: [{targets: ['127.0.0.1:$am_port']}]}]}"
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
	# The shipped routing; its goroutine-dump receiver lists the four
	# sidecars at make demo's ports, moved here by the offset and DEMO_SIDECAR_PORT.
	sed -e "s#127.0.0.1:39191/#127.0.0.1:$sc/#" -e "s#127.0.0.1:39192/#127.0.0.1:$((sc + 1))/#" \
		-e "s#127.0.0.1:39193/#127.0.0.1:$((sc + 2))/#" -e "s#127.0.0.1:39194/#127.0.0.1:$((sc + 3))/#" \
		alerts/alertmanager.yml >"$root/alertmanager/alertmanager.yml"
	prometheus --config.file="$root/prometheus/prometheus.yml" --storage.tsdb.path="$root/prometheus/data" \
		--storage.tsdb.retention.time=2h --storage.tsdb.retention.size=256MB \
		--web.listen-address="127.0.0.1:$prom_port" >"$root/prometheus/stderr" 2>&1 &
	pids+=($!) prom_pid=$!
	prometheus-alertmanager --config.file="$root/alertmanager/alertmanager.yml" --storage.path="$root/alertmanager" \
		--web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= >"$root/alertmanager/stderr" 2>&1 &
	pids+=($!) am_pid=$!
	wait_http "http://127.0.0.1:$prom_port/-/ready" $prom_pid "$root/prometheus/stderr" && prom_url=http://127.0.0.1:$prom_port
	wait_http "http://127.0.0.1:$am_port/-/ready" $am_pid "$root/alertmanager/stderr" && am_url=http://127.0.0.1:$am_port
fi

for s in "${services[@]}"; do
	read -r name _ _ gp _ _ <<<"$s"
	"$bin/loadgen" -addr "127.0.0.1:$gp" -clients "$clients" -duration 24h -disconnect 0.2 -json \
		>"$root/$name/loadgen.json" 2>"$root/$name/loadgen.stderr" &
	pids+=($!)
done

read -r _ _ _ _ _ wd_sidecar <<<"${services[0]}"
cli=$bin/stackwatch # the developer CLI; older builds had it in the sidecar
[ -x "$cli" ] || cli=$bin/sidecar
cat <<MSG

stackwatch demo is running: the incident replays with $clients players per service until Ctrl-C.
State and logs: $root

  service             game server          metrics + pprof                    sidecar
MSG
for s in "${services[@]}"; do
	read -r name _ mode gp ap sp <<<"$s"
	printf '  %-19s 127.0.0.1:%-9s  http://127.0.0.1:%s/metrics     http://127.0.0.1:%s  (%s)\n' "$name" "$gp" "$ap" "$sp" "$mode"
done
cat <<MSG

Where to look:
  web UI             http://127.0.0.1:$wd_sidecar/  crash groups → a trace; Goroutines (leak
                     trend); Dumps → flame graph. Same on every sidecar in the table.
  crash groups       curl -s http://127.0.0.1:$wd_sidecar/api/v1/crashes
  leak suspects      curl -s http://127.0.0.1:$wd_sidecar/api/v1/leaks
  goroutine dumps    $cli dumps list -sidecar http://127.0.0.1:$wd_sidecar
  stacktrace files   ls $root/wilddiggr/log        ($cli analyze $root/wilddiggr/log)
  load progress      $root/<service>/loadgen.stderr
MSG
if [ -n "$prom_url" ]; then
	alerts_path=/alerts
	# Debian's Prometheus 2.42 ships without the React UI: only /classic works.
	curl -fsS -o /dev/null "$prom_url/alerts" 2>/dev/null || alerts_path=/classic/alerts
	cat <<MSG
  Prometheus alerts  $prom_url$alerts_path
                     HighNilSessionRate pages for wilddiggr and goldenclover within 3 minutes,
                     never for forestteaparty or wilddiggr-patched
  Alertmanager       amtool alert query --alertmanager.url=$am_url
  the page lands     in the paged service's sidecar, which takes a goroutine dump for it:
                     grep -h 'goroutine dump captured' $root/*/sidecar.stderr | grep alert
  incident report    $cli report -prometheus $prom_url -since 15m -sidecar http://127.0.0.1:$wd_sidecar -o report.md
MSG
else
	echo "  (install prometheus and prometheus-alertmanager to see the alerts fire)"
fi
echo "  Grafana            import dashboards/*.json (docs/monitoring.md)"
echo
echo "Ctrl-C stops everything."

# Until Ctrl-C (or a child dies): wait returns when a signal arrives, and the
# trap stops everything.
while true; do wait -n 2>/dev/null || true; sleep 1; done

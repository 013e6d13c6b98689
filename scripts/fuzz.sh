#!/usr/bin/env bash
# Runs every fuzz target in the module briefly. `go test` already replays each
# target's seed corpus (and testdata/fuzz); this adds FUZZTIME (default 3s) of
# new inputs per target. A failing input is written to testdata/fuzz/ and the
# script fails.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-3s}
n=0
while IFS=: read -r file fn; do
	pkg=./$(dirname "$file")
	echo "fuzz $pkg $fn ($fuzztime)"
	go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" "$pkg"
	n=$((n + 1))
done < <(git grep -o '^func Fuzz[A-Za-z0-9_]*' -- '*_test.go' | sed 's/func //')
# The sidecar's model-based fault test, longer than go test's 200 steps.
go test -count=1 -run '^TestModel' ./sidecar -model.steps="${MODEL_STEPS:-3000}"
echo "fuzzed $n targets"
[ "$n" -gt 0 ]

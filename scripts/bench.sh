#!/usr/bin/env bash
# A short run of every benchmark (about two minutes), for `make bench`.
# BENCHMARKS.md has the full-size commands and the reference results.
#
#   scripts/bench.sh                 # results tables on stdout
#   BENCH_OUT=dir scripts/bench.sh   # also keep prop.json, ingest.json, storm.json in dir
#
# The load tool starts its own controllers on loopback and stops them; it
# needs about 2×BENCH_SUBS open files per process (ulimit -n).
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
subs="${BENCH_SUBS:-1000}"
echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3), load $(cut -d' ' -f1-3 /proc/loadavg)"
go build -o "$work/controlplane" ./cmd/controlplane
go build -o "$work/brownout-load" ./cmd/brownout-load
load=("$work/brownout-load")
common=(--bin "$work/controlplane" --data "$work/data" -v=false)

echo "== propagation, $subs subscribers, against the bare broadcaster"
"${load[@]}" prop "${common[@]}" --subs "$subs" --changes 30 --rounds 2 --settle 2s --json "$work/prop.json"
echo "== ingest: 50,000 reports/s over websockets for 20 s, HTTP batches for 5 s"
"${load[@]}" ingest "${common[@]}" --subs "$subs" --reports 50000 --ingest-for 20s --http-for 5s --json "$work/ingest.json"
echo "== reconnect storm, $((subs * 2)) subscribers"
"${load[@]}" storm "${common[@]}" --storm-subs "$((subs * 2))" --json "$work/storm.json"
echo "== history query, one hour of one service (BenchmarkQuerySamplesHour, 200,000 rows; 10 M rows: see BENCHMARKS.md)"
go test -run '^$' -bench 'QuerySamplesHour$' -benchtime 100x ./internal/storage/sqlite/ | grep -E '^(Benchmark|ok|FAIL)'
if [[ -n "${BENCH_OUT:-}" ]]; then
  mkdir -p "$BENCH_OUT"
  cp "$work/prop.json" "$work/ingest.json" "$work/storm.json" "$BENCH_OUT/"
fi

#!/usr/bin/env bash
# Load test on loopback with wrk: the success path (argon2-bound) and a pre-hash fault
# path. Prints one RESULT line per run; repeat RUNS times and take the median.
#   [PIN=1] bench/load.sh [DURATION_SECONDS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
runs=${2:-3}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk"; exit 1; }

cargo build --release --quiet
work=$(mktemp -d)
python3 bench/make_fixture.py 200 "$work/bench.json"
./target/release/soap-passwd import "$work/bench.json" --db "$work/bench.db" >/dev/null
RUST_LOG=warn ./target/release/soap-passwd serve --db "$work/bench.db" --bind 127.0.0.1:0 >"$work/out" 2>"$work/err" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  grep -q "listening on" "$work/out" 2>/dev/null && break
  sleep 0.1
done
base=$(sed -n 's/^soap-passwd listening on \(http:\/\/[^/]*\)\/soap.*/\1/p' "$work/out")

# PIN=1: pin the load generator to the last core and the server to the others (on a
# 2-core machine that leaves the server one core, halving its argon2 capacity).
cores=$(nproc)
pin_wrk=()
if [ "${PIN:-0}" = 1 ] && command -v taskset >/dev/null && [ "$cores" -ge 2 ]; then
  taskset -pc 0-$((cores - 2)) "$pid" >/dev/null
  pin_wrk=(taskset -c $((cores - 1)))
fi

for run in $(seq 1 "$runs"); do
  echo "success path, run $run (c=4):"
  "${pin_wrk[@]}" wrk -t1 -c4 -d"${duration}s" -s bench/change.lua "$base" | grep RESULT
  echo "pre-hash fault path, run $run (c=32):"
  "${pin_wrk[@]}" wrk -t1 -c32 -d"${duration}s" -s bench/fault.lua "$base" | grep RESULT
done

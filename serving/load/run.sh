#!/usr/bin/env bash
# Serving benchmarks: starts a release micro-serve on a fresh SQLite file with
# the repository's model, then measures, in one run on this machine:
#   1. GET /healthz ceiling (closed loop)
#   2. single-interaction POST ceiling (closed loop), then p99 at half that rate
#      (open loop), and GET /healthz on the same schedule (the latency floor)
#   3. batched ingest (NDJSON batches, durable on SQLite)
#   4. profile GET ceiling (closed loop) over the users just written
# Each step after the first POSTs starts once the server is idle again.
# micro-load ends each step with the machine's own stalls over it (a
# real-time probe; serving/load/stalls.sh shows what causes them here).
# Usage: serving/load/run.sh [seconds per step, default 10]
# Figures go to docs/benchmarks.md by hand, with this command line.
set -euo pipefail
SECS=${1:-10}
source "$(dirname "$0")/common.sh"
start_server
load() { "$BIN/micro-load" --base "$BASE" --duration "$SECS" --targets "$TARGETS" "$@"; }
# Between steps, let the server finish what the last one left behind (profile
# writes every 5 s, log indexing), so no step pays for the one before it.
settle() {
  for _ in $(seq 100); do
    curl -sf "$BASE/metrics" | grep -qx 'micro_log_unindexed_interactions 0' && break
    sleep 0.1
  done
  sleep 6
}

echo "machine: $(nproc) cores; server and load generator share them"
load --scenario healthz --concurrency 64
HEALTHZ=$(load --scenario healthz --concurrency 64 --json | tail -1 | python3 -c "import json,sys; print(json.load(sys.stdin)['requests_per_sec'])")
echo "healthz rate: $HEALTHZ"
SINGLE=$(load --scenario single --concurrency 64 --run-id s1 --json | tee /dev/stderr | tail -1 | python3 -c "import json,sys; print(json.load(sys.stdin)['requests_per_sec'])")
HALF=$(python3 -c "print(round($SINGLE/2))")
settle
# A server that falls behind fails this step; say so and measure the rest.
load --scenario single --rate "$HALF" --run-id s2 || echo "open loop at $HALF/s: the step failed (see above)"
settle
# The same schedule for /healthz: the latency floor of this machine and of
# the generator, which every request pays whatever it does.
load --scenario healthz --rate "$HALF"
settle
load --scenario batch --batch 1000 --concurrency 4 --run-id b1
settle
load --scenario profile --concurrency 64
python3 - "$HEALTHZ" "$SINGLE" <<'PY'
import sys
h, s = map(float, sys.argv[1:])
print(f"single POST / healthz = {s/h:.2f}")
PY

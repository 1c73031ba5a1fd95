#!/usr/bin/env bash
# Batched ingest, NDJSON against protobuf (issue 18). ROUNDS rounds of two
# closed-loop runs of `micro-load --scenario batch` (BATCH interactions per
# request, CONCURRENCY requests in flight), one per format, each against a
# fresh release micro-serve on a fresh SQLite file with the repository's
# model: a run never meets the database another run grew. The order
# alternates by round (json first, then protobuf first, ...). Besides the
# throughput and latency, each run reports the CPU time the server used
# per 1,000 interactions (from /proc), which the generator's share of the
# two cores does not blur.
# Usage: serving/load/protobuf.sh [seconds per run, default 10] [rounds, default 3]
# Environment: BATCH (1000), CONCURRENCY (4).
# Figures go to docs/benchmarks.md by hand, with this command line.
set -euo pipefail
SECS=${1:-10}
ROUNDS=${2:-3}
BATCH=${BATCH:-1000}
CONCURRENCY=${CONCURRENCY:-4}
source "$(dirname "$0")/common.sh"
SERVER=""
trap '[ -z "$SERVER" ] || kill $SERVER 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
# CPU seconds (user + system) the server has used so far.
cpu() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$SERVER/stat"; }
run() {
  local format=$1 round=$2 db="$WORK/$1-$2"
  mkdir -p "$db"
  MICRO_BIND=127.0.0.1:$PORT MICRO_DATABASE_URL="sqlite://$db/micro.db" MICRO_MODELS_DIR=models \
    MICRO_LOG=${MICRO_LOG:-warn} "$BIN/micro-serve" &
  SERVER=$!
  for _ in $(seq 100); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done
  local before result
  before=$(cpu)
  result=$("$BIN/micro-load" --base "$BASE" --duration "$SECS" --targets "$TARGETS" \
    --scenario batch --batch "$BATCH" --concurrency "$CONCURRENCY" \
    --format "$format" --run-id "$format-$round" --json)
  echo "$result" | grep -v '^{'
  echo "$result" | tail -1 | python3 -c '
import json, sys
r = json.load(sys.stdin)
cpu = float(sys.argv[2]) - float(sys.argv[1])
n = r["interactions_per_sec"] * r["seconds"]
print(f"  server CPU: {cpu:.2f} s over the run = {cpu / r['"'"'seconds'"'"'] * 100:.0f} % of one core, "
      f"{cpu / n * 1e6:.2f} ms per 1,000 interactions")
print(json.dumps(dict(r, server_cpu_s=cpu)))' "$before" "$(cpu)"
  kill "$SERVER"
  wait "$SERVER" 2>/dev/null || true
  SERVER=""
  rm -rf "$db"
}
echo "machine: $(nproc) cores; server and load generator share them"
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="json protobuf"; else order="protobuf json"; fi
  for format in $order; do
    echo "== round $round: $format"
    run "$format" "$round"
  done
done

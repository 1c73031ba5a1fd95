#!/usr/bin/env bash
# `micro-train backfill` of a history file into a fresh release micro-serve
# (fresh SQLite file), timed, with the server's CPU time and peak memory.
# Usage: serving/load/backfill.sh <interactions file> [backfill arguments],
#   e.g. serving/load/backfill.sh data/w1/interactions.parquet --in-flight 4
# MICRO_LOG and other MICRO_* settings pass through to the server.
set -euo pipefail
LOG=$(realpath "$1")
shift
source "$(dirname "$0")/common.sh"
cargo build --release -p training >&2
start_server
TICK=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$SERVER/stat"; }
before=$(cpu)
/usr/bin/time -f "backfill: %e s wall, %U s user, %S s system, peak RSS %M KB" \
  "$BIN/micro-train" backfill --interactions "$LOG" --api "$BASE" --key bench \
  --state "$WORK/backfill.json" "$@"
echo "server: $(( ($(cpu) - before) / TICK )) s CPU, peak RSS $(awk '/VmHWM/ {print $2, $3}' "/proc/$SERVER/status")"
curl -s "$BASE/metrics" | grep -E '^(micro_)?ingest_(accepted|duplicates|rejected)' || true

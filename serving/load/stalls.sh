#!/usr/bin/env bash
# This machine's own stalls, with no server running: how often the whole
# machine stops (seen by micro-load's real-time probe) while a file is
# written and flushed to disk at a steady rate, the I/O pattern of durable
# group commits, with the cores idle or kept busy by shell loops.
# On a virtual machine whose host counts its disk work against the guest's
# CPU share, the flushes alone can make the host stop every core for
# milliseconds at a time. Compare with the stalls micro-load reports for
# each step of run.sh.
# Usage: serving/load/stalls.sh [seconds per step, default 10]
set -euo pipefail
SECS=${1:-10}
source "$(dirname "$0")/common.sh"
BUSY=()
trap 'kill "${BUSY[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
busy() { # keep N cores busy until idle is called
  for _ in $(seq "$1"); do (while :; do :; done) & BUSY+=($!); done
}
idle() { kill "${BUSY[@]}" 2>/dev/null || true; wait "${BUSY[@]}" 2>/dev/null || true; BUSY=(); }
flush() { "$BIN/micro-load" --scenario fsync --dir "$WORK" --duration "$SECS" --rate "$1"; }

echo "machine: $(nproc) cores"
echo "== 1,000 flushes/s, cores idle"; flush 1000
for rate in 1000 2000 4000; do
  echo "== $rate flushes/s, one core busy"; busy 1; flush "$rate"; idle
done
echo "== 10 flushes/s, every core busy (no disk work to speak of)"
busy "$(nproc)"; flush 10; idle

#!/usr/bin/env bash
# One load step against a fresh release micro-serve (fresh SQLite file), with
# the CPU time each of the server's threads used (by thread name) and the
# load generator's, read from /proc over the step, and the disk's writes and
# flushes (cache flushes: one per durable commit) from /sys. Used to compare
# builds whose throughput alone is too noisy on a shared 2-core machine.
# Usage: serving/load/cpu.sh <micro-load arguments>, e.g.
#   serving/load/cpu.sh --scenario batch --batch 1000 --concurrency 4
#   serving/load/cpu.sh --scenario single --concurrency 64
# MICRO_PROFILE_FLUSH_MS and MICRO_LOG pass through to the server.
set -euo pipefail
source "$(dirname "$0")/common.sh"
start_server
TICK=$(getconf CLK_TCK)
# Seconds of the step read: just before the generator exits (its own
# ticks vanish with it).
WINDOW=9.5
# user + system ticks of each thread, summed by thread name
threads() {
  for t in /proc/"$1"/task/*; do
    echo "$(tr ' ' '_' <"$t/comm") $(awk '{print $14+$15}' "$t/stat")"
  done | awk '{a[$1]+=$2} END {for (k in a) print k, a[k]}' | sort
}
# The block device under the database: fields 5 and 16 of its stat are
# writes and flushes completed.
DISK=/sys/class/block/$(basename "$(df --output=source "$WORK" | tail -n1)")/stat
disk() { [ -r "$DISK" ] && awk '{print $5, $16}' "$DISK" || echo "0 0"; }
before=$(threads $SERVER)
disk_before=$(disk)
"$BIN/micro-load" --base "$BASE" --duration 10 --targets "$TARGETS" "$@" >"$WORK/load.out" &
LOAD=$!
sleep $WINDOW
tool=$(awk '{print $14+$15}' /proc/$LOAD/stat)
after=$(threads $SERVER)
disk_after=$(disk)
wait $LOAD
cat "$WORK/load.out"
awk -v n="$tool" -v t="$TICK" -v w="$WINDOW" 'BEGIN {printf "CPU seconds over the first %s s (load generator: %.2f):\n", w, n/t}'
join <(echo "$before") <(echo "$after") | awk -v t="$TICK" '$3 > $2 {printf "  %-18s %.2f\n", $1, ($3-$2)/t}'
echo "$disk_before $disk_after" | awk -v w="$WINDOW" '{printf "disk, per second: %.0f writes, %.0f flushes\n", ($3-$1)/w, ($4-$2)/w}'

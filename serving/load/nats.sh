#!/usr/bin/env bash
# Bus ingest benchmark: a nats-server of its own (fresh JetStream store), a
# release micro-serve on a fresh SQLite file consuming micro.interactions.>,
# and micro-load publishing COUNT interactions on JetStream; the figure is end
# to end, from the first publish until the service has stored them all.
# Usage: serving/load/nats.sh [count, default 1000000] [micro-load options]
#   e.g. serving/load/nats.sh 1000000 --format protobuf --batch 1000
set -euo pipefail
COUNT=${1:-1000000}
shift || true
source "$(dirname "$0")/common.sh"
NATS_PORT=${MICRO_LOAD_NATS_PORT:-14222}
NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
"$NATS_SERVER" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$WORK/nats" >/dev/null 2>&1 &
NATS=$!
MICRO_BIND=127.0.0.1:$PORT MICRO_DATABASE_URL="sqlite://$WORK/micro.db" MICRO_MODELS_DIR=models \
  MICRO_NATS_URL="nats://127.0.0.1:$NATS_PORT" MICRO_LOG=warn "$BIN/micro-serve" &
SERVER=$!
trap 'kill $SERVER $NATS 2>/dev/null; wait $SERVER $NATS 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -sf "$BASE/readyz" | grep -q 'nats: connected' && break; sleep 0.1; done
echo "machine: $(nproc) cores; nats-server, micro-serve and the publisher share them"
"$BIN/micro-load" --scenario nats --base "$BASE" --nats-url "nats://127.0.0.1:$NATS_PORT" \
  --count "$COUNT" --targets "$TARGETS" "$@"

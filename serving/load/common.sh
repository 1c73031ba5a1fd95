# Shared by the benchmark scripts (sourced, not run): builds the release
# binaries (unless MICRO_BIN_DIR names them) and sets BIN, WORK (a fresh
# directory, removed on exit by the caller's trap), PORT, BASE and TARGETS
# (ids from the served model's catalog, so interactions carry price and
# topics).
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
# MICRO_BIN_DIR: run the micro-serve and micro-load found there instead of
# building them (to compare two builds on the same machine in one sitting).
if [ -n "${MICRO_BIN_DIR:-}" ]; then
  BIN=$MICRO_BIN_DIR
else
  cargo build --release -p serving --bins >&2
  BIN="$CARGO_TARGET_DIR/release"
fi
WORK=$(mktemp -d)
PORT=${MICRO_LOAD_PORT:-18080}
BASE="http://127.0.0.1:$PORT"
VERSION=$(cat models/profile/current)
TARGETS=$(python3 -c "import json,sys; print(','.join(i['target_id'] for i in json.load(open('models/profile/$VERSION/catalog.json'))[:200]))")
# Starts micro-serve on a fresh SQLite file in $WORK with the repository's
# model (MICRO_LOG and other MICRO_* settings pass through), sets SERVER,
# stops it and removes $WORK on exit, and waits until it is ready.
start_server() {
  MICRO_BIND=127.0.0.1:$PORT MICRO_DATABASE_URL="sqlite://$WORK/micro.db" MICRO_MODELS_DIR=models \
    MICRO_LOG=${MICRO_LOG:-warn} "$BIN/micro-serve" &
  SERVER=$!
  trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
  for _ in $(seq 100); do curl -sf "$BASE/readyz" >/dev/null && break; sleep 0.1; done
}

# Shared by the benchmark scripts (sourced, not run): builds the release
# binaries and sets BIN, WORK (a fresh directory, removed on exit by the
# caller's trap), PORT, BASE and TARGETS (ids from the served model's
# catalog, so interactions carry price and topics).
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -p serving --bins >&2
BIN="$CARGO_TARGET_DIR/release"
WORK=$(mktemp -d)
PORT=${MICRO_LOAD_PORT:-18080}
BASE="http://127.0.0.1:$PORT"
VERSION=$(cat models/profile/current)
TARGETS=$(python3 -c "import json,sys; print(','.join(i['target_id'] for i in json.load(open('models/profile/$VERSION/catalog.json'))[:200]))")

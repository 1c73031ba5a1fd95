#!/usr/bin/env bash
# The contract test: schemathesis drives micro-serve from its own
# /openapi.json on a fresh SQLite database and a copy of the committed model
# registry, and fails when any answer is a 5xx, has a status the document
# does not list, or a body (or content type) its schema does not allow.
# Which checks run and why some are off for some operations:
# schemathesis.toml beside this script.
#
#   serving/tests/contract/run.sh                # builds micro-serve (debug) first
#   MICRO_SERVE=target/release/micro-serve serving/tests/contract/run.sh
#
# schemathesis comes from PyPI, pinned in requirements.txt, into a virtual
# environment of its own (CONTRACT_VENV, default /tmp/micro-contract-venv).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cd "$root"

venv="${CONTRACT_VENV:-/tmp/micro-contract-venv}"
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$(sed -n 's/^schemathesis==//p' "$here/requirements.txt")"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
fi

if [ -z "${MICRO_SERVE:-}" ]; then
  cargo build -q -p serving --bin micro-serve
  MICRO_SERVE="${CARGO_TARGET_DIR:-$root/target}/debug/micro-serve"
fi

work="$(mktemp -d)"
server=""
cleanup() {
  [ -z "$server" ] || kill "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# A copy: the test promotes whatever versions it can name.
cp -r models "$work/models"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
MICRO_BIND="127.0.0.1:$port" MICRO_DATABASE_URL="sqlite://$work/micro.db" \
  MICRO_MODELS_DIR="$work/models" MICRO_LOG=warn \
  "$MICRO_SERVE" >"$work/server.log" 2>&1 &
server=$!
base="http://127.0.0.1:$port"
for _ in $(seq 100); do
  curl -sf "$base/readyz" >/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.2
done

status=0
(cd "$here" && "$venv/bin/st" run "$base/openapi.json" --url "$base" \
  --generation-deterministic --max-examples "${CONTRACT_EXAMPLES:-25}" \
  --workers 1 --no-color) || status=$?
if ! kill -0 "$server" 2>/dev/null; then
  echo "micro-serve died during the contract test:" >&2
  status=1
fi
if [ "$status" != 0 ]; then
  echo "--- micro-serve log (last 40 lines)" >&2
  tail -n 40 "$work/server.log" >&2
fi
exit "$status"

#!/usr/bin/env bash
# The container test (.ci/run runs it after docker/build.sh). Against the
# images localhost/micro-serve:latest and localhost/micro-train:latest:
#
#  1. micro-serve's image is at most 120 MB and runs as a non-root user;
#  2. started with a named volume on /data, it serves: a user registers,
#     interactions are posted, the profile is scored by the baked-in model;
#     its HEALTHCHECK passes;
#  3. after a restart of the container the same profile is read back;
#  4. micro-train's image generates a small world and trains and promotes a
#     model into a volume, and micro-serve's image serves that model.
#
# Containers use the host's network (measured to work on this kind of VM) on
# a free port; everything the test made is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/docker/podman/containers.conf}"

SERVE=localhost/micro-serve:latest
TRAIN=localhost/micro-train:latest
MAX_SERVE_MB=120
run_id="micro-test-$$"
data_volume="$run_id-data"
models_volume="$run_id-models"
world_volume="$run_id-world"
data2_volume="$run_id-data2"
containers=()
# ok, fail, check and the $failures count.
source docker/checks.sh

cleanup() {
  for c in "${containers[@]}"; do podman rm -f -t 5 "$c" >/dev/null 2>&1 || true; done
  for v in "$data_volume" "$models_volume" "$world_volume" "$data2_volume"; do
    podman volume rm -f "$v" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT


free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start <name> <port> <podman run options...>: a detached micro-serve on
# 127.0.0.1:<port>, waited for until /healthz answers.
start_serve() {
  local name=$1 port=$2
  shift 2
  podman run -d --name "$name" --network=host -e "MICRO_BIND=127.0.0.1:$port" "$@" "$SERVE" >/dev/null
  containers+=("$name")
  for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return 0
    if [ "$(podman inspect -f '{{.State.Running}}' "$name")" != true ]; then break; fi
    sleep 0.5
  done
  echo "$name did not come up; its log:" >&2
  podman logs "$name" >&2 || true
  return 1
}

json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

echo "== image"
size=$(podman image inspect --format '{{.Size}}' "$SERVE")
size_mb=$(awk -v s="$size" 'BEGIN {printf "%.1f", s / 1e6}')
check "micro-serve image is $size_mb MB (at most $MAX_SERVE_MB)" \
  awk -v s="$size" -v m="$MAX_SERVE_MB" 'BEGIN {exit !(s <= m * 1e6)}'
user=$(podman image inspect --format '{{.Config.User}}' "$SERVE")
check "the image's user is '$user', not root" test -n "$user" -a "${user%%:*}" != 0 -a "${user%%:*}" != root
for label in version revision source; do
  value=$(podman image inspect --format "{{index .Labels \"org.opencontainers.image.$label\"}}" "$SERVE")
  check "label org.opencontainers.image.$label = '$value'" test -n "$value"
done

echo "== serve, restart, serve the same profile"
port=$(free_port)
base="http://127.0.0.1:$port"
podman volume create "$data_volume" >/dev/null
start_serve "$run_id-serve" "$port" -v "$data_volume:/data"

pid=$(podman inspect -f '{{.State.Pid}}' "$run_id-serve")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
check "the server process runs as uid $uid (not 0)" test "$uid" != 0
check "the image's HEALTHCHECK passes" podman healthcheck run "$run_id-serve"

model=$(curl -sf "$base/readyz" | json 'd["model"]')
check "the baked-in registry serves model $model" test "$model" != None

curl -sf "$base/v1/users" -H 'content-type: application/json' \
  -d '{"userId": "c-1", "email": "ada@example.com", "gender": "female", "birthYear": 1988, "kids": 1}' >/dev/null
# A product of the baked-in model's catalog (the repository's models/).
target=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))[3]['target_id'])" "models/profile/$model/catalog.json")
batch=""
for i in $(seq 0 9); do
  kind=$([ $((i % 3)) = 0 ] && echo PURCHACE || echo VIEW)
  batch+="{\"type\": \"$kind\", \"timestamp\": \"2026-11-2${i}T10:00:00Z\", \"origin\": {\"id\": \"shop-1\", \"type\": \"shop\"}, \"actor\": {\"id\": \"c-1\", \"type\": \"user\"}, \"target\": {\"id\": \"$target\", \"type\": \"product\"}, \"value\": {\"amount\": $((20 + i)).5, \"currency\": \"USD\"}}"$'\n'
done
accepted=$(curl -sf "$base/v1/interactions" -H 'content-type: application/x-ndjson' --data-binary "$batch" | json 'd["accepted"]')
check "10 interactions accepted ($accepted)" test "$accepted" = 10

before=$(curl -sf "$base/v1/profiles/c-1" | json "__import__('json').dumps(d, sort_keys=True)")
echo "     profile: $before" | cut -c1-200
count=$(json 'd["interactionCount"]' <<<"$before")
check "the profile counts the 10 interactions ($count)" test "$count" = 10
scored_by=$(json 'd["modelVersion"]' <<<"$before")
check "the profile is scored by model $model ($scored_by)" test "$scored_by" = "$model"
spending=$(json 'd["about"]["spendingClass"]' <<<"$before")
check "the profile has a spending class ($spending)" test "$spending" != None

podman restart -t 30 "$run_id-serve" >/dev/null
for _ in $(seq 120); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.5; done
after=$(curl -sf "$base/v1/profiles/c-1" | json "__import__('json').dumps(d, sort_keys=True)")
check "after a restart the same profile is read back" test "$before" = "$after"
users=$(curl -sf "$base/v1/users/c-1" | json 'd["userId"]')
check "after a restart the user is still registered ($users)" test "$users" = c-1
podman stop -t 30 "$run_id-serve" >/dev/null

echo "== train into a volume, serve what it wrote"
podman volume create "$world_volume" >/dev/null
podman volume create "$models_volume" >/dev/null
podman run --rm --network=host -v "$world_volume:/data" "$TRAIN" \
  generate --users 600 --days 60 --seed 7 --out /data/world 2>&1 | tail -n 1
train_log=$(mktemp)
podman run --rm --network=host -v "$world_volume:/data:ro" -v "$models_volume:/models" "$TRAIN" \
  train --interactions /data/world/interactions.parquet --catalog /data/world/catalog.parquet \
  --labels /data/world/labels.parquet --families logistic-regression --promote >"$train_log" 2>&1 || true
trained=$(sed -n 's/^promoted //p' "$train_log")
check "micro-train wrote and promoted ${trained:-nothing}" test -n "$trained"
[ -n "$trained" ] || tail -n 30 "$train_log" >&2
rm -f "$train_log"
listed=$(podman run --rm -v "$models_volume:/models:ro" "$TRAIN" models list 2>/dev/null)
check "the registry volume lists it as current" grep -q "^\* $trained " <<<"$listed"

port2=$(free_port)
podman volume create "$data2_volume" >/dev/null
start_serve "$run_id-serve2" "$port2" -v "$data2_volume:/data" -v "$models_volume:/models"
served=$(curl -sf "http://127.0.0.1:$port2/readyz" | json 'd["model"]')
check "micro-serve serves the trained model ($served)" test "$served" = "$trained"

echo "== $failures failed"
[ "$failures" = 0 ]

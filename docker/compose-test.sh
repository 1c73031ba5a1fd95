#!/usr/bin/env bash
# The compose test (.ci/run runs it after docker/test.sh): docker/compose.yaml
# brought up as a user would, with podman-compose (docker compose where
# podman is absent), then the registration scenario end to end:
#
#  1. micro-serve comes up on PostgreSQL and NATS JetStream (its /readyz says
#     which database and bus);
#  2. a user registers over HTTP; the user is a row in PostgreSQL;
#  3. micro-welcome gets user.registered from NATS, reads the profile from the
#     API and sends the welcome e-mail, which the SMTP sink shows;
#  4. interactions posted to the API make a profile that survives
#     `compose down` and `up` again (the data is in the volumes).
#
# No registry is reachable here, so PostgreSQL, NATS and the SMTP sink are the
# images docker/services.sh makes from Debian packages (POSTGRES_IMAGE,
# NATS_IMAGE and SMTP_IMAGE say otherwise). Everything is removed at the end,
# volumes included.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/docker/podman/containers.conf}"

if command -v podman-compose >/dev/null 2>&1; then
  compose=(podman-compose)
  engine=podman
elif command -v docker >/dev/null 2>&1; then
  compose=(docker compose)
  engine=docker
else
  echo "compose-test.sh needs podman-compose (apt-get install podman-compose) or docker compose" >&2
  exit 1
fi

if [ -z "${POSTGRES_IMAGE:-}${NATS_IMAGE:-}${SMTP_IMAGE:-}" ]; then
  docker/services.sh
  export POSTGRES_IMAGE=localhost/micro-postgres:15
  export NATS_IMAGE=localhost/micro-nats:bookworm
  export SMTP_IMAGE=localhost/micro-smtp-sink:bookworm
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
export MICRO_PORT=$(free_port)
export SMTP_UI_PORT=$(free_port)
project="micro-compose-test-$$"
base="http://127.0.0.1:$MICRO_PORT"
# ok, fail, check and the $failures count.
source docker/checks.sh
run() { "${compose[@]}" -p "$project" -f docker/compose.yaml "$@"; }
# podman-compose names containers <project>_<service>_1, docker compose
# <project>-<service>-1.
container() {
  if [ "$engine" = podman ]; then echo "${project}_$1_1"; else echo "$project-$1-1"; fi
}

logs_of_all() {
  for service in micro-serve micro-welcome postgres nats smtp; do
    echo "--- $service" >&2
    $engine logs --tail 30 "$(container "$service")" >&2 2>&1 || true
  done
}
cleanup() {
  [ "$failures" = 0 ] || logs_of_all
  run down -v -t 10 >/dev/null 2>&1 || true
}
trap cleanup EXIT

json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
# wait_for <seconds> <command...>: until the command succeeds.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 1
  done
}

up() {
  local started=$SECONDS
  run up -d >/tmp/"$project"-up.log 2>&1 || { cat /tmp/"$project"-up.log >&2; return 1; }
  wait_for 120 curl -sf "$base/readyz" || return 1
  echo "     up and ready in $((SECONDS - started)) s"
}

echo "== compose up ($engine; micro-serve on 127.0.0.1:$MICRO_PORT)"
check "every service starts and micro-serve is ready" up
ready=$(curl -s "$base/readyz")
echo "     readyz: $ready" | cut -c1-240
database=$(json 'd["database"]' <<<"$ready")
check "micro-serve stores in PostgreSQL ($database)" grep -qi postgres <<<"$database"
bus=$(json 'd["bus"]' <<<"$ready")
check "micro-serve is connected to NATS ($bus)" test "$bus" = "nats: connected"

echo "== register, welcome"
registered=$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/users" -H 'content-type: application/json' \
  -d '{"userId": "u-compose", "email": "grace@example.com", "name": "Grace", "gender": "female", "birthYear": 1990}')
check "registration answers 201 ($registered)" test "$registered" = 201
rows=$($engine exec "$(container postgres)" psql -U micro -d micro -Atc \
  "select count(*) from users where user_id = 'u-compose'" 2>&1 || true)
check "the user is a row in PostgreSQL ($rows)" test "$rows" = 1
smtp_log() { $engine logs "$(container smtp)" 2>&1; }
welcomed() { smtp_log | grep -q '^Subject: Welcome, Grace!' && smtp_log | grep -q 'grace@example.com'; }
check "micro-welcome sent the welcome e-mail through NATS and SMTP" wait_for 60 welcomed

echo "== interactions, down, up, same profile"
batch=""
for i in 1 2 3 4 5; do
  batch+="{\"type\": \"VIEW\", \"timestamp\": \"2026-11-2${i}T10:00:00Z\", \"origin\": {\"id\": \"shop-1\", \"type\": \"shop\"}, \"actor\": {\"id\": \"u-compose\", \"type\": \"user\"}, \"target\": {\"id\": \"p-$i\", \"type\": \"product\"}}"$'\n'
done
accepted=$(curl -sf "$base/v1/interactions" -H 'content-type: application/x-ndjson' --data-binary "$batch" | json 'd["accepted"]' || true)
check "5 interactions accepted (${accepted:-none})" test "$accepted" = 5
profile_count() { curl -sf "$base/v1/profiles/u-compose" | json 'd["interactionCount"]'; }
has_five() { test "$(profile_count)" = 5; }
check "the profile counts them" wait_for 10 has_five
before=$(curl -sf "$base/v1/profiles/u-compose" | json "__import__('json').dumps(d, sort_keys=True)" || true)

run down -t 30 >/dev/null 2>&1
check "after down and up every service is ready again" up
after=$(curl -sf "$base/v1/profiles/u-compose" | json "__import__('json').dumps(d, sort_keys=True)" || true)
check "the same profile is read back from PostgreSQL" test -n "$before" -a "$before" = "$after"
# micro-welcome's JetStream consumer is durable (its position is in the NATS
# volume): the restarted one must not welcome Grace again. The new sink
# container has an empty log; a redelivery would arrive within seconds.
sleep 5
mails=$(smtp_log | grep -c '^Subject: Welcome, Grace!' || true)
check "no second welcome after the restart ($mails e-mails since)" test "$mails" = 0

echo "== $failures failed"
[ "$failures" = 0 ]

#!/usr/bin/env bash
# Makes local images of the three services docker/compose.yaml runs beside
# Micro, from Debian packages, for machines that reach Debian's archive but
# no container registry (this project's VMs and CI):
#
#   localhost/micro-postgres:15        PostgreSQL 15, started like the official
#                                      image: POSTGRES_USER, POSTGRES_PASSWORD
#                                      and POSTGRES_DB create the cluster on
#                                      first start, into the volume on
#                                      /var/lib/postgresql/data
#   localhost/micro-nats:bookworm      nats-server (JetStream), no shell
#   localhost/micro-smtp-sink:bookworm an SMTP server on port 1025 that keeps
#                                      nothing and prints every message it
#                                      gets (aiosmtpd's Debugging handler)
#
# Each runs as a non-root user. docker/compose-test.sh points compose at them
# through POSTGRES_IMAGE, NATS_IMAGE and SMTP_IMAGE.
#
# Usage: docker/services.sh [--force]   (skips images that exist unless --force)
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/docker/podman/containers.conf}"

SUITE=bookworm
POSTGRES_IMAGE=localhost/micro-postgres:15
NATS_IMAGE=localhost/micro-nats:$SUITE
SMTP_IMAGE=localhost/micro-smtp-sink:$SUITE
force=false
[ "${1:-}" = "--force" ] && force=true

for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "services.sh needs $tool (apt-get install podman runc mmdebstrap)" >&2
    exit 1
  }
done

exists() { podman image exists "$1" && ! $force; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Documentation, manual pages and translations are of no use in an image;
# nor is the package manager's cache.
no_docs=(
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
)
trim='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/usr/share/lintian'

if exists "$NATS_IMAGE"; then
  echo "== $NATS_IMAGE exists"
else
  echo "== $NATS_IMAGE"
  # nats-server is one binary linking only glibc: unpacked, not installed.
  mmdebstrap --quiet --variant=extract --include=nats-server,libc6,base-files,netbase \
    "${no_docs[@]}" \
    --customize-hook="$trim" \
    --customize-hook='printf "root:x:0:0::/:/nonexistent\nnats:x:10002:10002::/data:/nonexistent\n" > "$1/etc/passwd"' \
    --customize-hook='printf "root:x:0:\nnats:x:10002:\n" > "$1/etc/group"' \
    --customize-hook='mkdir -p "$1/data" "$1/tmp" && chown 10002:10002 "$1/data" && chmod 1777 "$1/tmp"' \
    "$SUITE" "$work/nats.tar"
  podman import --quiet \
    --change 'USER 10002:10002' \
    --change 'WORKDIR /data' \
    --change 'EXPOSE 4222' --change 'EXPOSE 8222' \
    --change 'ENTRYPOINT ["/usr/sbin/nats-server"]' \
    --change 'CMD ["--jetstream", "--store_dir=/data", "--http_port=8222"]' \
    "$work/nats.tar" "$NATS_IMAGE" >/dev/null
fi

if exists "$POSTGRES_IMAGE"; then
  echo "== $POSTGRES_IMAGE exists"
else
  echo "== $POSTGRES_IMAGE"
  cat > "$work/postgres-entrypoint" <<'EOF'
#!/bin/sh
# First start: a cluster in $PGDATA owned by $POSTGRES_USER with
# $POSTGRES_PASSWORD, password logins over TCP, and the database
# $POSTGRES_DB; every start: the server in the foreground.
set -eu
bin=/usr/lib/postgresql/15/bin
PGDATA=${PGDATA:-/var/lib/postgresql/data}
user=${POSTGRES_USER:-postgres}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -n "${POSTGRES_PASSWORD:-}" ] || { echo "POSTGRES_PASSWORD must be set" >&2; exit 1; }
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  "$bin/initdb" --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" \
    --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  db=${POSTGRES_DB:-$user}
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \"$db\" OWNER \"$user\";" | "$bin/postgres" --single -D "$PGDATA" -j postgres >/dev/null
  fi
  echo "created the cluster in $PGDATA with the database $db"
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp \
  -c jit=off "$@"
EOF
  # PostgreSQL's scripts create a cluster of their own at install: dropped,
  # the entrypoint makes one in the volume. LLVM is only for JIT (off). The
  # socket is in /tmp (PGHOST, for pg_isready and psql): the image's /run is
  # emptied by mmdebstrap.
  mmdebstrap --quiet --variant=minbase --include=postgresql-15 \
    "${no_docs[@]}" \
    --dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/libLLVM-*' \
    --dpkgopt='path-exclude=/usr/lib/postgresql/15/lib/bitcode/*' \
    --customize-hook="$trim" \
    --customize-hook='rm -rf "$1"/etc/postgresql/15 "$1"/var/lib/postgresql/15' \
    --customize-hook="cp '$work/postgres-entrypoint' \"\$1/usr/local/bin/postgres-entrypoint\" && chmod 755 \"\$1/usr/local/bin/postgres-entrypoint\"" \
    --customize-hook='mkdir -p "$1/var/lib/postgresql/data" && chroot "$1" chown -R postgres:postgres /var/lib/postgresql && chmod 700 "$1/var/lib/postgresql/data"' \
    "$SUITE" "$work/postgres.tar"
  podman import --quiet \
    --change 'USER postgres' \
    --change 'ENV PGDATA=/var/lib/postgresql/data' \
    --change 'ENV PGHOST=/tmp' \
    --change 'EXPOSE 5432' \
    --change 'VOLUME ["/var/lib/postgresql/data"]' \
    --change 'STOPSIGNAL SIGINT' \
    --change 'ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]' \
    "$work/postgres.tar" "$POSTGRES_IMAGE" >/dev/null
fi

if exists "$SMTP_IMAGE"; then
  echo "== $SMTP_IMAGE exists"
else
  echo "== $SMTP_IMAGE"
  mmdebstrap --quiet --variant=minbase --include=python3-aiosmtpd \
    "${no_docs[@]}" \
    --customize-hook="$trim" \
    "$SUITE" "$work/smtp.tar"
  podman import --quiet \
    --change 'USER 65534:65534' \
    --change 'ENV PYTHONUNBUFFERED=1' \
    --change 'STOPSIGNAL SIGINT' \
    --change 'EXPOSE 1025' \
    --change 'ENTRYPOINT ["python3", "-m", "aiosmtpd", "--nosetuid", "--listen", "0.0.0.0:1025", "--class", "aiosmtpd.handlers.Debugging"]' \
    "$work/smtp.tar" "$SMTP_IMAGE" >/dev/null
fi

podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' |
  grep -E '^localhost/micro-(postgres|nats|smtp-sink):'

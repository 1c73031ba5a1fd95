#!/usr/bin/env bash
# Builds Micro's images from docker/Containerfile:
#   localhost/micro-serve:latest, localhost/micro-train:latest,
#   localhost/micro-welcome:latest
# with podman (docker where podman is absent), tagged with the version too.
#
# Usage: docker/build.sh [--local-base] [--clean-cache] [serve|train|welcome ...]
#   --local-base   build FROM the images docker/base.sh makes from Debian
#                  packages (made first if missing), for machines that reach
#                  no container registry; default: the public rust and debian
#                  images (or BUILDER_IMAGE / RUNTIME_IMAGE from the
#                  environment)
#   --clean-cache  empty cargo's cache mounts first (a build from nothing)
#   no image names: all three
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/docker/podman/containers.conf}"

local_base=false
clean_cache=false
targets=()
for arg in "$@"; do
  case "$arg" in
    --local-base) local_base=true ;;
    --clean-cache) clean_cache=true ;;
    serve|train|welcome) targets+=("$arg") ;;
    *) echo "unknown argument: $arg (see the top of $0)" >&2; exit 2 ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && targets=(serve train welcome)

if command -v podman >/dev/null 2>&1; then
  engine=podman
elif command -v docker >/dev/null 2>&1; then
  engine=docker
  export DOCKER_BUILDKIT=1
else
  echo "build.sh needs podman or docker" >&2
  exit 1
fi

if $local_base; then
  [ "$engine" = podman ] || { echo "--local-base needs podman" >&2; exit 1; }
  docker/base.sh
  BUILDER_IMAGE=localhost/micro-base-build:bookworm
  RUNTIME_IMAGE=localhost/micro-base-runtime:bookworm
fi

if $clean_cache; then
  # buildah keeps RUN --mount=type=cache directories here, by id
  # (buildah-cache/ in 1.28, buildah-cache-<uid>/ in later versions).
  rm -rf "${TMPDIR:-/var/tmp}"/buildah-cache*/micro-cargo-* 2>/dev/null || true
  [ "$engine" = docker ] && docker builder prune --force --filter type=exec.cachemount >/dev/null
fi

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
source_url=$(git remote get-url origin 2>/dev/null || echo unknown)
build_args=(
  --build-arg "VERSION=$version"
  --build-arg "REVISION=$revision"
  --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  --build-arg "SOURCE=$source_url"
)
[ -n "${BUILDER_IMAGE:-}" ] && build_args+=(--build-arg "BUILDER_IMAGE=$BUILDER_IMAGE")
[ -n "${RUNTIME_IMAGE:-}" ] && build_args+=(--build-arg "RUNTIME_IMAGE=$RUNTIME_IMAGE")
# Downloads trust what this machine trusts (an inspecting proxy's CA, say);
# see docker/build-env.sh.
host_ca=${BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ -s "$host_ca" ] && build_args+=(--secret "id=build-ca,src=$host_ca")
# HEALTHCHECK is part of Docker's image format, not of OCI's.
[ "$engine" = podman ] && build_args+=(--format docker --layers)

for target in "${targets[@]}"; do
  image="localhost/micro-$target"
  echo "== $image:latest"
  started=$(date +%s)
  $engine build --network=host "${build_args[@]}" \
    --file docker/Containerfile --target "$target" \
    --tag "$image:latest" --tag "$image:$version" .
  echo "$image:latest built in $(( $(date +%s) - started )) s," \
    "$($engine image inspect --format '{{.Size}}' "$image:latest" | awk '{printf "%.1f MB", $1 / 1e6}')"
done

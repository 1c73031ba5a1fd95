#!/usr/bin/env bash
# Makes the two base images of docker/Containerfile from Debian packages, for
# machines that reach Debian's archive but no container registry:
#
#   localhost/micro-base-build:bookworm    Debian minbase, gcc, libc6-dev, CA
#                                          certificates, and this machine's
#                                          Rust toolchain (rustc --print sysroot)
#   localhost/micro-base-runtime:bookworm  libc6 and libgcc-s1 unpacked, no
#                                          shell, no package manager (~14 MB)
#
# Debian's own rustc is too old for Cargo.lock (bookworm has 1.63, trixie
# 1.85; the lock needs 1.95 for polars' sysinfo), so the builder carries the
# toolchain that builds the project natively. Both images are Debian
# bookworm, so the binaries link the glibc the runtime has.
#
# Usage: docker/base.sh [--force]   (skips images that exist unless --force)
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/docker/podman/containers.conf}"

SUITE=bookworm
BUILD_IMAGE=localhost/micro-base-build:$SUITE
RUNTIME_IMAGE=localhost/micro-base-runtime:$SUITE
force=false
[ "${1:-}" = "--force" ] && force=true

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "base.sh needs $1 (apt-get install podman runc mmdebstrap)" >&2
    exit 1
  }
}
need podman
need mmdebstrap

exists() { podman image exists "$1" && ! $force; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Documentation, manual pages and translations are of no use in an image.
trim='rm -rf "$1"/usr/share/doc/*/changelog* "$1"/usr/share/man "$1"/usr/share/info "$1"/usr/share/locale "$1"/usr/share/lintian "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*'

if exists "$RUNTIME_IMAGE"; then
  echo "== $RUNTIME_IMAGE exists"
else
  echo "== $RUNTIME_IMAGE"
  # `extract` unpacks the packages without running their scripts: no dpkg,
  # apt or shell ends up in the image, only the libraries and /etc basics.
  mmdebstrap --quiet --variant=extract --include=libc6,libgcc-s1,base-files,netbase \
    --customize-hook="$trim" \
    --customize-hook='mkdir -p "$1/tmp" && chmod 1777 "$1/tmp"' \
    "$SUITE" "$work/runtime.tar"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    "$work/runtime.tar" "$RUNTIME_IMAGE" >/dev/null
fi

if exists "$BUILD_IMAGE"; then
  echo "== $BUILD_IMAGE exists"
else
  echo "== $BUILD_IMAGE"
  sysroot=$(rustc --print sysroot)
  echo "toolchain: $(rustc --version) from $sysroot"
  mmdebstrap --quiet --variant=minbase --include=gcc,libc6-dev,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook="tar -C '$sysroot' --exclude=./share/doc -c . | tar -C \"\$1/usr/local\" -x --no-same-owner" \
    --customize-hook="$trim" \
    "$SUITE" "$work/build.tar"
  podman import --quiet \
    --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/bin:/usr/bin:/bin' \
    --change 'ENV CARGO_HOME=/usr/local/cargo' \
    "$work/build.tar" "$BUILD_IMAGE" >/dev/null
fi

podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^localhost/micro-base-'

#!/usr/bin/env bash
# Base images from Debian packages, for engines that cannot pull from a container registry.
#
#   scripts/base-images.sh        build what is missing, print the image names
#   FORCE=1 scripts/base-images.sh   rebuild all three from scratch
#
# Builds, on the engine DOCKER_HOST points at (scripts/dockerd.sh env):
#   spotify-local/debian:bookworm        debootstrap --variant=minbase bookworm, `docker import`ed
#   spotify-local/python:3.11-bookworm   + Debian's python3.11 (deploy/base-images/python.Dockerfile);
#                                        the project image's BASE_IMAGE
#   spotify-local/postgres:15-bookworm   + Debian's postgresql-15 and an entrypoint that honours
#                                        POSTGRES_USER/PASSWORD/DB (deploy/base-images/postgres.Dockerfile)
# Needs root (debootstrap) and a Debian mirror (DEBIAN_MIRROR, default http://deb.debian.org/debian;
# packages are verified with the Debian archive keyring, as apt does). Idempotent: the
# debootstrap runs once per engine, the two builds are cached.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_IMAGE=spotify-local/debian:bookworm
PYTHON_IMAGE=spotify-local/python:3.11-bookworm
POSTGRES_IMAGE=spotify-local/postgres:15-bookworm

say() { echo "base-images.sh: $*" >&2; }
die() { echo "base-images.sh: ERROR: $*" >&2; exit 1; }

have() { [ -z "${FORCE:-}" ] && docker image inspect "$1" >/dev/null 2>&1; }

docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
  || die "no Docker engine at ${DOCKER_HOST:-the default socket} (run scripts/dockerd.sh start and eval \"\$(scripts/dockerd.sh env)\")"

if ! have "$DEBIAN_IMAGE"; then
  [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
  if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap; } \
      >/dev/null || die "apt-get install debootstrap failed"
  fi
  t0=$SECONDS
  rootfs="$(mktemp -d "${TMPDIR:-/tmp}/spotify-rootfs.XXXXXX")"
  trap 'rm -rf "$rootfs"' EXIT
  say "debootstrap --variant=minbase bookworm from $MIRROR"
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 \
    || { tail -20 "$rootfs.log" >&2; die "debootstrap failed (log $rootfs.log)"; }
  rm -f "$rootfs.log"
  # Same trims as Debian's official images: no apt lists or caches in the layer.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
    "$MIRROR" "$MIRROR" >"$rootfs/etc/apt/sources.list"
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$DEBIAN_IMAGE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  say "$DEBIAN_IMAGE imported in $((SECONDS - t0))s"
fi

# Always `docker build`: the engine's layer cache makes an unchanged image a no-op (~1 s), and an
# edited Dockerfile or entrypoint is picked up.
build() {
  local image="$1" dockerfile="$2" t0=$SECONDS
  say "building $image"
  docker build ${FORCE:+--no-cache} --force-rm --network host --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" -t "$image" \
    -f "$REPO_ROOT/deploy/base-images/$dockerfile" "$REPO_ROOT/deploy/base-images" >"${TMPDIR:-/tmp}/spotify-base-$$.log" 2>&1 \
    || { tail -30 "${TMPDIR:-/tmp}/spotify-base-$$.log" >&2; die "docker build of $image failed"; }
  rm -f "${TMPDIR:-/tmp}/spotify-base-$$.log"
  say "$image built in $((SECONDS - t0))s"
}

build "$PYTHON_IMAGE" python.Dockerfile
build "$POSTGRES_IMAGE" postgres.Dockerfile
echo "$PYTHON_IMAGE"
echo "$POSTGRES_IMAGE"

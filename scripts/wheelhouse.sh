#!/usr/bin/env bash
# The wheelhouse: every wheel the image needs, downloaded on the host, so `docker build`
# installs with --no-index and reaches no package index (air-gapped builds, and engines whose
# builds cannot verify the index's certificate).
#
#   scripts/wheelhouse.sh [DIR]   fill DIR (default wheelhouse/ in the build context, git-ignored)
#
# Contents: the image's runtime requirements only (pyproject.toml's dependencies at the versions
# requirements.lock pins; none of the dev extras: pytest, ruff, mypy, playwright, emulators),
# uv at the Makefile's version, and setuptools (the build backend of the project itself).
# `pip wheel` takes the index's wheels and builds the few sdist-only packages (pyspark) into
# wheels, for the host's interpreter and platform: run it with a CPython 3.11 on Linux x86_64
# with glibc >= 2.36 (Debian bookworm, like the image). Copy the folder to an air-gapped machine
# with the checkout and `docker build` there.
#
# Cache: the wheels are kept under $SPOTIFY_CACHE_DIR/wheelhouse/<key> (default
# /var/tmp/spotify-listening-platform/wheelhouse/<key>), the key a hash of requirements.lock,
# pyproject.toml and the uv version; DIR receives hard links to them. An unchanged lock costs no
# download at all, and DIR's bytes are the same as last time, so the image's dependency layer
# stays cached in the engine (pyspark's wheel, built from its sdist, is not byte-reproducible).
# A new key takes its wheels from the previous keys when they hold every pin (no download), else
# from the index. The two newest keys are kept.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${1:-$REPO_ROOT/wheelhouse}"
CACHE_ROOT="${SPOTIFY_CACHE_DIR:-/var/tmp/spotify-listening-platform}/wheelhouse"
PY="${PYTHON:-$REPO_ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
say() { echo "wheelhouse.sh: $*" >&2; }
die() { echo "wheelhouse.sh: ERROR: $*" >&2; exit 1; }

"$PY" -c 'import sys, platform; sys.exit(sys.version_info[:2] != (3, 11) or platform.machine() != "x86_64")' \
  || die "$PY is not CPython 3.11 on x86_64 (the image's interpreter)"
UV_VERSION="$(sed -n 's/^UV_VERSION := //p' "$REPO_ROOT/Makefile")"
[ -n "$UV_VERSION" ] || die "no UV_VERSION in the Makefile"

key="$(cat "$REPO_ROOT/requirements.lock" "$REPO_ROOT/pyproject.toml" <(echo "uv==$UV_VERSION") | sha1sum | cut -c1-12)"
CACHE="$CACHE_ROOT/$key"
t0=$SECONDS

if [ ! -f "$CACHE/.complete" ]; then
  mkdir -p "$CACHE"
  reqs="$CACHE/requirements.txt"
  # Runtime requirements only, each at the lock's pin: the same resolution the Dockerfile's
  # builder stage makes (uv pip compile pyproject.toml -c requirements.lock).
  uv="$REPO_ROOT/.venv/bin/uv"
  [ -x "$uv" ] || uv="$(command -v uv || true)"
  [ -n "$uv" ] || die "no uv (run make venv)"
  "$uv" pip compile -q --no-header --no-annotate pyproject.toml -c requirements.lock --python-version 3.11 \
    -o "$reqs.tmp" || die "uv pip compile of the runtime requirements failed"
  grep -E '^[A-Za-z0-9_.-]+(\[[^]]*\])?==' "$reqs.tmp" >"$reqs"
  rm -f "$reqs.tmp"
  echo "uv==$UV_VERSION" >>"$reqs"
  echo "setuptools>=68" >>"$reqs"
  # Wheels an earlier key already holds are reused (pip wheel copies a found wheel).
  links=()
  for d in "$CACHE_ROOT"/*/; do [ "${d%/}" != "$CACHE" ] && links+=(--find-links "${d%/}"); done
  # First from the earlier keys alone (a pyproject edit that changes no pin downloads nothing);
  # when a pin is new, from the index.
  if [ "${#links[@]}" -gt 0 ] && "$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-index \
    "${links[@]}" -r "$reqs" -w "$CACHE" >/dev/null 2>&1; then
    say "every wheel came from an earlier key's cache"
  else
    say "downloading $(wc -l <"$reqs") runtime requirements into $CACHE"
    "$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps --find-links "$CACHE" "${links[@]}" \
      -r "$reqs" -w "$CACHE" 2>&1 | { grep -v "^WARNING: Location" >&2 || true; } \
      || die "pip wheel failed (see above)"
  fi
  touch "$CACHE/.complete"
  say "$(find "$CACHE" -name '*.whl' | wc -l) wheels, $(du -sh "$CACHE" | cut -f1), in $((SECONDS - t0))s"
  # Keep the two newest keys.
  find "$CACHE_ROOT" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' | sort -rn | tail -n +3 | cut -d' ' -f2- \
    | while read -r old; do rm -rf "$old"; say "removed the old wheelhouse $old"; done
fi

# DEST holds exactly the cached wheels (hard links when on the same file system).
mkdir -p "$DEST"
find "$DEST" -maxdepth 1 \( -name '*.whl' -o -name '.complete-*' \) -delete
cp -al "$CACHE"/*.whl "$DEST"/ 2>/dev/null || cp -a "$CACHE"/*.whl "$DEST"/
say "$DEST: $(find "$DEST" -name '*.whl' | wc -l) wheels ($(du -sh "$CACHE" | cut -f1)) for key $key, in $((SECONDS - t0))s"

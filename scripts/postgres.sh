#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests (Dagster instance storage on real Postgres).
#
#   scripts/postgres.sh start DIR PORT [DBNAME]   init DIR (once), start on 127.0.0.1:PORT,
#                                                 create DBNAME (default "dagster"), print its URL
#   scripts/postgres.sh stop DIR                  stop the server started from DIR
#
# Trust auth on loopback only, no fsync: this server holds test data and nothing else.
# The server binaries are the machine's (initdb/pg_ctl on PATH, else /usr/lib/postgresql/*/bin);
# this script installs nothing (scripts/test-services.sh installs the postgresql package).
# initdb and postgres refuse to run as root, so as root everything runs as the unprivileged "postgres" user (created if
# missing) and DIR is chown'ed to it; DIR must then be reachable by that user (a fresh
# directory directly under /tmp is; pytest's tmp_path, under a 0700 directory, is not).
# Exit codes: 0 ok, 2 usage, 3 no PostgreSQL binaries available, 1 anything else.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR PORT [DBNAME] | stop DIR" >&2
  exit 2
}

find_bindir() {
  local initdb
  if initdb="$(command -v initdb 2>/dev/null)" && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$initdb")"
    return 0
  fi
  local d
  # Highest installed major version first.
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

bindir() {
  local d
  if d="$(find_bindir)"; then
    echo "$d"
    return 0
  fi
  echo "postgres.sh: no PostgreSQL server binaries (initdb, pg_ctl) found; scripts/test-services.sh installs them" >&2
  exit 3
}

# The account the server runs as: ourselves, or "postgres" when we are root.
RUN_AS=""
setup_user() {
  if [ "$(id -u)" -ne 0 ]; then
    return
  fi
  RUN_AS="postgres"
  if ! id -u "$RUN_AS" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$RUN_AS"
  fi
}

as_server_user() {
  if [ -n "$RUN_AS" ]; then
    runuser -u "$RUN_AS" -- "$@"
  else
    "$@"
  fi
}

start() {
  local dir="$1" port="$2" db="${3:-dagster}"
  [[ "$port" =~ ^[0-9]+$ ]] || usage
  local bin
  bin="$(bindir)"
  setup_user
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [ -n "$RUN_AS" ]; then
    chown "$RUN_AS" "$dir"
    chmod 0700 "$dir"
    if ! as_server_user test -w "$dir"; then
      echo "postgres.sh: $dir is not reachable by user $RUN_AS (a parent directory is private)" >&2
      exit 1
    fi
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_server_user "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale -N >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
  fi
  # Unix socket inside DIR (the default /var/run/postgresql may not exist or be writable).
  local opts="-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  opts+=" -c max_connections=100"
  if as_server_user "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    : # already running (a second `start` is a no-op)
  elif ! as_server_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$opts" -w -t 60 start >/dev/null; then
    cat "$dir/server.log" >&2 || true
    exit 1
  fi
  if ! as_server_user "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    as_server_user "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
  fi
  echo "postgresql://postgres@127.0.0.1:$port/$db"
}

stop() {
  local dir="$1"
  [ -f "$dir/data/PG_VERSION" ] || return 0
  local bin
  bin="$(bindir)"
  setup_user
  as_server_user "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

case "${1:-}" in
  start)
    [ $# -ge 3 ] || usage
    start "$2" "$3" "${4:-dagster}"
    ;;
  stop)
    [ $# -ge 2 ] || usage
    stop "$2"
    ;;
  *) usage ;;
esac

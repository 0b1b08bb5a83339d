#!/usr/bin/env bash
# A BigQuery emulator that executes SQL (bqemulator, DuckDB-backed), for tests and `make cloud-demo`.
#
#   scripts/bigquery-emulator.sh install                       create/refresh its venv (idempotent)
#   scripts/bigquery-emulator.sh start DIR PORT GRPC_PORT GCS_ROOT [PROJECT]
#        install if needed, start on 127.0.0.1:PORT (REST) and GRPC_PORT (Storage Read/Write API),
#        resolve gs://BUCKET/NAME as GCS_ROOT/BUCKET/NAME (the GCS emulator's disk store), wait
#        until it answers, print its URL. pid in DIR/pid, log in DIR/emulator.log
#   scripts/bigquery-emulator.sh stop DIR                      stop the emulator started with DIR
#
# The emulator gets its own virtual environment ($BQEMU_VENV, default .venv-bqemulator at the repo
# root) from scripts/bigquery-emulator.lock: it pins sqlglot and grpcio-tools below the project's
# lock. It loads DuckDB's spatial extension at start and would download it; the extension comes
# from PyPI (duckdb-extension-spatial) and is placed in a private HOME so nothing is downloaded.
# scripts/bigquery_emulator_launcher.py starts it with two narrow fixes (see that file).
# Exit codes: 0 ok, 2 usage, 1 anything else (install or start failure: loud, never a skip).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BQEMU_VENV:-$ROOT/.venv-bqemulator}"
LOCK="$ROOT/scripts/bigquery-emulator.lock"
LAUNCHER="$ROOT/scripts/bigquery_emulator_launcher.py"
PY="${PY:-python3}"

usage() {
  echo "usage: $0 install | start DIR PORT GRPC_PORT GCS_ROOT [PROJECT] | stop DIR" >&2
  exit 2
}

install() {
  local stamp="$VENV/.installed"
  if [ -f "$stamp" ] && cmp -s "$LOCK" "$stamp"; then
    return 0
  fi
  echo "bigquery-emulator: installing into $VENV" >&2
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  if [ -x "$ROOT/.venv/bin/uv" ]; then
    "$ROOT/.venv/bin/uv" pip install -q --python "$VENV/bin/python" -r "$LOCK" >&2
  else
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$LOCK" >&2
  fi
  # DuckDB looks for extensions in $HOME/.duckdb/extensions/<version>/<platform>/.
  "$VENV/bin/python" - "$VENV/home" <<'PYEOF'
import shutil, sys
from pathlib import Path
import duckdb, duckdb_extension_spatial
version = "v" + duckdb.__version__
platform = duckdb.execute("PRAGMA platform").fetchone()[0]
src = next(Path(duckdb_extension_spatial.__file__).parent.rglob("spatial.duckdb_extension"))
dest = Path(sys.argv[1]) / ".duckdb" / "extensions" / version / platform
dest.mkdir(parents=True, exist_ok=True)
shutil.copyfile(src, dest / "spatial.duckdb_extension")
PYEOF
  cp "$LOCK" "$stamp"
}

start() {
  local dir="$1" port="$2" grpc_port="$3" gcs_root="$4" project="${5:-spotify-local}"
  [[ "$port" =~ ^[0-9]+$ && "$grpc_port" =~ ^[0-9]+$ ]] || usage
  install
  mkdir -p "$dir" "$gcs_root"
  dir="$(cd "$dir" && pwd)"
  local url="http://127.0.0.1:$port"
  # Own session (setsid): `stop` can end the emulator and anything it started, and a Ctrl-C
  # in the caller's terminal reaches the caller, which stops it in order.
  HOME="$VENV/home" BQEMU_GCS_LOCAL_ROOT="$(cd "$gcs_root" && pwd)" BQEMU_LOG_LEVEL=warning \
    setsid "$VENV/bin/python" "$LAUNCHER" start --rest-host 127.0.0.1 --rest-port "$port" \
    --grpc-host 127.0.0.1 --grpc-port "$grpc_port" --project "$project" \
    >"$dir/emulator.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  local deadline=$((SECONDS + 120))
  until "$VENV/bin/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
    "$url/bigquery/v2/projects/$project/datasets" 2>/dev/null; do
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      echo "bigquery-emulator: exited during start-up:" >&2
      tail -n 40 "$dir/emulator.log" >&2
      exit 1
    fi
    if ((SECONDS > deadline)); then
      echo "bigquery-emulator: no answer on $url after 120 s:" >&2
      tail -n 40 "$dir/emulator.log" >&2
      stop "$dir"
      exit 1
    fi
    sleep 0.2
  done
  echo "$url"
}

stop() {
  local dir="$1" pid
  [ -f "$dir/pid" ] || return 0
  pid="$(cat "$dir/pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pid"
}

case "${1:-}" in
  install) install ;;
  start)
    [ $# -ge 5 ] || usage
    start "$2" "$3" "$4" "$5" "${6:-spotify-local}"
    ;;
  stop)
    [ $# -ge 2 ] || usage
    stop "$2"
    ;;
  *) usage ;;
esac

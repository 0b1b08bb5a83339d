#!/usr/bin/env bash
# A private Docker engine for the container tests (make compose-test), never the machine's own.
#
#   scripts/dockerd.sh start   install docker.io if missing (apt, as root), start dockerd on a
#                              private socket with its data under $SPOTIFY_DOCKER_ROOT, wait
#                              until it answers; a second start reuses the running engine
#   scripts/dockerd.sh stop    stop the engine this script started (by the PID in its pidfile)
#   scripts/dockerd.sh env     print `export DOCKER_HOST=...` for the private socket
#   scripts/dockerd.sh check   exit 0 if `start` can work here (running already, or root with
#                              dockerd or apt-get), else the loud exit 3, before anything is touched
#
# Nothing beyond the host: --bridge=none --iptables=false --ip-forward=false --ip-masq=false, so
# there is no default docker0 bridge, no firewall rule is touched and nothing is routed or
# masqueraded off the machine. Compose's own (user-defined) bridge network still works: the
# stack's containers reach each other and the host's side of that bridge, and docker-proxy
# serves the ports published on 127.0.0.1 (checked: a container's connection to a public
# address times out). Its images, containers and volumes live under
# SPOTIFY_DOCKER_ROOT (default $SPOTIFY_CACHE_DIR/docker, i.e.
# /var/tmp/spotify-listening-platform/docker): one per machine, shared by every checkout and
# kept between runs, so the next run (of any clone) reuses the base images and the image's
# dependency layer; remove the folder (after `stop`) to reclaim the disk (~7 GB).
#
# Exit codes: 0 ok, 2 usage, 3 this machine cannot run dockerd (said loudly on stderr).
set -euo pipefail

default_root="${SPOTIFY_CACHE_DIR:-/var/tmp/spotify-listening-platform}/docker"
ROOT="${SPOTIFY_DOCKER_ROOT:-$default_root}"
SOCK="$ROOT/docker.sock"
PIDFILE="$ROOT/dockerd.pid"
LOG="$ROOT/dockerd.log"

say() { echo "dockerd.sh: $*" >&2; }
cannot() {
  echo "" >&2
  echo "dockerd.sh: *** THIS MACHINE CANNOT RUN A DOCKER ENGINE: $* ***" >&2
  echo "" >&2
  exit 3
}

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

install_engine() {
  command -v dockerd >/dev/null 2>&1 && return 0
  [ "$(id -u)" -eq 0 ] || cannot "dockerd is not installed and installing it needs root (apt-get install docker.io)"
  command -v apt-get >/dev/null 2>&1 || cannot "dockerd is not installed and there is no apt-get"
  say "installing docker.io (Debian package)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io; } \
    >"${TMPDIR:-/tmp}/spotify-docker-apt.log" 2>&1 \
    || { tail -20 "${TMPDIR:-/tmp}/spotify-docker-apt.log" >&2; cannot "apt-get install docker.io failed"; }
}

check() {
  running && return 0
  [ "$(id -u)" -eq 0 ] || cannot "dockerd needs root here (no rootless set-up); run as root, or on a machine that can"
  command -v dockerd >/dev/null 2>&1 || command -v apt-get >/dev/null 2>&1 \
    || cannot "dockerd is not installed and there is no apt-get to install docker.io"
}

start() {
  mkdir -p "$ROOT"
  if running; then
    say "already running (pid $(cat "$PIDFILE")) on unix://$SOCK"
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || cannot "dockerd needs root here (no rootless set-up)"
  install_engine
  command -v docker >/dev/null 2>&1 || cannot "no docker client on PATH"
  rm -f "$PIDFILE" "$SOCK"
  local t0=$SECONDS
  # setsid: its own session, so Ctrl-C in the calling terminal does not reach it; `stop` ends it.
  setsid dockerd \
    --host "unix://$SOCK" \
    --data-root "$ROOT/data" \
    --exec-root "$ROOT/exec" \
    --pidfile "$PIDFILE" \
    --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
    --storage-driver overlay2 \
    --log-level warn \
    </dev/null >"$LOG" 2>&1 &
  local pid=$!
  for _ in $(seq 1 120); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -30 "$LOG" >&2
      cannot "dockerd exited at start (log above, full log in $LOG)"
    fi
    if DOCKER_HOST="unix://$SOCK" docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
      say "dockerd $(DOCKER_HOST="unix://$SOCK" docker version --format '{{.Server.Version}}') ready in $((SECONDS - t0))s (pid $pid, data $ROOT/data)"
      return 0
    fi
    sleep 0.5
  done
  tail -30 "$LOG" >&2
  kill "$pid" 2>/dev/null || true
  cannot "dockerd did not answer on unix://$SOCK within 60s"
}

stop() {
  if ! running; then
    say "not running"
    return 0
  fi
  local pid
  pid="$(cat "$PIDFILE")"
  kill "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { say "stopped (pid $pid)"; return 0; }
    sleep 0.5
  done
  say "pid $pid did not stop within 30s; killing it"
  kill -9 "$pid" 2>/dev/null || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) echo "export DOCKER_HOST=unix://$SOCK" ;;
  check) check ;;
  *)
    echo "usage: $0 start | stop | env | check" >&2
    exit 2
    ;;
esac

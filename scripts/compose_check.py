"""The checks ``scripts/compose-test.sh`` runs against the started stack (host side).

The stack is the shipped ``docker-compose.yaml`` as users run it, with a ``deploy/.env`` made
from ``deploy/.env.example`` (``configure``, below) and one added service, the sandbox API
(``deploy/compose-test.yaml``). Every run is requested by the stack's new-plays sensor (on by
default, once a minute) for the listener added through the stack's own Dagster webserver
(GraphQL), queued and dequeued by its daemon and executed in its code-location container (Spark
driver) on its Spark master/worker; the warehouse is read inside the stack (``docker compose
exec``), or from the BigQuery emulator in cloud mode. What is checked, exactly:

0. the image runs what it ships: ``scripts/image_imports.py`` imports every module of the
   installed packages and the dashboard's folder (found by walking them) inside the streamlit
   container.
1. run 1: the plays in the warehouse are exactly the sandbox's plays of the window the run
   saw, normalized by the pipeline's own code (same play keys, no duplicate); the top ten has
   ten ranked rows whose play counts are the ten highest per-track counts of those plays;
   the dashboard's snapshot has the same number of plays (local mode). The top ten ran warm,
   through the stack's Spark Connect server: the run's own log says the step ran on the Connect
   server (not the in-process fallback), the Spark master lists the server's application with
   cores on the worker and no application of a fallback driver. The server and the worker read
   the job's input from files the code location wrote on the shared spark-exchange volume, so a
   service that cannot see them fails the run.
2. the code location and the daemon are restarted; the sandbox clock moves on; run 2, the
   run the sensor requests next, adds exactly the new plays (the key sets are equal again, nothing
   twice, nothing lost) and the dashboard follows; its top ten ran on the same Connect
   application (the server outlives code-location restarts, so it stays warm).
3. the dashboard as a user opens it: headless Chromium against the streamlit container's
   published port signs in through a real OpenID Connect provider (``oidc-provider-mock``,
   served from here on the host's side of the compose network, where the container reaches it),
   opens every page the sidebar lists and an artist page by its link, waits for each run to end
   (Streamlit's script state, no fixed sleep) and finds no exception box; the Overview's total
   plays and its top artist's play count equal the same figures read from the warehouse with a
   query of this file (DuckDB in the streamlit container on its snapshot, or the BigQuery
   emulator in cloud mode, where the dashboard reads BigQuery).

4. the door (the scrobble-server service) as a scrobbler meets it: a household member is added
   with ``spotify-assets users add`` in the code-location container (the sandbox's consent page
   stands in for Spotify's), their scrobbler token minted with ``spotify-assets users token`` in
   the scrobble-server container; through the published port, ``GET /1/validate-token`` knows
   them, a bad token gets ListenBrainz's 401 shape, a ``single`` listen of a track the sandbox
   never plays and a ``playing_now`` are accepted. The stack's ``scrobble_inbox_sensor`` (on the
   code location, reading the inbox on the shared data volume) requests a run that puts the
   listen in the warehouse exactly once, as a play without a Spotify id (and nothing else: one
   play more in all, the ``playing_now`` not among them); the dashboard's container shows the
   ``playing_now`` as "now playing". The same listen sent again (a scrobbler's retry) starts no
   run: a sensor tick after it passes with no run and the listen is still there once.

Two runs, not three: a run with nothing new at the API (adds 0) is covered by the in-process
tests of the merge; here every run costs a Spark job on the cluster.

Commands: ``configure`` (write the stack's ``deploy/.env`` from the example, the login file and
the empty key files, 0600, in the temp project folder), ``provision`` (cloud mode: the bucket and
the two datasets, Terraform's job in the cloud) and ``check``. Configuration: SPOTIFY_STACK_ENV,
the test's own env file written by compose-test.sh (ports, deployment, the project folder, the
compose network's gateway), and SPOTIFY_STACK_COMPOSE (the ``docker compose ...`` prefix).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from spark.connect_server import APP_NAME as CONNECT_APP_NAME
from spotify_assets.partitions import USERS_PARTITIONS_NAME
from spotify_assets.play_sources import SCROBBLE_SERVER
from spotify_assets.resources.spark import SparkResource
from spotify_assets.schema import ALL_LISTENERS, PLAYS_TABLE, TOP_TEN_TABLE
from spotify_assets.scrobble_inbox_sensor import scrobble_inbox_sensor
from spotify_assets.scrobbles.server import SUBMIT_PATH, VALIDATE_PATH
from spotify_assets.sensors import new_plays_sensor
from spotify_assets.spotify.normalize import for_user, normalize_recently_played
from spotify_sandbox.constants import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from spotify_sandbox.listener import DEFAULT_LISTENER

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCATION = "spotify_assets"
RUN_TIMEOUT_S = 900
#: How far the sandbox clock moves between the runs (fewer plays than the API's 50).
ADVANCE = timedelta(minutes=45)
#: The sandbox service of deploy/compose-test.yaml, as the containers reach it.
SANDBOX_URL = "http://sandbox:8000"

#: One SQL text per question, run by DuckDB inside the stack (local) or by the BigQuery emulator
#: (cloud); ``{t}`` is the table-name prefix: "" in DuckDB, the quoted dataset in BigQuery.
PLAYS_SQL = f"SELECT play_key FROM {{t}}{PLAYS_TABLE}"
OLDEST_SQL = f"SELECT min(played_at) FROM {{t}}{PLAYS_TABLE}"
PER_TRACK_SQL = f"SELECT count(*) AS n FROM {{t}}{PLAYS_TABLE} GROUP BY track_id ORDER BY n DESC LIMIT 10"
#: Everyone's ranking (the mart also holds each listener's own, the same ten for one listener).
TOP_SQL = f"SELECT rank, plays FROM {{t}}{TOP_TEN_TABLE} WHERE user_id = '{ALL_LISTENERS}' ORDER BY rank"

#: The dashboard's two headline figures, written here independently of app/queries.py: every
#: counted music play (a play of 30 s or more, podcasts apart) and the most played artist's plays.
TOTAL_SQL = f"SELECT count(*) FROM {{t}}{PLAYS_TABLE} WHERE is_play AND content_type <> 'episode'"
TOP_ARTIST_SQL = (
    f"SELECT primary_artist_id, any_value(primary_artist_name), count(*) AS n FROM {{t}}{PLAYS_TABLE} "
    "WHERE is_play AND content_type <> 'episode' AND primary_artist_id IS NOT NULL "
    "GROUP BY primary_artist_id ORDER BY n DESC"
)

FIGURES_QUERY = f"""
import json, duckdb
con = duckdb.connect("/opt/dagster/data/warehouse.snapshot.duckdb", read_only=True)
total = con.execute({TOTAL_SQL.format(t="")!r}).fetchone()[0]
artists = con.execute({TOP_ARTIST_SQL.format(t="")!r}).fetchall()
print(json.dumps({{"total": total, "artists": artists}}))
"""

WAREHOUSE_QUERY = f"""
import json, duckdb
con = duckdb.connect("/opt/dagster/data/warehouse.duckdb", read_only=True)
keys = [r[0] for r in con.execute({PLAYS_SQL.format(t="")!r}).fetchall()]
oldest = con.execute({OLDEST_SQL.format(t="")!r}).fetchone()[0]
per_track = [r[0] for r in con.execute({PER_TRACK_SQL.format(t="")!r}).fetchall()]
top = con.execute({TOP_SQL.format(t="")!r}).fetchall()
print(json.dumps({{"keys": keys, "oldest": oldest.isoformat() if oldest else None,
                   "per_track": per_track, "top": top}}))
"""

SNAPSHOT_QUERY = f"""
import duckdb
con = duckdb.connect("/opt/dagster/data/warehouse.snapshot.duckdb", read_only=True)
print(con.execute("SELECT count(*) FROM {PLAYS_TABLE}").fetchone()[0])
"""


def stack_env() -> dict[str, str]:
    """The stack's env file (KEY=VALUE lines), written by compose-test.sh."""
    env: dict[str, str] = {}
    for line in Path(os.environ["SPOTIFY_STACK_ENV"]).read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            env[key.strip()] = value.strip()
    return env


ENV = stack_env()
CLOUD = ENV.get("SPOTIFY_STACK_DEPLOYMENT", "local") == "cloud"


def say(msg: str) -> None:
    print(f"compose_check: {msg}", flush=True)


def fail(msg: str) -> None:
    print(f"compose_check: FAILED: {msg}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def compose(*args: str, timeout: float = 300, stdin: str | None = None) -> str:
    argv = [*shlex.split(os.environ["SPOTIFY_STACK_COMPOSE"]), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=stdin)
    if proc.returncode != 0:
        fail(f"{' '.join(args)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


#: A request to the sandbox's controls, made inside the sandbox container: they answer loopback
#: clients only (a request through the published port would come from the network's gateway).
SANDBOX_CALL = """
import sys, urllib.request
data = sys.argv[2].encode() if len(sys.argv) > 2 else None
req = urllib.request.Request("http://127.0.0.1:8000/_sandbox/" + sys.argv[1], data=data,
                             headers={"Content-Type": "application/json"})
print(urllib.request.urlopen(req, timeout=30).read().decode())
"""


def sandbox(path: str, body: dict[str, Any] | None = None) -> Any:
    args = [path] if body is None else [path, json.dumps(body)]
    out = compose("exec", "-T", "sandbox", "python", "-c", SANDBOX_CALL, *args)
    return json.loads(out.strip().splitlines()[-1])


def graphql(query: str, variables: dict[str, Any]) -> dict[str, Any]:
    url = f"http://127.0.0.1:{ENV['SPOTIFY_STACK_WEB_PORT']}/graphql"
    req = urllib.request.Request(
        url,
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - http://127.0.0.1 only
            answer: dict[str, Any] = json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # GraphQL validation errors come as 400 with a body
        raise RuntimeError(f"HTTP {exc.code}: {exc.read()[:2000]!r}") from exc
    if answer.get("errors"):
        raise RuntimeError(json.dumps(answer["errors"])[:2000])
    return answer["data"]


ADD_PARTITION = """
mutation AddPartition($repositorySelector: RepositorySelector!, $partitionsDefName: String!, $partitionKey: String!) {
  addDynamicPartition(
    repositorySelector: $repositorySelector, partitionsDefName: $partitionsDefName, partitionKey: $partitionKey
  ) {
    __typename
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""

SENSOR_RUNS = """
query SensorRuns($filter: RunsFilter) {
  runsOrError(filter: $filter, limit: 20) {
    __typename
    ... on Runs { results { runId status creationTime } }
  }
}
"""

#: The tag Dagster puts on every run a sensor requests.
SENSOR_TAG = "dagster/sensor_name"

EVENTS = """
query Events($runId: ID!, $cursor: String) {
  logsForRun(runId: $runId, afterCursor: $cursor, limit: 1000) {
    __typename
    ... on EventConnection { cursor hasMore events { __typename ... on MessageEvent { message timestamp stepKey } } }
    ... on PythonError { message }
  }
}
"""

#: The top-ten step, and what SparkResource logs when it runs there (describe_session).
TOP_TEN_STEP = "top_ten_tracks"
ON_CONNECT = "Running top-ten on the Spark Connect server"


def run_pipeline(label: str, since: float = 0.0) -> tuple[str, float]:
    """Add the sandbox listener's ``users`` partition through the webserver (as ``demo``/``dev``/
    ``users add`` would) and wait for the run the stack's new-plays sensor requests for it, as a
    user of the stack meets it: the sensor is on by default and asks Spotify once a minute, and its
    run is queued and dequeued by the daemon (the stack may have added the partition itself, so its
    first run can come before this is called). Returns the id of the first sensor run created after
    ``since`` (wall time; 0: the stack's first) and the seconds this waited for every such run to end."""
    added = {
        "repositorySelector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"},
        "partitionsDefName": USERS_PARTITIONS_NAME,
        "partitionKey": DEFAULT_LISTENER.user_id,
    }
    t0 = time.monotonic()
    # Right after a restart the webserver may still be reloading the code location: retry.
    deadline = t0 + 180
    while True:
        try:
            partition = graphql(ADD_PARTITION, added)["addDynamicPartition"]["__typename"]
        except (OSError, RuntimeError) as exc:
            partition = str(exc)
        if partition in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            break
        if time.monotonic() > deadline:
            fail(f"{label}: could not add the listener's partition: {partition}")
        time.sleep(3)
    return wait_for_sensor_run(label, new_plays_sensor.name, "the new-plays sensor", since, t0)


def sensor_runs(sensor: str, since: float) -> list[dict[str, Any]]:
    """The runs ``sensor`` requested, created at or after ``since`` (wall time), oldest first."""
    answer = graphql(SENSOR_RUNS, {"filter": {"tags": [{"key": SENSOR_TAG, "value": sensor}]}})
    return sorted(
        (r for r in answer["runsOrError"]["results"] if r["creationTime"] >= since),
        key=lambda r: r["creationTime"],
    )


def wait_for_sensor_run(label: str, sensor: str, what: str, since: float, t0: float) -> tuple[str, float]:
    """Wait until ``sensor`` requested a run after ``since`` and every such run ended; the first
    must have succeeded. Returns its id and the seconds since ``t0`` (monotonic)."""
    runs: list[dict[str, Any]] = []
    while time.monotonic() - t0 < RUN_TIMEOUT_S:
        runs = sensor_runs(sensor, since)
        if runs and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs):
            break
        time.sleep(3)
    took = time.monotonic() - t0
    if not runs:
        logs = compose("logs", "--tail", "80", "dagster-daemon")
        fail(f"{label}: {what} requested no run within {RUN_TIMEOUT_S}s\n{logs}")
    run_id, status = runs[0]["runId"], runs[0]["status"]
    if status != "SUCCESS":
        logs = compose("logs", "--tail", "80", "code-location", "dagster-daemon")
        fail(
            f"{label}: the sensor's run {run_id} ended {status or 'not within the timeout'} after {took:.0f}s\n{logs}"
        )
    say(
        f"{label}: {what} requested run {run_id} (queued for the daemon): SUCCESS, "
        f"{took:.0f}s waited for it"
        + (f"; {len(runs) - 1} more sensor run(s) since, all ended" if len(runs) > 1 else "")
    )
    return run_id, took


def run_events(run_id: str) -> list[dict[str, Any]]:
    """Every message event of the run (the log the UI shows), in order."""
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = graphql(EVENTS, {"runId": run_id, "cursor": cursor})["logsForRun"]
        if page["__typename"] != "EventConnection":
            fail(f"the log of run {run_id}: {page}")
        events += [e for e in page["events"] if "message" in e]
        cursor = page["cursor"]
        if not page["hasMore"]:
            return events


def check_top_ten_ran_on_the_connect_server(label: str, run_id: str) -> tuple[str, float]:
    """The run's top ten ran warm, through the stack's Spark Connect server; returns the
    server's application id and the step's duration.

    Three independent witnesses: the step's own log line (SparkResource names where the session
    runs, and warns when it falls back), the master's application list (the server's application
    is alive with cores granted on the worker), and no application of a fallback driver (which
    registers with the master under SparkResource's app name).
    """
    step = [e for e in run_events(run_id) if e.get("stepKey") == TOP_TEN_STEP]
    messages = [e["message"] for e in step]
    fallback = [m for m in messages if "using an in-process session" in m]
    if fallback or not any(ON_CONNECT in m for m in messages):
        fail(f"{label}: the top ten did not run on the Spark Connect server; its step logged: {messages}")
    kinds = {e["__typename"]: float(e["timestamp"]) for e in step}
    if not {"ExecutionStepStartEvent", "ExecutionStepSuccessEvent"} <= set(kinds):
        fail(f"{label}: no start/success events for step {TOP_TEN_STEP}: {sorted(kinds)}")
    seconds = (kinds["ExecutionStepSuccessEvent"] - kinds["ExecutionStepStartEvent"]) / 1000
    url = f"http://127.0.0.1:{ENV['SPOTIFY_STACK_SPARK_UI_PORT']}/json/"
    with urllib.request.urlopen(url, timeout=30) as resp:
        master = json.loads(resp.read())
    active = master.get("activeapps", [])
    names = [a.get("name") for a in [*active, *master.get("completedapps", [])]]
    connect = [a for a in active if a.get("name") == CONNECT_APP_NAME]
    if len(connect) != 1 or not connect[0].get("cores"):
        fail(
            f"{label}: the Spark master has no running Connect application with cores (its applications: {active})"
        )
    if SparkResource().app_name in names:
        fail(
            f"{label}: a fallback driver ran {SparkResource().app_name!r} on the master (applications: {names})"
        )
    workers = [w for w in master.get("workers", []) if w.get("state") == "ALIVE"]
    app_id = str(connect[0]["id"])
    say(
        f"{label}: top ten ran through the Spark Connect server (application {app_id}, "
        f"{connect[0]['cores']} core(s) on {len(workers)} worker(s)); step {TOP_TEN_STEP} took {seconds:.1f}s"
    )
    return app_id, seconds


def bigquery() -> Any:
    """An anonymous client of the BigQuery emulator the stack's code location writes to."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery as bq

    return bq.Client(
        project=ENV["SPOTIFY_STACK_GCP_PROJECT"],
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": f"http://127.0.0.1:{ENV['SPOTIFY_STACK_BQ_PORT']}"},
    )


def warehouse() -> dict[str, Any]:
    """Play keys, oldest play, per-track counts and the top ten, from the stack's warehouse."""
    if not CLOUD:
        out = compose("exec", "-T", "code-location", "python", "-c", WAREHOUSE_QUERY)
        return dict(json.loads(out.strip().splitlines()[-1]))
    client = bigquery()
    t = f"`{ENV['SPOTIFY_STACK_GCP_PROJECT']}.{ENV['SPOTIFY_STACK_BQ_DATASET']}`."

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r.values()) for r in client.query(sql.format(t=t)).result()]

    oldest = rows(OLDEST_SQL)[0][0]
    return {
        "keys": [r[0] for r in rows(PLAYS_SQL)],
        "oldest": oldest.isoformat() if oldest else None,
        "per_track": [r[0] for r in rows(PER_TRACK_SQL)],
        "top": [list(r) for r in rows(TOP_SQL)],
    }


def provision() -> None:
    """Cloud mode: the lake bucket and the two datasets, in the emulators."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    gcs = storage.Client(
        project=ENV["SPOTIFY_STACK_GCP_PROJECT"],
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": f"http://127.0.0.1:{ENV['SPOTIFY_STACK_GCS_PORT']}"},
    )
    deadline = time.monotonic() + 60
    while True:  # the GCS emulator was started in the background a moment ago
        try:
            if gcs.lookup_bucket(ENV["SPOTIFY_STACK_GCS_BUCKET"]) is None:
                gcs.create_bucket(ENV["SPOTIFY_STACK_GCS_BUCKET"])
            break
        except Exception as exc:  # connection refused until it listens, then API errors
            if time.monotonic() > deadline:
                fail(f"the GCS emulator did not answer: {exc}")
            time.sleep(0.5)
    client = bigquery()
    for name in (ENV["SPOTIFY_STACK_BQ_DATASET"], ENV["SPOTIFY_STACK_BQ_STAGING_DATASET"]):
        client.create_dataset(name, exists_ok=True)
    say(f"bucket {ENV['SPOTIFY_STACK_GCS_BUCKET']} and datasets created in the emulators")


def expected_keys(start: datetime, end: datetime) -> set[str]:
    """The sandbox's plays in (start, end], normalized by the pipeline's own code and keyed as
    the stack's one listener's (the sandbox's default listener, whose token the stack holds)."""
    query = urllib.parse.urlencode({"start": start.isoformat(), "end": end.isoformat()})
    items = sandbox(f"plays?{query}")["items"]
    return set(for_user(normalize_recently_played(items).plays, DEFAULT_LISTENER.user_id)["play_key"])


def check_exact(label: str, state: dict[str, Any], now: datetime) -> set[str]:
    keys = state["keys"]
    if not keys:
        fail(f"{label}: no plays in the warehouse")
    if len(keys) != len(set(keys)):
        dupes = [k for k, n in Counter(keys).items() if n > 1]
        fail(f"{label}: {len(dupes)} plays stored twice, e.g. {dupes[:3]}")
    oldest = datetime.fromisoformat(state["oldest"])
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    want = expected_keys(oldest - timedelta(milliseconds=1), now)
    if set(keys) != want:
        fail(
            f"{label}: warehouse differs from the API's plays since {oldest.isoformat()}: "
            f"{len(set(keys) - want)} unexpected, {len(want - set(keys))} missing"
        )
    top = state["top"]
    if [r for r, _ in top] != list(range(1, len(top) + 1)) or len(top) != min(10, len(state["per_track"])):
        fail(f"{label}: top ten is not ranked 1..10: {top}")
    if sorted((p for _, p in top), reverse=True) != state["per_track"]:
        fail(f"{label}: top-ten play counts {[p for _, p in top]} != per-track counts {state['per_track']}")
    say(
        f"{label}: {len(keys)} plays, exactly the API's since {oldest.isoformat()}; top ten {[p for _, p in top]}"
    )
    return set(keys)


def check_connect_server_warmed_up() -> None:
    """The spark-connect service started the server and warmed it up (its own log says so)."""
    served = compose("logs", "--no-color", "spark-connect")
    if "Spark Connect server started" not in served or "warmed up in" not in served:
        fail(
            f"the spark-connect service's log does not show the server starting and warming up:\n{served[-3000:]}"
        )
    say("the spark-connect service's log shows the server started and warmed up")


#: What the streamlit container is set to read, and whether a local snapshot exists there.
DASHBOARD_SOURCE = """
import json, os
print(json.dumps({k: os.environ.get(k, "") for k in ("SPOTIFY_DEPLOYMENT", "SPOTIFY_BQ_ENDPOINT")}
                 | {"snapshot": os.path.exists("/opt/dagster/data/warehouse.snapshot.duckdb")}))
"""


def check_dashboard(n: int) -> None:
    if CLOUD:
        # The dashboard reads BigQuery (checked in the browser against the emulator's figures):
        # it is set to, and there is no local snapshot it could read instead.
        out = compose("exec", "-T", "streamlit", "python", "-c", DASHBOARD_SOURCE)
        source = json.loads(out.strip().splitlines()[-1])
        want = f"http://{ENV['SPOTIFY_STACK_GATEWAY']}:{ENV['SPOTIFY_STACK_BQ_PORT']}"
        if source != {"SPOTIFY_DEPLOYMENT": "cloud", "SPOTIFY_BQ_ENDPOINT": want, "snapshot": False}:
            fail(f"the dashboard container is not set to read the BigQuery emulator: {source}")
        say(f"dashboard container: SPOTIFY_DEPLOYMENT=cloud, SPOTIFY_BQ_ENDPOINT={want}, no local snapshot")
        return
    got = int(compose("exec", "-T", "streamlit", "python", "-c", SNAPSHOT_QUERY).strip().splitlines()[-1])
    if got != n:
        fail(f"the dashboard's warehouse snapshot has {got} plays, the warehouse {n}")
    say(f"dashboard container reads the same warehouse (snapshot: {got} plays)")


def check_image_imports() -> None:
    """Every module the image ships imports in a container of it (the streamlit one)."""
    script = (REPO_ROOT / "scripts" / "image_imports.py").read_text()
    # Local mode for this check: it asks whether the modules import (every dependency is in the
    # image), and in cloud mode ``spotify_assets.definitions`` also validates the pipeline's cloud
    # settings at import, which the read-only dashboard container is rightly never given.
    argv = [*shlex.split(os.environ["SPOTIFY_STACK_COMPOSE"]), "exec", "-T", "-e", "SPOTIFY_DEPLOYMENT=local"]
    argv += ["streamlit", "python", "-"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, input=script)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("image imports:")]
    if proc.returncode != 0 or not lines:
        fail("the image does not import what it ships:\n" + "\n".join(lines or [proc.stderr[-3000:]]))
    say(f"in the streamlit container, {lines[-1]}")


# -- configure: deploy/.env from the example, as a user fills it in ----------------------------
#: The dashboard account the browser signs in with, and the listener it sees (the sandbox's).
VIEWER_EMAIL = "listener@example.org"


def env_from_example(values: dict[str, str]) -> str:
    """deploy/.env.example with ``values`` filled in: each KEY=... line of a key in ``values`` gets
    its value, every other line (comments, the other settings) is kept as the user copies it;
    keys the example does not list are appended."""
    out: list[str] = []
    left = dict(values)
    for line in (REPO_ROOT / "deploy" / ".env.example").read_text().splitlines():
        key, sep, _ = line.partition("=")
        if sep and not key.startswith("#") and key.strip() in left:
            out.append(f"{key.strip()}={left.pop(key.strip())}")
        else:
            out.append(line)
    out += ["", "# --- added by scripts/compose_check.py configure ---"] if left else []
    out += [f"{k}={v}" for k, v in left.items()]
    return "\n".join(out) + "\n"


def _private_file(path: Path, text: str) -> None:
    """A 0600 file owned by the image's user (uid 10001), as deploy/.env.example asks for keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)
    if os.geteuid() == 0:
        os.chown(path, 10001, 10001)


def configure() -> None:
    """The temp project folder's deploy/.env and deploy/secrets/ (the paths the example names).

    Before the stack's network exists the gateway is unknown: the login's provider URL and the
    cloud endpoints are written once ``SPOTIFY_STACK_GATEWAY`` is in the test's env file (the
    script runs this twice)."""
    project = Path(ENV["SPOTIFY_STACK_PROJECT_DIR"])
    gateway = ENV.get("SPOTIFY_STACK_GATEWAY", "127.0.0.1")
    values = {
        "SPOTIFY_DEPLOYMENT": "cloud" if CLOUD else "local",
        # No Spotify account: the sandbox service (the client id, secret and token stay empty).
        "SPOTIFY_SANDBOX_URL": SANDBOX_URL,
        "DAGSTER_POSTGRES_PASSWORD": ENV["SPOTIFY_STACK_PG_PASSWORD"],
        # No registry here: the PostgreSQL 15 image scripts/base-images.sh built from Debian packages.
        "POSTGRES_IMAGE": ENV["SPOTIFY_STACK_POSTGRES_IMAGE"],
        # Free loopback ports (the defaults 3000, 8080, 8501 may be taken on a shared machine).
        "DAGSTER_WEBSERVER_PORT": ENV["SPOTIFY_STACK_WEB_PORT"],
        "SPARK_MASTER_UI_PORT": ENV["SPOTIFY_STACK_SPARK_UI_PORT"],
        "DASHBOARD_PORT": ENV["SPOTIFY_STACK_STREAMLIT_PORT"],
        "SCROBBLE_SERVER_PORT": ENV["SPOTIFY_STACK_SCROBBLE_PORT"],
    }
    if CLOUD:
        values |= {
            "SPOTIFY_GCP_PROJECT": ENV["SPOTIFY_STACK_GCP_PROJECT"],
            "SPOTIFY_GCS_BUCKET": ENV["SPOTIFY_STACK_GCS_BUCKET"],
            "SPOTIFY_BQ_DATASET": ENV["SPOTIFY_STACK_BQ_DATASET"],
            "SPOTIFY_BQ_STAGING_DATASET": ENV["SPOTIFY_STACK_BQ_STAGING_DATASET"],
            # The emulators, reached from the containers on the host's side of the compose network.
            "SPOTIFY_GCS_ENDPOINT": f"http://{gateway}:{ENV['SPOTIFY_STACK_GCS_PORT']}",
            "SPOTIFY_BQ_ENDPOINT": f"http://{gateway}:{ENV['SPOTIFY_STACK_BQ_PORT']}",
        }
    deploy = project / "deploy"
    _private_file(deploy / ".env", env_from_example(values))
    for key in ("gcp-credentials.json", "gcp-dashboard-credentials.json"):
        _private_file(deploy / "secrets" / key, "")  # local mode reads no key; endpoints are anonymous
    issuer = f"http://{gateway}:{ENV['SPOTIFY_STACK_OIDC_PORT']}"
    _private_file(
        deploy / "secrets" / "dashboard-login.toml",
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{ENV["SPOTIFY_STACK_STREAMLIT_PORT"]}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        'client_id = "listening-dashboard"\n'
        f'client_secret = "{secrets.token_urlsafe(24)}"\n'
        f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n'
        "[accounts]\n"
        f'"{VIEWER_EMAIL}" = "{DEFAULT_LISTENER.user_id}"\n',
    )
    say(f"wrote {deploy}/.env from deploy/.env.example and deploy/secrets/ (0600, uid 10001)")


# -- the dashboard in a browser --------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: A page has drawn: Streamlit's script run ended (its app root's state), a title or an exception
#: box is up, and no element is still a skeleton.
SETTLED_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return !!app && app.getAttribute('data-test-script-state') === 'notRunning'
    && !!document.querySelector('h1, [data-testid="stException"]')
    && !document.querySelector('[data-testid="stSkeleton"]')
    && !document.querySelector('[data-testid="stStatusWidget"]');
}"""
#: The Overview's figures as drawn: the "Plays" metric, and the "#1 artist" card's text.
FIGURES_JS = """() => {
  const metric = [...document.querySelectorAll('[data-testid="stMetric"]')]
    .find(m => m.querySelector('[data-testid="stMetricLabel"]')?.innerText.trim() === 'Plays');
  const small = [...document.querySelectorAll('small')].find(s => s.innerText.trim() === '#1 artist');
  const card = small?.closest('[data-testid="stMarkdownContainer"]');
  return {plays: metric?.querySelector('[data-testid="stMetricValue"]')?.innerText ?? null,
          artist: card ? card.innerText : null};
}"""
SIDEBAR_JS = """() => [...document.querySelectorAll('[data-testid="stSidebarNav"] a')]
  .map(a => ({href: a.href, text: a.innerText.trim().split('\\n').pop().trim()}))"""


def warehouse_figures() -> dict[str, Any]:
    """Total plays and the artists by plays, read from the warehouse the dashboard reads."""
    if not CLOUD:
        out = compose("exec", "-T", "streamlit", "python", "-c", FIGURES_QUERY)
        return dict(json.loads(out.strip().splitlines()[-1]))
    client = bigquery()
    t = f"`{ENV['SPOTIFY_STACK_GCP_PROJECT']}.{ENV['SPOTIFY_STACK_BQ_DATASET']}`."
    total = next(iter(client.query(TOTAL_SQL.format(t=t)).result()))[0]
    artists = [list(r.values()) for r in client.query(TOP_ARTIST_SQL.format(t=t)).result()]
    return {"total": total, "artists": artists}


def _settle(page: Any, what: str) -> None:
    try:
        page.wait_for_function(SETTLED_JS, timeout=120_000)
    except Exception as exc:
        fail(f"dashboard: {what} did not finish drawing: {exc}\n{page.inner_text('body')[-2000:]}")
    exceptions = page.locator('[data-testid="stException"]')
    if exceptions.count():
        fail(f"dashboard: {what} shows an exception box: {exceptions.first.inner_text()[:2000]}")
    if not page.locator("h1").count():
        fail(f"dashboard: {what} drew no title: {page.inner_text('body')[-2000:]}")


def check_dashboard_in_browser() -> None:
    """Sign in as a user would, open every sidebar page and an artist's link, compare two figures."""
    import oidc_provider_mock
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    figures = warehouse_figures()
    total, artists = int(figures["total"]), figures["artists"]
    if total == 0 or not artists:
        fail(f"dashboard: the warehouse has no plays to show ({figures})")
    top_id, top_name, top_n = artists[0]
    tied = [a for a in artists if a[2] == top_n]
    # The provider the login file names: on the host's side of the compose network, so both the
    # browser (here) and the streamlit container (its token request) reach the same address.
    # Authlib (in the provider) accepts plain http only for localhost; the gateway is not, and this
    # test provider has no certificate. Set for this process only: the dashboard's client needs nothing.
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    provider = make_server(
        ENV["SPOTIFY_STACK_GATEWAY"],
        int(ENV["SPOTIFY_STACK_OIDC_PORT"]),
        oidc_provider_mock.app(),
        threaded=True,
    )
    thread = threading.Thread(target=provider.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{ENV['SPOTIFY_STACK_STREAMLIT_PORT']}"
    t0 = time.monotonic()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1440, "height": 1100})
            page = context.new_page()
            page.goto(f"{base}/", wait_until="domcontentloaded")
            page.wait_for_function(
                "!!document.body && document.body.innerText.includes('Sign in to see it')", timeout=120_000
            )
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector("input[name=sub]", timeout=60_000)  # the provider's own form
            page.fill("input[name=sub]", VIEWER_EMAIL)
            page.get_by_role("button", name="Authorize").click()
            page.wait_for_function(
                f"!!document.body && document.body.innerText.includes('Signed in as {VIEWER_EMAIL}')",
                timeout=120_000,
            )
            say(f"dashboard: signed in as {VIEWER_EMAIL} through the OpenID Connect provider")

            page.goto(f"{base}/?period=all", wait_until="domcontentloaded")
            _settle(page, "the Overview (all time)")
            page.wait_for_function(
                "() => { const f = (" + FIGURES_JS + ")(); return f.plays !== null && f.artist !== null; }",
                timeout=60_000,
            )
            shown = page.evaluate(FIGURES_JS)
            plays = int(str(shown["plays"]).replace(",", ""))
            lines = [line.strip() for line in str(shown["artist"]).splitlines() if line.strip()]
            shown_name, shown_n = lines[1], int(lines[-1].split()[0].replace(",", ""))
            if plays != total:
                fail(f"dashboard: the Overview shows {plays} plays, the warehouse has {total}")
            if shown_n != top_n or shown_name not in {a[1] for a in tied}:
                fail(f"dashboard: #1 artist shown as {shown_name} with {shown_n} plays; warehouse: {tied}")
            say(
                f"dashboard: Overview (all time) shows {plays} plays and #1 artist {shown_name} with {shown_n} "
                f"plays; the warehouse: {total} plays, {top_name} {top_n}"
            )

            links = page.evaluate(SIDEBAR_JS)
            if len(links) < 6:
                fail(f"dashboard: the sidebar lists {len(links)} pages: {links}")
            opened = []
            for link in links:
                page.goto(link["href"], wait_until="domcontentloaded")
                _settle(page, f"page {link['text']!r} ({link['href']})")
                opened.append(f"{link['text']}: {page.inner_text('h1').strip()!r}")
            page.goto(f"{base}/artist?id={urllib.parse.quote(str(top_id))}", wait_until="domcontentloaded")
            _settle(page, f"the artist page of {top_name}")
            title = page.inner_text("h1").strip()
            if title != top_name:
                fail(f"dashboard: artist?id={top_id} shows {title!r}, not {top_name!r}")
            opened.append(f"artist?id={top_id}: {title!r}")
            browser.close()
    finally:
        provider.shutdown()
        thread.join(timeout=10)
    say(
        f"dashboard: {len(opened)} pages opened in Chromium, no exception box, in "
        f"{time.monotonic() - t0:.0f}s: {'; '.join(opened)}"
    )


# -- the door: the scrobble-server service, as a scrobbler meets it ------------------------------
#: The household member added in the stack (the sandbox's default listener, whose plays the runs
#: poll): the scrobbler that submits to the door is theirs.
DOOR_LISTENER = "sam"
#: A listen of a track the sandbox never plays: it reaches the warehouse only through the door.
DOOR_LISTEN = {"artist_name": "The Compose Checkers", "track_name": "Listen Through The Door"}
#: What the scrobbler says is playing: "now playing" only, never a play.
DOOR_NOW = {"artist_name": "The Compose Checkers", "track_name": "Still At The Door"}
INBOX_SENSOR = scrobble_inbox_sensor.name
TERMINAL_TICKS = ("SKIPPED", "SUCCESS", "FAILURE")

#: The door's listen and the "now playing" track in the plays, and all plays: a {t} query as above.
DOOR_SQL = (
    f"SELECT play_key, track_id, track_name, source, sources FROM {{t}}{PLAYS_TABLE} "
    "WHERE user_id = '{user}' AND primary_artist_name = '{artist}'"
)
COUNT_SQL = f"SELECT count(*) FROM {{t}}{PLAYS_TABLE}"
#: Read in the code location's container; a run of the automation may hold the warehouse for a
#: moment after the door's run, so the read-only connection is retried (the error is DuckDB's lock).
DOOR_QUERY = """
import json, sys, time, duckdb
deadline = time.monotonic() + 120
while True:
    try:
        con = duckdb.connect("/opt/dagster/data/warehouse.duckdb", read_only=True)
        break
    except duckdb.IOException:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)
rows = [list(r) for r in con.execute(sys.argv[1]).fetchall()]
print(json.dumps({"rows": rows, "total": con.execute(sys.argv[2]).fetchone()[0]}))
"""
NOW_PLAYING_QUERY = """
import sys
from app.now_playing import door_line
print(door_line(sys.argv[1]))
"""
SENSOR_TICKS = """
query Ticks($selector: SensorSelector!, $after: Float) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { ticks(limit: 10, afterTimestamp: $after) { status timestamp } } }
    ... on PythonError { message }
  }
}
"""
#: What the "browser" of ``users add`` does in the code location's container: open the consent URL
#: the command printed; the sandbox's stand-in page redirects at once to the command's loopback callback.
OPEN_CONSENT_URL = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=60).read()"


def add_household_member() -> str:
    """``spotify-assets users add`` in the code location's container, as a household member signs
    in: the command prints the consent URL and waits for Spotify's redirect on its loopback
    callback; the URL is opened in the same container (the sandbox stands in for Spotify, with its
    public client id). Returns the command's own report line."""
    argv = [
        *shlex.split(os.environ["SPOTIFY_STACK_COMPOSE"]),
        "exec", "-T",
        "-e", f"SPOTIFY_CLIENT_ID={SANDBOX_CLIENT_ID}",
        "-e", f"SPOTIFY_CLIENT_SECRET={SANDBOX_CLIENT_SECRET}",
        "code-location",
        "spotify-assets", "users", "add", DOOR_LISTENER, "--no-browser",
        "--accounts-url", SANDBOX_URL, "--api-url", SANDBOX_URL, "--timeout", "120",
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    printed = []
    url = None
    for line in proc.stdout:
        printed.append(line)
        if line.strip().startswith(f"{SANDBOX_URL}/authorize?"):
            url = line.strip()
            break
    if url is None:
        proc.kill()
        fail(f"users add printed no consent URL:\n{''.join(printed)}{proc.communicate()[1]}")
    compose("exec", "-T", "code-location", "python", "-c", OPEN_CONSENT_URL, str(url))
    out, err = proc.communicate(timeout=180)
    if proc.returncode != 0:
        fail(f"users add {DOOR_LISTENER}: exit {proc.returncode}\n{''.join(printed)}{out}\n{err}")
    added = [line for line in out.splitlines() if line.startswith("Added ")]
    if not added or f"Spotify user {DEFAULT_LISTENER.user_id}" not in added[-1]:
        fail(f"users add {DOOR_LISTENER} registered someone else: {out}")
    return added[-1]


def door(path: str, token: str | None, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """One request to the door through its published loopback port, as a scrobbler sends it."""
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Token {token}"} if token else {})
    req = urllib.request.Request(
        f"http://127.0.0.1:{ENV['SPOTIFY_STACK_SCROBBLE_PORT']}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers=headers,
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - http://127.0.0.1 only
            return int(resp.status), dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        return int(exc.code), dict(json.loads(exc.read()))


def door_rows() -> dict[str, Any]:
    """The plays of the door's artist (the listen, never the "now playing") and the total plays."""
    sql = DOOR_SQL.replace("{user}", DEFAULT_LISTENER.user_id).replace("{artist}", DOOR_LISTEN["artist_name"])
    if not CLOUD:
        out = compose(
            "exec",
            "-T",
            "code-location",
            "python",
            "-c",
            DOOR_QUERY,
            sql.format(t=""),
            COUNT_SQL.format(t=""),
        )
        return dict(json.loads(out.strip().splitlines()[-1]))
    client = bigquery()
    t = f"`{ENV['SPOTIFY_STACK_GCP_PROJECT']}.{ENV['SPOTIFY_STACK_BQ_DATASET']}`."
    rows = [list(r.values()) for r in client.query(sql.format(t=t)).result()]
    return {"rows": rows, "total": next(iter(client.query(COUNT_SQL.format(t=t)).result()))[0]}


def check_door_once(label: str, plays_before: int) -> None:
    """The door's listen is in the warehouse exactly once, as a play without a Spotify id, and it
    is the only play the door added (the ``playing_now`` is none)."""
    found = door_rows()
    rows, total = found["rows"], int(found["total"])
    want_track = DOOR_LISTEN["track_name"]
    if [r[2] for r in rows] != [want_track] or total != plays_before + 1:
        fail(
            f"{label}: the door's listen should be in the warehouse once, with nothing else added: "
            f"{len(rows)} rows of its artist {rows}, {total} plays (were {plays_before})"
        )
    key, track_id, _, source, sources = rows[0]
    if track_id is not None or source != SCROBBLE_SERVER or sources != SCROBBLE_SERVER:
        fail(f"{label}: the door's listen is stored as {rows[0]}, not an id-less {SCROBBLE_SERVER} play")
    say(
        f"{label}: the door's listen is in the warehouse exactly once (play {key}, no Spotify id, "
        f"source {source}); {total} plays, one more than before"
    )


def tick_after(sensor: str, after: float, timeout: float = 180) -> dict[str, Any]:
    """The first finished tick of ``sensor`` that started after ``after`` (wall time)."""
    selector = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "sensorName": sensor}
    deadline = time.monotonic() + timeout
    while True:
        answer = graphql(SENSOR_TICKS, {"selector": selector, "after": after})["sensorOrError"]
        if answer["__typename"] != "Sensor":
            fail(f"the sensor {sensor}: {answer}")
        ticks = [t for t in answer["sensorState"]["ticks"] if t["status"] in TERMINAL_TICKS]
        if ticks:
            return dict(min(ticks, key=lambda t: t["timestamp"]))
        if time.monotonic() > deadline:
            fail(f"the sensor {sensor} finished no tick within {timeout:.0f}s after {after:.0f}")
        time.sleep(3)


def submit_to_the_door(plays_before: int) -> tuple[str, dict[str, Any], float]:
    """Register a listener, mint their token, use the door through its published port, and wait
    for the run the stack's inbox sensor requests. Returns the token, the listen sent (for the
    retry) and the seconds spent."""
    t0 = time.monotonic()
    say(f"door: {add_household_member()}")
    token = compose(
        "exec", "-T", "scrobble-server", "spotify-assets", "users", "token", DOOR_LISTENER
    ).strip()
    token = token.splitlines()[-1] if token else ""
    if len(token) < 32:
        fail(f"door: `users token {DOOR_LISTENER}` printed no token")
    status, answer = door(VALIDATE_PATH, token)
    if status != 200 or answer.get("valid") is not True or answer.get("user_name") != DOOR_LISTENER:
        fail(f"door: validate-token with {DOOR_LISTENER}'s new token answered {status} {answer}")
    listen = {
        "listened_at": int(time.time()) - 300,
        "track_metadata": DOOR_LISTEN
        | {"additional_info": {"duration_ms": 200_000, "submission_client": "compose_check"}},
    }
    body = {"listen_type": "single", "payload": [listen]}
    status, answer = door(SUBMIT_PATH, "not-" + token, body)
    if status != 401 or answer != {"code": 401, "error": answer.get("error")} or not answer["error"]:
        fail(f"door: a bad token should get ListenBrainz's 401 shape, got {status} {answer}")
    submitted = time.time()
    status, answer = door(SUBMIT_PATH, token, body)
    if (status, answer) != (200, {"status": "ok"}):
        fail(f"door: the single listen was refused: {status} {answer}")
    playing = {"track_metadata": DOOR_NOW | {"additional_info": {"duration_ms": 600_000}}}
    status, answer = door(SUBMIT_PATH, token, {"listen_type": "playing_now", "payload": [playing]})
    if (status, answer) != (200, {"status": "ok"}):
        fail(f"door: the playing_now was refused: {status} {answer}")
    say(
        f"door: through the published port, validate-token knows {DOOR_LISTENER}, a bad token gets "
        f"401 {{code, error}}, a single listen and a playing_now are accepted"
    )
    shown = (
        compose("exec", "-T", "streamlit", "python", "-c", NOW_PLAYING_QUERY, DEFAULT_LISTENER.user_id)
        .strip()
        .splitlines()[-1]
    )
    if DOOR_NOW["track_name"] not in shown:
        fail(f"door: the dashboard's container shows {shown!r} as now playing, not the playing_now sent")
    say(f"door: the dashboard's container shows now playing {shown}")
    wait_for_sensor_run("door", INBOX_SENSOR, f"the {INBOX_SENSOR}", submitted, time.monotonic())
    check_door_once("door", plays_before)
    return token, body, time.monotonic() - t0


def resubmit_to_the_door(token: str, body: dict[str, Any]) -> float:
    """The same submission again (a scrobbler's retry); returns when it was answered (wall time)."""
    status, answer = door(SUBMIT_PATH, token, body)
    if (status, answer) != (200, {"status": "ok"}):
        fail(f"door: the retried listen was refused: {status} {answer}")
    return time.time()


def check_the_retry_started_nothing(retried: float, plays_before: int) -> None:
    """A tick of the inbox sensor after the retry requested no run; the listen is still there once."""
    tick = tick_after(INBOX_SENSOR, retried)
    runs = sensor_runs(INBOX_SENSOR, retried)
    if tick["status"] != "SKIPPED" or runs:
        fail(f"door: the retried listen started {len(runs)} run(s) (the sensor's tick after it: {tick})")
    check_door_once("door retry", plays_before)
    say(f"door retry: the {INBOX_SENSOR}'s tick after the same submission again requested no run")


def check() -> int:
    timings: dict[str, float] = {}
    say(f"{'cloud mode: warehouse = the BigQuery emulator' if CLOUD else 'local mode: warehouse = DuckDB'}")
    t0 = time.monotonic()
    check_image_imports()
    timings["image imports"] = time.monotonic() - t0
    now = datetime.fromisoformat(sandbox("clock")["now"])

    run_id, timings["run 1"] = run_pipeline("run 1")
    first = check_exact("run 1", warehouse(), now)
    app_1, timings["run 1 top ten"] = check_top_ten_ran_on_the_connect_server("run 1", run_id)
    check_dashboard(len(first))

    t0 = time.monotonic()
    compose("restart", "code-location", "dagster-daemon")
    # The code location's health check (gRPC, every 15 s) is waited for; the daemon's runs every
    # 60 s (the shipped file's), so its working is shown by run 2 instead: the daemon dequeues it.
    compose("up", "-d", "--wait", "--no-build", "code-location", timeout=600)
    timings["restart"] = time.monotonic() - t0
    say(
        f"restarted code-location and dagster-daemon, the code location healthy again in {timings['restart']:.0f}s"
    )
    # The clock moves on after the restart: a sensor run requested while the services stopped
    # would be cut short, and run 2 is the one the restarted daemon and code location carry.
    moved_on = time.time()
    now = datetime.fromisoformat(sandbox("clock", {"advance_seconds": ADVANCE.total_seconds()})["now"])

    run_id, timings["run 2"] = run_pipeline("run 2", since=moved_on)
    second = check_exact("run 2", warehouse(), now)
    app_2, timings["run 2 top ten"] = check_top_ten_ran_on_the_connect_server("run 2", run_id)
    if app_2 != app_1:
        fail(f"run 2 ran on Connect application {app_2}, not run 1's {app_1}: the server restarted")
    say(f"run 2 reused the warm Connect application {app_1} across the code-location restart")
    check_connect_server_warmed_up()
    added = len(second - first)
    if added == 0 or not first <= second:
        fail(f"run 2 after {ADVANCE} of new plays: added {added}, kept all earlier: {first <= second}")
    say(f"run 2 (after the restart): added exactly the {added} new plays")
    check_dashboard(len(second))
    token, body, timings["door"] = submit_to_the_door(len(second))
    # The retry is sent before the browser check and judged after it: the sensor's next tick
    # (once a minute) passes meanwhile, so proving it requested no run costs little extra time.
    retried = resubmit_to_the_door(token, body)
    t0 = time.monotonic()
    check_dashboard_in_browser()
    timings["dashboard in the browser"] = time.monotonic() - t0
    t0 = time.monotonic()
    check_the_retry_started_nothing(retried, len(second))
    timings["door retry"] = time.monotonic() - t0
    say("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    return 0


def main(argv: list[str]) -> int:
    if argv == ["configure"]:
        configure()
        return 0
    if argv == ["provision"]:
        provision()
        return 0
    if argv == ["check"]:
        return check()
    print("usage: compose_check.py configure | provision | check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

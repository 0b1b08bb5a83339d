"""The checks ``scripts/compose-test.sh`` runs against the started test stack (host side).

Every run is launched through the stack's own Dagster webserver (GraphQL), queued and
dequeued by its daemon and executed in its code-location container (Spark driver) on its
Spark master/worker; the warehouse is read inside the stack (``docker compose exec``), the
dashboard's copy inside the streamlit container. What is checked, exactly:

1. run 1: the plays in the warehouse are exactly the sandbox's plays of the window the run
   saw, normalized by the pipeline's own code (same play keys, no duplicate); the top ten has
   ten ranked rows whose play counts are the ten highest per-track counts of those plays;
   the dashboard's snapshot has the same number of plays.
2. run 2, nothing new at the API: adds 0.
3. the sandbox clock moves on; the code location and the daemon are restarted; run 3 adds
   exactly the new plays (the key sets are equal again, nothing twice).

Configuration from the environment (set by compose-test.sh): SPOTIFY_STACK_WEB_PORT,
SPOTIFY_STACK_SANDBOX_PORT, SPOTIFY_STACK_COMPOSE (the ``docker compose ...`` prefix).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from spotify_assets.jobs import spotify_pipeline_job
from spotify_assets.schema import PLAYS_TABLE, TOP_TEN_TABLE
from spotify_assets.spotify.normalize import normalize_recently_played

LOCATION = "spotify_assets"
RUN_TIMEOUT_S = 900
#: How far the sandbox clock moves between run 2 and run 3 (fewer plays than the API's 50).
ADVANCE = timedelta(minutes=45)

WAREHOUSE_QUERY = f"""
import json, duckdb
con = duckdb.connect("/opt/dagster/data/warehouse.duckdb", read_only=True)
keys = [r[0] for r in con.execute("SELECT play_key FROM {PLAYS_TABLE}").fetchall()]
oldest = con.execute("SELECT min(played_at) FROM {PLAYS_TABLE}").fetchone()[0]
per_track = [r[0] for r in con.execute(
    "SELECT count(*) AS n FROM {PLAYS_TABLE} GROUP BY track_id ORDER BY n DESC LIMIT 10").fetchall()]
top = con.execute("SELECT rank, plays FROM {TOP_TEN_TABLE} ORDER BY rank").fetchall()
print(json.dumps({{"keys": keys, "oldest": oldest.isoformat() if oldest else None,
                   "per_track": per_track, "top": top}}))
"""

SNAPSHOT_QUERY = f"""
import duckdb
con = duckdb.connect("/opt/dagster/data/warehouse.snapshot.duckdb", read_only=True)
print(con.execute("SELECT count(*) FROM {PLAYS_TABLE}").fetchone()[0])
"""


def say(msg: str) -> None:
    print(f"compose_check: {msg}", flush=True)


def fail(msg: str) -> None:
    print(f"compose_check: FAILED: {msg}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def compose(*args: str, timeout: float = 300) -> str:
    argv = [*shlex.split(os.environ["SPOTIFY_STACK_COMPOSE"]), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        fail(f"{' '.join(args)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def sandbox(path: str, body: dict[str, Any] | None = None) -> Any:
    url = f"http://127.0.0.1:{os.environ['SPOTIFY_STACK_SANDBOX_PORT']}/_sandbox/{path}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - http://127.0.0.1 only
        return json.loads(resp.read())


def graphql(query: str, variables: dict[str, Any]) -> dict[str, Any]:
    url = f"http://127.0.0.1:{os.environ['SPOTIFY_STACK_WEB_PORT']}/graphql"
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


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

STATUS = """
query Status($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } }
}
"""


def run_pipeline(label: str) -> float:
    """Launch the job through the webserver, wait for it; returns its wall time."""
    params = {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": "__repository__",
            "jobName": spotify_pipeline_job.name,
        },
        "runConfigData": {},
    }
    t0 = time.monotonic()
    # Right after a restart the webserver may still be reloading the code location: retry.
    deadline = t0 + 180
    while True:
        try:
            result = graphql(LAUNCH, {"params": params})["launchRun"]
        except (OSError, RuntimeError) as exc:
            result = {"__typename": "Error", "message": str(exc)}
        if result["__typename"] == "LaunchRunSuccess":
            break
        if time.monotonic() > deadline:
            fail(f"{label}: could not launch: {result}")
        time.sleep(3)
    run_id = result["run"]["runId"]
    say(f"{label}: launched run {run_id} through the webserver (queued for the daemon)")
    status = ""
    while time.monotonic() - t0 < RUN_TIMEOUT_S:
        status = graphql(STATUS, {"runId": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(3)
    took = time.monotonic() - t0
    if status != "SUCCESS":
        logs = compose("logs", "--tail", "80", "code-location", "dagster-daemon")
        fail(f"{label}: run {run_id} ended {status or 'not within the timeout'} after {took:.0f}s\n{logs}")
    say(f"{label}: run {run_id} SUCCESS in {took:.0f}s")
    return took


def warehouse() -> dict[str, Any]:
    out = compose("exec", "-T", "code-location", "python", "-c", WAREHOUSE_QUERY)
    return dict(json.loads(out.strip().splitlines()[-1]))


def expected_keys(start: datetime, end: datetime) -> set[str]:
    """The sandbox's plays in (start, end], normalized by the pipeline's own code."""
    query = urllib.parse.urlencode({"start": start.isoformat(), "end": end.isoformat()})
    items = sandbox(f"plays?{query}")["items"]
    return set(normalize_recently_played(items).plays["play_key"])


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


def check_dashboard(n: int) -> None:
    got = int(compose("exec", "-T", "streamlit", "python", "-c", SNAPSHOT_QUERY).strip().splitlines()[-1])
    if got != n:
        fail(f"the dashboard's warehouse snapshot has {got} plays, the warehouse {n}")
    say(f"dashboard container reads the same warehouse (snapshot: {got} plays)")


def main() -> int:
    timings: dict[str, float] = {}
    now = datetime.fromisoformat(sandbox("clock")["now"])

    timings["run 1"] = run_pipeline("run 1")
    first = check_exact("run 1", warehouse(), now)
    check_dashboard(len(first))

    timings["run 2"] = run_pipeline("run 2")
    second = check_exact("run 2", warehouse(), now)
    if second != first:
        fail(f"run 2 changed the plays with nothing new at the API: {len(second) - len(first):+d}")
    say("run 2: added 0 (nothing new at the API)")

    now = datetime.fromisoformat(sandbox("clock", {"advance_seconds": ADVANCE.total_seconds()})["now"])
    t0 = time.monotonic()
    compose("restart", "code-location", "dagster-daemon")
    compose("up", "-d", "--wait", "--no-build", timeout=600)
    timings["restart"] = time.monotonic() - t0
    say(f"restarted code-location and dagster-daemon, healthy again in {timings['restart']:.0f}s")

    timings["run 3"] = run_pipeline("run 3")
    third = check_exact("run 3", warehouse(), now)
    added = len(third - second)
    if added == 0 or not second <= third:
        fail(f"run 3 after {ADVANCE} of new plays: added {added}, kept all earlier: {second <= third}")
    say(f"run 3 (after the restart): added exactly the {added} new plays")
    check_dashboard(len(third))
    say("timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

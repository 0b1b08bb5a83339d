"""One hourly tick (the real pipeline, in process) against the sandbox API, on a pre-filled warehouse.

    python -m bench.tick --history N --repeats R --work DIR [--spark none|warm|cold]

The warehouse is pre-filled once with ``N`` synthetic plays ending at the sandbox's clock; the
clock is then moved to the 50th sandbox play after that, so the poll finds exactly 50 new
plays. Every repeat starts from a copy of that data folder (same cursor, no token cached) and
runs the first four pipeline assets (fetch, features, lake, warehouse merge): the poll itself.

``--spark warm|cold`` runs the whole hourly job instead, ``top_ten_tracks`` included:
``warm`` against a Spark Connect server started here first (as ``make dev`` does; a fresh
client session per run, as each Dagster run is a process of its own; ``--remote`` names one
already running instead), ``cold`` with the
in-process fallback, so the first counted run starts the JVM (later runs in the same process
would reuse it: run with ``--repeats 1`` for cold figures). Each run reports its step times.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

NEW_PLAYS = 50


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--history", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", required=True)
    parser.add_argument("--spark", choices=("none", "warm", "cold"), default="none")
    parser.add_argument(
        "--remote",
        default="",
        help="warm: a Connect server already running (sc://...) instead of starting one",
    )
    args = parser.parse_args(argv)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    seed_dir = work / "seed"
    seed_dir.mkdir(parents=True)

    from bench.synth import fill_warehouse
    from spotify_sandbox.server import SandboxServer

    with SandboxServer() as sandbox:
        start = sandbox.now()
        t0 = time.perf_counter()
        fill_warehouse(seed_dir / "warehouse.duckdb", args.history, start)
        fill_seconds = time.perf_counter() - t0
        later = sandbox.plays_between(start, start.replace(year=start.year + 1))[:NEW_PLAYS]
        target = later[-1]["played_at"]
        new_tracks = {p["track"]["id"] for p in later if p.get("track", {}).get("id")}
        expected = {"token": 1, "recently_played": 1, "features": math.ceil(len(new_tracks) / 100)}

        os.environ["SPOTIFY_DATA_DIR"] = str(work / "run")
        import dagster as dg

        from spotify_assets.assets import PIPELINE_ASSETS

        # Everything but the Spark mart (track_features is its own asset since issue 15).
        no_spark = [a for a in PIPELINE_ASSETS if a.key.to_user_string() != "top_ten_tracks"]

        logging.disable(logging.INFO)
        server = None
        if args.spark == "warm" and args.remote:
            os.environ["SPOTIFY_SPARK_REMOTE"] = args.remote
        elif args.spark == "warm":
            from spark.connect_server import SparkConnectServer

            server = SparkConnectServer(master="local[*]", log_path=work / "connect-server.log")
            server.start()
            os.environ["SPOTIFY_SPARK_REMOTE"] = server.wait_ready()
        else:
            os.environ.pop("SPOTIFY_SPARK_REMOTE", None)
        assets = PIPELINE_ASSETS if args.spark != "none" else no_spark
        runs: list[dict[str, Any]] = []
        # One extra first run, not counted: it pays this process's one-off imports and Dagster
        # set-up (and, warm, the server's first job); cold, it leaves Spark out so the JVM starts
        # in the counted run.
        try:
            for i in range(args.repeats + 1):
                first_assets = no_spark if args.spark == "cold" else assets
                runs.append(one_run(dg, first_assets if i == 0 else assets, work, seed_dir, sandbox, target))
        finally:
            if server is not None:
                server.stop()
    runs = runs[1:]
    print(
        json.dumps(
            {
                "history": args.history,
                "spark": args.spark,
                "fill_seconds": fill_seconds,
                "new_plays": len(later),
                "new_tracks": len(new_tracks),
                "expected_calls": expected,
                "runs": runs,
            }
        ),
        flush=True,
    )
    return 0


def one_run(dg: Any, assets: Any, work: Path, seed_dir: Path, sandbox: Any, target: Any) -> dict[str, Any]:
    """One tick from a fresh copy of the seed data; wall time, step times and API calls."""
    from spotify_assets.assets import PIPELINE_GRAPH
    from spotify_assets.deployments import local_resources
    from spotify_assets.partitions import add_user_partition
    from spotify_sandbox.listener import DEFAULT_LISTENER
    from spotify_sandbox.resource import SandboxSpotifyResource

    shutil.rmtree(work / "run", ignore_errors=True)
    shutil.copytree(seed_dir, work / "run")
    sandbox.set_now(target)
    sandbox.reset_stats()
    instance = dg.DagsterInstance.ephemeral()
    listener = DEFAULT_LISTENER.user_id  # the token store's listener: its ``users`` partition
    add_user_partition(instance, listener)
    t0 = time.perf_counter()
    result = dg.materialize(
        PIPELINE_GRAPH,
        selection=assets,
        resources=local_resources(SandboxSpotifyResource(url=sandbox.url)),
        instance=instance,
        partition_key=listener,
    )
    seconds = time.perf_counter() - t0
    if not result.success:
        raise SystemExit("the tick failed")
    steps = {
        st.step_key: (st.end_time or 0) - (st.start_time or 0)
        for st in instance.get_run_step_stats(result.run_id)
    }
    _new_client_session_next_run()
    stats = sandbox.stats()
    requests: dict[str, int] = stats["requests"]
    return {
        "seconds": seconds,
        "steps": steps,
        "token": sum(n for k, n in requests.items() if "token" in k),
        "recently_played": sum(n for k, n in requests.items() if "recently-played" in k),
        "features": sum(n for k, n in requests.items() if "audio-features" in k),
        "requests": requests,
    }


def _new_client_session_next_run() -> None:
    """End a Spark Connect client session, so the next run opens its own as a new process would.

    An in-process (classic) session is left running: a process keeps its JVM.
    """
    if "pyspark" not in sys.modules:
        return
    from pyspark.errors import PySparkRuntimeError
    from pyspark.sql import SparkSession

    from spotify_assets.resources.spark import is_connect_session

    try:
        session = SparkSession.active()
    except PySparkRuntimeError:
        return
    if is_connect_session(session):
        session.stop()


if __name__ == "__main__":
    sys.exit(main())

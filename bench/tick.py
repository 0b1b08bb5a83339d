"""One hourly tick (the real pipeline, in process) against the sandbox API, on a pre-filled warehouse.

    python -m bench.tick --history N --repeats R --work DIR

The warehouse is pre-filled once with ``N`` synthetic plays ending at the sandbox's clock; the
clock is then moved to the 50th sandbox play after that, so the poll finds exactly 50 new
plays. Every repeat starts from a copy of that data folder (same cursor, no token cached) and
runs the first four pipeline assets (fetch, features, lake, warehouse merge): the poll itself.
The top-ten step is measured on its own in ``bench.topten``. Prints one JSON line.
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
        from spotify_assets.resources.by_deployment import local_resources
        from spotify_sandbox.resource import SandboxSpotifyResource

        logging.disable(logging.INFO)
        runs: list[dict[str, Any]] = []
        # One extra first run, not counted: it pays this process's one-off imports and Dagster set-up.
        for _ in range(args.repeats + 1):
            shutil.rmtree(work / "run", ignore_errors=True)
            shutil.copytree(seed_dir, work / "run")
            sandbox.set_now(target)
            sandbox.reset_stats()
            t0 = time.perf_counter()
            result = dg.materialize(
                PIPELINE_ASSETS[:4],
                resources=local_resources(SandboxSpotifyResource(url=sandbox.url)),
                instance=dg.DagsterInstance.ephemeral(),
            )
            seconds = time.perf_counter() - t0
            if not result.success:
                raise SystemExit("the tick failed")
            stats = sandbox.stats()
            requests: dict[str, int] = stats["requests"]
            runs.append(
                {
                    "seconds": seconds,
                    "token": sum(n for k, n in requests.items() if "token" in k),
                    "recently_played": sum(n for k, n in requests.items() if "recently-played" in k),
                    "features": sum(n for k, n in requests.items() if "audio-features" in k),
                    "requests": requests,
                }
            )
    runs = runs[1:]
    print(
        json.dumps(
            {
                "history": args.history,
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


if __name__ == "__main__":
    sys.exit(main())

"""How far behind the music is the dashboard? ``make dev``'s stack against the sandbox, in real time.

    python -m bench.freshness --minutes N [--users alice,bob,carol,dave,erin] [--keep DIR]

Starts a sandbox API on its real-time clock with a household (each listener registered as
``spotify-assets users add`` does), then ``spotify-assets dev`` (the daemon with the hourly
schedule and the new-plays sensor, the webserver, the warm Spark server) on a fresh data
directory pointed at it. Once every listener's first run has reached the dashboard's snapshot,
it watches for ``N`` minutes: each play the sandbox lists in that time (a play is listed when it
ends) is timed until it is in the snapshot the dashboard reads (``app.warehouse``, polled every
``POLL_S``), with a grace of ``GRACE_S`` after the window for the last ones (a play still absent
counts as that late). The sandbox's clock is started at the recent past instant that gives the
household the most plays in the window, so ten minutes hold enough plays to time.

Prints one line: ``freshness: p50 X s, p95 Y s; recently-played calls per listener per minute Z;
runs R for P new plays`` (calls and runs counted over the window; runs from the instance).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from spotify_assets.schema import PLAYS_TABLE

POLL_S = 2.0
GRACE_S = 180.0
RECENTLY_PLAYED = "GET /v1/me/player/recently-played"
HOUSEHOLD = "alice,bob,carol,dave,erin"


def _busiest_start(sandbox: object, names: list[str], minutes: int, warm_up_s: float) -> datetime:
    """The 10-minute-aligned instant in the past week whose window (after the warm-up) holds the
    most plays of the household."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    best, best_n = now - timedelta(days=1), -1
    for step in range(6 * 24 * 7):
        start = now - timedelta(days=7) + timedelta(minutes=10 * step)
        lo, hi = start + timedelta(seconds=warm_up_s), start + timedelta(seconds=warm_up_s + minutes * 60)
        if hi > now:
            break
        n = sum(len(sandbox.plays_between(lo, hi, name)) for name in names)  # type: ignore[attr-defined]
        if n > best_n:
            best, best_n = start, n
    return best


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _snapshot_plays(env: dict[str, str]) -> pd.DataFrame | None:
    from app.warehouse import from_env

    warehouse = from_env(env)
    if not warehouse.exists():
        return None
    try:
        return warehouse.fetch({"p": f"SELECT user_id, played_at FROM {PLAYS_TABLE}"})["p"]
    except Exception:  # the snapshot being replaced: the next poll reads it
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--users", default=HOUSEHOLD)
    parser.add_argument("--warm-up-minutes", type=float, default=8.0, help="time allowed for the first runs")
    parser.add_argument(
        "--keep", default="", help="data directory to use and keep (default: a temporary one)"
    )
    args = parser.parse_args(argv)
    names = [n for n in args.users.split(",") if n]
    data = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-freshness-"))
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "DAGSTER_"))}
    env["SPOTIFY_DATA_DIR"] = str(data)
    os.environ.update({"SPOTIFY_DATA_DIR": str(data)})
    os.environ.pop("DAGSTER_HOME", None)

    from spotify_assets.settings import dagster_home
    from spotify_assets.users.command import sync_partitions
    from spotify_assets_tests.fixtures.sandbox import register_listeners
    from spotify_sandbox.server import SandboxServer

    warm_up_s = args.warm_up_minutes * 60
    probe = SandboxServer()
    start = _busiest_start(probe, names, int(args.minutes), warm_up_s)
    load_start = os.getloadavg()
    with SandboxServer(now=start, clock="realtime") as sandbox:
        users = register_listeners(sandbox, data / "users", *names)
        sync_partitions(data, add=[u.user_id for u in users])
        env["SPOTIFY_SANDBOX_URL"] = sandbox.url
        by_id = {u.user_id: u.name for u in users}
        dev = subprocess.Popen(
            [str(Path(sys.executable).with_name("spotify-assets")), "dev", "--port", str(_free_port())],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wall0 = time.monotonic()
        try:
            # Warm-up: every listener's first run (their last 50 plays) reaches the snapshot.
            first_seen: dict[tuple[str, str], float] = {}
            while time.monotonic() - wall0 < warm_up_s:
                plays = _snapshot_plays(env)
                if plays is not None and set(plays["user_id"]) >= set(by_id):
                    break
                time.sleep(POLL_S)
            else:
                print("warm-up: not every listener's first run reached the snapshot in time", file=sys.stderr)
            first_run_s = time.monotonic() - wall0
            window_start = sandbox.now()
            window_wall = datetime.now(UTC)
            calls0 = sandbox.stats()["requests"].get(RECENTLY_PLAYED, 0)
            window_end = window_start + timedelta(minutes=args.minutes)
            calls1 = None
            while True:
                now = sandbox.now()
                if calls1 is None and now >= window_end:
                    calls1 = sandbox.stats()["requests"].get(RECENTLY_PLAYED, 0)
                    runs_until = datetime.now(UTC)
                if now >= window_end + timedelta(seconds=GRACE_S):
                    break
                plays = _snapshot_plays(env)
                if plays is not None:
                    for user_id, played_at in plays.itertuples(index=False):
                        key = (user_id, pd.Timestamp(played_at).tz_convert("UTC").isoformat())
                        first_seen.setdefault(
                            key, (now - pd.Timestamp(played_at).to_pydatetime()).total_seconds()
                        )
                time.sleep(POLL_S)
            assert calls1 is not None
            lags = []
            for user_id, name in by_id.items():
                for item in sandbox.plays_between(window_start, window_end, name):
                    key = (user_id, pd.Timestamp(item["played_at"]).tz_convert("UTC").isoformat())
                    lags.append(first_seen.get(key, GRACE_S))
        finally:
            os.killpg(dev.pid, signal.SIGINT)
            try:
                dev.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(dev.pid, signal.SIGKILL)
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home(data))) as instance:
        records = instance.get_run_records(
            dg.RunsFilter(job_name="spotify_pipeline", created_after=window_wall, created_before=runs_until)
        )
    lag = pd.Series(lags, dtype=float)
    per_min = (calls1 - calls0) / len(names) / args.minutes
    print(
        f"freshness: p50 {lag.quantile(0.5):.0f} s, p95 {lag.quantile(0.95):.0f} s; recently-played calls per "
        f"listener per minute {per_min:.2f}; runs {len(records)} for {len(lag)} new plays"
    )
    print(
        f"({len(names)} listeners, {args.minutes:g} min from sandbox time {window_start:%Y-%m-%d %H:%M} UTC, first "
        f"runs in the snapshot after {first_run_s:.0f} s, snapshot polled every {POLL_S:g} s, max {lag.max():.0f} s; "
        f"load average {load_start[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end; data {data})"
    )
    if not args.keep:
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

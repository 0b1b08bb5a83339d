"""Instance bytes per simulated day, before and after retention (issue 25, "The instance stays small").

    python -m bench.instance_growth HOME [--runs-per-day R] [--ticks-per-day T]

``HOME`` is a Dagster home that real runs and ticks went into (``bench.freshness --keep DIR``
leaves one at ``DIR/dagster_home``). On a copy of it, this measures the bytes a run and a tick
add (the whole home divided by what it holds: event logs, compute logs, run and tick rows), then
applies what the instance now does: the daemon's tick retention (``instance_config.INSTANCE_RETENTION``:
skipped sensor ticks after a day) and the daily ``purge_runs`` (successful runs after
``RUN_RETENTION_DAYS``), both as if ``RUN_RETENTION_DAYS + 1`` days had passed, and measures what
is left. Per simulated day for a household (``R`` runs, ``T`` ticks a day): without retention the
home grows by R x run + T x tick every day, forever; with it, by what a day leaves once its
ticks and runs age out (the failures and the kept ticks), and the home stops growing after
``RUN_RETENTION_DAYS``: its size is bounded by that many days of runs.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path


def _bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def _vacuum(home: Path) -> None:
    for path in home.rglob("*.db"):
        con = sqlite3.connect(path)
        try:
            con.execute("VACUUM")
        finally:
            con.close()


def _shared(home: Path) -> int:
    """The bytes of the shared SQLite files (runs, event index, schedules and ticks)."""
    return sum(
        _bytes(home / rel) for rel in ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("home", type=Path)
    parser.add_argument(
        "--runs-per-day", type=float, default=5 * 24 * 6.0, help="five listeners, a run per 10 min"
    )
    parser.add_argument(
        "--ticks-per-day", type=float, default=2 * 1440 + 24, help="two sensors a minute + hourly"
    )
    args = parser.parse_args(argv)
    import dagster as dg
    from dagster._core.scheduler.instigation import TickStatus  # no public name in 1.13

    from spotify_assets.instance_config import prepare_local_home
    from spotify_assets.retention import RUN_RETENTION_DAYS, purge_runs

    root = Path(tempfile.mkdtemp(prefix="instance-growth-"))
    empty = prepare_local_home(root / "empty")
    with dg.DagsterInstance.from_config(str(empty)) as instance:
        instance.get_run_records()
        instance.all_instigator_state()
    work = root / "home"
    shutil.copytree(args.home, work)
    _vacuum(work)
    _vacuum(empty)
    before = _bytes(work)
    with dg.DagsterInstance.from_config(str(work)) as instance:
        run_ids = [r.dagster_run.run_id for r in instance.get_run_records()]
        states = list(instance.all_instigator_state())
        ticks = sum(len(instance.get_ticks(s.instigator_origin_id, s.selector_id)) for s in states)
    own = sum(_bytes(work / "history" / "runs" / f"{r}.db") + _bytes(work / "storage" / r) for r in run_ids)
    index = _bytes(work / "history/runs/index.db") - _bytes(empty / "history/runs/index.db")
    index += _bytes(work / "history/runs.db") - _bytes(empty / "history/runs.db")
    per_run = (own + max(0, index)) / max(1, len(run_ids))
    per_tick = max(
        0, _bytes(work / "schedules/schedules.db") - _bytes(empty / "schedules/schedules.db")
    ) / max(1, ticks)
    with dg.DagsterInstance.from_config(str(work)) as instance:
        later = datetime.now(UTC) + timedelta(days=RUN_RETENTION_DAYS + 1)
        deleted = purge_runs(instance, keep_newest=0, now=later)
        for state in states:  # what the daemon's tick retention does once the day is over
            instance.purge_ticks(
                state.instigator_origin_id,
                state.selector_id,
                before=later.timestamp(),
                tick_statuses=[TickStatus.SKIPPED],
            )
        ticks_left = sum(len(instance.get_ticks(s.instigator_origin_id, s.selector_id)) for s in states)
        runs_left = len(instance.get_run_records())
    _vacuum(work)
    after = _bytes(work)
    day = args.runs_per_day * per_run + args.ticks_per_day * per_tick
    print(
        f"instance: {before / 1e6:.2f} MB with {len(run_ids)} runs and {ticks} ticks (measured {per_run / 1e3:.0f} kB "
        f"per run, {per_tick:.0f} B per tick); after {RUN_RETENTION_DAYS + 1} days of retention {after / 1e6:.2f} MB "
        f"({runs_left} runs left: failures and latest materializations; {ticks_left} ticks; {len(deleted)} purged)"
    )
    print(
        f"per simulated day ({args.runs_per_day:g} runs, {args.ticks_per_day:g} ticks): before {day / 1e6:.1f} MB every "
        f"day, forever; after: the same for {RUN_RETENTION_DAYS} days, then ~0 (each day's runs and skipped ticks "
        f"go as a new day's come), level at about {RUN_RETENTION_DAYS * day / 1e6:.0f} MB"
    )
    print(f"(copy at {work})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

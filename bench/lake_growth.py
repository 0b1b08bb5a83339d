"""The lake's and the instance's growth per simulated day, before and after compaction and retention (issue 27).

    python -m bench.lake_growth --data DIR [--keep-copy]

``DIR`` is a data directory real runs went into (``python -m bench.soak --keep DIR``). On a copy
of its lake and its Dagster instance under ``/tmp`` (the original is left as it is), this measures
per simulated day of plays (the ``played_date=`` of the lake's files):

* the lake's plays files (``plays`` and ``plays_csv``) and their bytes (the raw API pages, also
  compacted, are in folders by the wall's day they were fetched: counted as a whole), and
* the instance's bytes that day's runs hold (each run's event log ``history/runs/<id>.db`` and its
  compute logs ``storage/<id>/``); a run that landed no batch counts to the day of the last one
  that did;

then applies what keeps them in bounds, as the daily jobs do once the days have settled:
``lake_compaction.compact_lake`` (every day, the listeners' latest batches excepted) and
``retention.purge_runs`` as if ``RUN_RETENTION_DAYS + 1`` days had passed (with the daemon's tick
retention of skipped sensor ticks), and measures again. SQLite keeps a deleted row's pages in the
file (``auto_vacuum`` is off in Dagster's SQLite storage): the purge alone does not shrink the
shared databases, a ``VACUUM`` (``run_history.compact_sqlite``) does, so both are shown. Prints a
markdown table for ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path


def _bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


@dataclass
class Footprint:
    """What the lake and the instance hold, per simulated day of plays and in total."""

    files: Counter[str] = field(default_factory=Counter)
    lake_bytes: Counter[str] = field(default_factory=Counter)
    runs: Counter[str] = field(default_factory=Counter)
    run_bytes: Counter[str] = field(default_factory=Counter)
    lake_files_total: int = 0
    lake_bytes_total: int = 0
    instance_bytes: int = 0
    raw_files: int = 0


def measure(lake_root: Path, home: Path, run_day: dict[str, str], alive: set[str]) -> Footprint:
    """The footprint of the copy; ``alive``: the runs the instance still lists (a purged run's
    event-log file may stay behind, see ``orphans``)."""
    from spotify_assets.lake_compaction import day_files
    from spotify_assets.lake_layout import PLAYS_CSV_KIND, PLAYS_KIND, RAW_RECENTLY_PLAYED_KIND
    from spotify_assets.resources.lake import LocalLakeResource

    lake = LocalLakeResource(root=str(lake_root))
    out = Footprint()
    out.raw_files = len(lake.list(RAW_RECENTLY_PLAYED_KIND))
    # By the day played; the raw pages' folders are by the wall's day of the fetch, so they are
    # counted as a whole (``raw_files``).
    for kind in (PLAYS_KIND, PLAYS_CSV_KIND):
        for (_user, day), paths in day_files(lake, kind).items():
            out.files[day] += len(paths)
            out.lake_bytes[day] += sum((lake_root / p).stat().st_size for p in paths)
    for run_id, day in run_day.items():
        held = _bytes(home / "history" / "runs" / f"{run_id}.db") + _bytes(home / "storage" / run_id)
        out.runs[day] += run_id in alive
        out.run_bytes[day] += held
    files = [p for p in lake_root.rglob("*") if p.is_file()]
    out.lake_files_total, out.lake_bytes_total = len(files), sum(p.stat().st_size for p in files)
    out.instance_bytes = _bytes(home)
    return out


def runs_by_day(instance: object, lake_root: Path) -> dict[str, str]:
    """Each run's simulated day: the newest ``played_date`` of the batch it landed (``gcs_csv``'s
    ``batch_id``), else the day of the last run before it that landed one."""
    import dagster as dg

    from spotify_assets.assets.lake import gcs_csv
    from spotify_assets.lake_compaction import COMPACTED_KINDS, day_files
    from spotify_assets.lake_layout import PLAYS_KIND
    from spotify_assets.resources.lake import LocalLakeResource

    assert isinstance(instance, dg.DagsterInstance)
    assert PLAYS_KIND in COMPACTED_KINDS
    batch_day: dict[str, str] = {}
    for (_user, day), paths in day_files(LocalLakeResource(root=str(lake_root)), PLAYS_KIND).items():
        for path in paths:
            stem = path.rsplit("/", 1)[1].rsplit(".", 1)[0]
            batch_day[stem] = max(day, batch_day.get(stem, day))
    landed: dict[str, str] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=gcs_csv.key), limit=1000, cursor=cursor, ascending=True
        )
        for record in page.records:
            meta = record.asset_materialization.metadata if record.asset_materialization else {}
            batch = meta.get("batch_id")
            if batch is not None and str(batch.value) in batch_day and record.run_id:
                landed[record.run_id] = max(batch_day[str(batch.value)], landed.get(record.run_id, ""))
        if not page.has_more:
            break
        cursor = page.cursor
    records = sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)
    days: dict[str, str] = {}
    current = min(batch_day.values(), default="")
    for run in records:
        run_id = run.dagster_run.run_id
        current = landed.get(run_id, current)
        if current:
            days[run_id] = current
    return days


def _kib(n: float) -> str:
    return f"{n / 1024:,.0f}"


def table(before: Footprint, after: Footprint, unvacuumed: Footprint, plays: Counter[str]) -> str:
    """Per day: ``before`` and ``after`` (compaction, purge and VACUUM); in the totals also
    ``unvacuumed`` (after the purge, before the VACUUM)."""
    days = sorted(set(before.files) | set(before.runs))
    lines = [
        "| sim. day | date | plays | lake files before → after | lake KiB before → after "
        "| runs before → after | instance KiB of its runs before → after (purge + VACUUM) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for n, day in enumerate(days, 1):
        lines.append(
            f"| {n} | {day} | {plays[day]:,} | {before.files[day]:,} → {after.files[day]:,} "
            f"| {_kib(before.lake_bytes[day])} → {_kib(after.lake_bytes[day])} "
            f"| {before.runs[day]:,} → {after.runs[day]:,} | {_kib(before.run_bytes[day])} → {_kib(after.run_bytes[day])} |"
        )
    lines += [
        "",
        f"Whole lake: {before.lake_files_total:,} files, {_kib(before.lake_bytes_total)} KiB → "
        f"{after.lake_files_total:,} files, {_kib(after.lake_bytes_total)} KiB, of which raw API pages "
        f"{before.raw_files:,} → {after.raw_files:,} files (by the wall's day fetched; the features and "
        "metadata files are not compacted). Whole instance: "
        f"{_kib(before.instance_bytes)} KiB → {_kib(unvacuumed.instance_bytes)} KiB after the purge "
        f"(no VACUUM) → {_kib(after.instance_bytes)} KiB after VACUUM.",
    ]
    return "\n".join(lines)


def plays_per_day(lake_root: Path) -> Counter[str]:
    import pyarrow.parquet as pq

    from spotify_assets.lake_compaction import day_files
    from spotify_assets.lake_layout import PLAYS_KIND
    from spotify_assets.resources.lake import LocalLakeResource

    keys: defaultdict[str, set[str]] = defaultdict(set)
    for (_user, day), paths in day_files(LocalLakeResource(root=str(lake_root)), PLAYS_KIND).items():
        for path in paths:
            keys[day] |= set(pq.read_table(lake_root / path, columns=["play_key"]).column(0).to_pylist())
    return Counter({day: len(k) for day, k in keys.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, required=True, help="a kept data directory (bench.soak --keep)")
    parser.add_argument("--keep-copy", action="store_true", help="leave the copy under /tmp")
    parser.add_argument(
        "--keep-newest", type=int, default=None, help="runs the purge always keeps (default: retention's own)"
    )
    args = parser.parse_args(argv)
    import dagster as dg
    from dagster._core.scheduler.instigation import TickStatus  # no public name in 1.13 (as instance_growth)

    from spotify_assets.lake_compaction import compact_lake, latest_batches
    from spotify_assets.resources.lake import LocalLakeResource
    from spotify_assets.retention import RUN_RETENTION_DAYS, purge_runs
    from spotify_assets.settings import layout
    from spotify_assets.users.run_history import compact_sqlite

    source = layout(args.data)
    work = Path(tempfile.mkdtemp(prefix="lake-growth-"))
    copy = layout(work / "data")
    try:
        shutil.copytree(source.lake, copy.lake)
        shutil.copytree(source.dagster_home, copy.dagster_home)
        config = copy.dagster_home / "dagster.yaml"
        if config.exists() and str(args.data.resolve()) in config.read_text():
            # Storage named by an absolute path would be the original's: the purge would delete its runs.
            raise SystemExit(
                f"{config} names paths under {args.data}: not measuring on a copy that is not one"
            )
        lake = LocalLakeResource(root=str(copy.lake))
        plays = plays_per_day(copy.lake)
        with dg.DagsterInstance.from_config(str(copy.dagster_home)) as instance:
            run_day = runs_by_day(instance, copy.lake)
            before = measure(copy.lake, copy.dagster_home, run_day, set(run_day))
            # Every day settled (the daily job compacts each once it is SETTLE_DAYS old): the soak's
            # days of plays lie in the past, its raw pages were fetched on the wall's days.
            newest = max([datetime.now(UTC).date(), *(date.fromisoformat(d) for d in plays)])
            report = compact_lake(
                lake, protected=latest_batches(instance), today=newest + timedelta(days=1), settle_days=0
            )
            newest_run = instance.get_run_records(limit=1)  # newest first
            last = newest_run[0].create_timestamp if newest_run else datetime.now(UTC)
            later = last + timedelta(days=RUN_RETENTION_DAYS + 1)
            keep = {} if args.keep_newest is None else {"keep_newest": args.keep_newest}
            purged = purge_runs(instance, now=later, **keep)
            for state in instance.all_instigator_state():
                instance.purge_ticks(
                    state.instigator_origin_id,
                    state.selector_id,
                    before=later.timestamp(),
                    tick_statuses=[TickStatus.SKIPPED],
                )
            alive = {r.dagster_run.run_id for r in instance.get_run_records()}
        after = measure(copy.lake, copy.dagster_home, run_day, alive)
        compact_sqlite(p for p in copy.dagster_home.rglob("*.db") if p.is_file())
        vacuumed = measure(copy.lake, copy.dagster_home, run_day, alive)
        print(
            f"data: {args.data} (copied to {work}); {report.render().splitlines()[0]}; {len(purged):,} run(s) purged"
        )
        print()
        print(table(before, vacuumed, after, plays))
        orphans = [
            p for p in (copy.dagster_home / "history" / "runs").glob("*.db") if p.stem in set(run_day) - alive
        ]
        if orphans:
            print(
                f"\n{len(orphans):,} purged run(s) left their event-log file behind (history/runs/<run id>.db, "
                f"{_kib(sum(p.stat().st_size for p in orphans))} KiB after VACUUM, "
                f"{_kib(sum(p.stat().st_size for p in orphans) / len(orphans))} KiB each): "
                "`delete_run` empties it but does not remove it, so these grow with runs, not plays."
            )
    finally:
        if not args.keep_copy:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

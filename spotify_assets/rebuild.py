"""Rebuild the warehouse from the lake alone: ``spotify-assets rebuild-warehouse``.

The lake is the source of truth. Every play reaches the plays table through a Parquet file
under ``plays/`` (the pipeline's batches from ``gcs_csv``, one file per day; the history
import's chunks, one file per month: both granularities are listed and merged alike), every
feature row through a file under ``track_features/`` and every catalogue lookup through a file
under ``track_metadata/``, so merging those files again gives the same tables: a lost, damaged or
deleted warehouse is recovered from the lake. The plays go through the ``bq_plays`` merge
(``plays_writes.merge_plays_files``), the features and lookups through the upserts their assets
make, so the rebuild is idempotent too: into a warehouse that is not empty it adds only what is
missing. It is one of the operator commands ``plays_writes.OPERATOR_REWRITES`` lists, and it
holds the warehouse's writer lock (``warehouse.batch()``) from the first merge to the last.

Plays of the single-user layout (files without a ``user_id=`` folder, rows without the
column) are adopted as the owner the lake records (``users/adoption.py``), as they were the
first time, so a rebuilt warehouse has the same keys as the one it replaces.

Not rebuilt, because the lake does not hold them: the marts (``top_ten_tracks`` is recomputed
by its asset from the plays) and the record of poll gaps (``ingest_gaps``: bookkeeping of the
poller's past windows, which a rebuilt table of plays cannot reconstruct; an import closes gaps
its history covers, ``checks.no_open_gaps``).

Locally, ``--replace`` first moves the DuckDB file aside (``warehouse.duckdb.replaced-<time>``),
never deleting it: data is not destroyed by a command that exists to recover it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from spotify_assets.lake_layout import PLAYS_KIND, TRACK_FEATURES_PREFIX, TRACK_METADATA_PREFIX
from spotify_assets.tables import tracks as tracks_table

if TYPE_CHECKING:
    from spotify_assets.resources.lake import LakeResource
    from spotify_assets.resources.warehouse import WarehouseResource

#: Plays files per merge: one merge (one scan of them all, one load job in BigQuery) per this many lake files.
FILES_PER_MERGE = 1_000


@dataclass
class RebuildReport:
    plays_files: int = 0
    plays_inserted: int = 0
    plays_total: int = 0
    plays_adopted: int = 0
    features_files: int = 0
    features_total: int = 0
    metadata_files: int = 0
    metadata_total: int = 0

    def render(self) -> str:
        return (
            f"Rebuilt from the lake: {self.plays_inserted:,} play(s) merged from {self.plays_files:,} file(s), "
            f"{self.plays_total:,} in the plays table; {self.features_total:,} track feature row(s) "
            f"from {self.features_files:,} file(s); {self.metadata_total:,} track lookup(s) from "
            f"{self.metadata_files:,} file(s)"
            + (f"; {self.plays_adopted:,} single-user play(s) adopted" if self.plays_adopted else "")
        )


def rebuild_from_lake(
    warehouse: WarehouseResource, lake: LakeResource, *, files_per_merge: int = FILES_PER_MERGE
) -> RebuildReport:
    """Merge every plays, track-features and track-metadata file of ``lake`` into ``warehouse``.

    Plays files go in path order; a key in two files (a batch landed twice by runs that
    fetched overlapping plays) is kept once, from the first file merged. Feature and lookup
    files go in the order they were fetched, so the upsert rule (an ``ok`` row is never replaced
    by a worse status) decides as it did the first time.
    """
    import pandas as pd

    from spotify_assets.encoding import content_digest
    from spotify_assets.plays_writes import adopt_legacy_plays, merge_plays_files
    from spotify_assets.schema import conform
    from spotify_assets.scrobbles.merge import plan
    from spotify_assets.users.adoption import legacy_owner

    report = RebuildReport()
    plays = [p for p in lake.list(f"{PLAYS_KIND}/") if p.endswith(".parquet")]
    report.plays_files = len(plays)
    with warehouse.batch():
        for start in range(0, len(plays), files_per_merge):
            paths = plays[start : start + files_per_merge]
            batch_id = "rebuild-" + content_digest("\n".join(paths).encode())
            result = merge_plays_files(warehouse, lake, paths, batch_id, plan)
            report.plays_inserted += result.inserted
            report.plays_total = result.total_rows
        owner = legacy_owner(lake)
        if owner is not None:
            report.plays_adopted = adopt_legacy_plays(warehouse, owner)
            if report.plays_adopted:
                from spotify_assets.schema import PLAYS_TABLE

                report.plays_total = warehouse.count(PLAYS_TABLE)

        def by_time(column: str) -> Callable[[str], tuple[pd.Timestamp, str]]:
            def key(path: str) -> tuple[pd.Timestamp, str]:
                at = pd.read_parquet(io.BytesIO(lake.read_bytes(path)), columns=[column])[column]
                return (pd.Timestamp(at.min()) if len(at) else pd.Timestamp(0, tz="UTC"), path)

            return key

        fetched = by_time("fetched_at")
        features = sorted(
            (p for p in lake.list(TRACK_FEATURES_PREFIX) if p.endswith(".parquet")), key=fetched
        )
        report.features_files = len(features)
        for path in features:
            merged = tracks_table.merge_features_from_lake(warehouse, lake, [path])
            report.features_total = merged.total_rows
        # The catalogue lookups (``track_metadata``'s lake files), oldest first, like the features.
        lookups = sorted(
            (p for p in lake.list(TRACK_METADATA_PREFIX) if p.endswith(".parquet")),
            key=by_time("looked_up_at"),
        )
        report.metadata_files = len(lookups)
        for path in lookups:
            rows = conform(pd.read_parquet(io.BytesIO(lake.read_bytes(path))), "track_metadata")
            report.metadata_total = tracks_table.merge_metadata(warehouse, rows).total_rows
    if not plays:
        from spotify_assets.schema import PLAYS_TABLE

        report.plays_total = warehouse.count(PLAYS_TABLE)
    return report


def set_aside(db: Path, now: datetime | None = None) -> Path | None:
    """Move the DuckDB warehouse at ``db`` (and its published snapshot) aside; returns where it went."""
    if not db.exists():
        return None
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = db.with_name(f"{db.name}.replaced-{stamp}")
    db.rename(target)
    for extra in (db.with_suffix(".snapshot.duckdb"), db.with_name(db.name + ".wal")):
        if extra.exists():
            extra.rename(extra.with_name(f"{extra.name}.replaced-{stamp}"))
    return target


def rebuild_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="spotify-assets rebuild-warehouse",
        description="Rebuild the warehouse's plays and track features from the lake's Parquet files.",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="where the warehouse and lake live (default: $SPOTIFY_DATA_DIR, else .data/ at the repo root)",
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="move the existing local warehouse aside first (kept as warehouse.duckdb.replaced-<time>)",
    )
    args = parser.parse_args(argv)

    from spotify_assets.deployments import command_settings, command_stores
    from spotify_assets.schema import PLAYS_TABLE

    settings = command_settings(parser.prog, args.data_dir)
    if settings is None:
        return 2
    db = settings.data.warehouse
    with contextlib.ExitStack() as stack:
        if settings.deployment == "cloud":
            if args.replace:
                print(
                    "spotify-assets rebuild-warehouse: --replace is local only; in the cloud the "
                    "merge adds what the tables miss (drop them with Terraform to start empty)",
                    file=sys.stderr,
                )
                return 2
        else:
            if not (settings.data.lake / PLAYS_KIND).is_dir():
                print(
                    f"spotify-assets rebuild-warehouse: no plays in the lake at {settings.data.lake}",
                    file=sys.stderr,
                )
                return 2
            if args.replace:
                moved = set_aside(db)
                if moved is not None:
                    print(f"moved the old warehouse to {moved}")
        stores = stack.enter_context(command_stores(settings, "warehouse", "lake"))
        warehouse, lake = stores.warehouse, stores.lake
        if (
            settings.deployment == "local"
            and not args.replace
            and db.exists()
            and warehouse.count(PLAYS_TABLE)
        ):
            print(
                f"spotify-assets rebuild-warehouse: {db} already holds plays; the merge would only add "
                "what it misses. Use --replace to rebuild it from the lake alone.",
                file=sys.stderr,
            )
            return 2
        report = rebuild_from_lake(warehouse, lake)
    print(report.render())
    return 0

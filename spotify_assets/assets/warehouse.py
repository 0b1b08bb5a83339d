"""Warehouse: the table of all plays, each exactly once, and the table of track features.

Both tables are merged on a key (``play_key``, ``track_id``), so their assets write through the
warehouse resource rather than an IO manager (an IO manager replaces what it stores; these
tables must only gain rows, exactly once). Each table has exactly one asset writing it, and
everything that produces its rows sits upstream of that asset in the graph.
"""

import time
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pandas as pd

from spotify_assets.assets.history import landed_by, settle
from spotify_assets.io_managers.lake_io_manager import NONE_IF_NEVER_KEY, ONLY_THIS_RUN_KEY
from spotify_assets.partitions import users_partitions
from spotify_assets.plays_writes import merge_plays_files
from spotify_assets.resources.lake import LakeResource
from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.schema import FEATURES_TABLE, PLAYS_TABLE
from spotify_assets.scrobbles.merge import plan
from spotify_assets.tables import tracks as tracks_table

#: Each writer's rows are merged in the run that produced them, never again from an older run.
_THIS_RUN = dg.AssetIn(metadata={ONLY_THIS_RUN_KEY: True})


@dg.asset(
    group_name="warehouse",
    kinds={"duckdb", "bigquery"},
    code_version="1",
    pool="warehouse",
    partitions_def=users_partitions,
    # Its two writers, upstream: the pipeline's batch (``gcs_csv``: this run's, else the latest of
    # the partition, as a rerun of this step alone needs; none for a listener who only imported)
    # and a history import (``history_import``: only the one that landed in this run).
    ins={"gcs_csv": dg.AssetIn(metadata={NONE_IF_NEVER_KEY: True}), "history_import": _THIS_RUN},
)
def bq_plays(
    context: dg.AssetExecutionContext,
    gcs_csv: dict[str, Any] | None,
    history_import: dict[str, Any] | None,
    lake: LakeResource,
    warehouse: WarehouseResource,
) -> Iterator[dg.MaterializeResult]:
    """All plays ever collected, one row per play (key: user id + ``played_at`` + track id).

    Partitioned by user: a partition's run merges that user's batch only, and the merge only
    inserts keys it does not hold, so one user's run never rewrites another user's rows. (An
    import run into the single-user layout before anyone's first poll has no listener yet: its
    run is not partitioned, as its rows, adopted by the first poll.)

    Loaded from the lake files of the batch, never from memory, so the warehouse can always
    be rebuilt from the lake; each writer's files are read in one scan. The merge is
    idempotent: rerunning a run, retrying a step, two overlapping runs or an import repeated
    after a crash never duplicate a play; the metadata says how many were new. An import whose
    export had unreadable files fails here, after its readable files were merged and recorded.
    """
    partition = context.partition_key if context.has_partition_key else None
    inserted = duplicates = 0
    metadata: dict[str, Any] = {"table": PLAYS_TABLE, "user_id": partition}
    total = None
    if gcs_csv is not None:
        result = merge_plays_files(warehouse, lake, gcs_csv["plays_parquet"], gcs_csv["batch_id"], plan)
        inserted, duplicates, total = result.inserted, result.duplicates, result.total_rows
        metadata["batch_id"] = gcs_csv["batch_id"]
    report = None
    if history_import is not None:
        landed = landed_by(history_import)
        if partition is not None and landed.user_id != partition:
            raise dg.Failure(
                f"the import landed {landed.user_id!r}'s plays; this run merges {partition!r}'s partition"
            )
        started = time.monotonic()
        result = merge_plays_files(warehouse, lake, landed.paths, landed.batch_id, plan)
        landed.report.merge_seconds = time.monotonic() - started
        report = settle(landed, result, warehouse, lake)
        inserted, duplicates, total = (
            inserted + result.inserted,
            duplicates + result.duplicates,
            result.total_rows,
        )
        metadata["import_batch_id"] = landed.batch_id
        metadata["import_lake_files"] = len(landed.paths)
        metadata["import_report"] = dg.MetadataValue.json(report.to_dict())
    if total is None:
        total = warehouse.count(PLAYS_TABLE)
    context.log.info(f"{inserted} new play(s), {duplicates} already present; {total} in total")
    yield dg.MaterializeResult(
        metadata={
            **metadata,
            "plays_inserted": inserted,
            "plays_already_present": duplicates,
            "dagster/row_count": total,
        }
    )
    if report is not None and report.files_failed:
        failed = [f"{f.name}: {f.error}" for f in report.files if f.status == "error"]
        raise dg.Failure(
            description=f"{report.files_failed} export file(s) could not be read: " + "; ".join(failed),
            metadata={
                "files_failed": report.files_failed,
                "import_report": dg.MetadataValue.json(report.to_dict()),
            },
        )


@dg.asset(
    group_name="warehouse",
    kinds={"duckdb", "bigquery"},
    code_version="1",
    pool="warehouse",
    ins={"audio_features": _THIS_RUN, "audio_features_backfill": _THIS_RUN},
)
def track_features(
    context: dg.AssetExecutionContext,
    audio_features: pd.DataFrame,
    audio_features_backfill: pd.DataFrame,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """Audio features per track (one row per track id), what the dashboard's Mood page reads.

    Its two writers are upstream: ``audio_features`` (the hourly batch's tracks) and
    ``audio_features_backfill`` (on demand, tracks of imported history). Only the writers that
    ran in this run contribute (the other input is empty), so an old batch is never merged
    again over newer answers. Upsert by ``track_id``; an ``ok`` row is never replaced by a
    worse status.
    """
    incoming = pd.concat([audio_features, audio_features_backfill], ignore_index=True)
    result = tracks_table.merge_features(warehouse, incoming)
    context.log.info(
        f"{len(audio_features)} feature row(s) from the hourly batch, {len(audio_features_backfill)} from the "
        f"backfill; {result.total_rows} track(s) in the table"
    )
    return dg.MaterializeResult(
        metadata={
            "table": FEATURES_TABLE,
            "from_audio_features": len(audio_features),
            "from_backfill": len(audio_features_backfill),
            "tracks_inserted": result.inserted,
            "dagster/row_count": result.total_rows,
        }
    )

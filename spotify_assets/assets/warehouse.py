"""Warehouse: the table of all plays, each exactly once, and the table of track features.

Both tables are merged on a key (``play_key``, ``track_id``), so their assets write through the
warehouse resource rather than an IO manager (an IO manager replaces what it stores; these
tables must only gain rows, exactly once). Each table has exactly one asset writing it, and
everything that produces its rows sits upstream of that asset in the graph.
"""

from typing import Any

import dagster as dg
import pandas as pd

from spotify_assets.assets.history import history_import
from spotify_assets.io_managers.lake_io_manager import ONLY_THIS_RUN_KEY
from spotify_assets.partitions import users_partitions
from spotify_assets.plays_writes import merge_plays_files
from spotify_assets.resources.lake import LakeResource
from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.schema import FEATURES_TABLE, PLAYS_TABLE


@dg.asset(
    group_name="warehouse",
    kinds={"duckdb", "bigquery"},
    code_version="1",
    pool="warehouse",
    partitions_def=users_partitions,
    # An import lands its plays in the lake and merges them with this asset's own merge
    # (``plays_writes.merge_plays_files``), so the graph shows it upstream.
    deps=[history_import],
)
def bq_plays(
    context: dg.AssetExecutionContext,
    gcs_csv: dict[str, Any],
    lake: LakeResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """All plays ever collected, one row per play (key: user id + ``played_at`` + track id).

    Partitioned by user: a partition's run merges that user's batch only, and the merge only
    inserts keys it does not hold, so one user's run never rewrites another user's rows.

    Loaded from the lake files of the batch, never from memory, so the warehouse can always
    be rebuilt from the lake. The merge is idempotent: rerunning a run, retrying a step or
    two overlapping runs never duplicate a play; the metadata says how many were new.
    """
    result = merge_plays_files(warehouse, lake, gcs_csv["plays_parquet"], gcs_csv["batch_id"])
    context.log.info(
        f"{result.inserted} new play(s), {result.duplicates} already present; {result.total_rows} in total"
    )
    return dg.MaterializeResult(
        metadata={
            "table": PLAYS_TABLE,
            "user_id": context.partition_key,
            "batch_id": gcs_csv["batch_id"],
            "plays_inserted": result.inserted,
            "plays_already_present": result.duplicates,
            "dagster/row_count": result.total_rows,
        }
    )


#: Each writer's rows are merged in the run that produced them, never again from an older run.
_THIS_RUN = dg.AssetIn(metadata={ONLY_THIS_RUN_KEY: True})


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
    result = warehouse.merge_track_features(incoming)
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

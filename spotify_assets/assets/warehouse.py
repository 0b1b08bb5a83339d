"""Warehouse: the table of all plays, each exactly once."""

from typing import Any

import dagster as dg

from spotify_assets.assets.history import history_import
from spotify_assets.resources.lake import LakeResource
from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.schema import PLAYS_TABLE


@dg.asset(
    group_name="warehouse",
    kinds={"duckdb", "bigquery"},
    code_version="1",
    pool="warehouse",
    # The other writer of the plays table: an import lands its plays in the lake and merges
    # them with this asset's own call, so the graph shows it upstream.
    deps=[history_import],
)
def bq_plays(
    context: dg.AssetExecutionContext,
    gcs_csv: dict[str, Any],
    lake: LakeResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """All plays ever collected, one row per play (key: ``played_at`` + track id).

    Loaded from the lake files of the batch, never from memory, so the warehouse can always
    be rebuilt from the lake. The merge is idempotent: rerunning a run, retrying a step or
    two overlapping runs never duplicate a play; the metadata says how many were new.
    """
    # One batch: plays and features under one lock, one snapshot publication.
    with warehouse.batch():
        result = warehouse.merge_plays_from_lake(lake, gcs_csv["plays_parquet"], gcs_csv["batch_id"])
        features = warehouse.merge_track_features_from_lake(
            lake, gcs_csv["features_parquet"], gcs_csv["batch_id"]
        )
    context.log.info(
        f"{result.inserted} new play(s), {result.duplicates} already present; {result.total_rows} in total"
    )
    return dg.MaterializeResult(
        metadata={
            "table": PLAYS_TABLE,
            "batch_id": gcs_csv["batch_id"],
            "plays_inserted": result.inserted,
            "plays_already_present": result.duplicates,
            "dagster/row_count": result.total_rows,
            "track_features_rows": features.total_rows,
        }
    )

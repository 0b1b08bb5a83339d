"""Marts: insights computed over all plays with Spark."""

import tempfile

import dagster as dg
import pandas as pd

from spotify_assets.assets.history import history_import
from spotify_assets.assets.warehouse import bq_plays
from spotify_assets.automation import AFTER_PLAYS_WRITE
from spotify_assets.metadata import markdown_table
from spotify_assets.resources.spark import SparkResource
from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.schema import ALL_LISTENERS
from spotify_assets.tables import plays as plays_table

#: Recompute the top ten after every write to the plays table (see ``automation.py``).
TOP_TEN_AUTOMATION = AFTER_PLAYS_WRITE


@dg.asset(
    group_name="marts",
    kinds={"spark"},
    deps=[bq_plays, history_import],
    code_version="1",
    pool="warehouse",
    automation_condition=TOP_TEN_AUTOMATION,
    io_manager_key="warehouse_io_manager",
)
def top_ten_tracks(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    spark: SparkResource,
) -> dg.Output[pd.DataFrame]:
    """The ten most played tracks of all time, of everyone and of each listener: plays,
    minutes listened, first and last play.

    Computed by the ``spark/`` application (the same code ``spark-submit`` runs on a
    cluster) in one job over every play in the warehouse, then written back as one table the
    dashboard reads: rows with ``user_id`` = ``schema.ALL_LISTENERS`` rank the household's
    plays together, the others one listener's (the Top page shows the listener's own). Plays
    without a Spotify id (scrobbles no Spotify play matched, local files) count too, grouped by
    artist and title; their rows have no ``track_id``. Ranking ties are broken by minutes
    listened, then recency, then track id, so the mart is deterministic. The frame is returned: ``warehouse_io_manager`` replaces the
    ``top_ten_tracks`` table with it (``io_managers/warehouse_io_manager.py``).
    """
    with tempfile.TemporaryDirectory(prefix="spotify-top-ten-") as tmp:
        spark_input = plays_table.export_plays_for_spark(warehouse, f"{tmp}/input")
        top_ten = spark.run_top_ten(spark_input, f"{tmp}/output", n=10, log=context.log)
    everyone = top_ten[top_ten["user_id"] == ALL_LISTENERS]
    listeners = sorted(set(top_ten["user_id"]) - {ALL_LISTENERS})
    return dg.Output(
        top_ten,
        metadata={
            "spark_master": spark.master,
            "top_track": str(everyone["track_name"].iloc[0]) if len(everyone) else "none",
            # Counts, never ids: this asset is not partitioned, so its materializations belong
            # to no listener's runs and outlive a listener's deletion (Dagster's event log is
            # append-only); metadata naming a listener would keep their id in the instance for
            # good. (``users/run_history.py`` scrubs events written before this.)
            "listeners": dg.MetadataValue.int(len(listeners)),
            "rows": dg.MetadataValue.int(len(top_ten)),
            "rows_everyone": dg.MetadataValue.int(len(everyone)),
            "preview": markdown_table(
                everyone,
                ["rank", "track_name", "artist_names", "plays", "minutes_listened", "last_played_at"],
            ),
        },
    )

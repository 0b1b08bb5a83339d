"""The code location: one ``Definitions`` for the UI, the daemon and the CLI.

Runs use the in-process executor. The graph is a chain (no step could run beside
another), DuckDB allows one writing process at a time, and a Spark session is a JVM best
started once per run: a subprocess per step would pay the imports and the JVM again for
every step (seconds each on a 2-core machine) and buy no parallelism.
"""

from __future__ import annotations

import dagster as dg

from spotify_assets.assets import PIPELINE_GRAPH
from spotify_assets.assets.catalog import track_metadata
from spotify_assets.checks import PLAYS_CHECKS
from spotify_assets.deployments import resources_for
from spotify_assets.jobs import history_import_job, spotify_pipeline_job
from spotify_assets.lake_compaction import compact_lake_job, compact_lake_schedule
from spotify_assets.retention import purge_old_runs_job, purge_old_runs_schedule
from spotify_assets.schedules import hourly_schedule
from spotify_assets.scrobble_inbox_sensor import scrobble_inbox_sensor
from spotify_assets.sensors import mart_automation_sensor, new_plays_sensor

defs = dg.Definitions(
    assets=[*PIPELINE_GRAPH, track_metadata],
    asset_checks=PLAYS_CHECKS,
    jobs=[spotify_pipeline_job, history_import_job, purge_old_runs_job, compact_lake_job],
    schedules=[hourly_schedule, purge_old_runs_schedule, compact_lake_schedule],
    sensors=[new_plays_sensor, mart_automation_sensor, scrobble_inbox_sensor],
    resources=resources_for(),
    executor=dg.in_process_executor,
)

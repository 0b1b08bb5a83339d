"""The code location: one ``Definitions`` for the UI, the daemon and the CLI."""

from __future__ import annotations

import dagster as dg

from spotify_assets.assets import PIPELINE_ASSETS
from spotify_assets.checks import PLAYS_CHECKS
from spotify_assets.jobs import spotify_pipeline_job
from spotify_assets.resources.by_deployment import resources_for
from spotify_assets.schedules import hourly_schedule
from spotify_assets.sensors import new_plays_sensor

defs = dg.Definitions(
    assets=PIPELINE_ASSETS,
    asset_checks=PLAYS_CHECKS,
    jobs=[spotify_pipeline_job],
    schedules=[hourly_schedule],
    sensors=[new_plays_sensor],
    resources=resources_for(),
)

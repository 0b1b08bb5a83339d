"""The hourly schedule, on by default.

Hourly is the seed's cadence and it is enough: the API shows the latest 50 plays, about
three hours of non-stop listening, so an hourly poll does not miss plays. A run that
finds nothing new skips its downstream steps (visible in the run, not a failure).
"""

from __future__ import annotations

import dagster as dg

from spotify_assets.jobs import spotify_pipeline_job

hourly_schedule = dg.ScheduleDefinition(
    name="spotify_pipeline_hourly",
    job=spotify_pipeline_job,
    cron_schedule="0 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Poll Spotify for new plays every hour.",
)

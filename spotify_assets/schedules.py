"""The hourly schedule, on by default: one run per listener of the household.

Hourly is the seed's cadence and it is enough: the API shows the latest 50 plays, about
three hours of non-stop listening, so an hourly poll does not miss plays. A run that
finds nothing new skips its downstream steps (visible in the run, not a failure).

Each ``users`` partition gets its own run (tagged ``spotify/user``, see ``users/polling.py``), so a user whose token is revoked or throttled
fails their run only and the others go on. With no partition (the single-user setup, no
``users add`` yet) the tick requests one run without a key, which polls the token-store
listener as before the household.
"""

from __future__ import annotations

import dagster as dg

from spotify_assets.jobs import spotify_pipeline_job
from spotify_assets.partitions import USER_TAG, USERS_PARTITIONS_NAME


@dg.schedule(
    name="spotify_pipeline_hourly",
    job=spotify_pipeline_job,
    cron_schedule="0 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Poll Spotify for new plays every hour, one run per user.",
)
def hourly_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """A ``RunRequest`` per user partition; the run key makes a tick's runs unique per user and hour
    (a daemon restarted mid-tick never starts a user's hour twice)."""
    users = context.instance.get_dynamic_partitions(USERS_PARTITIONS_NAME)
    when = context.scheduled_execution_time
    stamp = f"{when:%Y-%m-%dT%H:%M}" if when is not None else "now"
    if not users:
        return [dg.RunRequest(run_key=f"hourly-{stamp}")]
    return [dg.RunRequest(run_key=f"hourly-{stamp}-{key}", tags={USER_TAG: key}) for key in users]

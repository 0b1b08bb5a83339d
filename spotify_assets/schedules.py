"""The hourly schedule, on by default: one run per listener of the household.

Hourly is the seed's cadence and it is enough: the API shows the latest 50 plays, about
three hours of non-stop listening, so an hourly poll does not miss plays. A run that
finds nothing new skips its downstream steps (visible in the run, not a failure).

Each ``users`` partition gets its own run (``RunRequest(partition_key=...)``), so a user whose
token is revoked or throttled fails their run only and the others go on. With no partition
yet (a single-user setup that went straight from ``spotify-assets auth`` to ``make dev``), the
tick asks Spotify whose the token store's token is (``GET /v1/me``), adds that listener's
partition and requests its run; without a usable token it skips, saying what to run.
"""

from __future__ import annotations

import dagster as dg

from spotify_assets.jobs import spotify_pipeline_job
from spotify_assets.partitions import USERS_PARTITIONS_NAME
from spotify_assets.resources.spotify import SpotifyResource
from spotify_assets.spotify.errors import SpotifyError
from spotify_assets.users.polling import add_token_store_partition


@dg.schedule(
    name="spotify_pipeline_hourly",
    job=spotify_pipeline_job,
    cron_schedule="0 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Poll Spotify for new plays every hour, one run per user partition.",
)
def hourly_schedule(
    context: dg.ScheduleEvaluationContext, spotify: SpotifyResource
) -> list[dg.RunRequest] | dg.SkipReason:
    """A ``RunRequest`` per user partition; the run key makes a tick's runs unique per user and hour
    (a daemon restarted mid-tick never starts a user's hour twice)."""
    users = context.instance.get_dynamic_partitions(USERS_PARTITIONS_NAME)
    if not users:
        try:
            owner = add_token_store_partition(context.instance, spotify)
        except SpotifyError as exc:
            return dg.SkipReason(
                f"no listener yet: `spotify-assets auth` (one listener) or `spotify-assets users add NAME` ({exc})"
            )
        context.log.info(f"added the single-user listener's partition {owner!r}")
        users = [owner]
    when = context.scheduled_execution_time
    stamp = f"{when:%Y-%m-%dT%H:%M}" if when is not None else "now"
    return [dg.RunRequest(run_key=f"hourly-{stamp}-{key}", partition_key=key) for key in users]

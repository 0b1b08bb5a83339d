"""A sensor that asks the API for plays after its cursor and starts a run only when there are some.

Off by default: the hourly schedule is the primary trigger. Switch the sensor on (in the
UI) for fresher data at the cost of more API calls; it never starts a run for nothing,
and every empty tick says so with a ``SkipReason``.
"""

import dagster as dg
import pandas as pd

from spotify_assets.jobs import spotify_pipeline_job
from spotify_assets.resources.spotify import SpotifyResource
from spotify_assets.spotify.client import played_at_ms


@dg.sensor(
    name="new_plays_sensor",
    job=spotify_pipeline_job,
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Start the pipeline when Spotify reports plays newer than the last one seen.",
)
def new_plays_sensor(context: dg.SensorEvaluationContext, spotify: SpotifyResource) -> dg.SensorResult:
    """The cursor is the newest ``played_at`` (Unix ms) the sensor has seen."""
    after_ms = int(context.cursor) if context.cursor else None
    items = spotify.get_client().recently_played(after_ms=after_ms)
    # Items without a readable played_at are the run's to quarantine; they move no cursor.
    played = [ms for ms in map(played_at_ms, items) if ms is not None]
    newest_ms = max(played, default=None)
    if newest_ms is None or (after_ms is not None and newest_ms <= after_ms):
        since = pd.Timestamp(after_ms, unit="ms", tz="UTC").isoformat() if after_ms else "ever"
        return dg.SensorResult(skip_reason=dg.SkipReason(f"No new plays since {since}."))
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=f"plays-until-{newest_ms}", tags={"spotify/new_plays": str(len(played))})
        ],
        cursor=str(newest_ms),
    )


#: Evaluates the automation conditions of ``top_ten_tracks`` and ``track_metadata`` (see
#: ``automation.py``). On by default: without it an import that adds plays would leave the mart
#: stale and the imported tracks without ids and art until the next hourly run that finds new
#: API plays. Dagster's implicit ``default_automation_condition_sensor`` starts
#: stopped, so the project declares its own.
mart_automation_sensor = dg.AutomationConditionSensorDefinition(
    "mart_automation_sensor",
    target=dg.AssetSelection.assets("top_ten_tracks", "track_metadata"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Recompute the top ten and look up new tracks' ids and art after any write to the plays "
    "table (API poll or history import).",
)

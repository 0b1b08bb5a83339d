"""A sensor that asks the API for plays after its cursor and starts a run only when there are some.

Off by default: the hourly schedule is the primary trigger. Switch the sensor on (in the
UI) for fresher data at the cost of more API calls; it never starts a run for nothing,
and every empty tick says so with a ``SkipReason``.

The cursor is JSON, the newest ``played_at`` per user id, and each ``users`` partition with new
plays gets a run of its own (``partition_key``). A user whose poll fails (revoked token,
throttled) is named in the tick's log and skipped; the others go on and the failed user's
cursor stays, so their next tick asks again from the same point. With no partition yet the
single-user token store's listener is asked whose it is (``GET /v1/me``) and its partition is
added with the tick's result.
"""

import json
from collections.abc import Sequence

import dagster as dg
import pandas as pd

from spotify_assets.jobs import spotify_pipeline_job
from spotify_assets.partitions import USERS_PARTITIONS_NAME, users_partitions
from spotify_assets.resources.spotify import SpotifyResource
from spotify_assets.spotify.client import SpotifyClient, played_at_ms
from spotify_assets.spotify.errors import SpotifyError
from spotify_assets.users.polling import listener_for, token_store_owner
from spotify_assets.users.registry import UserError


def _newest_after(client: SpotifyClient, after_ms: int | None) -> tuple[int | None, int]:
    """(newest readable played_at after the cursor or None, items seen)."""
    items = client.recently_played(after_ms=after_ms)
    # Items without a readable played_at are the run's to quarantine; they move no cursor.
    played = [ms for ms in map(played_at_ms, items) if ms is not None]
    newest_ms = max(played, default=None)
    if newest_ms is None or (after_ms is not None and newest_ms <= after_ms):
        return None, len(played)
    return newest_ms, len(played)


def _since(after_ms: int | None) -> str:
    return pd.Timestamp(after_ms, unit="ms", tz="UTC").isoformat() if after_ms else "ever"


def _read_cursor(cursor: str | None) -> dict[str, int]:
    try:
        parsed = json.loads(cursor or "{}")
        return {str(k): int(v) for k, v in parsed.items()}
    except (ValueError, AttributeError):
        return {}  # a single-user cursor from before the household: start each user afresh


def _household(context: dg.SensorEvaluationContext) -> Sequence[str]:
    """The ``users`` partition keys; none for a context built without an instance (a unit test's)."""
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:
        return []
    return instance.get_dynamic_partitions(USERS_PARTITIONS_NAME)


@dg.sensor(
    name="new_plays_sensor",
    job=spotify_pipeline_job,
    minimum_interval_seconds=600,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Start the pipeline when Spotify reports plays newer than the last one seen.",
)
def new_plays_sensor(context: dg.SensorEvaluationContext, spotify: SpotifyResource) -> dg.SensorResult:
    """One run request per user partition with new plays; the cursor is ``{user_id: newest_ms}``."""
    users = list(_household(context))
    added: list[dg.AddDynamicPartitionsRequest] = []
    if not users:
        _, owner = token_store_owner(
            spotify
        )  # a failure here is the single user's: the tick fails, as before
        users = [owner]
        added = [users_partitions.build_add_request([owner])]
    cursor = _read_cursor(context.cursor)
    requests: list[dg.RunRequest] = []
    quiet: list[str] = []
    for user_id in users:
        after_ms = cursor.get(user_id)
        try:
            newest_ms, seen = _newest_after(listener_for(spotify, user_id).client, after_ms)
        except (SpotifyError, UserError) as exc:
            context.log.warning(f"user {user_id}: poll failed, the other users go on: {exc}")
            quiet.append(f"{user_id}: poll failed ({type(exc).__name__})")
            continue
        if newest_ms is None:
            quiet.append(f"{user_id}: no new plays since {_since(after_ms)}")
            continue
        cursor[user_id] = newest_ms
        requests.append(
            dg.RunRequest(
                run_key=f"plays-{user_id}-until-{newest_ms}",
                partition_key=user_id,
                tags={"spotify/new_plays": str(seen)},
            )
        )
    new_cursor = json.dumps(cursor, sort_keys=True)
    if not requests:
        return dg.SensorResult(
            skip_reason=dg.SkipReason("; ".join(quiet) + "."),
            cursor=new_cursor,
            dynamic_partitions_requests=added or None,
        )
    return dg.SensorResult(
        run_requests=requests, cursor=new_cursor, dynamic_partitions_requests=added or None
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

"""A sensor that asks the API for plays after its cursor and starts a run only when there are some.

On by default, once a minute (``SPOTIFY_POLL_INTERVAL_S``, ``settings.poll_interval_s``: the
"minute" below): the dashboard is meant to be a minute behind the music. Spotify lists a play
when it ends, so a tick a minute asks each listener once, with Spotify's ``after`` cursor, and a
quiet listener costs one recently-played call a minute and no Dagster run. The
hourly schedule stays as the safety net (a tick that failed, a run that failed after the
sensor moved its cursor). Every empty tick says why with a ``SkipReason``.

The cursor is JSON, the newest ``played_at`` per user id a run was requested for; each ``users``
partition with new plays gets a run of its own (``partition_key``). A listener nothing was merged
for yet (just added; their first run failed) gets a run without being asked: Spotify shows only the
latest 50 plays, so the oldest of the 50 a peek was shown may be gone by the time the run polls,
seconds later (a play now and then; the soak's fast clock lost 5 and 6 that way). For the same
reason the page of each peek a run is requested for is landed in the lake and handed to the run
(``raw_pages.py``): the run merges its plays with its own poll, so they count though gone from the
window by then (a run held back for hours: a 429 storm fails the runs at once until it ends; the
168-hour soaks lost 16, then 9 plays so); a failed run's retry carries its pages on. The run does not trust the
sensor: it polls again from the warehouse's newest play (``raw_recent_tracks``), so a play that
ends between the sensor's peek and the run's poll is fetched by the run, and the merge on
``play_key`` keeps each play once however the two overlap. The sensor then asks after the
newer of its cursor and the newest play the last merged run fetched, so such a play does not
start a second run that would find nothing.

A listener whose latest run failed (the lake's disk full, its worker killed) is asked again
from the newest merged play, not from the cursor: the plays that run was started for were never
merged, and "after the cursor" would find nothing until the listener plays again (issue 27: the
soak's full disk left a quiet listener's plays out of the warehouse until the hourly schedule).
The retry waits a minute after the failure, twice as long after each further one, up to
``RETRY_BACKOFF_MAX_S``, so a failure that persists costs a run an hour, not one a minute.

A listener whose run is queued or going, or whose run polled less than a minute ago, is not
asked this tick (the run's call is that minute's call): at most one recently-played call per
listener per minute, however the runs fall. A user whose poll fails (revoked token, throttled)
is named in the tick's log and skipped; the others go on and the failed user's cursor stays, so
their next tick asks again from the same point. A tick stops asking once it has spent
``TICK_BUDGET_S`` (a rate-limit wait, a slow API), leaving the rest for the next tick, so an
evaluation never nears Dagster's timeout; within one listener's poll too, no wait (a
Retry-After, the app's shared wait, a backoff) may end past the budget (``waits_until``): that
listener is left for the next tick, named in the tick's log and skip reason, its cursor kept.
With no partition yet the single-user token store's listener is asked whose it is
(``GET /v1/me``) and its partition is added with the tick's result.
"""

import json
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from spotify_assets.assets.ingest import (
    PeekedPage,
    own_page_of,
    peeked_pages_of,
    peeked_pages_run_config,
    raw_recent_tracks,
)
from spotify_assets.assets.warehouse import bq_plays
from spotify_assets.jobs import spotify_pipeline_job
from spotify_assets.partitions import USERS_PARTITIONS_NAME, users_partitions
from spotify_assets.raw_pages import land_page
from spotify_assets.resources.lake import LakeResource
from spotify_assets.resources.spotify import SpotifyResource
from spotify_assets.settings import poll_interval_s
from spotify_assets.spotify.client import (
    RecentlyPlayed,
    parse_played_at,
    played_at_ms,
    waits_until,
)
from spotify_assets.spotify.errors import SpotifyError, SpotifyWaitPastDeadline
from spotify_assets.users.polling import listener_for, token_store_owner
from spotify_assets.users.registry import UserError
from spotify_assets.users.run_history import PARTITION_TAG, SENSOR_NAME

#: Seconds between ticks, and the least time between two recently-played calls for one listener
#: (``SPOTIFY_POLL_INTERVAL_S``, read once as the code server loads the definitions). Dagster's
#: sensor daemon evaluates no sensor more often than its ``minimum_interval_seconds``.
POLL_INTERVAL_S = poll_interval_s()
#: The longest wait before asking again for a listener whose runs keep failing (the hourly
#: schedule's period); the first wait is ``POLL_INTERVAL_S``, doubled after each further failure.
RETRY_BACKOFF_MAX_S = 3600
#: A tick stops asking after this long; Dagster cancels a sensor evaluation after 60 s by default.
TICK_BUDGET_S = 30.0
#: The runs of a listener one tick reads: the latest (on its way? polled just now?) and enough of
#: the failed ones before it for the retry's doubling wait to reach ``RETRY_BACKOFF_MAX_S`` (8 at
#: a minute, more for a shorter interval).
RUNS_READ = 2 + math.ceil(math.log2(RETRY_BACKOFF_MAX_S / POLL_INTERVAL_S))
#: The cursor of a listener whose first run was requested unasked (``_first_run_request``): "after
#: the start of time", so a later tick that finds nothing merged yet asks for their whole window.
FIRST_RUN_REQUESTED = 0
#: How often the mart's automation conditions are evaluated. Not ``POLL_INTERVAL_S``: this sensor
#: calls no API (no listener's rate to keep), it decides when the top ten follows a write, from a
#: poll or an import alike, and each evaluation costs the daemon a pass over the asset graph; a
#: household polling every 15 s does not need its top ten recomputed that often.
MART_AUTOMATION_INTERVAL_S = 60


def _newest_after(window: RecentlyPlayed) -> tuple[int | None, int]:
    """(newest readable played_at after the cursor or None, items seen)."""
    # Items without a readable played_at are the run's to quarantine; they move no cursor.
    played = [ms for ms in map(played_at_ms, window.items) if ms is not None]
    newest_ms = max(played, default=None)
    if newest_ms is None or (window.after_ms is not None and newest_ms <= window.after_ms):
        return None, len(played)
    return newest_ms, len(played)


def _hand_over(
    context: dg.SensorEvaluationContext, lake: LakeResource, user_id: str, window: RecentlyPlayed
) -> list[PeekedPage]:
    """The peek a run is requested for, landed for the run (``raw_pages.py``), or none when the lake
    refused it (the run then judges the gap on its own poll alone)."""
    try:
        path = land_page(lake, user_id, window.items, datetime.now(UTC))
    except OSError as exc:  # the lake's disk full: the run is still requested
        context.log.warning(f"user {user_id}: the page the sensor was shown was not landed: {exc}")
        return []
    return [PeekedPage(path=path, after_ms=window.after_ms, full=window.full)]


def _carried_pages(records: Sequence[dg.RunRecord], failed_run_id: str) -> list[PeekedPage]:
    """The pages the failed run was handed and the one it landed itself: its retry carries them on
    (never merged; by the retry, their plays may have left the window)."""
    for record in records:
        run = record.dagster_run
        if run.run_id == failed_run_id:
            return peeked_pages_of(run.run_config or {}) + own_page_of(run.tags)
    return []


def _retry_suffix(retry_of: str) -> str:
    """A retry's run key differs from the failed run's (Dagster drops a request under a used key)."""
    return f"-after-failed-{retry_of[:8]}" if retry_of else ""


def _first_run_request(user_id: str, retry_of: str, pages: Sequence[PeekedPage]) -> dg.RunRequest:
    """The run of a listener nothing was merged for yet (just added, or their first run failed),
    requested without asking the API first."""
    return dg.RunRequest(
        run_key=f"plays-{user_id}-first-run" + _retry_suffix(retry_of),
        partition_key=user_id,
        run_config=peeked_pages_run_config(pages) if pages else None,
        tags={"spotify/new_plays": "first run"},
    )


def _since(after_ms: int | None) -> str:
    return pd.Timestamp(after_ms, unit="ms", tz="UTC").isoformat() if after_ms else "ever"


def _read_cursor(cursor: str | None) -> dict[str, int]:
    try:
        parsed = json.loads(cursor or "{}")
        return {str(k): int(v) for k, v in parsed.items()}
    except (ValueError, AttributeError):
        return {}  # a single-user cursor from before the household: start each user afresh


def _instance(context: dg.SensorEvaluationContext) -> dg.DagsterInstance | None:
    """The tick's instance; None for a context built without one (a unit test's)."""
    try:
        return context.instance
    except dg.DagsterInvariantViolationError:
        return None


def _household(instance: dg.DagsterInstance | None) -> Sequence[str]:
    """The ``users`` partition keys; none without an instance."""
    return instance.get_dynamic_partitions(USERS_PARTITIONS_NAME) if instance is not None else []


def _latest_runs(instance: dg.DagsterInstance, user_id: str) -> Sequence[dg.RunRecord]:
    """The listener's latest ``RUNS_READ`` pipeline runs, newest first: one query per listener and
    tick, read by ``_run_is_polling`` and ``_failed_run``."""
    return instance.get_run_records(
        dg.RunsFilter(job_name=spotify_pipeline_job.name, tags={PARTITION_TAG: user_id}), limit=RUNS_READ
    )


def _run_is_polling(records: Sequence[dg.RunRecord], now: float) -> str | None:
    """Why not to ask for the listener of ``records`` (``_latest_runs``) this tick (their latest
    run is on its way, or polled less than ``POLL_INTERVAL_S`` ago), or None."""
    if not records:
        return None
    record = records[0]
    if not record.dagster_run.is_finished:
        return f"run {record.dagster_run.run_id[:8]} {record.dagster_run.status.value.lower()}"
    started = record.start_time or record.create_timestamp.timestamp()
    if now - started < POLL_INTERVAL_S:
        return f"run {record.dagster_run.run_id[:8]} polled {now - started:.0f} s ago"
    return None


def _failed_run(records: Sequence[dg.RunRecord], now: float) -> tuple[str, float] | None:
    """(the latest run's id, seconds left before asking again) if the latest of ``records``
    (``_latest_runs``) failed, or None. The wait is ``POLL_INTERVAL_S`` after the end of one failed
    run, doubled for each failed run before it (up to ``RETRY_BACKOFF_MAX_S``)."""
    failed = 0
    for record in records:
        if record.dagster_run.status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
            break
        failed += 1
    if not failed:
        return None
    latest = records[0]
    ended = latest.end_time or latest.create_timestamp.timestamp()
    wait = min(POLL_INTERVAL_S * 2 ** (failed - 1), RETRY_BACKOFF_MAX_S)
    return latest.dagster_run.run_id, max(0.0, ended + wait - now)


def _merged_newest_ms(instance: dg.DagsterInstance, user_id: str) -> int | None:
    """The newest play the user's latest merged fetch brought (``raw_recent_tracks``' metadata,
    counted only once ``bq_plays`` was materialized after it), or None."""
    partition = [user_id]
    fetched = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=raw_recent_tracks.key, asset_partitions=partition), limit=1
    ).records
    merged = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=bq_plays.key, asset_partitions=partition), limit=1
    ).records
    if not fetched or not merged or merged[0].storage_id < fetched[0].storage_id:
        return None
    materialization = fetched[0].asset_materialization
    value = materialization.metadata.get("newest_play") if materialization is not None else None
    newest = parse_played_at(getattr(value, "value", None))
    return None if newest is None else round(newest.timestamp() * 1000)


@dg.sensor(
    name=SENSOR_NAME,
    job=spotify_pipeline_job,
    minimum_interval_seconds=POLL_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Start the pipeline when Spotify reports plays newer than the last one seen "
    f"(every {POLL_INTERVAL_S} s per listener; no run when nothing is new).",
)
def new_plays_sensor(
    context: dg.SensorEvaluationContext, spotify: SpotifyResource, lake: LakeResource
) -> dg.SensorResult:
    """One run request per user partition with new plays; the cursor is ``{user_id: newest_ms}``."""
    started = time.monotonic()
    deadline = started + TICK_BUDGET_S
    instance = _instance(context)
    users = list(_household(instance))
    added: list[dg.AddDynamicPartitionsRequest] = []
    if not users:
        with waits_until(deadline):  # a failure here is the single user's: the tick fails, as before
            _, owner = token_store_owner(spotify)
        users = [owner]
        added = [users_partitions.build_add_request([owner])]
    cursor = _read_cursor(context.cursor)
    requests: list[dg.RunRequest] = []
    quiet: list[str] = []
    for user_id in users:
        if time.monotonic() - started > TICK_BUDGET_S:
            quiet.append(f"{user_id}: next tick (this one spent {TICK_BUDGET_S:g} s)")
            continue
        after_ms = cursor.get(user_id)
        retry_of = ""
        carried: list[PeekedPage] = []
        if instance is not None:
            runs = _latest_runs(instance, user_id)
            busy = _run_is_polling(runs, time.time())
            if busy is not None:
                quiet.append(f"{user_id}: {busy}")
                continue
            merged_ms = _merged_newest_ms(instance, user_id)
            failed = _failed_run(runs, time.time())
            if failed is not None and failed[1] > 0:
                quiet.append(f"{user_id}: run {failed[0][:8]} failed; asked again in {failed[1]:.0f} s")
                continue
            if failed is not None:
                carried = _carried_pages(runs, failed[0])
            if merged_ms is None and (failed is not None or (not runs and after_ms is None)):
                # Nothing merged yet: the run brings the latest plays itself, unasked (a peek
                # now would show plays the run, starting later, may find gone from the window).
                cursor.setdefault(user_id, FIRST_RUN_REQUESTED)
                requests.append(_first_run_request(user_id, failed[0] if failed is not None else "", carried))
                continue
            if failed is not None:  # its plays were never merged: ask from the newest merged one
                retry_of, after_ms = failed[0], merged_ms
            elif merged_ms is not None and (after_ms is None or merged_ms > after_ms):
                after_ms = cursor[user_id] = merged_ms
        try:
            with waits_until(deadline):
                window = listener_for(spotify, user_id).client.recently_played_window(after_ms=after_ms)
        except SpotifyWaitPastDeadline as exc:
            context.log.warning(f"user {user_id}: left for the next tick, its cursor kept: {exc}")
            quiet.append(f"{user_id}: left for the next tick ({exc})")
            continue
        except (SpotifyError, UserError) as exc:
            context.log.warning(f"user {user_id}: poll failed, the other users go on: {exc}")
            quiet.append(f"{user_id}: poll failed ({type(exc).__name__})")
            continue
        newest_ms, seen = _newest_after(window)
        if newest_ms is None:
            quiet.append(f"{user_id}: no new plays since {_since(after_ms)}")
            continue
        cursor[user_id] = max(newest_ms, cursor.get(user_id, newest_ms))
        pages = carried + _hand_over(context, lake, user_id, window)
        requests.append(
            dg.RunRequest(
                # A retry's key differs from the failed run's (Dagster drops a request under a used key).
                run_key=f"plays-{user_id}-until-{newest_ms}" + _retry_suffix(retry_of),
                partition_key=user_id,
                run_config=peeked_pages_run_config(pages) if pages else None,
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
    minimum_interval_seconds=MART_AUTOMATION_INTERVAL_S,
    description="Recompute the top ten and look up new tracks' ids and art after any write to the plays "
    "table (API poll or history import).",
)

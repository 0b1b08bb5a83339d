"""Catalogue lookups: artist and album ids and album art for plays that arrived without them.

A privacy export names a track by URI and its artist and album only by name, so imported
plays (most of a typical history) cannot open the dashboard's artist and album pages by id
and have no cover art. ``track_metadata`` asks Spotify for each such track once, caches the
answer in the warehouse, and the dashboard joins it in. Lookups go one id at a time
(``GET /v1/tracks/{id}``): since February 2026 development-mode apps, which is what a
personal installation is, may no longer call the several-tracks endpoint.

No ``from __future__ import annotations`` here: Dagster resolves the config class from the
annotation object.
"""

import time
from collections.abc import Callable
from typing import Any

import dagster as dg
from pydantic import Field

from spotify_assets.assets.history import history_import
from spotify_assets.assets.warehouse import bq_plays
from spotify_assets.automation import AFTER_PLAYS_WRITE
from spotify_assets.encoding import content_digest, parquet_bytes
from spotify_assets.lake_layout import TRACK_METADATA_PREFIX
from spotify_assets.resources.lake import LakeResource
from spotify_assets.resources.spotify import SpotifyResource
from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.schema import PLAYS_TABLE, TRACK_METADATA_TABLE
from spotify_assets.spotify.errors import SpotifyAPIError
from spotify_assets.spotify.normalize import normalize_track_metadata
from spotify_assets.tables import tracks as tracks_table

#: Consecutive failed lookups after which the run stops asking (the API is down or throttling
#: hard); what was found so far is kept and the rest waits for the next run.
MAX_CONSECUTIVE_ERRORS = 5


class TrackMetadataConfig(dg.Config):
    max_tracks: int = Field(default=1000, description="Most tracks looked up per run (most played first).")
    requests_per_second: float = Field(
        default=5.0,
        description="Pace of lookups; 0 = as fast as the API answers (the sandbox). Spotify's limit is a "
        "rolling 30-second window; the client still honours 429 Retry-After.",
    )


def pending_tracks_sql(limit: int) -> str:
    """Track ids with plays lacking an artist id, album id or cover, never looked up, most played first."""
    return (
        f"SELECT p.track_id, count(*) AS plays FROM {PLAYS_TABLE} p "
        f"LEFT JOIN {TRACK_METADATA_TABLE} m ON p.track_id = m.track_id "
        "WHERE p.track_id IS NOT NULL AND p.content_type = 'track' AND m.track_id IS NULL "
        "AND (p.primary_artist_id IS NULL OR p.album_id IS NULL OR p.album_image_url IS NULL) "
        f"GROUP BY p.track_id ORDER BY plays DESC, p.track_id LIMIT {int(limit)}"
    )


def paced(requests_per_second: float, clock: Callable[[], float] = time.monotonic) -> Callable[[], None]:
    """A function to call before each request: sleeps so calls are at most ``requests_per_second``."""
    interval = 1.0 / requests_per_second if requests_per_second > 0 else 0.0
    next_at = [clock()]

    def wait() -> None:
        delay = next_at[0] - clock()
        if delay > 0:
            time.sleep(delay)
        next_at[0] = max(next_at[0], clock()) + interval

    return wait


@dg.asset(
    group_name="warehouse",
    kinds={"spotify", "duckdb", "bigquery"},
    deps=[bq_plays, history_import],
    code_version="1",
    pool="warehouse",
    automation_condition=AFTER_PLAYS_WRITE,
)
def track_metadata(
    context: dg.AssetExecutionContext,
    config: TrackMetadataConfig,
    spotify: SpotifyResource,
    warehouse: WarehouseResource,
    lake: LakeResource,
) -> dg.MaterializeResult:
    """Artist and album ids and album art per track, for plays that arrived without them.

    Looks up only tracks never looked up before (``not_found`` answers are kept too, so a
    vanished track is not asked again), lands the answers in the lake, then upserts them into
    ``track_metadata``. Runs after each write to the plays table; an import of years of
    history is resolved ``max_tracks`` at a time, most played first.
    """
    pending = warehouse.query(pending_tracks_sql(config.max_tracks))
    track_ids = pending["track_id"].astype(str).tolist()
    if not track_ids:
        return dg.MaterializeResult(metadata={"looked_up": 0, "note": "every played track is resolved"})
    client = spotify.get_client()
    wait = paced(config.requests_per_second)
    answers: dict[str, dict[str, Any] | None] = {}
    errors: list[str] = []
    consecutive = 0
    for n, track_id in enumerate(track_ids, 1):
        wait()
        try:
            answers[track_id] = client.track(track_id)
            consecutive = 0
        except SpotifyAPIError as exc:  # auth errors are not caught: every further lookup would fail too
            errors.append(f"{track_id}: {exc}")
            consecutive += 1
            if consecutive >= MAX_CONSECUTIVE_ERRORS:
                context.log.warning(
                    f"{consecutive} lookups failed in a row; stopping after {n} of {len(track_ids)}"
                )
                break
        if n % 100 == 0:
            context.log.info(f"track lookups: {n}/{len(track_ids)}")
    rows = normalize_track_metadata(answers)
    lake_file = None
    if len(rows):
        data = parquet_bytes(rows, "track_metadata")
        lake_file = f"{TRACK_METADATA_PREFIX}{content_digest(data)}.parquet"
        lake.write_bytes(lake_file, data)
    result = tracks_table.merge_metadata(warehouse, rows)
    found = int((rows["status"] == "ok").sum()) if len(rows) else 0
    metadata: dict[str, Any] = {
        "table": TRACK_METADATA_TABLE,
        "looked_up": len(answers),
        "found": found,
        "not_found": len(answers) - found,
        "lookup_errors": len(errors),
        "still_pending_after_run": len(track_ids) - len(answers),
        "lake_file": lake_file or "none",
        "dagster/row_count": result.total_rows,
    }
    if errors:
        context.log.warning(
            f"{len(errors)} lookup(s) failed and will be retried next run: " + "; ".join(errors[:5])
        )
        if not answers:
            raise dg.Failure(description=f"every track lookup failed ({errors[0]})", metadata=metadata)
    return dg.MaterializeResult(metadata=metadata)

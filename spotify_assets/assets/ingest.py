"""Ingest: what the Spotify Web API says the listener played, and what those tracks sound like."""

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from spotify_assets.encoding import content_digest, parquet_bytes
from spotify_assets.io_managers import HANDOFF_TABLE_KEY
from spotify_assets.lake_layout import (
    QUARANTINED_RECENTLY_PLAYED_KIND,
    TRACK_FEATURES_PREFIX,
    user_dir,
)
from spotify_assets.metadata import markdown_table
from spotify_assets.partitions import USERS_PARTITIONS_NAME, users_partitions
from spotify_assets.raw_pages import Page, land_page, read_page, union_items, unseen_spans
from spotify_assets.resources.features import AudioFeaturesResource, FeaturesUnavailableError
from spotify_assets.resources.lake import LakeResource
from spotify_assets.resources.spotify import SpotifyResource
from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.schema import FEATURES_TABLE, PLAYS_TABLE
from spotify_assets.spotify.client import RECENTLY_PLAYED_LIMIT, RecentlyPlayed, SpotifyClient
from spotify_assets.spotify.errors import SpotifyError
from spotify_assets.spotify.normalize import normalize_audio_features, normalize_recently_played
from spotify_assets.tables import gaps as gaps_table
from spotify_assets.tables import plays as plays_table
from spotify_assets.tables import tracks as tracks_table
from spotify_assets.users.adoption import adopt_legacy
from spotify_assets.users.polling import Listener, run_listener

PREVIEW_COLUMNS = ["played_at", "track_name", "artist_names", "album_name"]


def _failure(listener: Listener, exc: SpotifyError) -> dg.Failure:
    """A poll that failed, naming whose: one user's revoked or throttled token fails their run only."""
    return dg.Failure(
        description=f"polling {listener.label()} failed: {exc}",
        metadata={"user_id": listener.user_id, "user": listener.name or "-"},
    )


def _listener(context: dg.AssetExecutionContext, spotify: SpotifyResource) -> Listener:
    """The partition's listener; a registered user's token is checked to be theirs (``/v1/me``)."""
    listener = run_listener(context, spotify)
    if listener.name is None:
        return listener  # the token store's owner: ``run_listener`` asked /v1/me already
    try:
        user_id = listener.client.me().id
    except SpotifyError as exc:
        raise _failure(listener, exc) from exc
    if user_id != listener.user_id:
        raise dg.Failure(
            f"{listener.label()}: the stored token belongs to Spotify user {user_id!r}, not to the "
            "partition's user; run `spotify-assets users remove` and `users add` again"
        )
    return listener


def _window(listener: Listener, after_ms: int | None) -> RecentlyPlayed:
    try:
        return listener.client.recently_played_window(after_ms=after_ms)
    except SpotifyError as exc:
        if listener.name is None:
            raise  # the single-user run fails exactly as before the household
        raise _failure(listener, exc) from exc


class PeekedPage(dg.Config):
    """A page the sensor was shown before the run (``raw_pages.Page``), landed in the lake."""

    path: str = Field(description="The page's lake path (raw/recently_played/...), as received.")
    after_ms: int | None = Field(default=None, description="The cursor the sensor asked after.")
    full: bool = Field(
        description="Whether the API answered a full window (it then vouches for nothing older)."
    )


class RawRecentTracksConfig(dg.Config):
    """What the sensor hands the run it requests (nothing, for the schedule's and a manual run)."""

    peeked_pages: list[PeekedPage] = Field(
        default_factory=list,
        description="Pages the sensor was shown before this run (raw_pages.py): their plays are merged "
        "with the run's own, though gone from Spotify's window by now.",
    )


def peeked_pages_run_config(pages: Sequence[PeekedPage]) -> dict[str, Any]:
    """The run config that hands ``pages`` to ``raw_recent_tracks`` (the sensor's requests)."""
    return {"ops": {"raw_recent_tracks": {"config": {"peeked_pages": [p.model_dump() for p in pages]}}}}


def peeked_pages_of(run_config: Mapping[str, Any]) -> list[PeekedPage]:
    """The pages a run was handed (``peeked_pages_run_config``): a failed run's retry carries them on."""
    config = run_config.get("ops", {}).get("raw_recent_tracks", {}).get("config", {})
    return RawRecentTracksConfig(**config).peeked_pages


#: The run tag that names the page a run landed (``PeekedPage`` as JSON), set as soon as it landed.
OWN_PAGE_TAG = "spotify/raw_page"


def own_page_of(tags: Mapping[str, str]) -> list[PeekedPage]:
    """The page a run landed itself (``OWN_PAGE_TAG``): a failed run's retry carries it on."""
    value = tags.get(OWN_PAGE_TAG)
    return [PeekedPage.model_validate_json(value)] if value else []


def _peeked_pages(
    context: dg.AssetExecutionContext, lake: LakeResource, handed: list[PeekedPage]
) -> list[Page]:
    """The handed pages still in the lake; one folded away since (a retry days later) is named."""
    pages = []
    for page in handed:
        items = read_page(lake, page.path)
        if items is None:
            context.log.warning(
                f"the page the sensor was shown, {page.path}, is no longer in the lake; its plays "
                "count only if this run's own poll still shows them"
            )
            continue
        pages.append(Page(items=items, after_ms=page.after_ms, full=page.full))
    return pages


@dg.asset(
    group_name="ingest",
    kinds={"spotify", "pandas"},
    partitions_def=users_partitions,
    output_required=False,
    code_version="1",
    metadata={HANDOFF_TABLE_KEY: "plays"},
)
def raw_recent_tracks(
    context: dg.AssetExecutionContext,
    config: RawRecentTracksConfig,
    spotify: SpotifyResource,
    warehouse: WarehouseResource,
    lake: LakeResource,
) -> Iterator[dg.Output[pd.DataFrame] | dg.AssetObservation]:
    """Plays the listener finished since the newest play of theirs already in the warehouse.

    Partitioned by user (``users``, keyed by Spotify user id): a registered user's run polls
    with that user's own token from the registry, the single-user setup's with the token store
    (``users/polling.py``); either way the token is checked to be the partition's user
    (``GET /v1/me``). The user id goes into each row and its key. On the first start after the
    household upgrade, the single-user layout's plays are adopted as that user
    (``users/adoption.py``) before the cursor is read, and the adoption is recorded as an
    observation of ``bq_plays`` (the table it rewrote), so the UI shows it there.
    The cursor is read from the warehouse, not remembered by the pipeline, so a run that
    crashed after fetching simply fetches the same plays again (the merge keeps them once).
    The raw API items are landed in the lake first, exactly as received; the page the sensor
    was shown before the run (``config.peeked_pages``) is merged with them and the gap judged on
    both (``raw_pages.py``). When there is
    nothing new, the asset yields no output: everything downstream is *skipped*, not
    failed, and an observation records why.
    """
    listener = _listener(context, spotify)
    client: SpotifyClient = listener.client
    user_id = listener.user_id
    owner, adopted = adopt_legacy(warehouse, lake, user_id)
    adoption = None
    if adopted:
        context.log.info(f"adopted {adopted} play(s) of the single-user layout as {owner}")
        # A rewrite of the plays table before its merge: shown in bq_plays' own timeline (an
        # observation, yielded last: the rows were there already, none is new).
        adoption = dg.AssetObservation(
            asset_key="bq_plays",
            partition=owner if context.instance.has_dynamic_partition(USERS_PARTITIONS_NAME, owner) else None,
            description=f"adopted {adopted} play(s) of the single-user layout as {owner} (raw_recent_tracks)",
            metadata={"table": PLAYS_TABLE, "user_id": owner, "adopted_single_user_plays": adopted},
        )
    cursor = plays_table.max_played_at(warehouse, user_id)
    after_ms = int(cursor.timestamp() * 1000) if cursor else None
    window = _window(listener, after_ms)
    fetched_at = datetime.now(UTC)
    raw_path = land_page(lake, user_id, window.items, fetched_at) if window.items else None
    if raw_path is not None:
        # Named on the run at once: if the run dies before its merge, the sensor's retry carries
        # this page on (``own_page_of``), so the plays it showed are not left to the window.
        page = PeekedPage(path=raw_path, after_ms=after_ms, full=window.full)
        context.instance.add_run_tags(context.run_id, {OWN_PAGE_TAG: page.model_dump_json()})
    pages = _peeked_pages(context, lake, config.peeked_pages)
    items = union_items(window, pages)
    normalized = normalize_recently_played(items, ingested_at=fetched_at, user_id=user_id)
    plays = normalized.plays
    if cursor is not None and len(plays):
        # Spotify's `after` is exclusive already; this guards a server that is not.
        plays = plays[plays["played_at"] > pd.Timestamp(cursor)].reset_index(drop=True)
    already_imported = 0
    if len(plays):
        # A play the warehouse already holds from a privacy export carries the export's
        # clock (whole seconds, a second or two off): same track within the tolerance is
        # the same stream, so it is not new (see resources/dedupe.py for the tolerances).
        dups = warehouse.plays_index().duplicates(plays.assign(idx=range(len(plays))), "api")
        imported = dups.loc[dups["why"] == "window", "idx"].tolist()
        already_imported = len(imported)
        plays = plays.drop(index=imported).reset_index(drop=True)
    if normalized.quarantine:
        body = "\n".join(json.dumps(q, sort_keys=True) for q in normalized.quarantine).encode()
        digest = content_digest(body)
        lake.write_bytes(
            f"{user_dir(QUARANTINED_RECENTLY_PLAYED_KIND, user_id)}/fetched_date={fetched_at:%Y-%m-%d}/{digest}.jsonl",
            body,
        )
        context.log.warning(
            f"quarantined {len(normalized.quarantine)} item(s): {normalized.quarantine_reasons}"
        )
    # Judged from the API's raw windows, not from the plays left after quarantine and dedupe:
    # episodes, local files or junk inside a full window hide older plays just the same.
    spans = unseen_spans(window, pages, round(fetched_at.timestamp() * 1000))
    possible_gap = bool(spans)
    for start_ms, end_ms in spans:
        gap_start, gap_end = (
            pd.Timestamp(ms, unit="ms", tz="UTC").to_pydatetime() for ms in (start_ms, end_ms)
        )
        gaps_table.record(warehouse, gap_start, gap_end)
        context.log.warning(
            f"a full window of {RECENTLY_PLAYED_LIMIT} items the API returned was all newer than "
            f"{gap_start}: plays between it and {gap_end} may be missing (poll more often, or import a "
            "privacy export)"
        )
    metadata: dict[str, dg.RawMetadataValue] = {
        "user_id": user_id,
        "adopted_single_user_plays": adopted,
        "cursor": cursor.isoformat() if cursor else "none (first run)",
        "items_returned": window.raw_items,
        "peeked_pages": len(pages),
        "new_plays": len(plays),
        "already_imported": already_imported,
        "quarantined": len(normalized.quarantine),
        "quarantine_reasons": normalized.quarantine_reasons,
        "possible_gap": possible_gap,
        "api_calls": dict(client.calls),
        "raw_lake_file": raw_path or "none",
    }
    if plays.empty:
        context.log.info(f"No new plays since {cursor}: downstream assets are skipped for this run.")
        yield dg.AssetObservation(
            asset_key=context.asset_key,
            metadata={**metadata, "skipped_reason": "the API returned no plays after the cursor"},
        )
    else:
        metadata["newest_play"] = plays["played_at"].max().isoformat()
        metadata["preview"] = markdown_table(plays.sort_values("played_at", ascending=False), PREVIEW_COLUMNS)
        yield dg.Output(plays, metadata=metadata)
    if adoption is not None:
        yield adoption


@dg.asset(
    group_name="ingest",
    kinds={"spotify", "pandas"},
    partitions_def=users_partitions,
    code_version="1",
    metadata={HANDOFF_TABLE_KEY: "track_features"},
)
def audio_features(
    context: dg.AssetExecutionContext,
    raw_recent_tracks: pd.DataFrame,
    features: AudioFeaturesResource,
    warehouse: WarehouseResource,
) -> dg.Output[pd.DataFrame]:
    """Audio features (energy, valence, tempo…) for the batch's tracks.

    Only tracks the warehouse does not know yet are sent to the provider; known ones are
    read back, so the batch always carries features for all of its tracks. When the
    provider refuses (Spotify answers 403 to apps created after Nov 2024) the tracks are
    recorded as ``unavailable``, the run goes on, and a later run or another provider
    (``SPOTIFY_FEATURES_PROVIDER``) fills them in. Features are per track, not per user: a
    track another listener's run already stored is read back, not fetched again (Spotify's
    limits are per app).
    """
    track_ids = sorted(raw_recent_tracks["track_id"].dropna().unique().tolist())
    known = tracks_table.features_of(warehouse, track_ids)
    settled = known[known["status"].isin(["ok", "not_found"])]
    missing = [t for t in track_ids if t not in set(settled["track_id"])]
    note = "all tracks already known"
    provider = features.provider
    if missing:
        try:
            answers = features.fetch(missing)
            note = f"fetched {len(missing)} track(s) from {provider}"
        except FeaturesUnavailableError as exc:
            answers = None
            note = str(exc)
            context.log.warning(note)
        fetched = normalize_audio_features(missing, answers, provider=provider)
    else:
        fetched = normalize_audio_features([], {}, provider=provider)
    batch = pd.concat([settled, fetched], ignore_index=True) if len(settled) else fetched
    status_counts = batch["status"].value_counts().to_dict()
    return dg.Output(
        batch,
        metadata={
            "tracks_in_batch": len(track_ids),
            "already_known": len(settled),
            "requested": len(missing),
            "provider": provider,
            "status_counts": {str(k): int(v) for k, v in status_counts.items()},
            "features_available": bool(status_counts.get("ok", 0)) or not missing,
            "note": note,
        },
    )


class FeaturesBackfillConfig(dg.Config):
    max_tracks: int = 5000


@dg.asset(
    group_name="ingest",
    kinds={"spotify", "pandas"},
    deps=["bq_plays"],
    code_version="1",
    metadata={HANDOFF_TABLE_KEY: "track_features"},
)
def audio_features_backfill(
    context: dg.AssetExecutionContext,
    config: FeaturesBackfillConfig,
    features: AudioFeaturesResource,
    warehouse: WarehouseResource,
    lake: LakeResource,
) -> dg.Output[pd.DataFrame]:
    """Audio features for tracks the warehouse has plays of but no features for.

    Imported history brings thousands of tracks the hourly poll never fetched features for.
    This asset, run on demand (not hourly, so a tick's cost stays proportional to new plays),
    asks the provider for up to ``max_tracks`` of them, most played first, and lands the
    answer in the lake; ``track_features``, downstream, merges it like the hourly batch
    (materialize both: ``--select audio_features_backfill+``).
    """
    missing = warehouse.query(
        f"SELECT p.track_id, count(*) AS plays FROM {PLAYS_TABLE} p "
        f"LEFT JOIN {FEATURES_TABLE} f ON p.track_id = f.track_id "
        f"WHERE p.track_id IS NOT NULL AND p.content_type = 'track' "
        f"AND (f.track_id IS NULL OR f.status = 'unavailable') "
        f"GROUP BY p.track_id ORDER BY plays DESC, p.track_id LIMIT {int(config.max_tracks)}"
    )
    track_ids = missing["track_id"].astype(str).tolist()
    if not track_ids:
        return dg.Output(
            normalize_audio_features([], {}, provider=features.provider),
            metadata={"requested": 0, "note": "every played track has features"},
        )
    try:
        answers = features.fetch(track_ids)
        note = f"fetched {len(track_ids)} track(s) from {features.provider}"
    except FeaturesUnavailableError as exc:
        answers, note = None, str(exc)
        context.log.warning(note)
    fetched = normalize_audio_features(track_ids, answers, provider=features.provider)
    data = parquet_bytes(fetched, "track_features")
    path = f"{TRACK_FEATURES_PREFIX}backfill/{content_digest(data)}.parquet"
    lake.write_bytes(path, data)
    counts = fetched["status"].value_counts().to_dict()
    return dg.Output(
        fetched,
        metadata={
            "requested": len(track_ids),
            "status_counts": {str(k): int(v) for k, v in counts.items()},
            "lake_file": path,
            "note": note,
        },
    )

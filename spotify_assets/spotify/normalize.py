"""Turn Spotify's play-history JSON into rows of the plays table, or quarantine them.

Every item ends up in exactly one of two places: a normalized play row, or a quarantine
record carrying the raw item and a reason. Nothing is dropped silently: the asset reports
both counts, and the quarantine lands in the lake for inspection.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from spotify_assets.encoding import content_digest
from spotify_assets.schema import column_names, conform, empty_frame
from spotify_assets.spotify.client import parse_played_at


@dataclass
class Normalized:
    plays: pd.DataFrame
    quarantine: list[dict[str, Any]] = field(default_factory=list)

    @property
    def quarantine_reasons(self) -> dict[str, int]:
        return dict(Counter(q["reason"] for q in self.quarantine))


def play_key(
    played_at: pd.Timestamp | datetime, track_id: str | None, artist: str = "", track: str = ""
) -> str:
    """The play's idempotency key: UTC end time to the microsecond plus the track identity."""
    ts = pd.Timestamp(played_at).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ident = track_id if track_id else f"name:{artist.strip().lower()}|{track.strip().lower()}"
    return f"{ts}|{ident}"


def user_play_key(user_id: str, key: str) -> str:
    """A listener's play key: their Spotify user id in front, so two people playing the same
    track at the same instant are two plays (the one place the prefix is spelled)."""
    return f"{user_id}|{key}"


def for_user(plays: pd.DataFrame, user_id: str | None) -> pd.DataFrame:
    """``plays`` (keys without a user) as ``user_id``'s: the column filled, each key prefixed.

    None leaves the frame as the single-user layout had it (adopted later, see ``users/adoption.py``).
    """
    if user_id is None or plays.empty:
        return plays.assign(user_id=user_id) if user_id is not None else plays
    return plays.assign(
        user_id=user_id, play_key=[user_play_key(user_id, k) for k in plays["play_key"].astype(str)]
    )


def batch_id_for(keys: list[str]) -> str:
    """A batch's id is a hash of its sorted play keys: the same plays always make the same batch."""
    return content_digest("\n".join(sorted(keys)).encode())


def _largest_image(album: dict[str, Any]) -> str | None:
    images = [i for i in album.get("images") or [] if isinstance(i, dict) and i.get("url")]
    if not images:
        return None
    return str(max(images, key=lambda i: (i.get("width") or 0) * (i.get("height") or 0))["url"])


def track_columns(track: dict[str, Any]) -> dict[str, Any]:
    """The columns a Track object fills, shared by plays and ``track_metadata``."""
    raw_album = track.get("album")
    album: dict[str, Any] = raw_album if isinstance(raw_album, dict) else {}
    artists = [a for a in track.get("artists") or [] if isinstance(a, dict)]
    return {
        "track_id": track.get("id"),
        "track_name": track.get("name"),
        "track_uri": track.get("uri"),
        "artist_ids": ",".join(a.get("id") or "" for a in artists) or None,
        "artist_names": ", ".join(a.get("name") or "" for a in artists) or None,
        "primary_artist_id": artists[0].get("id") if artists else None,
        "primary_artist_name": artists[0].get("name") if artists else None,
        "album_id": album.get("id"),
        "album_name": album.get("name"),
        "album_release_date": album.get("release_date"),
        "album_image_url": _largest_image(album),
        "duration_ms": track.get("duration_ms"),
        "explicit": track.get("explicit"),
    }


def normalize_track_metadata(
    answers: dict[str, dict[str, Any] | None], *, looked_up_at: datetime | None = None
) -> pd.DataFrame:
    """``GET /v1/tracks/{id}`` answers (None: not found) as ``track_metadata`` rows, one per id."""
    looked_up_at = looked_up_at or datetime.now(UTC)
    rows = [
        {
            **(track_columns(track) if track else {}),
            "track_id": track_id,
            "status": "ok" if track else "not_found",
            "looked_up_at": looked_up_at,
        }
        for track_id, track in answers.items()
    ]
    return conform(pd.DataFrame(rows), "track_metadata") if rows else empty_frame("track_metadata")


def _quarantine_reason(item: Any) -> str | None:
    """Why an item cannot be a play, or None. Every item the client could not read lands here too."""
    if not isinstance(item, dict):
        return "item is not an object"
    track = item.get("track")
    if not isinstance(track, dict):
        return "missing track object"
    if item.get("played_at") in (None, ""):
        return "missing played_at"
    if parse_played_at(item["played_at"]) is None:
        return "unparseable played_at"
    kind = track.get("type", "track")
    if kind == "episode":
        return "podcast episode (not a music play)"
    if kind != "track":
        return f"unknown item type {str(kind)[:40]!r}"
    if track.get("is_local"):
        return "local file (no Spotify id)"
    if not track.get("id"):
        return "null track id"
    return None


def normalize_recently_played(
    items: list[Any], *, ingested_at: datetime | None = None, user_id: str | None = None
) -> Normalized:
    """Normalize ``user_id``'s recently-played items into a conformed plays frame (``batch_id`` filled)."""
    ingested_at = ingested_at or datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    for item in items:
        reason = _quarantine_reason(item)
        parsed = parse_played_at(item["played_at"]) if reason is None else None
        if parsed is None:
            quarantine.append({"reason": reason or "unparseable played_at", "item": item})
            continue
        played_at = pd.Timestamp(parsed)
        track = item["track"]
        context = item.get("context") or {}
        rows.append(
            {
                "play_key": play_key(played_at, track["id"]),
                "played_at": played_at,
                **track_columns(track),
                "popularity": track.get("popularity"),
                "context_type": context.get("type") if isinstance(context, dict) else None,
                "context_uri": context.get("uri") if isinstance(context, dict) else None,
                "content_type": "track",
                # The API lists only plays of 30 s or more, so every API row is a play.
                "is_play": True,
                "source": "api",
                "ingested_at": ingested_at,
            }
        )
    if not rows:
        return Normalized(plays=empty_frame("plays"), quarantine=quarantine)
    # The same play can appear twice when pages overlap; the key makes it one row.
    frame = pd.DataFrame(rows).drop_duplicates("play_key").sort_values("played_at").reset_index(drop=True)
    frame = for_user(frame, user_id)
    frame["batch_id"] = batch_id_for(frame["play_key"].tolist())
    plays = conform(frame, "plays")
    return Normalized(plays=plays, quarantine=quarantine)


#: The feature columns of the track_features table (everything but its bookkeeping columns).
FEATURE_COLUMNS = tuple(
    c for c in column_names("track_features") if c not in {"track_id", "status", "provider", "fetched_at"}
)


def normalize_audio_features(
    requested: list[str],
    answers: dict[str, dict[str, Any] | None] | None,
    *,
    provider: str,
    fetched_at: datetime | None = None,
) -> pd.DataFrame:
    """One ``track_features`` row per requested id: ``ok``, ``not_found`` or, when the provider
    refused (``answers is None``), ``unavailable`` so a later run or provider can fill it."""
    fetched_at = fetched_at or datetime.now(UTC)
    rows = []
    for track_id in requested:
        row: dict[str, Any] = {"track_id": track_id, "provider": provider, "fetched_at": fetched_at}
        if answers is None:
            row["status"] = "unavailable"
        elif not isinstance(answers.get(track_id), dict):
            row["status"] = "not_found"
        else:
            features = answers[track_id] or {}
            row["status"] = "ok"
            row.update({c: features.get(c) for c in FEATURE_COLUMNS})
        rows.append(row)
    return conform(pd.DataFrame(rows), "track_features") if rows else empty_frame("track_features")

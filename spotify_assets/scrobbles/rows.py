"""A scrobbled listen as a row of the plays table, and back: the columns the cross-source merge reads.

A listen that matches no Spotify play becomes its own play (``track_id`` NULL): ``played_at`` is
when it *started* (a scrobble knows only that; Spotify's rows keep their end), its key the
listener's prefix and ``matching.play_key`` (start, the source that saw it first, normalised
names), ``source`` the scrobbler's name. Two columns say which sources saw a play:

* ``sources``: the source names, sorted and comma-joined (``spotify``, ``lastfm``,
  ``listenbrainz``, ``scrobble_server``); NULL on rows written before the column, which were
  all Spotify's (``sources_of`` reads it so).
* ``scrobbled_at``: each scrobbler's own record of the start, ``<source>@<unix seconds>/<precision
  seconds>`` entries sorted and comma-joined. A listen absorbed into a Spotify play leaves no
  row of its own, so this is what tells a re-import of that listen (a duplicate) from another
  listen of the track near it (``merge.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from spotify_assets.play_sources import SPOTIFY
from spotify_assets.scrobbles.listen import Listen
from spotify_assets.scrobbles.matching import play_key
from spotify_assets.spotify.normalize import user_play_key


@dataclass(frozen=True)
class Scrobbled:
    """One scrobbler's record of a play's start (an entry of ``scrobbled_at``)."""

    source: str
    started_at: datetime
    precision_s: int = 1

    def encode(self) -> str:
        return f"{self.source}@{int(self.started_at.timestamp())}/{self.precision_s}"

    @classmethod
    def decode(cls, entry: str) -> Scrobbled:
        source, rest = entry.split("@", 1)
        seconds, precision = rest.split("/", 1)
        return cls(source, datetime.fromtimestamp(int(seconds), UTC), int(precision))


def join(items: set[str]) -> str:
    """A set of names or entries as the columns store them: sorted, comma-joined."""
    return ",".join(sorted(items))


def split(value: Any) -> set[str]:
    """A stored ``sources`` / ``scrobbled_at`` value as a set (NULL: empty)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)) or value == "":
        return set()
    return set(str(value).split(","))


def sources_of(value: Any) -> set[str]:
    """The sources a row says saw its play: NULL (a row older than the column) is Spotify's."""
    return split(value) or {SPOTIFY}


def scrobbles_of(value: Any) -> list[Scrobbled]:
    return [Scrobbled.decode(e) for e in sorted(split(value))]


def listen_row(listen: Listen, user_id: str | None) -> dict[str, Any]:
    """The plays row of a listen kept as its own play (before the merge decides; see the module)."""
    key = play_key(listen)
    return {
        "play_key": key if user_id is None else user_play_key(user_id, key),
        "played_at": listen.started_at.astimezone(UTC),
        "track_id": None,
        "track_name": listen.track,
        "artist_names": listen.artist,
        "primary_artist_name": listen.artist,
        "album_name": listen.album,
        "duration_ms": listen.duration_ms,
        "content_type": "track",
        "is_play": True,
        "source": listen.source,
        "sources": listen.source,
        "scrobbled_at": Scrobbled(listen.source, listen.started_at, listen.precision_s).encode(),
        "user_id": user_id,
    }


def row_listen(row: Mapping[str, Any]) -> Listen:
    """A landed scrobble row (``listen_row``'s) as the ``Listen`` it was, for ``matching.decide``."""
    (entry,) = scrobbles_of(row["scrobbled_at"])
    return Listen(
        source=entry.source,
        artist=str(row["primary_artist_name"]),
        track=str(row["track_name"]),
        album=None,
        started_at=entry.started_at,
        position=str(row["play_key"]),
        precision_s=entry.precision_s,
    )

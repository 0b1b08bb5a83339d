"""ListenBrainz's listen format: read from its exports, and judged for the door's submissions.

A listen is ``{"listened_at": <Unix seconds>, "track_metadata": {"artist_name", "track_name",
"release_name", "additional_info": {...}}}``; ``listened_at`` is when the play started.
``additional_info`` may hold ``duration_ms`` (or ``duration`` in seconds), ``spotify_id`` (an
``open.spotify.com/track/<id>`` URL), ``recording_mbid``, ``release_mbid``, ``artist_mbids``,
``media_player`` and ``submission_client``; exports add ``mbid_mapping`` (ListenBrainz's own
match to MusicBrainz), read where the submitter gave no id.

The export is a JSON array of listens, or a ZIP of JSON-lines files (one listen a line); both
are streamed. ``listen_from_json`` is the one parser: the export readers and the door's
``POST /1/submit-listens`` judge a listen by the same rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import ijson

from spotify_assets.scrobbles.files import InputFile
from spotify_assets.scrobbles.listen import (
    LISTENBRAINZ,
    Invalid,
    Listen,
    Mbids,
    ReadItem,
    Rejected,
    text,
    unix_time,
)

#: A Spotify track id in ``additional_info.spotify_id`` (a URL, sometimes a URI).
_SPOTIFY_TRACK = re.compile(
    r"(?:https?://open\.spotify\.com/(?:[A-Za-z-]+/)?track/|spotify:track:)([0-9A-Za-z]{22})"
)


def spotify_track_id(value: Any) -> str | None:
    """The track id in a ``spotify_id`` URL or URI; None for anything else (an album, a typo)."""
    if not isinstance(value, str):
        return None
    m = _SPOTIFY_TRACK.match(value.strip())
    return m.group(1) if m else None


def listen_from_json(
    obj: Any, now: datetime, *, position: str, source: str = LISTENBRAINZ, started_at: datetime | None = None
) -> Listen:
    """One listen object as a ``Listen``; raises ``Invalid`` with the reason it is not one.

    ``started_at`` stands in for a missing ``listened_at`` (a ``playing_now`` submission has
    none: it is playing at ``now``); otherwise ``listened_at`` is required.
    """
    if not isinstance(obj, dict):
        raise Invalid("not_an_object")
    meta = obj.get("track_metadata")
    if not isinstance(meta, dict):
        raise Invalid("missing_track_metadata")
    info = meta.get("additional_info")
    if info is None:
        info = {}
    if not isinstance(info, dict):
        raise Invalid("bad_type:additional_info")
    if obj.get("listened_at") is not None:
        when = unix_time(obj["listened_at"], now)
    elif started_at is not None:
        when = started_at
    else:
        raise Invalid("missing_listened_at")
    found_mapping = meta.get("mbid_mapping")
    mapping: dict[str, Any] = found_mapping if isinstance(found_mapping, dict) else {}
    return Listen(
        source=source,
        artist=_required(meta.get("artist_name"), "artist_name"),
        track=_required(meta.get("track_name"), "track_name"),
        album=text(meta.get("release_name"), "release_name", required=False),
        started_at=when,
        position=position,
        duration_ms=_duration_ms(info),
        spotify_track_id=spotify_track_id(info.get("spotify_id")),
        mbids=Mbids(
            recording=_mbid(info.get("recording_mbid")) or _mbid(mapping.get("recording_mbid")),
            release=_mbid(info.get("release_mbid")) or _mbid(mapping.get("release_mbid")),
            artists=_mbid_list(info.get("artist_mbids")) or _mbid_list(mapping.get("artist_mbids")),
        ),
        player=_first_text(info, ("media_player", "submission_client", "listening_from")),
    )


def _required(value: Any, what: str) -> str:
    found = text(value, what, required=True)
    assert found is not None  # required=True raises instead of returning None
    return found


def _duration_ms(info: dict[str, Any]) -> int | None:
    """``duration_ms``, else ``duration`` (seconds); a value that is not a non-negative number is invalid."""
    for key, scale in (("duration_ms", 1), ("duration", 1000)):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise Invalid(f"bad_type:{key}")
        return int(value * scale)
    return None


def _mbid(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _mbid_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # some submitters send one id as a string
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(v.strip() for v in value if isinstance(v, str) and v.strip())


def _first_text(info: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = info.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def read_json_array(f: InputFile, now: datetime, *, source: str = LISTENBRAINZ) -> Iterator[ReadItem]:
    """The listens of an export's JSON array, one item at a time."""
    count = 0
    with f.open() as fh:
        try:
            for item in ijson.items(fh, "item", use_float=True):
                position = f"{f.name}#{count}"
                count += 1
                try:
                    yield listen_from_json(item, now, position=position, source=source)
                except Invalid as exc:
                    yield Rejected(exc.reason, position, item)
        except (ijson.JSONError, UnicodeDecodeError) as exc:
            yield Rejected("bad_json", f"{f.name}#{count}", " ".join(str(exc).split())[:200])


def read_json_lines(f: InputFile, now: datetime, *, source: str = LISTENBRAINZ) -> Iterator[ReadItem]:
    """The listens of a JSON-lines file (one listen a line; blank lines are not rows)."""
    with f.open() as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            position = f"{f.name}:{line_no}"
            try:
                item = json.loads(line, parse_constant=_no_constant)
            except ValueError:
                yield Rejected("bad_json", position, line.decode("utf-8", "replace")[:10_240])
                continue
            try:
                yield listen_from_json(item, now, position=position, source=source)
            except Invalid as exc:
                yield Rejected(exc.reason, position, item)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def looks_like_listen(obj: Any) -> bool:
    """Whether a parsed object has a listen's shape (format detection; not validation)."""
    return isinstance(obj, dict) and isinstance(obj.get("track_metadata"), dict)

"""Readers of Last.fm exports, streamed: each yields one ``Listen``, ``Rejected`` or ``Skipped`` per row.

Last.fm has no export of its own; people use exporters, which write one of three shapes:

* CSV with the header ``uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid``
  (``uts`` Unix seconds; ``utc_time`` read only when ``uts`` is empty);
* headerless CSV ``artist,album,track,date`` with dates like ``31 Jan 2021 14:56`` (UTC, minute
  precision, so those listens carry ``precision_s=60``);
* JSON pages of ``user.getRecentTracks`` (``{"recenttracks": {"track": [...]}}``, or an array of
  such pages), where the entry playing at export time has no ``date`` and is skipped.

Every Last.fm time is when the scrobbled play *started*. Rows repeated at page boundaries are
read as they are: ``matching.decide`` counts them as duplicates.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import ijson

from spotify_assets.scrobbles.files import InputFile
from spotify_assets.scrobbles.listen import (
    LASTFM,
    Invalid,
    Listen,
    Mbids,
    ReadItem,
    Rejected,
    Skipped,
    checked_time,
    text,
    unix_time,
)

#: The header of the CSV shape that carries Unix seconds and MusicBrainz ids.
CSV_HEADER = ("uts", "utc_time", "artist", "artist_mbid", "album", "album_mbid", "track", "track_mbid")
#: The headerless shape's columns.
HEADERLESS_COLUMNS = ("artist", "album", "track", "date")
#: The headerless shape's date, and the ``utc_time`` column's (with a comma, as Last.fm prints it).
DATE_FORMATS = ("%d %b %Y %H:%M", "%d %b %Y, %H:%M")
#: Where the tracks of a getRecentTracks page are, for one page or an array of pages; a page
#: with one track may hold it as an object rather than a one-item list.
_TRACK_PREFIXES = frozenset(
    {
        "recenttracks.track",
        "recenttracks.track.item",
        "item.recenttracks.track",
        "item.recenttracks.track.item",
    }
)
#: What the now-playing entry is counted as (not a listen yet: Last.fm has not scrobbled it).
NOW_PLAYING = "now_playing"


def parse_date(value: str) -> datetime:
    """``31 Jan 2021 14:56`` (or ``31 Jan 2021, 14:56``) as UTC; ``Invalid("bad_date")`` otherwise."""
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise Invalid("bad_date")


def _text_rows(f: InputFile) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank CSV row. Bytes that are not UTF-8 survive as
    surrogate escapes, so the row is rejected (``bad_unicode``) rather than the whole file."""
    with (
        f.open() as raw,
        io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="") as fh,
    ):
        reader = csv.reader(fh)
        for row in reader:
            if row and any(cell.strip() for cell in row):
                yield reader.line_num, row


def read_csv(f: InputFile, now: datetime) -> Iterator[ReadItem]:
    """The CSV shape with a header (``CSV_HEADER``); the header row itself is not a listen."""
    rows = _text_rows(f)
    for line, row in rows:
        if tuple(c.strip().lower() for c in row) != CSV_HEADER:
            yield Rejected("bad_header", f"{f.name}:{line}", row)
        break
    for line, row in rows:
        position = f"{f.name}:{line}"
        try:
            yield _csv_listen(row, now, position)
        except Invalid as exc:
            yield Rejected(exc.reason, position, row)


def _csv_listen(row: list[str], now: datetime, position: str) -> Listen:
    if len(row) != len(CSV_HEADER):
        raise Invalid("bad_columns")
    uts, utc_time, artist, artist_mbid, album, album_mbid, track, track_mbid = row
    if uts.strip():
        started, precision = unix_time(uts, now), 1
    elif utc_time.strip():
        started, precision = checked_time(parse_date(utc_time), now), 60
    else:
        raise Invalid("missing_time")
    return Listen(
        source=LASTFM,
        artist=_required(artist, "artist"),
        track=_required(track, "track"),
        album=text(album, "album", required=False),
        started_at=started,
        precision_s=precision,
        position=position,
        mbids=_mbids(track_mbid, album_mbid, artist_mbid),
    )


def read_headerless_csv(f: InputFile, now: datetime) -> Iterator[ReadItem]:
    """The headerless shape (``HEADERLESS_COLUMNS``). A first row without a date is the track
    playing at export time (newest first): skipped, as in the JSON pages; later ones are rejected."""
    first = True
    for line, row in _text_rows(f):
        position = f"{f.name}:{line}"
        if first and len(row) == len(HEADERLESS_COLUMNS) and not row[3].strip():
            first = False
            yield Skipped(NOW_PLAYING, position)
            continue
        first = False
        try:
            if len(row) != len(HEADERLESS_COLUMNS):
                raise Invalid("bad_columns")
            artist, album, track, date = row
            if not date.strip():
                raise Invalid("missing_date")
            yield Listen(
                source=LASTFM,
                artist=_required(artist, "artist"),
                track=_required(track, "track"),
                album=text(album, "album", required=False),
                started_at=checked_time(parse_date(date), now),
                precision_s=60,
                position=position,
            )
        except Invalid as exc:
            yield Rejected(exc.reason, position, row)


def read_json_pages(f: InputFile, now: datetime) -> Iterator[ReadItem]:
    """The tracks of ``user.getRecentTracks`` pages, one at a time (a page is never held whole)."""
    count = 0
    with f.open() as fh:
        try:
            for item in _page_tracks(fh):
                position = f"{f.name}#{count}"
                count += 1
                try:
                    yield _json_listen(item, now, position)
                except _NowPlaying:
                    yield Skipped(NOW_PLAYING, position)
                except Invalid as exc:
                    yield Rejected(exc.reason, position, item)
        except (ijson.JSONError, UnicodeDecodeError) as exc:
            yield Rejected("bad_json", f"{f.name}#{count}", " ".join(str(exc).split())[:200])


def _page_tracks(fh: Any) -> Iterator[Any]:
    """Each track object of the pages in ``fh``, built from ijson's events one track at a time."""
    builder: ijson.ObjectBuilder | None = None
    at = ""
    for prefix, event, value in ijson.parse(fh, use_float=True):
        if builder is None:
            if event == "start_map" and prefix in _TRACK_PREFIXES:
                builder, at = ijson.ObjectBuilder(), prefix
                builder.event(event, value)
            continue
        builder.event(event, value)
        if event == "end_map" and prefix == at:
            yield builder.value
            builder = None


class _NowPlaying(Exception):
    """The entry Last.fm shows as playing: no ``date`` yet."""


def _json_listen(item: Any, now: datetime, position: str) -> Listen:
    if not isinstance(item, dict):
        raise Invalid("not_an_object")
    attr = item.get("@attr")
    date = item.get("date")
    if date is None or (isinstance(attr, dict) and attr.get("nowplaying") == "true"):
        raise _NowPlaying
    if not isinstance(date, dict):
        raise Invalid("bad_time")
    artist = item.get("artist")
    album = item.get("album")
    artist_name = artist.get("#text", artist.get("name")) if isinstance(artist, dict) else artist
    album_name = album.get("#text") if isinstance(album, dict) else album
    return Listen(
        source=LASTFM,
        artist=_required(artist_name, "artist"),
        track=_required(item.get("name"), "track"),
        album=text(album_name, "album", required=False),
        started_at=unix_time(date.get("uts"), now),
        position=position,
        mbids=_mbids(
            item.get("mbid"),
            album.get("mbid") if isinstance(album, dict) else None,
            artist.get("mbid") if isinstance(artist, dict) else None,
        ),
    )


def _required(value: Any, what: str) -> str:
    found = text(value, what, required=True)
    assert found is not None  # required=True raises instead of returning None
    return found


def _mbids(recording: Any, release: Any, artist: Any) -> Mbids:
    """Last.fm's ids, where set (exporters write an empty string for none)."""

    def one(value: Any) -> str | None:
        return value.strip() or None if isinstance(value, str) else None

    artist_id = one(artist)
    return Mbids(recording=one(recording), release=one(release), artists=(artist_id,) if artist_id else ())

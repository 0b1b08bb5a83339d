"""``spotify-assets export``: a listener's plays out again, as files other trackers import.

Two formats, each one this project's own import reads back (``detect.py``), so a round trip is
tested rather than assumed:

* ``listenbrainz``: a ZIP shaped like ListenBrainz's own export, which its importer takes
  (``user.json`` and one JSON-lines file a month, ``listens/<year>/<month>.jsonl``, one listen
  a line: ``listened_at`` and ``track_metadata`` with the Spotify track URL, the duration and
  the player in ``additional_info``);
* ``csv``: the Last.fm exporters' CSV with the header
  ``uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid``, which Last.fm
  importers and multi-scrobbler read.

What is exported is what a scrobbler would have recorded: the plays (``is_play``: a track
streamed for at least 30 s) that are tracks, not podcast episodes; the summary says how many
streams were left out. A scrobble's time is when the play *started*: a Spotify play's start is
its end minus the time it played (``matching.spotify_started_at``; a polled play has no
``ms_played``, its track's length stands in), while a play another source recorded keeps the
start that source gave.

The plays are read a year at a time (one query each, in either warehouse's dialect), so a
lifetime's history never sits in memory at once; the file is written beside its final name
and renamed into place only when complete, so an interrupted export leaves no half file.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from spotify_assets.resources.warehouse import WarehouseResource

from spotify_assets.scrobbles.lastfm import CSV_HEADER
from spotify_assets.scrobbles.matching import spotify_started_at

FORMATS = ("listenbrainz", "csv")
#: The ``source`` values of rows Spotify recorded (their ``played_at`` is the play's end).
SPOTIFY_ROW_SOURCES = ("api", "extended_export", "account_export")
#: How the export names itself in ``additional_info.submission_client``.
SUBMISSION_CLIENT = "Spotify Listening Platform"
_COLUMNS = (
    "played_at, ms_played, duration_ms, source, track_id, track_name, primary_artist_name, "
    "artist_names, album_name"
)


class ExportError(RuntimeError):
    """The export cannot be written as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Exported:
    """What an export wrote: the listens, and the streams left out (skips, episodes)."""

    listens: int
    left_out: int
    first: datetime | None
    last: datetime | None

    def render(self, fmt: str, path: Path) -> str:
        span = f" from {self.first:%Y-%m-%d} to {self.last:%Y-%m-%d}" if self.first and self.last else ""
        return (
            f"export: {self.listens:,} listens{span} written to {path} ({fmt}); "
            f"{self.left_out:,} streams left out (under 30 s, or podcast episodes)"
        )


def _user_filter(user_id: str | None) -> str:
    if user_id is None:
        return "user_id IS NULL"
    return "user_id = '" + user_id.replace("'", "''") + "'"


def _years(warehouse: WarehouseResource, where: str) -> list[int]:
    frame = warehouse.query(
        f"SELECT DISTINCT EXTRACT(YEAR FROM played_at) AS y FROM bq_plays WHERE {where} ORDER BY y"
    )
    return [int(y) for y in frame["y"]]


def _listens_of_year(warehouse: WarehouseResource, where: str, year: int) -> pd.DataFrame:
    return warehouse.query(
        f"SELECT {_COLUMNS} FROM bq_plays WHERE {where} AND is_play AND content_type = 'track' "
        f"AND EXTRACT(YEAR FROM played_at) = {int(year)} ORDER BY played_at, track_name"
    )


def _left_out(warehouse: WarehouseResource, where: str) -> int:
    frame = warehouse.query(
        f"SELECT COUNT(*) AS n FROM bq_plays WHERE {where} AND NOT (is_play AND content_type = 'track')"
    )
    return int(frame["n"].iloc[0])


def _utc(value: Any) -> datetime:
    ts: datetime = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _int(value: Any) -> int | None:
    return None if value is None or value != value else int(value)  # NaN != NaN


def _text(value: Any) -> str:
    return "" if value is None or value != value else str(value)


def started_at(row: dict[str, Any]) -> datetime:
    """When the play started, the time a scrobble records (see the module's docstring)."""
    ended = _utc(row["played_at"])
    if row.get("source") not in SPOTIFY_ROW_SOURCES:
        return ended
    played = _int(row.get("ms_played"))
    if played is None:
        played = _int(row.get("duration_ms"))
    return ended if played is None else spotify_started_at(ended, played)


def listenbrainz_listen(row: dict[str, Any]) -> dict[str, Any]:
    """One play as a listen of ListenBrainz's export (and ``submit-listens``) format."""
    info: dict[str, Any] = {"submission_client": SUBMISSION_CLIENT}
    if row.get("source") in SPOTIFY_ROW_SOURCES:
        info["media_player"] = "Spotify"
        info["music_service"] = "spotify.com"
    if track_id := _text(row.get("track_id")):
        info["spotify_id"] = f"https://open.spotify.com/track/{track_id}"
        info["origin_url"] = info["spotify_id"]
    if (duration := _int(row.get("duration_ms"))) is not None:
        info["duration_ms"] = duration
    if artists := _text(row.get("artist_names")):
        info["artist_names"] = artists.split(", ")
    meta: dict[str, Any] = {
        "artist_name": _text(row.get("artist_names")) or _text(row.get("primary_artist_name")),
        "track_name": _text(row.get("track_name")),
        "additional_info": info,
    }
    if album := _text(row.get("album_name")):
        meta["release_name"] = album
    return {"listened_at": int(started_at(row).timestamp()), "track_metadata": meta}


def lastfm_row(row: dict[str, Any]) -> list[str]:
    """One play as a row under ``lastfm.CSV_HEADER`` (no MusicBrainz ids: Spotify gives none)."""
    start = started_at(row)
    return [
        str(int(start.timestamp())),
        start.strftime("%d %b %Y, %H:%M"),
        _text(row.get("primary_artist_name")),
        "",
        _text(row.get("album_name")),
        "",
        _text(row.get("track_name")),
        "",
    ]


def _rows(
    warehouse: WarehouseResource, where: str, years: list[int]
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    for year in years:
        frame = _listens_of_year(warehouse, where, year)
        rows: list[dict[str, Any]] = [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
        rows.sort(key=started_at)  # a scrobble file is ordered by start, not by Spotify's end
        yield year, rows


def export_plays(
    warehouse: WarehouseResource,
    path: Path,
    fmt: str,
    *,
    user_id: str | None,
    username: str,
    progress: Any = None,
) -> Exported:
    """Write ``user_id``'s plays to ``path`` in ``fmt`` (``FORMATS``); returns what was written.

    ``path`` must not exist yet: an export never overwrites a file.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; the formats are {', '.join(FORMATS)}")
    if path.exists():
        raise ExportError(f"{path} exists already; choose another path or remove it first")
    where = _user_filter(user_id)
    years = _years(warehouse, where)
    tmp = path.with_name(f".{path.name}.partial")
    count, first, last = 0, None, None
    try:
        with open(tmp, "wb") as out:
            if fmt == "listenbrainz":
                with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                    zf.writestr(
                        "user.json", json.dumps({"username": username, "exported_by": SUBMISSION_CLIENT})
                    )
                    for year, rows in _rows(warehouse, where, years):
                        months: dict[int, list[str]] = {}
                        for row in rows:
                            start = started_at(row)
                            first = first or start
                            last = start
                            months.setdefault(start.month, []).append(
                                json.dumps(listenbrainz_listen(row), ensure_ascii=False)
                            )
                        for month, lines in sorted(months.items()):
                            zf.writestr(f"listens/{year}/{month}.jsonl", "\n".join(lines) + "\n")
                        count += len(rows)
                        if progress:
                            progress(year, len(rows))
            else:
                text = io.TextIOWrapper(out, encoding="utf-8", newline="")
                writer = csv.writer(text)
                writer.writerow(CSV_HEADER)
                for year, rows in _rows(warehouse, where, years):
                    for row in rows:
                        start = started_at(row)
                        first = first or start
                        last = start
                        writer.writerow(lastfm_row(row))
                    count += len(rows)
                    if progress:
                        progress(year, len(rows))
                text.flush()
                text.detach()
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return Exported(listens=count, left_out=_left_out(warehouse, where), first=first, last=last)


def _listener(settings: Any, warehouse: WarehouseResource, name: str | None) -> tuple[str | None, str]:
    """``(user_id, name)`` of the listener to export: ``--user``, else the only one with plays."""
    from spotify_assets.users.registry import UserRegistry

    registry = UserRegistry(settings.data.users)
    if name is not None:
        return registry.get(name).user_id, name
    ids = [None if v != v else v for v in warehouse.query("SELECT DISTINCT user_id FROM bq_plays")["user_id"]]
    if len(ids) == 1:
        user_id = ids[0]
        found = registry.by_user_id(user_id) if user_id else None
        return user_id, found.name if found else (user_id or "listener")
    if not ids:
        raise ExportError("the warehouse holds no plays yet")
    names = sorted(u.name for u in registry.users())
    raise ExportError(
        f"the warehouse holds several listeners' plays: say whose with --user ({', '.join(names)})"
    )


def export_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="spotify-assets export",
        description="Write a listener's plays as a ListenBrainz export (.zip) or a Last.fm-style CSV.",
    )
    parser.add_argument("path", help="the file to write (it must not exist)")
    parser.add_argument("--format", choices=FORMATS, default="listenbrainz", help="default: listenbrainz")
    parser.add_argument("--user", default=None, help="whose plays: a name from `spotify-assets users list`")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="where the warehouse lives (default: $SPOTIFY_DATA_DIR, else .data/ at the repo root)",
    )
    args = parser.parse_args(argv)

    from spotify_assets.deployments import command_settings, command_stores
    from spotify_assets.users.registry import UserError

    settings = command_settings(parser.prog, args.data_dir)
    if settings is None:
        return 2
    path = Path(args.path)
    try:
        with command_stores(settings, "warehouse") as stores:
            user_id, name = _listener(settings, stores.warehouse, args.user)

            def progress(year: int, n: int) -> None:
                print(f"export: {year}: {n:,} listens", file=sys.stderr)

            done = export_plays(
                stores.warehouse, path, args.format, user_id=user_id, username=name, progress=progress
            )
    except (ExportError, UserError) as exc:
        print(f"spotify-assets export: {exc}", file=sys.stderr)
        return 2
    print(done.render(args.format, path))
    return 0

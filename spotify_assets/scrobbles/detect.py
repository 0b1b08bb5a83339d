"""Which source a path is, and its listens read with the right reader.

``spotify-assets import`` is given a path and must say what it found: a Spotify privacy export
(a .zip, a folder or one ``Streaming_History*.json``; recognised by the Spotify import's own
file naming, ``imports/parsers.classify``), a Last.fm export in one of its three shapes, or a
ListenBrainz export (a JSON array, or a ZIP or folder of JSON-lines files). A file is judged by
its first row or item only, read as a stream, never by its extension alone: exporters name
their files freely. Anything else is an ``UnknownFormat`` that lists what was expected.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime
from itertools import islice
from pathlib import Path

import ijson

from spotify_assets.imports.parsers import classify
from spotify_assets.scrobbles import lastfm, listenbrainz
from spotify_assets.scrobbles.files import InputFile, input_files
from spotify_assets.scrobbles.listen import LASTFM, LISTENBRAINZ, SPOTIFY, Invalid, ReadItem, Skipped


class Format(enum.Enum):
    """A kind of input, with the source family its listens belong to and how the report names it."""

    SPOTIFY_EXPORT = (SPOTIFY, "a Spotify privacy export")
    LASTFM_CSV = (LASTFM, "a Last.fm CSV export (uts,utc_time,artist,... header)")
    LASTFM_CSV_HEADERLESS = (LASTFM, "a Last.fm CSV export (artist,album,track,date without header)")
    LASTFM_JSON = (LASTFM, "Last.fm user.getRecentTracks JSON pages")
    LISTENBRAINZ_JSON = (LISTENBRAINZ, "a ListenBrainz export (JSON array)")
    LISTENBRAINZ_JSONL = (LISTENBRAINZ, "a ListenBrainz export (JSON lines)")

    @property
    def source(self) -> str:
        return str(self.value[0])

    @property
    def label(self) -> str:
        return str(self.value[1])


#: What ``UnknownFormat`` says was expected (the issue's "is neither a folder nor a .zip" told
#: a Last.fm user nothing about what would have worked).
EXPECTED = (
    "a Spotify privacy export (.zip, folder, or a Streaming_History*.json / endsong_*.json file); "
    "a Last.fm CSV with the header uts,utc_time,artist,artist_mbid,album,album_mbid,track,track_mbid; "
    "a headerless Last.fm CSV artist,album,track,date (dates like 31 Jan 2021 14:56); "
    'Last.fm user.getRecentTracks JSON pages ({"recenttracks": {"track": [...]}}); '
    "a ListenBrainz export (a JSON array of listens, or a .zip or folder of JSON-lines files)"
)


class UnknownFormat(ValueError):
    """The path is none of the formats read here; the message says what it looked like and what was expected."""

    def __init__(self, path: Path, found: str) -> None:
        super().__init__(f"{path}: {found}. Expected one of: {EXPECTED}")


Reader = Callable[[InputFile, datetime], Iterator[ReadItem]]

READERS: dict[Format, Reader] = {
    Format.LASTFM_CSV: lastfm.read_csv,
    Format.LASTFM_CSV_HEADERLESS: lastfm.read_headerless_csv,
    Format.LASTFM_JSON: lastfm.read_json_pages,
    Format.LISTENBRAINZ_JSON: listenbrainz.read_json_array,
    Format.LISTENBRAINZ_JSONL: listenbrainz.read_json_lines,
}

#: How much of a file's start is read to judge it (a first CSV row or JSON line is far shorter).
_HEAD_BYTES = 64 * 1024


def detect_file(f: InputFile) -> Format | None:
    """The format of one file, from its name (a Spotify export's) or its first row/item; None if unknown."""
    if classify(f.name).importable:
        return Format.SPOTIFY_EXPORT
    with f.open() as fh:
        head = fh.read(_HEAD_BYTES)
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if start.startswith(b"{"):
        return _object_format(f, start)
    if start.startswith(b"["):
        return _array_format(f)
    return _csv_format(head)


def _object_format(f: InputFile, start: bytes) -> Format | None:
    """A JSON-lines file of listens, or a getRecentTracks page (its first key is ``recenttracks``)."""
    first_line = start.split(b"\n", 1)[0]
    try:
        if listenbrainz.looks_like_listen(json.loads(first_line)):
            return Format.LISTENBRAINZ_JSONL
    except ValueError:
        pass  # not a one-line object: a pretty-printed page, perhaps
    with f.open() as fh:
        try:
            for prefix, event, value in ijson.parse(fh):
                if prefix == "" and event == "map_key":
                    return Format.LASTFM_JSON if value == "recenttracks" else None
        except (ijson.JSONError, UnicodeDecodeError):
            return None
    return None


def _array_format(f: InputFile) -> Format | None:
    """A JSON array of listens (ListenBrainz) or of getRecentTracks pages (Last.fm), by the keys
    of its first item, read as events: a first page of 1,000 tracks is never built to look at it."""
    keys: set[str] = set()
    with f.open() as fh:
        try:
            for prefix, event, value in ijson.parse(fh):
                if prefix == "item" and event == "map_key":
                    keys.add(value)
                elif (prefix == "item" and event == "end_map") or (prefix == "" and event == "end_array"):
                    break
                elif prefix == "item" and event not in ("start_map", "map_key"):
                    return None  # an array of something other than objects
        except (ijson.JSONError, UnicodeDecodeError):
            return None
    if "track_metadata" in keys:
        return Format.LISTENBRAINZ_JSON
    if "recenttracks" in keys:
        return Format.LASTFM_JSON
    return None


def _csv_format(head: bytes) -> Format | None:
    """A Last.fm CSV: the known header, or four columns whose date (first or second row) parses."""
    text = head.decode("utf-8-sig", errors="replace")
    try:
        rows = [r for r in islice(csv.reader(io.StringIO(text)), 3) if r]
    except csv.Error:  # a NUL byte or the like: a binary file, not a CSV
        return None
    if not rows:
        return None
    if tuple(c.strip().lower() for c in rows[0]) == lastfm.CSV_HEADER:
        return Format.LASTFM_CSV
    for row in rows[:2]:
        if len(row) != len(lastfm.HEADERLESS_COLUMNS):
            return None
        if row[3].strip():
            try:
                lastfm.parse_date(row[3])
            except Invalid:
                return None
            return Format.LASTFM_CSV_HEADERLESS
    return None


def detect(path: str | Path) -> Format:
    """Which source ``path`` is: a file, a folder or a ZIP archive (see the module's docstring).

    A folder or archive is a Spotify export if any file in it is one (as the Spotify import
    judges it); otherwise its recognised files must all be of one format, and the rest (a
    ListenBrainz export's ``user.json`` and feedback) are skipped when it is read.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"nothing at {p}")
    files = list(input_files(p))
    if any(classify(f.name).importable for f in files):
        return Format.SPOTIFY_EXPORT
    found = {fmt for f in files if (fmt := detect_file(f)) is not None}
    if len(found) == 1:
        return found.pop()
    if not found:
        what = "an empty folder or archive" if not files else "no file in it is a listening history"
        if p.is_file() and len(files) == 1 and files[0].name == p.name:
            what = "not a listening history this command reads"
        raise UnknownFormat(p, what)
    raise UnknownFormat(p, "it mixes " + " and ".join(sorted(fmt.label for fmt in found)))


def source_format(path: str | Path) -> Format:
    """What ``spotify-assets import PATH`` imports ``path`` as: ``detect``'s answer, except that a
    folder or ZIP archive no reader recognises goes to the Spotify import as it always did (its
    report names the files it skipped and why)."""
    p = Path(path)
    try:
        return detect(p)
    except UnknownFormat:
        if p.is_dir() or zipfile.is_zipfile(p):
            return Format.SPOTIFY_EXPORT
        raise


def read_listens(path: str | Path, now: datetime, fmt: Format | None = None) -> Iterator[ReadItem]:
    """Every row of the listening history at ``path``, streamed: a ``Listen``, ``Rejected`` or
    ``Skipped`` each. A Spotify export is not read here: the Spotify import reads it."""
    p = Path(path)
    fmt = fmt or detect(p)
    if fmt is Format.SPOTIFY_EXPORT:
        raise ValueError(f"{p} is {fmt.label}: the Spotify import reads it (imports/runner.py)")
    reader = READERS[fmt]
    for f in input_files(p):
        if detect_file(f) is fmt:
            yield from reader(f, now)
        else:
            yield Skipped("not_a_listen_file", f.name)

"""Streaming parsers for the files of a Spotify privacy export.

Two export kinds feed the plays table:

* **extended streaming history** (``Streaming_History_Audio_*.json``, older ``endsong_*.json``):
  one object per stream with ``ts`` (UTC, second precision, when the stream ended), the
  Spotify URIs and the listening facts. No API call is needed: the URI carries the id.
* **account data** (``StreamingHistory_music_*.json``, ``StreamingHistory*.json``,
  ``StreamingHistory_podcast_*.json``): ``endTime`` truncated to the minute, names and
  ``msPlayed`` only; the runner matches names to ids through plays already known.

Each file is a JSON array read item by item with ijson, so a 10-year export never sits in
memory as Python objects. A row that cannot be trusted is not dropped and does not stop the
file: the normaliser returns a *reason* and the runner quarantines the row with it.
"""

from __future__ import annotations

import enum
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import ijson

#: The earliest believable stream end: Spotify launched in 2008; anything before 2006 is a broken clock.
EARLIEST_PLAY = datetime(2006, 1, 1, tzinfo=UTC)
#: A stream shorter than this is stored but not counted as a play (Spotify's own royalty threshold).
MIN_PLAY_MS = 30_000
#: Refuse to load a single export member larger than this (a real export file is ~10-15 MB; a zip bomb is not).
MAX_FILE_BYTES = 512 * 1024 * 1024

_TRACK_URI = re.compile(r"spotify:track:([0-9A-Za-z]{22})")
_EPISODE_URI = re.compile(r"spotify:episode:([0-9A-Za-z]{22})")
_END_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")


class FileKind(enum.Enum):
    EXTENDED = "extended"
    ACCOUNT_MUSIC = "account_music"
    ACCOUNT_PODCAST = "account_podcast"
    VIDEO = "video"
    OTHER = "other"

    @property
    def source(self) -> str:
        """The ``plays.source`` value of rows from this kind of file."""
        return "extended_export" if self is FileKind.EXTENDED else "account_export"

    @property
    def importable(self) -> bool:
        return self in {FileKind.EXTENDED, FileKind.ACCOUNT_MUSIC, FileKind.ACCOUNT_PODCAST}


#: Why a file that is not imported was skipped (reported with a count, never silently ignored).
SKIP_REASONS = {
    FileKind.VIDEO: "video streaming history (not audio plays)",
    FileKind.OTHER: "not a streaming-history file",
}


def classify(name: str) -> FileKind:
    """What a member of the export is, from its base name (the export's own naming)."""
    base = PurePosixPath(name).name
    if base.startswith("._") or "__MACOSX" in PurePosixPath(name).parts or not base.lower().endswith(".json"):
        return FileKind.OTHER
    if base.startswith("Streaming_History_Audio_") or re.fullmatch(r"endsong_\d+\.json", base):
        return FileKind.EXTENDED
    if base.startswith("Streaming_History_Video_"):
        return FileKind.VIDEO
    if base.startswith("StreamingHistory_podcast_"):
        return FileKind.ACCOUNT_PODCAST
    if base.startswith("StreamingHistory"):
        return FileKind.ACCOUNT_MUSIC
    return FileKind.OTHER


@dataclass(frozen=True)
class ExportFile:
    """One file of an export (a zip member or a file in a folder); ``read`` loads its bytes."""

    name: str
    size: int
    kind: FileKind
    read: Callable[[], bytes]


def iter_export_files(path: str | Path) -> Iterator[ExportFile]:
    """Every file in the export at ``path`` (a .zip or a folder), in a stable order."""
    p = Path(path)
    if p.is_dir():
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            rel = f.relative_to(p).as_posix()
            yield ExportFile(rel, f.stat().st_size, classify(rel), f.read_bytes)
    elif p.is_file() and zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as zf:
            for info in sorted(zf.infolist(), key=lambda i: i.filename):
                if info.is_dir():
                    continue
                yield ExportFile(info.filename, info.file_size, classify(info.filename), _zip_reader(p, info))
    elif p.is_file():
        raise FileNotFoundError(f"{p} is neither a folder nor a .zip archive")
    else:
        raise FileNotFoundError(f"no export at {p}")


def _zip_reader(archive: Path, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    def read() -> bytes:
        if info.file_size > MAX_FILE_BYTES:
            raise FileFormatError(f"member is {info.file_size} bytes, over the {MAX_FILE_BYTES} limit")
        with zipfile.ZipFile(archive) as zf, zf.open(info) as fh:
            return fh.read(MAX_FILE_BYTES + 1)

    return read


class FileFormatError(ValueError):
    """A whole file is unusable (empty, not JSON, not an array); the rest of the export continues."""


class JsonArray:
    """Items of the top-level JSON array in ``data``, parsed incrementally; ``position`` is the byte offset read so far.

    Items yielded before a syntax error stay yielded (they were valid); the error is then
    raised as ``FileFormatError`` so the file is reported, never half-silently imported.
    """

    def __init__(self, data: bytes) -> None:
        start = 3 if data.startswith(b"\xef\xbb\xbf") else 0  # tolerate a UTF-8 BOM
        head = data[start : start + 4096].lstrip()
        if not head:
            raise FileFormatError("empty file (no JSON in it)")
        if not head.startswith(b"["):
            raise FileFormatError(f"expected a JSON array, the file starts with {head[:20]!r}")
        self._buf = io.BytesIO(data)
        self._buf.seek(start)

    @property
    def position(self) -> int:
        return self._buf.tell()

    def __iter__(self) -> Iterator[Any]:
        count = 0
        try:
            for item in ijson.items(self._buf, "item", use_float=True):
                count += 1
                yield item
        except (ijson.JSONError, UnicodeDecodeError) as exc:
            detail = exc.args[0] if exc.args else exc
            if isinstance(detail, bytes):
                detail = detail.decode("utf-8", "replace")
            raise FileFormatError(
                f"invalid JSON after {count} row(s): {' '.join(str(detail).split())}"
            ) from None


def iter_json_array(data: bytes) -> Iterator[Any]:
    """Items of the JSON array in ``data`` (see ``JsonArray``)."""
    yield from JsonArray(data)


# -- row normalisers ------------------------------------------------------------------------
#: The columns a normaliser fills (the runner adds play_key, source, batch_id, ingested_at).
ROW_COLUMNS = (
    "played_at",
    "track_id",
    "track_name",
    "track_uri",
    "artist_names",
    "primary_artist_name",
    "album_name",
    "ms_played",
    "skipped",
    "shuffle",
    "reason_start",
    "reason_end",
    "platform",
    "conn_country",
    "offline",
    "incognito_mode",
    "content_type",
    "is_play",
)

_EXT_STRINGS = (
    "ts",
    "master_metadata_track_name",
    "master_metadata_album_artist_name",
    "master_metadata_album_album_name",
    "spotify_track_uri",
    "episode_name",
    "episode_show_name",
    "spotify_episode_uri",
    "reason_start",
    "reason_end",
    "platform",
    "conn_country",
)
_EXT_BOOLS = ("shuffle", "skipped", "offline", "incognito_mode")


class Reject(Exception):
    """A row that cannot be imported as-is; ``reason`` is its quarantine reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _ms_played(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if value is None:
        raise Reject("missing_ms_played")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Reject("bad_ms_played")
    if isinstance(value, float):
        if not value.is_integer():
            raise Reject("bad_ms_played")
        value = int(value)
    if value < 0:
        raise Reject("bad_ms_played")
    return value


def _check_time(when: datetime, now: datetime) -> datetime:
    if when > now:
        raise Reject("ts_in_future")
    if when < EARLIEST_PLAY:
        raise Reject("ts_before_2006")
    return when


def _strings(obj: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise Reject(f"bad_type:{key}")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate (\\ud800) cannot be stored as UTF-8
                raise Reject(f"bad_unicode:{key}") from None


def normalize_extended(obj: Any, now: datetime) -> dict[str, Any]:
    """One extended-history object -> plays columns; raises ``Reject`` with a reason."""
    if not isinstance(obj, dict):
        raise Reject("not_an_object")
    _strings(obj, _EXT_STRINGS)
    for key in _EXT_BOOLS:
        if obj.get(key) is not None and not isinstance(obj[key], bool):
            raise Reject(f"bad_type:{key}")
    ts = obj.get("ts")
    if ts is None:
        raise Reject("missing_ts")
    if len(ts) < 19 or ts[10] != "T":  # a date alone, or a time without seconds, is not a stream end
        raise Reject("bad_ts")
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:
        raise Reject("bad_ts") from None
    # The export documents ts as UTC; a naive value is UTC, an offset one is converted.
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    when = _check_time(when, now)
    ms = _ms_played(obj, "ms_played")

    track_uri = obj.get("spotify_track_uri") or None
    episode_uri = obj.get("spotify_episode_uri") or None
    track_name = obj.get("master_metadata_track_name") or None
    episode_name = obj.get("episode_name") or None
    track_id: str | None = None
    if track_uri is not None:
        m = _TRACK_URI.fullmatch(track_uri)
        if m:
            track_id = m.group(1)
        elif not track_uri.startswith("spotify:local:"):
            raise Reject("bad_uri")
        content = "track"
    elif episode_uri is not None:
        m = _EPISODE_URI.fullmatch(episode_uri)
        if not m:
            raise Reject("bad_uri")
        track_id = m.group(1)
        content = "episode"
    elif track_name is not None:
        content = "track"  # a local file or a removed track: kept, keyed by name
    elif episode_name is not None:
        content = "episode"
    else:
        raise Reject("no_track_or_episode")

    if content == "track":
        name, artist, album, uri = (
            track_name,
            obj.get("master_metadata_album_artist_name") or None,
            obj.get("master_metadata_album_album_name") or None,
            track_uri,
        )
    else:  # the show stands where the artist would, so name keys work the same for episodes
        name, artist, album, uri = episode_name, obj.get("episode_show_name") or None, None, episode_uri
    return {
        "played_at": when,
        "track_id": track_id,
        "track_name": name,
        "track_uri": uri,
        "artist_names": artist,
        "primary_artist_name": artist,
        "album_name": album,
        "ms_played": ms,
        "skipped": obj.get("skipped"),
        "shuffle": obj.get("shuffle"),
        "reason_start": obj.get("reason_start"),
        "reason_end": obj.get("reason_end"),
        "platform": obj.get("platform"),
        "conn_country": obj.get("conn_country"),
        "offline": obj.get("offline"),
        "incognito_mode": obj.get("incognito_mode"),
        "content_type": content,
        "is_play": content == "track" and ms >= MIN_PLAY_MS,
    }


def normalize_account(obj: Any, now: datetime, *, podcast: bool) -> dict[str, Any]:
    """One account-data object -> plays columns (no id yet: the runner matches names to ids)."""
    if not isinstance(obj, dict):
        raise Reject("not_an_object")
    name_key, artist_key = ("episodeName", "podcastName") if podcast else ("trackName", "artistName")
    _strings(obj, ("endTime", name_key, artist_key))
    end = obj.get("endTime")
    if end is None:
        raise Reject("missing_end_time")
    if not _END_TIME.fullmatch(end):
        raise Reject("bad_end_time")
    try:
        when = datetime.fromisoformat(end).replace(tzinfo=UTC)  # documented as UTC, minute precision
    except ValueError:
        raise Reject("bad_end_time") from None
    when = _check_time(when, now)
    ms = _ms_played(obj, "msPlayed")
    name = obj.get(name_key) or None
    artist = obj.get(artist_key) or None
    if name is None:
        raise Reject("no_track_or_episode")
    content = "episode" if podcast else "track"
    return {
        "played_at": when,
        "track_id": None,
        "track_name": name,
        "track_uri": None,
        "artist_names": artist,
        "primary_artist_name": artist,
        "album_name": None,
        "ms_played": ms,
        "skipped": None,
        "shuffle": None,
        "reason_start": None,
        "reason_end": None,
        "platform": None,
        "conn_country": None,
        "offline": None,
        "incognito_mode": None,
        "content_type": content,
        "is_play": content == "track" and ms >= MIN_PLAY_MS,
    }


def normalizer(kind: FileKind) -> Callable[[Any, datetime], dict[str, Any]]:
    if kind is FileKind.EXTENDED:
        return normalize_extended
    if kind is FileKind.ACCOUNT_MUSIC:
        return lambda obj, now: normalize_account(obj, now, podcast=False)
    if kind is FileKind.ACCOUNT_PODCAST:
        return lambda obj, now: normalize_account(obj, now, podcast=True)
    raise ValueError(f"{kind} files are not imported")


def play_key(played_at: datetime, track_id: str | None, artist: str | None, track: str | None) -> str:
    """The plays idempotency key: ISO UTC with microseconds + '|' + id, or '|name:' + artist|track."""
    stamp = played_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if track_id:
        return f"{stamp}|{track_id}"
    # Same identity as the API normaliser (spotify/normalize.py): stripped, lower-cased names.
    return f"{stamp}|name:{(artist or '').strip().lower()}|{(track or '').strip().lower()}"


# -- the engine's reader (extended history) --------------------------------------------------
#: The fields of an extended-history object the import reads (the rest is kept in the raw file).
_EXT_FIELDS = (*_EXT_STRINGS, *_EXT_BOOLS, "ms_played")
#: A UTF-16 surrogate escape: the engine refuses a lone one, so such a file goes row by row.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
#: Every digit as "0": a run of 19 zeros in the translation is a run of 19 digits in the file.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")


def _row_by_row_only(data: bytes) -> bool:
    """What only the row-by-row parser judges as it always did: a surrogate escape, or a run of
    19+ digits (ijson calls an integer beyond 64 bits invalid JSON). Plain scans, not a regex
    over the whole file: a regex for digit runs costs a second per 12 MB file."""
    if (b"\\ud" in data or b"\\uD" in data) and _SURROGATE_ESCAPE.search(data):
        return True
    return b"0" * 19 in data.translate(_DIGITS_AS_ZERO)


def _extended_sql() -> str:
    """SQL over ``read_json($path)``: each row's ``clean`` flag and, when clean, its plays columns.

    ``clean`` is conservative: true only when every check ``normalize_extended`` makes is
    certain to pass and the value it would produce is certain (canonical ``...Z`` second
    timestamps, integer ``ms_played``, string and boolean fields of the right JSON type, a
    well-formed URI). Any other row goes back to ``normalize_extended`` with its parsed
    object, so quarantine reasons and edge cases stay the Python normaliser's, word for word.
    The reader itself refuses a file with a repeated field or an item that is not an object
    (the row-by-row parser then takes the whole file).
    """
    columns = "{" + ", ".join(f"'{k}': 'JSON'" for k in _EXT_FIELDS) + "}"

    def jtype(key: str) -> str:
        return f"coalesce(json_type(s.{key}), 'NULL')"

    def text(key: str) -> str:
        return f"(s.{key} ->> '$')"

    strings_ok = " AND ".join(f"{jtype(k)} IN ('VARCHAR', 'NULL')" for k in _EXT_STRINGS)
    bools_ok = " AND ".join(f"{jtype(k)} IN ('BOOLEAN', 'NULL')" for k in _EXT_BOOLS)
    track_re, episode_re = _TRACK_URI.pattern, _EPISODE_URI.pattern
    return f"""
    WITH src AS (
        SELECT ordinality - 1 AS row, * EXCLUDE (ordinality)
        FROM read_json($path, format = 'array', records = true, columns = {columns}) WITH ORDINALITY
    ),
    v AS (
        SELECT row,
            {strings_ok} AND {bools_ok} AND {jtype("ms_played")} IN ('UBIGINT', 'BIGINT')
                AS typed,
            {text("ts")} AS ts,
            try_strptime({text("ts")}, '%Y-%m-%dT%H:%M:%SZ') AS t,
            TRY_CAST(s.ms_played AS BIGINT) AS ms,
            nullif({text("spotify_track_uri")}, '') AS tu,
            nullif({text("spotify_episode_uri")}, '') AS eu,
            nullif({text("master_metadata_track_name")}, '') AS tn,
            nullif({text("episode_name")}, '') AS en,
            nullif({text("master_metadata_album_artist_name")}, '') AS artist,
            nullif({text("master_metadata_album_album_name")}, '') AS album,
            nullif({text("episode_show_name")}, '') AS show_name,
            {", ".join(f"{text(k)} AS {k}" for k in ("reason_start", "reason_end", "platform", "conn_country"))},
            {", ".join(f"TRY_CAST(s.{k} AS BOOLEAN) AS {k}" for k in _EXT_BOOLS)}
        FROM src AS s
    ),
    c AS (
        SELECT *,
            CASE WHEN tu IS NOT NULL THEN 'track' WHEN eu IS NOT NULL THEN 'episode'
                 WHEN tn IS NOT NULL THEN 'track' WHEN en IS NOT NULL THEN 'episode' END AS content,
            CASE WHEN tu IS NOT NULL THEN regexp_extract(tu, '^{track_re}$', 1)
                 WHEN eu IS NOT NULL THEN regexp_extract(eu, '^{episode_re}$', 1) END AS id
        FROM v
    ),
    k AS (
        SELECT *,
            typed AND t IS NOT NULL AND strftime(t, '%Y-%m-%dT%H:%M:%SZ') = ts
            AND t <= $now AND t >= $earliest AND ms IS NOT NULL AND ms >= 0
            AND content IS NOT NULL
            AND (tu IS NULL OR id <> '' OR starts_with(tu, 'spotify:local:'))
            AND (tu IS NOT NULL OR eu IS NULL OR id <> '') AS clean
        FROM c
    )
    SELECT row, clean,
        CASE WHEN clean AND nullif(id, '') IS NOT NULL
             THEN strftime(t, '%Y-%m-%dT%H:%M:%S.%fZ') || '|' || id END AS play_key,
        CASE WHEN clean THEN t::TIMESTAMPTZ END AS played_at,
        nullif(id, '') AS track_id,
        CASE WHEN content = 'track' THEN tn ELSE en END AS track_name,
        CASE WHEN content = 'track' THEN tu ELSE eu END AS track_uri,
        CASE WHEN content = 'track' THEN artist ELSE show_name END AS artist_names,
        CASE WHEN content = 'track' THEN artist ELSE show_name END AS primary_artist_name,
        CASE WHEN content = 'track' THEN album END AS album_name,
        ms AS ms_played, skipped, shuffle, reason_start, reason_end, platform, conn_country,
        offline, incognito_mode,
        content AS content_type,
        content = 'track' AND ms >= {MIN_PLAY_MS} AS is_play
    FROM k
    ORDER BY row
    """


@dataclass
class EngineRows:
    """One extended-history file read by the engine: ``clean`` rows as plays columns, the rest parsed.

    ``clean`` is an Arrow table: ``row`` (position in the file), ``play_key`` (null where the
    key is made from names: ``play_key`` in Python does that, with Python's notion of
    whitespace and case), then ``ROW_COLUMNS``. ``others`` are ``(row, item)`` for
    ``normalize_extended`` to judge, in file order.
    """

    clean: Any
    others: list[tuple[int, Any]]


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_extended_with_engine(con: Any, path: str, data: bytes, now: datetime) -> EngineRows | None:
    """Read the extended-history file ``data`` (also at ``path``) with DuckDB; None when the engine cannot.

    ``con`` is a DuckDB connection with ``TimeZone = 'UTC'``. None means: parse it row by
    row, which gives the exact outcome it always did (for invalid JSON: the rows before the
    error imported, the file reported). The engine declines a file with invalid JSON, a
    repeated field, an item that is not an object or a UTF-16 surrogate escape.
    The few rows it does not take as clean are parsed by Python's C JSON decoder (the
    same values ijson yields) for ``normalize_extended``.
    """
    import json

    import duckdb
    import pyarrow.compute as pc

    if _row_by_row_only(data):
        return None
    try:
        JsonArray(data)  # empty, or not an array: the row-by-row parser reports it in its words
    except FileFormatError:
        return None
    params = {
        "path": path,
        "now": now.astimezone(UTC).replace(tzinfo=None),
        "earliest": EARLIEST_PLAY.replace(tzinfo=None),
    }
    try:
        table = con.sql(_extended_sql(), params=params).to_arrow_table()
    except duckdb.Error:
        return None
    mask = table["clean"]
    rest = table.filter(pc.invert(mask))["row"].to_pylist()
    others: list[tuple[int, Any]] = []
    if rest:
        try:
            items = json.loads(data.decode("utf-8-sig"), parse_constant=_no_constants)
        except ValueError:
            return None
        if not isinstance(items, list) or len(items) != table.num_rows:
            return None
        others = [(i, items[i]) for i in rest]
    clean = table.filter(mask).drop_columns(["clean"])
    return EngineRows(clean=clean, others=others)

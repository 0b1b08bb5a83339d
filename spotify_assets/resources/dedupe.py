"""Pre-merge dedupe and account-data id matching, one SQL join per chunk.

Exact re-imports are caught by ``play_key``. What a key cannot catch is the *same stream*
recorded by two different logging paths:

* the API's ``played_at`` and the extended export's ``ts`` both mark the stream's end, but
  come from different clocks/pipelines and differ by a second or two (and the API keeps
  milliseconds, the export whole seconds). Tolerance: **±5 s**, same track.
* account-data ``endTime`` is truncated to the minute, so the real end lies in
  ``[endTime, endTime + 60 s)``; with the same 5 s clock slack either side the window is
  **[endTime - 5 s, endTime + 65 s)** (applied whichever side of the pair is account data).

Only rows of the *same listener* (``user_id``; two people playing one track at one second
are two plays) and from a *different* source are window-matched: within one source the clock is the
same, so a repeat with a different timestamp is a real second stream (a skip-back), and an
identical one is caught by the key. Plays only scrobblers recorded (``source`` lastfm,
listenbrainz, scrobble_server) are never window-matched here: whether a Spotify stream is one
of them is the ``bq_plays`` merge's decision, by ``scrobbles/matching.py``'s rules. "Same track" means the same id, or - when a side has no
id (local files, unmatched account rows) or one side is account data (whose id is only inferred
from its names, and may be another release of the same song) - the same
lower(trim(artist))|lower(trim(track)) and content type.

Callers ask the warehouse for its index (``warehouse.plays_index()``), never build one: the
warehouse knows where its plays can be joined. DuckDB answers with ``DuckDBPlaysIndex``, whose
joins run inside the warehouse's published snapshot (read-only, never contends with a
writer); any other warehouse (BigQuery) with ``FetchingPlaysIndex``: the chunk's time window
of plays is fetched with ``warehouse.query`` and joined in a local DuckDB.

This module sits beside the warehouse (not under ``imports/``) because both the poller
(``assets/ingest.py``) and the history import ask these questions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Protocol

import duckdb
import pandas as pd

from spotify_assets.play_sources import SCROBBLE_SOURCES
from spotify_assets.schema import PLAYS_TABLE


class Queryable(Protocol):
    """What this module needs of a warehouse: read-only SQL. A protocol, not the warehouse's
    class, so that the warehouse may import this module without a circle."""

    def query(self, sql: str) -> pd.DataFrame: ...


class HasPlaysIndex(Protocol):
    def plays_index(self) -> PlaysIndex: ...


EXTENDED_TOLERANCE = timedelta(seconds=5)
MINUTE_BUCKET = timedelta(seconds=60)
#: How far apart two rows of one stream can be at most (the account-data window's far edge).
MAX_SKEW = MINUTE_BUCKET + EXTENDED_TOLERANCE

_NAME_KEY = (
    "lower(trim(coalesce({p}primary_artist_name, ''))) || '|' || lower(trim(coalesce({p}track_name, '')))"
)

#: Columns of the chunk frame the dedupe query needs.
CHUNK_COLUMNS = [
    "idx",
    "play_key",
    "played_at",
    "track_id",
    "primary_artist_name",
    "track_name",
    "content_type",
    "user_id",
]
#: Columns of the names frame ``match_ids`` takes and returns (plus ``track_id``).
NAME_COLUMNS = ["content_type", "primary_artist_name", "track_name"]


def _duplicates_sql(existing: str, source: str) -> str:
    tol = int(EXTENDED_TOLERANCE.total_seconds())
    bucket = int(MINUTE_BUCKET.total_seconds())
    if source == "account_export":
        window = f"e.played_at >= c.played_at - INTERVAL {tol} SECOND AND e.played_at < c.played_at + INTERVAL {bucket + tol} SECOND"
    else:
        window = (
            f"CASE WHEN e.source = 'account_export' "
            f"THEN c.played_at >= e.played_at - INTERVAL {tol} SECOND AND c.played_at < e.played_at + INTERVAL {bucket + tol} SECOND "
            f"ELSE c.played_at BETWEEN e.played_at - INTERVAL {tol} SECOND AND e.played_at + INTERVAL {tol} SECOND END"
        )
    skew = int(MAX_SKEW.total_seconds())
    scrobbles = ", ".join(f"'{s}'" for s in SCROBBLE_SOURCES)
    return f"""
    WITH e AS (
        SELECT play_key, played_at, track_id, source, content_type, user_id,
            {_NAME_KEY.format(p="")} AS name_key
        FROM {existing}
        WHERE played_at BETWEEN $lo - INTERVAL {skew} SECOND AND $hi + INTERVAL {skew} SECOND
    ),
    spotify AS (SELECT * FROM e WHERE source NOT IN ({scrobbles})),
    same_key AS (
        SELECT c.idx FROM chunk c JOIN e ON c.play_key = e.play_key
    ),
    by_id AS (
        SELECT c.idx FROM chunk c JOIN spotify e ON c.track_id = e.track_id
        WHERE e.source <> $source AND c.user_id IS NOT DISTINCT FROM e.user_id AND ({window})
    ),
    by_name AS (
        SELECT c.idx FROM (SELECT *, {_NAME_KEY.format(p="")} AS name_key FROM chunk) c
        JOIN spotify e ON c.name_key = e.name_key AND c.content_type = e.content_type
        WHERE e.source <> $source AND c.user_id IS NOT DISTINCT FROM e.user_id
          AND (c.track_id IS NULL OR e.track_id IS NULL OR $source = 'account_export' OR e.source = 'account_export')
          AND ({window})
    )
    SELECT idx, 'key' AS why FROM same_key
    UNION ALL
    SELECT idx, 'window' FROM (SELECT idx FROM by_id UNION SELECT idx FROM by_name)
        WHERE idx NOT IN (SELECT idx FROM same_key)
    """


_MATCH_SQL = f"""
    WITH wanted AS (
        SELECT DISTINCT content_type, primary_artist_name, track_name, {_NAME_KEY.format(p="")} AS name_key FROM names
    ),
    counted AS (
        SELECT e.content_type, {_NAME_KEY.format(p="e.")} AS name_key, e.track_id, sum({{weight}}) AS n
        FROM {{existing}} e
        WHERE e.track_id IS NOT NULL
        GROUP BY ALL
    )
    SELECT w.content_type, w.primary_artist_name, w.track_name,
        first(c.track_id ORDER BY c.n DESC, c.track_id) AS track_id
    FROM wanted w JOIN counted c USING (content_type, name_key)
    GROUP BY ALL
"""


def find_duplicates(
    con: duckdb.DuckDBPyConnection, existing: str, chunk: pd.DataFrame, source: str
) -> pd.DataFrame:
    """Rows of ``chunk`` already in ``existing``: columns ``idx`` and ``why`` ('key' or 'window')."""
    if chunk.empty:
        return pd.DataFrame({"idx": pd.Series([], dtype="int64"), "why": pd.Series([], dtype="object")})
    frame = (
        chunk
        if "user_id" in chunk
        else chunk.assign(user_id=pd.Series(None, index=chunk.index, dtype="string"))
    )
    con.register("chunk", frame[CHUNK_COLUMNS])
    try:
        params = {"lo": chunk["played_at"].min(), "hi": chunk["played_at"].max(), "source": source}
        return con.execute(_duplicates_sql(existing, source), params).df()
    finally:
        con.unregister("chunk")


def match_ids(
    con: duckdb.DuckDBPyConnection, existing: str, names: pd.DataFrame, weight: str = "1"
) -> pd.DataFrame:
    """The most common known track_id per name in ``names`` (same content type, artist and title).

    Names compare as lower(trim(artist)) | lower(trim(title)), computed in SQL on both sides.

    ``weight`` is the column counting plays per row of ``existing`` ("1" for the plays table).
    """
    if names.empty:
        return pd.DataFrame(columns=[*NAME_COLUMNS, "track_id"])
    con.register("names", names[NAME_COLUMNS])
    try:
        return con.execute(_MATCH_SQL.format(existing=existing, weight=weight)).df()
    finally:
        con.unregister("names")


class PlaysIndex(ABC):
    """What the poller and the import ask of the warehouse before each merge."""

    @abstractmethod
    def duplicates(self, chunk: pd.DataFrame, source: str) -> pd.DataFrame:
        """Rows of ``chunk`` the warehouse already holds: columns ``idx`` and ``why`` ('key' or 'window')."""

    @abstractmethod
    def match(self, names: pd.DataFrame) -> pd.DataFrame:
        """The most common known track id per (content type, artist, title) of ``names``."""

    @abstractmethod
    def inserted_keys(self, keys: pd.Series, run_at: datetime) -> set[str]:
        """Which of ``keys`` this run (rows with ``ingested_at == run_at``) inserted."""


class DuckDBPlaysIndex(PlaysIndex):
    """Joins inside a DuckDB database the warehouse opens for each call (its published snapshot).

    ``connect`` is the warehouse's reader (a context manager yielding a connection): the
    warehouse hands it over in ``plays_index()``, so no module reaches into its privates.
    """

    def __init__(self, connect: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]) -> None:
        self._con = connect

    def duplicates(self, chunk: pd.DataFrame, source: str) -> pd.DataFrame:
        with self._con() as con:
            return find_duplicates(con, PLAYS_TABLE, chunk, source)

    def match(self, names: pd.DataFrame) -> pd.DataFrame:
        with self._con() as con:
            return match_ids(con, PLAYS_TABLE, names)

    def inserted_keys(self, keys: pd.Series, run_at: datetime) -> set[str]:
        with self._con() as con:
            con.register("merged_keys", pd.DataFrame({"play_key": keys.astype(str)}))
            rows = con.execute(
                f"SELECT p.play_key FROM {PLAYS_TABLE} p JOIN merged_keys USING (play_key) WHERE p.ingested_at = $t",
                {"t": run_at},
            ).fetchall()
        return {r[0] for r in rows}


class FetchingPlaysIndex(PlaysIndex):
    """Any warehouse: fetch the chunk's time window (or the id catalogue) and join locally."""

    def __init__(self, warehouse: Queryable) -> None:
        self._wh = warehouse

    def duplicates(self, chunk: pd.DataFrame, source: str) -> pd.DataFrame:
        if chunk.empty:
            return pd.DataFrame({"idx": pd.Series([], dtype="int64"), "why": pd.Series([], dtype="object")})
        lo = (chunk["played_at"].min() - MAX_SKEW).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        hi = (chunk["played_at"].max() + MAX_SKEW).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        window = self._wh.query(
            "SELECT play_key, played_at, track_id, source, content_type, user_id, primary_artist_name, track_name "
            f"FROM {PLAYS_TABLE} WHERE played_at BETWEEN TIMESTAMP '{lo}' AND TIMESTAMP '{hi}'"
        )
        with duckdb.connect() as con:
            con.register("existing_plays", window)
            return find_duplicates(con, "existing_plays", chunk, source)

    def match(self, names: pd.DataFrame) -> pd.DataFrame:
        if names.empty:
            return match_ids(duckdb.connect(), "x", names)
        # One row per distinct (name, id) with its play count: the catalogue, not every play.
        catalogue = self._wh.query(
            "SELECT content_type, primary_artist_name, track_name, track_id, count(*) AS n "
            f"FROM {PLAYS_TABLE} WHERE track_id IS NOT NULL GROUP BY 1, 2, 3, 4"
        )
        with duckdb.connect() as con:
            con.register("existing_plays", catalogue)
            return match_ids(con, "existing_plays", names, weight="n")

    def inserted_keys(self, keys: pd.Series, run_at: datetime) -> set[str]:
        stamp = run_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        mine = self._wh.query(f"SELECT play_key FROM {PLAYS_TABLE} WHERE ingested_at = TIMESTAMP '{stamp}'")
        return set(mine["play_key"]) & set(keys)


def plays_index(warehouse: HasPlaysIndex) -> PlaysIndex:
    """The warehouse's own index (``warehouse.plays_index()``); a function so tests can swap it."""
    return warehouse.plays_index()

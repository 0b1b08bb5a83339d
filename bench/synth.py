"""Seeded synthetic plays, generated inside DuckDB so 10M rows take seconds, not minutes.

Used to pre-fill the warehouse for the tick benchmark and as the top-ten input. Same seed,
same rows: ``setseed`` fixes DuckDB's ``random()`` and row order comes from ``range``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb

from spotify_assets.schema import column_names
from spotify_assets.tables import plays as plays_table


def plays_sql(n: int, end: datetime, seed: int = 7, users: int = 0) -> str:
    """A SELECT of ``n`` plays (plays.json columns) ending just before ``end``, ~3 minutes apart.

    Track popularity is skewed (a power law over ~n/50 tracks), 3% episodes, 5% non-plays.
    ``users`` > 0 spreads the plays over a household of listeners ``bench-1``..``bench-<users>``
    (round robin on the row number, so the random columns are the same as with ``users=0``);
    0 leaves ``user_id`` null, as in the single-user layout.
    """
    n_tracks = max(50, n // 50)
    user_id = f"'bench-' || (1 + i % {users})" if users > 0 else "NULL::VARCHAR"
    cols = ", ".join(column_names("plays"))
    return f"""
    WITH s AS (SELECT setseed({(seed % 1000) / 1000.0})),
    r AS (
        SELECT i,
            TIMESTAMPTZ '{end.isoformat()}' - to_microseconds((({n} - i) * 180000000)::BIGINT) AS played_at,
            least(floor(pow(random(), 3) * {n_tracks})::BIGINT, {n_tracks - 1}) AS t,
            random() AS u
        FROM range({n}) AS g(i), s
    ),
    p AS (
        SELECT
            strftime(played_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') || '|t' || t AS play_key,
            played_at,
            't' || t AS track_id,
            'Track ' || t AS track_name,
            'spotify:track:t' || t AS track_uri,
            'a' || (t % 997) AS artist_ids,
            'Artist ' || (t % 997) AS artist_names,
            'a' || (t % 997) AS primary_artist_id,
            'Artist ' || (t % 997) AS primary_artist_name,
            'al' || (t // 7) AS album_id,
            'Album ' || (t // 7) AS album_name,
            NULL::VARCHAR AS album_release_date,
            NULL::VARCHAR AS album_image_url,
            (120000 + (t * 7919) % 240000)::BIGINT AS duration_ms,
            NULL::BIGINT AS popularity, NULL::BOOLEAN AS explicit,
            NULL::VARCHAR AS context_type, NULL::VARCHAR AS context_uri,
            NULL::BIGINT AS ms_played, NULL::BOOLEAN AS skipped, NULL::BOOLEAN AS shuffle,
            NULL::VARCHAR AS reason_start, NULL::VARCHAR AS reason_end, NULL::VARCHAR AS platform,
            NULL::VARCHAR AS conn_country, NULL::BOOLEAN AS offline, NULL::BOOLEAN AS incognito_mode,
            CASE WHEN u < 0.03 THEN 'episode' ELSE 'track' END AS content_type,
            u >= 0.03 AND u < 0.95 OR u >= 0.98 AS is_play,
            'api' AS source, 'bench' AS batch_id, played_at AS ingested_at,
            {user_id} AS user_id,
            NULL::VARCHAR AS sources, NULL::VARCHAR AS scrobbled_at
        FROM r
    )
    SELECT {cols} FROM p
    """


def write_parquet(n: int, end: datetime, out: Path, seed: int = 7, users: int = 0) -> Path:
    """``n`` plays as one Parquet file (microsecond UTC timestamps, as the warehouse exports)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"COPY ({plays_sql(n, end, seed, users)}) TO '{out}' (FORMAT parquet)")
    return out


def fill_warehouse(db: Path, n: int, end: datetime, seed: int = 7) -> None:
    """Insert ``n`` plays straight into the warehouse file (tables created by the resource first)."""
    from spotify_assets.resources.warehouse import DuckDBWarehouseResource
    from spotify_assets.schema import PLAYS_TABLE, empty_frame

    wh = DuckDBWarehouseResource(path=str(db))
    plays_table.merge_plays(wh, empty_frame("plays"))
    # Through the resource's writer (lock, checkpoint, snapshot publish) like any other write.
    with wh.writer() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"INSERT INTO {PLAYS_TABLE} BY NAME {plays_sql(n, end, seed)}")

"""The warehouse's tables as a whole: creating them (and upgrading an older layout), both dialects.

DuckDB: ``CREATE TABLE IF NOT EXISTS`` from the schema files, with each table's key as a primary
key (what the merges' ``INSERT OR IGNORE`` / ``ON CONFLICT`` rely on). BigQuery: the same tables
with no keys (its merges are ``MERGE`` statements), ``bq_plays`` partitioned by day and clustered
(``schema.PLAYS_CLUSTERING``); the resource creates them from ``BIGQUERY_TABLES`` through the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spotify_assets.schema import (
    FEATURES_TABLE,
    GAPS_TABLE,
    META_TABLE,
    PLAY_KEY,
    PLAYS_TABLE,
    TOP_TEN_TABLE,
    TRACK_METADATA_TABLE,
    TableName,
    duckdb_columns_sql,
)

if TYPE_CHECKING:
    import duckdb

#: Every table with a schema file: (table, schema file, DuckDB primary key). The gaps table is
#: bookkeeping, not data, but its columns live in ``schemas/gaps.json`` like the data's.
DATA_TABLES: tuple[tuple[str, TableName, str], ...] = (
    (PLAYS_TABLE, "plays", PLAY_KEY),
    (FEATURES_TABLE, "track_features", "track_id"),
    (TRACK_METADATA_TABLE, "track_metadata", "track_id"),
    (TOP_TEN_TABLE, "top_ten_tracks", "user_id, rank"),
    (GAPS_TABLE, "gaps", "gap_start, gap_end"),
)


# -- DuckDB -------------------------------------------------------------------------------------
def duckdb_columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """The column names of ``table`` in the open database (empty when it does not exist)."""
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = current_schema()",
        [table],
    ).fetchall()
    return {r[0] for r in rows}


def duckdb_ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    if "user_id" not in duckdb_columns(con, TOP_TEN_TABLE):
        # A mart of the single-user layout (one ranking, keyed by rank): derived data, so it
        # is dropped and the next run of top_ten_tracks writes it again per listener.
        con.execute(f"DROP TABLE IF EXISTS {TOP_TEN_TABLE}")
    for table, schema, key in DATA_TABLES:
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (\n  {duckdb_columns_sql(schema)},\n  PRIMARY KEY ({key}))"
        )
    # A warehouse of an older layout lacks the nullable columns added since (user_id, null until
    # the plays are adopted, see users/adoption.py; sources, scrobbled_at): add them. Columns
    # are only ever added, never dropped.
    for column in ("user_id", "sources", "scrobbled_at"):
        con.execute(f"ALTER TABLE {PLAYS_TABLE} ADD COLUMN IF NOT EXISTS {column} VARCHAR")
    con.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key VARCHAR PRIMARY KEY, value VARCHAR)")

"""The warehouse's tables as a whole: creating them (and upgrading an older layout), and the
operator's rewrites across tables (a listener's deletion, the single-user layout's adoption);
both dialects.

DuckDB: ``CREATE TABLE IF NOT EXISTS`` from the schema files, with each table's key as a primary
key (what the merges' ``INSERT OR IGNORE`` / ``ON CONFLICT`` rely on). BigQuery: the same tables
with no keys (its merges are ``MERGE`` statements), ``bq_plays`` partitioned by day and clustered
(``schema.PLAYS_CLUSTERING``); the resource creates them from ``BIGQUERY_TABLES`` through the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spotify_assets.schema import (
    ALL_LISTENERS,
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
from spotify_assets.tables import plays, top_ten
from spotify_assets.tables.backends import Warehouse

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


# -- rewrites across tables (operator commands: ``plays_writes.OPERATOR_REWRITES``) ----------------
def delete_user(warehouse: Warehouse, user_id: str) -> int:
    """Delete every play of ``user_id`` so that none is recoverable from the storage, and the
    rankings that counted them (theirs and everyone's); returns how many plays went.

    "One writer per table" holds: the assets only ever insert (``plays_writes.merge_plays_files``),
    and this is not an asset but an operator command's call (``spotify-assets users remove NAME
    --delete-data``), listed with ``rebuild-warehouse`` in ``plays_writes.OPERATOR_REWRITES``;
    it takes the same writer lock a run takes.

    DuckDB: the DELETEs in one transaction, then the file rewritten without its free blocks
    (``DuckDBWarehouseResource.rewriter``). BigQuery: DML DELETEs; BigQuery keeps changed data for
    the dataset's time travel window (7 days by default) and then fail-safe (7 more): the rows are
    gone from every query at once, and from Google's storage after that window.
    """
    side = warehouse.backend()
    if side.dialect == "duckdb":
        with side.rewriter() as con:
            deleted = plays.duckdb_delete_user(con, user_id)
            top_ten.duckdb_delete_user(con, user_id)
        return int(deleted)
    from google.cloud import bigquery

    who = [bigquery.ScalarQueryParameter("user_id", "STRING", user_id)]
    job = side.run_dml(plays.bigquery_delete_user_sql(side.table_id(PLAYS_TABLE)), who)
    side.run_dml(
        top_ten.bigquery_delete_user_sql(side.table_id(TOP_TEN_TABLE)),
        [*who, bigquery.ScalarQueryParameter("everyone", "STRING", ALL_LISTENERS)],
    )
    return int(job.num_dml_affected_rows or 0)


def adopt_legacy_plays(warehouse: Warehouse, user_id: str) -> int:
    """Make the plays of the single-user layout (no ``user_id``) ``user_id``'s: each key prefixed
    (``normalize.user_play_key``); a legacy row whose prefixed key is already there is the same
    play and goes. Returns how many rows were adopted (none waiting: no write at all)."""
    side = warehouse.backend()
    if side.dialect == "duckdb":
        with side.reader() as con:
            waiting = con.execute(plays.legacy_waiting_sql()).fetchall()[0][0]
        if not waiting:
            return 0  # the common case: no write, no lock, no snapshot copy
        with side.writer() as con:
            return plays.duckdb_adopt(con, user_id)
    from google.cloud import bigquery

    table_id = side.table_id(PLAYS_TABLE)
    if not int(side.rows(plays.legacy_waiting_sql(f"`{table_id}`"))["n"].iloc[0]):
        return 0
    prefix = bigquery.ScalarQueryParameter("prefix", "STRING", plays.legacy_prefix(user_id))
    user = bigquery.ScalarQueryParameter("user_id", "STRING", user_id)
    drop_doubles, adopt = plays.bigquery_adopt_sql(table_id)
    side.run_dml(drop_doubles, [prefix, user])
    return int(side.run_dml(adopt, [prefix, user]).num_dml_affected_rows or 0)

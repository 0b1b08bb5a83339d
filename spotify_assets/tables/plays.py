"""``bq_plays``: every play once, keyed by ``play_key`` (user id + ``played_at`` + track).

Both dialects of each statement side by side. Who may call the writes is listed in
``plays_writes`` (the ``bq_plays`` merge and two operator commands); these are the statements.

* **merge**: insert only keys the table lacks (DuckDB ``INSERT OR IGNORE`` on the primary key;
  BigQuery an insert-only ``MERGE`` from a staging table, duplicates within the batch collapsed
  first), so a batch merged twice adds nothing.
* **adopt**: the single-user layout's rows (no ``user_id``) become the owner's: keys prefixed
  (``normalize.user_play_key``); a legacy row whose prefixed key is already there goes.
* **delete**: every row of one listener (an operator command's, ``users remove --delete-data``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from spotify_assets.schema import PLAY_KEY, PLAYS_TABLE
from spotify_assets.spotify.normalize import user_play_key
from spotify_assets.tables.sql import bigquery_insert_all

if TYPE_CHECKING:
    import duckdb


def legacy_waiting_sql(table: str = PLAYS_TABLE) -> str:
    """How many rows of the single-user layout wait for their owner (both dialects; ``table``:
    BigQuery's quoted table id)."""
    return f"SELECT count(*) AS n FROM {table} WHERE user_id IS NULL"


def legacy_prefix(user_id: str) -> str:
    """What adoption puts in front of a legacy key: the owner's, as every key of theirs has."""
    return user_play_key(user_id, "")


# -- DuckDB -------------------------------------------------------------------------------------
def duckdb_max_played_at(con: duckdb.DuckDBPyConnection, user_id: str | None) -> Any:
    if user_id is None:
        return con.execute(f"SELECT max(played_at) FROM {PLAYS_TABLE}").fetchall()[0][0]
    return con.execute(f"SELECT max(played_at) FROM {PLAYS_TABLE} WHERE user_id = ?", [user_id]).fetchall()[
        0
    ][0]


def duckdb_count(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute(f"SELECT count(*) FROM {PLAYS_TABLE}").fetchall()[0][0])


def duckdb_insert_ignoring(
    con: duckdb.DuckDBPyConnection, incoming: pd.DataFrame | pa.Table
) -> tuple[int, int]:
    """Insert plays whose key is new; return (rows inserted, rows in the table after).

    INSERT OR IGNORE on the primary key: exactly-once even if the same batch arrives twice in
    one frame or from two overlapping runs.
    """
    before = duckdb_count(con)
    con.register("incoming_plays", incoming)
    try:
        con.execute(f"INSERT OR IGNORE INTO {PLAYS_TABLE} BY NAME SELECT * FROM incoming_plays")
    finally:
        con.unregister("incoming_plays")
    after = duckdb_count(con)
    return after - before, after


#: DuckDB's memory during a merge from the lake. Unbounded, a million-play import's merge (the
#: insert and its key index) holds ~1.4 GB; bounded, DuckDB spills to the database's temporary
#: directory and the process stays under 1 GiB on a household's laptop, for a few seconds more.
MERGE_MEMORY_LIMIT = "400MB"


def duckdb_insert_from_parquet(con: duckdb.DuckDBPyConnection, files: list[str]) -> tuple[int, int, int]:
    """Insert the plays of these local Parquet files whose key is new, in one scan of them all;
    return (rows in the files, rows inserted, rows in the table after).

    One ``read_parquet`` over the list: DuckDB reads the files in parallel, with no per-file round
    trip through Python, within ``MERGE_MEMORY_LIMIT`` (the connection's own limit is restored
    after). The lake's folder names (``user_id=...``, ``played_date=...``) are not columns: every
    column is in the file (``hive_partitioning = false``).
    """
    scan = "read_parquet($files, hive_partitioning = false, union_by_name = true)"
    incoming = int(con.execute(f"SELECT count(*) FROM {scan}", {"files": files}).fetchall()[0][0])
    before = duckdb_count(con)
    limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    con.execute(f"SET memory_limit = '{MERGE_MEMORY_LIMIT}'")
    try:
        con.execute(f"INSERT OR IGNORE INTO {PLAYS_TABLE} BY NAME SELECT * FROM {scan}", {"files": files})
    finally:
        con.execute(f"SET memory_limit = '{limit}'")
    after = duckdb_count(con)
    return incoming, after - before, after


def duckdb_adopt(con: duckdb.DuckDBPyConnection, user_id: str) -> int:
    """Adopt the legacy rows as ``user_id``'s, in the caller's transaction; returns how many."""
    prefix = legacy_prefix(user_id)
    con.execute(
        f"DELETE FROM {PLAYS_TABLE} WHERE user_id IS NULL AND (? || play_key) IN "
        f"(SELECT play_key FROM {PLAYS_TABLE} WHERE user_id = ?)",
        [prefix, user_id],
    )
    adopted = con.execute(
        f"UPDATE {PLAYS_TABLE} SET user_id = ?, play_key = ? || play_key WHERE user_id IS NULL",
        [user_id, prefix],
    ).fetchall()[0][0]
    return int(adopted)


def duckdb_delete_user(con: duckdb.DuckDBPyConnection, user_id: str) -> int:
    return int(con.execute(f"DELETE FROM {PLAYS_TABLE} WHERE user_id = ?", [user_id]).fetchall()[0][0])


# -- BigQuery -----------------------------------------------------------------------------------
def bigquery_merge_sql(table_id: str, staging_table: str) -> str:
    """Insert-only MERGE on ``play_key``; duplicates within the staged batch collapse to one row."""
    return (
        f"MERGE `{table_id}` AS T\n"
        f"USING (\n"
        f"  SELECT * FROM `{staging_table}`\n"
        f"  WHERE TRUE\n"
        f"  QUALIFY ROW_NUMBER() OVER (PARTITION BY {PLAY_KEY} ORDER BY ingested_at, batch_id) = 1\n"
        f") AS S\n"
        f"ON T.{PLAY_KEY} = S.{PLAY_KEY}\n"
        f"WHEN NOT MATCHED THEN {bigquery_insert_all('plays')}"
    )


def bigquery_max_played_at_sql(table_id: str, by_user: bool) -> str:
    return f"SELECT MAX(played_at) AS m FROM `{table_id}`" + (" WHERE user_id = @user_id" if by_user else "")


def bigquery_adopt_sql(table_id: str) -> tuple[str, str]:
    """The two DML statements of an adoption (parameters ``@prefix``, ``@user_id``), in order."""
    return (
        f"DELETE FROM `{table_id}` WHERE user_id IS NULL AND CONCAT(@prefix, play_key) IN "
        f"(SELECT play_key FROM `{table_id}` WHERE user_id = @user_id)",
        f"UPDATE `{table_id}` SET user_id = @user_id, play_key = CONCAT(@prefix, play_key) WHERE user_id IS NULL",
    )


def bigquery_delete_user_sql(table_id: str) -> str:
    return f"DELETE FROM `{table_id}` WHERE user_id = @user_id"

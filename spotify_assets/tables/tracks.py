"""``track_features`` and ``track_metadata``: one row per track id, upserted by the same rule.

The rule, both dialects: a row for a new track is inserted; a stored row is replaced unless it
is ``ok`` and the incoming one is not (a provider that answered once is never overwritten by a
later refusal or outage). Rows of one batch are deduplicated first, the last one kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from spotify_assets.schema import TableName, column_names, conform
from spotify_assets.tables.sql import bigquery_insert_all

if TYPE_CHECKING:
    import duckdb


def prepared(frame: pd.DataFrame, schema: TableName) -> pd.DataFrame:
    """The batch as the upsert takes it: conformed, one row per track id (the last one)."""
    return conform(frame, schema).drop_duplicates("track_id", keep="last")


# -- DuckDB -------------------------------------------------------------------------------------
def duckdb_upsert(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, table: str) -> None:
    """``frame`` (``prepared``) into ``table`` by the rule, in the caller's transaction."""
    if not len(frame):
        return
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in frame.columns if c != "track_id")
    con.register("incoming_rows", frame)
    try:
        con.execute(
            f"INSERT INTO {table} BY NAME SELECT * FROM incoming_rows "
            f"ON CONFLICT (track_id) DO UPDATE SET {updates} "
            f"WHERE {table}.status <> 'ok' OR excluded.status = 'ok'"
        )
    finally:
        con.unregister("incoming_rows")


def duckdb_rows_for(con: duckdb.DuckDBPyConnection, table: str, track_ids: list[str]) -> pd.DataFrame:
    return con.execute(
        f"SELECT * FROM {table} WHERE track_id IN (SELECT unnest(?::VARCHAR[]))", [track_ids]
    ).df()


# -- BigQuery -----------------------------------------------------------------------------------
def bigquery_upsert_sql(schema: TableName, table_id: str, staging_table: str) -> str:
    """The same rule as a MERGE from a staging table holding the ``prepared`` batch."""
    sets = ", ".join(f"`{c}` = S.`{c}`" for c in column_names(schema) if c != "track_id")
    return (
        f"MERGE `{table_id}` AS T\n"
        f"USING `{staging_table}` AS S\n"
        f"ON T.track_id = S.track_id\n"
        f"WHEN MATCHED AND (T.status <> 'ok' OR S.status = 'ok') THEN UPDATE SET {sets}\n"
        f"WHEN NOT MATCHED THEN {bigquery_insert_all(schema)}"
    )


def bigquery_rows_for_sql(table_id: str) -> str:
    """Stored rows of the track ids in the ``@ids`` array parameter."""
    return f"SELECT * FROM `{table_id}` WHERE track_id IN UNNEST(@ids)"

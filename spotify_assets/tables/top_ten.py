"""``top_ten_tracks``: the mart, ten rows per listener and ten for everyone (``ALL_LISTENERS``).

Replaced whole by its asset on each run (DuckDB: DELETE and INSERT in one transaction;
BigQuery: one ``WRITE_TRUNCATE`` load job), and pruned of a deleted listener's
rankings, theirs and everyone's (ranked over their plays too; the next run writes it again).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pandas as pd

from spotify_assets.encoding import parquet_bytes
from spotify_assets.schema import ALL_LISTENERS, TOP_TEN_TABLE, conform
from spotify_assets.tables.backends import BigQueryBackend, Warehouse

if TYPE_CHECKING:
    import duckdb


def replace(warehouse: Warehouse, top_ten: pd.DataFrame) -> None:
    """Replace the mart atomically: readers see the old rankings or the new ones, never a mix."""
    top_ten = conform(top_ten, "top_ten_tracks")
    side = warehouse.backend()
    if side.dialect == "bigquery":
        bigquery_replace(side, top_ten)
        return
    with side.writer() as con:
        duckdb_replace(con, top_ten)


# -- DuckDB -------------------------------------------------------------------------------------
def duckdb_replace(con: duckdb.DuckDBPyConnection, top_ten: pd.DataFrame) -> None:
    con.register("incoming_top_ten", top_ten)
    try:
        con.execute(f"DELETE FROM {TOP_TEN_TABLE}")
        con.execute(f"INSERT INTO {TOP_TEN_TABLE} BY NAME SELECT * FROM incoming_top_ten")
    finally:
        con.unregister("incoming_top_ten")


def duckdb_delete_user(con: duckdb.DuckDBPyConnection, user_id: str) -> None:
    con.execute(f"DELETE FROM {TOP_TEN_TABLE} WHERE user_id IN (?, ?)", [user_id, ALL_LISTENERS])


# -- BigQuery -----------------------------------------------------------------------------------
def bigquery_replace(bq: BigQueryBackend, top_ten: pd.DataFrame) -> None:
    """One ``WRITE_TRUNCATE`` load job of the conformed mart."""
    from google.cloud import bigquery

    bq.ensure_tables()
    data = parquet_bytes(top_ten, "top_ten_tracks")
    job = bq.client().load_table_from_file(
        io.BytesIO(data),
        bq.table_id(TOP_TEN_TABLE),
        size=len(data),
        job_id_prefix="spotify_replace_top_ten_",
        job_config=bq.load_config("top_ten_tracks", bigquery.SourceFormat.PARQUET),
    )
    job.result(timeout=bq.job_timeout_s)


def bigquery_delete_user_sql(table_id: str) -> str:
    """Parameters ``@user_id`` and ``@everyone`` (``ALL_LISTENERS``)."""
    return f"DELETE FROM `{table_id}` WHERE user_id IN (@user_id, @everyone)"

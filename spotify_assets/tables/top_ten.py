"""``top_ten_tracks``: the mart, ten rows per listener and ten for everyone (``ALL_LISTENERS``).

Replaced whole by its asset on each run (DuckDB: DELETE and INSERT in one transaction;
BigQuery: one ``WRITE_TRUNCATE`` load job, so no SQL here), and pruned of a deleted listener's
rankings, theirs and everyone's (ranked over their plays too; the next run writes it again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from spotify_assets.schema import ALL_LISTENERS, TOP_TEN_TABLE

if TYPE_CHECKING:
    import duckdb


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
def bigquery_delete_user_sql(table_id: str) -> str:
    """Parameters ``@user_id`` and ``@everyone`` (``ALL_LISTENERS``)."""
    return f"DELETE FROM `{table_id}` WHERE user_id IN (@user_id, @everyone)"

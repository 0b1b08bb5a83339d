"""``ingest_gaps``: windows in which a poll may have missed plays (see ``checks.no_open_gaps``).

A gap is recorded when the API's 50-play window was full and all newer than the cursor, and
closed when an import's history covers it. Bookkeeping, not data: the lake holds no file of it,
so ``rebuild-warehouse`` does not restore it.

Its columns are ``schemas/gaps.json`` (the one schema source); ``tables/admin.py`` creates it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from spotify_assets.schema import GAPS_TABLE

if TYPE_CHECKING:
    import duckdb


class BigQuerySql(Protocol):
    """What the BigQuery statements need of the warehouse: a table's id, DML and a query."""

    def table_id(self, table: str) -> str: ...

    def run_dml(self, sql: str, params: list[Any]) -> Any: ...

    def rows(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame: ...


# -- DuckDB -------------------------------------------------------------------------------------
def duckdb_record(con: duckdb.DuckDBPyConnection, gap_start: datetime, gap_end: datetime) -> None:
    con.execute(
        f"INSERT OR IGNORE INTO {GAPS_TABLE} VALUES (?, ?, ?, NULL)", [gap_start, gap_end, datetime.now(UTC)]
    )


OPEN_SQL = f"SELECT gap_start, gap_end, detected_at FROM {GAPS_TABLE} WHERE closed_at IS NULL ORDER BY 1"


def duckdb_close_covered_by(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> int:
    def still_open() -> int:
        return int(con.execute(f"SELECT count(*) FROM {GAPS_TABLE} WHERE closed_at IS NULL").fetchall()[0][0])

    before = still_open()
    con.execute(
        f"UPDATE {GAPS_TABLE} SET closed_at = ? WHERE closed_at IS NULL AND gap_start >= ? AND gap_end <= ?",
        [datetime.now(UTC), start, end],
    )
    return before - still_open()


# -- BigQuery -----------------------------------------------------------------------------------
def bigquery_record(bq: BigQuerySql, gap_start: datetime, gap_end: datetime) -> None:
    """Insert the gap unless that exact window is already recorded (a retried run)."""
    from google.cloud import bigquery

    bq.run_dml(
        f"MERGE `{bq.table_id(GAPS_TABLE)}` AS T\n"
        "USING (SELECT @gap_start AS gap_start, @gap_end AS gap_end) AS S\n"
        "ON T.gap_start = S.gap_start AND T.gap_end = S.gap_end\n"
        "WHEN NOT MATCHED THEN INSERT (gap_start, gap_end, detected_at, closed_at)\n"
        "  VALUES (S.gap_start, S.gap_end, CURRENT_TIMESTAMP(), NULL)",
        [
            bigquery.ScalarQueryParameter("gap_start", "TIMESTAMP", gap_start),
            bigquery.ScalarQueryParameter("gap_end", "TIMESTAMP", gap_end),
        ],
    )


def bigquery_open(bq: BigQuerySql) -> pd.DataFrame:
    return bq.rows(
        f"SELECT gap_start, gap_end, detected_at FROM `{bq.table_id(GAPS_TABLE)}` "
        "WHERE closed_at IS NULL ORDER BY gap_start"
    )


def bigquery_close_covered_by(bq: BigQuerySql, start: datetime, end: datetime) -> int:
    from google.cloud import bigquery

    job = bq.run_dml(
        f"UPDATE `{bq.table_id(GAPS_TABLE)}` SET closed_at = CURRENT_TIMESTAMP()\n"
        "WHERE closed_at IS NULL AND gap_start >= @start AND gap_end <= @end",
        [
            bigquery.ScalarQueryParameter("start", "TIMESTAMP", start),
            bigquery.ScalarQueryParameter("end", "TIMESTAMP", end),
        ],
    )
    return int(job.num_dml_affected_rows or 0)

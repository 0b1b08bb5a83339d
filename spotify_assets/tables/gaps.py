"""``ingest_gaps``: windows in which a poll may have missed plays (see ``checks.no_open_gaps``).

A gap is recorded when the API's 50-play window was full and all newer than the cursor, and
closed when an import's history covers it. Bookkeeping, not data: the lake holds no file of it,
so ``rebuild-warehouse`` does not restore it.

Its columns are ``schemas/gaps.json`` (the one schema source); ``tables/admin.py`` creates it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pandas as pd

from spotify_assets.schema import GAPS_TABLE
from spotify_assets.tables.backends import BigQueryBackend, Warehouse

if TYPE_CHECKING:
    import duckdb


def record(warehouse: Warehouse, gap_start: datetime, gap_end: datetime) -> None:
    """Remember that plays between ``gap_start`` and ``gap_end`` may be missing (once per window)."""
    side = warehouse.backend()
    if side.dialect == "bigquery":
        bigquery_record(side, gap_start, gap_end)
        return
    # Not published on its own: the run's merge, moments later, publishes it with the plays
    # (a snapshot copy costs time proportional to the history).
    with side.writer(publish=False) as con:
        duckdb_record(con, gap_start, gap_end)


def open_gaps(warehouse: Warehouse) -> pd.DataFrame:
    """Gaps not yet covered by an import (columns gap_start, gap_end, detected_at)."""
    side = warehouse.backend()
    if side.dialect == "bigquery":
        return bigquery_open(side)
    with side.reader() as con:
        return con.execute(OPEN_SQL).df()


def close_covered_by(warehouse: Warehouse, start: datetime, end: datetime) -> int:
    """Close the gaps lying inside [start, end] (an import covered them); returns how many."""
    side = warehouse.backend()
    if side.dialect == "bigquery":
        return bigquery_close_covered_by(side, start, end)
    with side.writer() as con:
        return duckdb_close_covered_by(con, start, end)


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
def bigquery_record(bq: BigQueryBackend, gap_start: datetime, gap_end: datetime) -> None:
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


def bigquery_open(bq: BigQueryBackend) -> pd.DataFrame:
    return bq.rows(
        f"SELECT gap_start, gap_end, detected_at FROM `{bq.table_id(GAPS_TABLE)}` "
        "WHERE closed_at IS NULL ORDER BY gap_start"
    )


def bigquery_close_covered_by(bq: BigQueryBackend, start: datetime, end: datetime) -> int:
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

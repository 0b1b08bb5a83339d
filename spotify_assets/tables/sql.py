"""Spellings every table module shares."""

from __future__ import annotations

from spotify_assets.schema import TableName, column_names


def bigquery_insert_all(table: TableName) -> str:
    """``INSERT (cols) VALUES (S.cols)`` for every schema column: the portable spelling of
    ``INSERT ROW``, which depends on the staging table's column order and which not every
    BigQuery implementation parses."""
    cols = column_names(table)
    return f"INSERT ({', '.join(f'`{c}`' for c in cols)}) VALUES ({', '.join(f'S.`{c}`' for c in cols)})"

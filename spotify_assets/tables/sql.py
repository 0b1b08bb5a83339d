"""Spellings every table module shares."""

from __future__ import annotations

import hashlib
import re

import pandas as pd

from spotify_assets.encoding import content_digest
from spotify_assets.schema import TableName, column_names


def frame_digest(df: pd.DataFrame) -> str:
    """Content hash of a conformed frame: same rows in any order -> same digest (staging names)."""
    body = df.sort_values(list(df.columns)).to_json(orient="records", date_format="iso", date_unit="us")
    return content_digest(body.encode())


def bigquery_insert_all(table: TableName) -> str:
    """``INSERT (cols) VALUES (S.cols)`` for every schema column: the portable spelling of
    ``INSERT ROW``, which depends on the staging table's column order and which not every
    BigQuery implementation parses."""
    cols = column_names(table)
    return f"INSERT ({', '.join(f'`{c}`' for c in cols)}) VALUES ({', '.join(f'S.`{c}`' for c in cols)})"


def safe_id(text: str) -> str:
    """``text`` usable in a BigQuery table name and a job id; a hash suffix keeps distinct inputs distinct."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", text)[:180]
    if cleaned == text:
        return text
    return f"{cleaned}_{hashlib.sha256(text.encode()).hexdigest()[:10]}"

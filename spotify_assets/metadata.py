"""Materialization metadata helpers, so every asset tells its story in the Dagster UI."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd


def markdown_table(df: pd.DataFrame, columns: list[str] | None = None, limit: int = 10) -> dg.MetadataValue:
    """A small markdown preview (no extra dependency: pandas' to_markdown needs tabulate)."""
    view = df[columns] if columns else df
    view = view.head(limit)
    if view.empty:
        return dg.MetadataValue.md("_no rows_")
    header = "| " + " | ".join(map(str, view.columns)) + " |"
    rule = "|" + "---|" * len(view.columns)
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in view.itertuples(index=False)]
    return dg.MetadataValue.md("\n".join([header, rule, *body]))


def _cell(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text.replace("|", "\\|").replace("\n", " ")

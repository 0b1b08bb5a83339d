"""The dashboard on two warehouses: the pages' own batches run on BigQuery and on DuckDB, compared.

The dashboard's SQL is written once in DuckDB's dialect and transpiled for BigQuery
(``warehouse.to_bigquery``), so a dialect difference shows up as a different figure, not as
an error. This module says whether two warehouses holding the same plays give the same
answers: ``compare`` runs batches of queries on both and compares every frame (columns,
row order, values); ``render_pages`` opens every page with Streamlit's ``AppTest`` (the
real page code, in this process) over a ``RecordingWarehouse``, so the batches compared are
exactly those the pages send. ``make cloud-demo`` and
``spotify_assets_tests/test_dashboard_bigquery_parity.py`` use it; the app never imports it.

What is compared exactly, and what is only the two client libraries' representation:

* values, nulls, column names and row order are compared exactly; floats to a relative
  1e-9 (a sum's last bits depend on the order the engine adds in);
* numbers are compared as numbers: DuckDB returns ``sum()`` of counts as a float (HUGEINT),
  BigQuery as INT64;
* dates are compared as dates: BigQuery's client returns DATE as ``datetime.date`` objects
  unless asked otherwise, DuckDB as ``datetime64``;
* instants are compared in UTC, and a local wall-clock time (``AT TIME ZONE``: a naive
  TIMESTAMP in DuckDB, ``TIMESTAMP(DATETIME(...))`` in BigQuery, which the client labels
  UTC) is compared by its wall-clock value: the pages format both alike (``ui.local``,
  ``utc...`` time units in the charts).

Only queries of the DuckDB snapshot's own bookkeeping (``warehouse_meta``: when the
pipeline last published a snapshot, a cache key only) are not compared: BigQuery has no
snapshot, so no such table. What the pages show of freshness ("Plays last arrived") comes from
the viewer's own plays (``freshness_query``), on both, and is compared like every figure.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import sqlglot
from sqlglot import exp

from app.warehouse import Warehouse
from spotify_assets.schema import META_TABLE

#: The dashboard's entry point, as ``make dashboard`` and Streamlit Community Cloud run it.
APP_FILE = Path(__file__).resolve().parent / "streamlit_app.py"
#: Every page of the dashboard: the sidebar's (Compare too, listed with two listeners) and the
#: three detail pages, by the name of their script in ``app/views/``.
PAGES = (
    "overview",
    "top",
    "when",
    "mood",
    "discovery",
    "recent",
    "wrapped",
    "compare",
    "artist",
    "track",
    "album",
)
#: Tables only a DuckDB snapshot has, and why a query of them is not compared.
NOT_ON_BIGQUERY = {META_TABLE: "the DuckDB snapshot's publication time; BigQuery publishes no snapshot"}
FLOAT_RTOL = 1e-9


@dataclass
class RecordingWarehouse:
    """A warehouse that remembers every batch asked of it (after ``for_listener``: as sent)."""

    inner: Warehouse
    batches: list[dict[str, str]] = field(default_factory=list)

    @property
    def source_id(self) -> str:
        return self.inner.source_id

    def exists(self) -> bool:
        return self.inner.exists()

    def freshness_token(self) -> str:
        return self.inner.freshness_token()

    def fetch(self, queries: Mapping[str, str]) -> dict[str, pd.DataFrame | None]:
        self.batches.append(dict(queries))
        return self.inner.fetch(queries)


def _cell(value: Any) -> Any:
    """One value as compared: numbers as float, dates and times as naive UTC/wall-clock timestamps."""
    if value is None or (not isinstance(value, str | bytes | list | dict) and pd.isna(value)):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dt.datetime | dt.date | pd.Timestamp):
        stamp = pd.Timestamp(value)
        return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp
    if hasattr(value, "item"):  # a numpy scalar
        return _cell(value.item())
    return value


def comparable(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """A frame's rows, in order, with each value as ``_cell`` represents it."""
    return [tuple(_cell(v) for v in row) for row in frame.itertuples(index=False, name=None)]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= FLOAT_RTOL * max(abs(a), abs(b), 1.0)
    return bool(a == b)


def frame_difference(bigquery: pd.DataFrame | None, duckdb: pd.DataFrame | None) -> str | None:
    """How BigQuery's answer differs from DuckDB's (the first difference), or None when equal."""
    if bigquery is None or duckdb is None:
        return None if bigquery is duckdb else f"BigQuery {bigquery is None=}, DuckDB {duckdb is None=}"
    if list(bigquery.columns) != list(duckdb.columns):
        return f"columns {list(bigquery.columns)} != {list(duckdb.columns)}"
    left, right = comparable(bigquery), comparable(duckdb)
    if len(left) != len(right):
        return f"{len(left)} rows on BigQuery, {len(right)} on DuckDB"
    for i, (a, b) in enumerate(zip(left, right, strict=True)):
        for column, x, y in zip(bigquery.columns, a, b, strict=True):
            if not _same(x, y):
                return f"row {i} column {column!r}: BigQuery {x!r} != DuckDB {y!r}"
    return None


def _unsupported(sql: str) -> str | None:
    tables = {t.name for t in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Table)}
    return next((why for table, why in NOT_ON_BIGQUERY.items() if table in tables), None)


@dataclass(frozen=True)
class Parity:
    """The outcome of ``compare``: how many distinct queries ran on both, and what differed."""

    compared: int
    rows: int
    differences: dict[str, str]
    skipped: dict[str, str]

    @property
    def equal(self) -> bool:
        return not self.differences and self.compared > 0


def _label(name: str, sql: str) -> str:
    return f"{name}#{hashlib.sha256(sql.encode()).hexdigest()[:8]}"


def compare(
    batches: Iterable[Mapping[str, str]], bigquery: Warehouse, duckdb: Warehouse, chunk: int = 16
) -> Parity:
    """Run each distinct query of ``batches`` on both warehouses and compare the answers.

    Queries are run in chunks (one client or connection per chunk), each once however many
    batches repeat it; a query is named ``<batch key>#<hash of its SQL>`` in the report.
    """
    distinct: dict[str, tuple[str, str]] = {}
    skipped: dict[str, str] = {}
    for batch in batches:
        for name, sql in batch.items():
            label = _label(name, sql)
            why = _unsupported(sql)
            if why:
                skipped[label] = why
            else:
                distinct.setdefault(sql, (label, sql))
    differences: dict[str, str] = {}
    rows = 0
    items = list(distinct.values())
    for start in range(0, len(items), chunk):
        part = dict(items[start : start + chunk])
        on_bq, on_duck = bigquery.fetch(part), duckdb.fetch(part)
        for label in part:
            found = on_duck[label]
            rows += 0 if found is None else len(found)
            problem = frame_difference(on_bq[label], found)
            if problem:
                differences[label] = problem
    return Parity(compared=len(items), rows=rows, differences=differences, skipped=skipped)


# -- the pages, rendered ----------------------------------------------------------------------
@dataclass(frozen=True)
class RenderedPage:
    """One page as ``AppTest`` ran it: its errors, the figures it shows (metric label -> value)
    and the tables it shows (``st.dataframe``, in page order)."""

    page: str
    params: dict[str, str]
    exceptions: list[str]
    metrics: dict[str, str]
    tables: list[pd.DataFrame]


@contextlib.contextmanager
def _serving(wh: Warehouse) -> Iterator[None]:
    """The pages read ``wh`` (``data.warehouse`` is the one place they get their warehouse)."""
    import streamlit as st

    from app import data

    original = data.warehouse
    data.warehouse = lambda: wh  # type: ignore[assignment]
    st.cache_data.clear()  # every batch is fetched (and recorded), none answered from an earlier page
    try:
        yield
    finally:
        data.warehouse = original  # type: ignore[assignment]
        st.cache_data.clear()


def page_params(wh: Warehouse, tz: str = "UTC") -> dict[str, dict[str, str]]:
    """What each page is opened with: the detail pages with the busiest artist, track and album
    that have an id, Wrapped with the newest year, the rest as the sidebar opens them."""
    from app import queries

    top = wh.fetch(queries.top_queries(tz, queries.Period()))
    years = wh.fetch(queries.years_query(tz))["years"]
    params: dict[str, dict[str, str]] = {page: {} for page in PAGES}
    for kind, table in (("artist", "artists"), ("track", "tracks"), ("album", "albums")):
        frame = top[table]
        ids = [] if frame is None else [i for i in frame["id"] if isinstance(i, str) and i]
        if not ids:
            raise ValueError(f"no {kind} with a Spotify id to open its page with")
        params[kind] = {"id": ids[0]}
    if years is not None and len(years):
        params["wrapped"] = {"year": str(int(years["year"].iloc[0]))}
    params["overview"] = {}
    return params


def render_pages(
    wh: Warehouse,
    params: Mapping[str, Mapping[str, str]],
    pages: Iterable[str] = PAGES,
    env: Mapping[str, str] | None = None,
) -> list[RenderedPage]:
    """Open every page over ``wh`` as a browser opening ``/<page>?<params>`` would (``AppTest``).

    ``env`` is set for the renders (and restored after): the pages read the time zone and the
    listener registry from the environment.
    """
    import logging
    import os

    from streamlit.testing.v1 import AppTest

    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    out: list[RenderedPage] = []
    from streamlit import logger as st_logger

    level = logging.getLogger("streamlit").getEffectiveLevel()
    st_logger.set_log_level(logging.ERROR)  # "No runtime found" and the like: AppTest has no server
    try:
        with _serving(wh):
            for page in pages:
                at = AppTest.from_file(str(APP_FILE), default_timeout=120)
                at.run()
                st_logger.set_log_level(logging.ERROR)  # loggers the first run created start at INFO
                at.query_params.clear()
                at.query_params.update(dict(params.get(page, {})))
                at.switch_page(f"views/{page}.py").run()
                out.append(
                    RenderedPage(
                        page=page,
                        params=dict(params.get(page, {})),
                        exceptions=[str(e.value) for e in at.exception],
                        metrics={str(m.label): str(m.value) for m in at.metric},
                        tables=[t.value for t in at.dataframe],
                    )
                )
    finally:
        st_logger.set_log_level(level)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out


def figure_differences(
    bigquery: list[RenderedPage], duckdb: list[RenderedPage]
) -> dict[str, tuple[str, str]]:
    """Figures and tables two renders of the same pages show differently: ``"<page>: <label>"``
    -> (BigQuery's, DuckDB's), or a table's first difference; none is left out."""
    out: dict[str, tuple[str, str]] = {}
    for b, d in zip(bigquery, duckdb, strict=True):
        if b.page != d.page:
            raise ValueError(f"pages rendered in a different order: {b.page} != {d.page}")
        for label in sorted(set(b.metrics) | set(d.metrics)):
            shown = (b.metrics.get(label, "-"), d.metrics.get(label, "-"))
            if shown[0] != shown[1]:
                out[f"{b.page}: {label}"] = shown
        if len(b.tables) != len(d.tables):
            out[f"{b.page}: tables"] = (str(len(b.tables)), str(len(d.tables)))
        for i, (tb, td) in enumerate(zip(b.tables, d.tables, strict=False)):
            problem = frame_difference(tb, td)
            if problem:
                out[f"{b.page}: table {i}"] = (problem, "")
    return out

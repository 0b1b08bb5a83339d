"""Where the dashboard's SQL runs: the local DuckDB snapshot or BigQuery, behind one call.

The pipeline owns ``warehouse.duckdb`` and, after every committed write, atomically
replaces ``warehouse.snapshot.duckdb`` with a fresh copy. The dashboard only ever opens
that snapshot, read-only, for one batch of queries at a time, and closes it at once. So it
never holds a lock the pipeline needs, and a snapshot replaced mid-read is harmless (the
open file handle keeps the old inode alive until we close it).

Queries are written once, in DuckDB's dialect, against bare table names. The BigQuery
backend transpiles them with sqlglot and qualifies the tables with project and dataset.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import duckdb
import pandas as pd
import sqlglot
from sqlglot import exp

from spotify_assets.schema import FEATURES_TABLE, META_TABLE, PLAYS_TABLE, TOP_TEN_TABLE, TRACK_METADATA_TABLE
from spotify_assets.settings import DEFAULT_BQ_LOCATION, BigQuerySettings, layout, load_settings

if TYPE_CHECKING:
    from google.cloud import bigquery

KNOWN_TABLES = frozenset({PLAYS_TABLE, FEATURES_TABLE, TOP_TEN_TABLE, TRACK_METADATA_TABLE, META_TABLE})

#: Bounded retry for transient open/lock errors while the pipeline replaces the snapshot.
RETRY_ATTEMPTS = 8
RETRY_FIRST_DELAY_S = 0.05


class WarehouseMissing(RuntimeError):
    """There is no warehouse to read yet (first run: ``make demo`` has not been run)."""


class QueryFailed(RuntimeError):
    """A query failed in a way a retry cannot fix (missing table, bad SQL)."""


class Warehouse(Protocol):
    """A read-only place to run the dashboard's SQL."""

    @property
    def source_id(self) -> str:
        """Identifies the data source; part of every cache key so two sources never mix."""
        ...

    def exists(self) -> bool: ...

    def fetch(self, queries: Mapping[str, str]) -> dict[str, pd.DataFrame | None]:
        """Run each DuckDB-dialect query; a query over a missing table yields ``None``."""
        ...

    def freshness_token(self) -> str:
        """Cheap value that changes when the data may have changed (no query needed)."""
        ...


def default_snapshot_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$SPOTIFY_WAREHOUSE_SNAPSHOT``, else ``$SPOTIFY_DATA_DIR/warehouse.snapshot.duckdb``."""
    env = os.environ if environ is None else environ
    explicit = env.get("SPOTIFY_WAREHOUSE_SNAPSHOT")
    if explicit:
        return Path(explicit)
    return layout(environ=env).snapshot


@dataclass(frozen=True)
class DuckDBSnapshot:
    """The published DuckDB snapshot, opened read-only for each batch of queries."""

    path: Path

    @property
    def source_id(self) -> str:
        return f"duckdb:{self.path.resolve()}"

    def exists(self) -> bool:
        return self.path.is_file()

    def freshness_token(self) -> str:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return "missing"
        # A replace gives a new inode; a same-size rewrite still changes mtime.
        return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"

    def fetch(self, queries: Mapping[str, str]) -> dict[str, pd.DataFrame | None]:
        if not self.exists():
            raise WarehouseMissing(str(self.path))
        delay = RETRY_FIRST_DELAY_S
        for attempt in range(RETRY_ATTEMPTS):
            try:
                return self._fetch_once(queries)
            except duckdb.IOException as exc:
                # Lock contention or the file vanishing between exists() and connect():
                # both are transient while the pipeline publishes a new snapshot.
                if attempt == RETRY_ATTEMPTS - 1:
                    raise
                if not self.exists():
                    raise WarehouseMissing(str(self.path)) from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    def _fetch_once(self, queries: Mapping[str, str]) -> dict[str, pd.DataFrame | None]:
        con = duckdb.connect(str(self.path), read_only=True)
        try:
            out: dict[str, pd.DataFrame | None] = {}
            for name, sql in queries.items():
                try:
                    out[name] = con.execute(sql).df()
                except duckdb.CatalogException:
                    out[name] = None  # an older warehouse without this table
            return out
        finally:
            con.close()


_BIGQUERY_FUNCTIONS = {"epoch_us": "UNIX_MICROS"}


#: DuckDB's ``date_trunc('week', t)``: the ISO week's Monday. BigQuery's ``TIMESTAMP_TRUNC(t, WEEK)``
#: is the Sunday before, and ``ISOWEEK`` / ``WEEK(MONDAY)`` do not survive bqemulator's translation
#: back to DuckDB, so the Monday is computed (``DAYOFWEEK``: Sunday 1 ... Saturday 7).
_MONDAY_OF = "TIMESTAMP_SUB(TIMESTAMP_TRUNC(__t, DAY), INTERVAL MOD(EXTRACT(DAYOFWEEK FROM __t) + 5, 7) DAY)"


def _keep_duckdb_semantics(tree: exp.Expr) -> None:
    """Where sqlglot's translation means something else on BigQuery, say what DuckDB means.

    * ``arg_max(x, y)`` skips rows where ``x`` is NULL in DuckDB; BigQuery's ``MAX_BY`` is
      ``ANY_VALUE(x HAVING MAX y)``, which does not promise that. ``y`` is made NULL where
      ``x`` is, so the newest row *with* a value wins on both (an imported play without an
      artist id must not hide the id of an older play).
    * ``date_trunc('week', t)`` starts weeks on Monday in DuckDB, on Sunday in BigQuery.

    bqemulator executes BigQuery SQL by translating it back to DuckDB, so it shows neither
    difference (its ``TIMESTAMP_TRUNC(t, WEEK)`` is Monday's): ``test_dashboard_queries.py``
    checks the transpiled text for both.
    """
    for by in list(tree.find_all(exp.ArgMax, exp.ArgMin)):
        value, order = by.this, by.expression
        guarded = exp.If(
            this=exp.Is(this=value.copy(), expression=exp.Null()), true=exp.Null(), false=order.copy()
        )
        by.set("expression", guarded)
    for node in list(tree.find_all(exp.TimestampTrunc, exp.DateTrunc)):
        if str(node.args.get("unit") or "").upper() in ("WEEK", "'WEEK'"):
            monday = sqlglot.parse_one(_MONDAY_OF, read="bigquery")
            for placeholder in list(monday.find_all(exp.Column)):
                if placeholder.name == "__t":
                    placeholder.replace(node.this.copy())
            node.replace(monday)


def to_bigquery(sql: str, project: str, dataset: str) -> str:
    """Transpile a DuckDB-dialect query to BigQuery, qualifying the warehouse's tables."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    # DuckDB functions sqlglot passes through verbatim, mapped to their BigQuery twins.
    for fn in list(tree.find_all(exp.Anonymous)):
        twin = _BIGQUERY_FUNCTIONS.get(str(fn.this).lower())
        if twin:
            fn.set("this", twin)
    _keep_duckdb_semantics(tree)
    cte_names = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if table.name in KNOWN_TABLES and table.name not in cte_names and not table.args.get("db"):
            table.set("db", exp.to_identifier(dataset))
            table.set("catalog", exp.to_identifier(project))
    return tree.sql(dialect="bigquery")


#: The ``st.secrets`` section holding the read-only dashboard service account's JSON key (the
#: account Terraform creates, ``terraform/iam.tf``), where the host has no Application Default
#: Credentials: Streamlit Community Cloud (``docs/dashboard-on-streamlit-cloud.md``).
SERVICE_ACCOUNT_SECTION = "gcp_service_account"


def service_account_info() -> dict[str, str] | None:
    """The dashboard account's key from ``st.secrets[SERVICE_ACCOUNT_SECTION]``, or None (then ADC).

    Read only when a BigQuery client is made, never logged; a host without a secrets file
    (the compose deployment, a laptop with ``gcloud auth application-default login``) uses ADC.
    """
    import streamlit as st

    try:
        if not st.secrets.load_if_toml_exists() or SERVICE_ACCOUNT_SECTION not in st.secrets:
            return None
        return {str(k): str(v) for k, v in st.secrets[SERVICE_ACCOUNT_SECTION].items()}
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class BigQueryWarehouse:
    """The cloud warehouse: the same queries, transpiled to BigQuery.

    Reached like the pipeline's ``BigQueryWarehouseResource``: Application Default Credentials
    (on Streamlit Community Cloud, the dashboard's read-only service account from
    ``st.secrets``, see ``docs/dashboard-on-streamlit-cloud.md``), or anonymous with
    ``client_options={"api_endpoint": ...}`` when an endpoint (an emulator) is set.
    """

    project: str
    dataset: str
    location: str = DEFAULT_BQ_LOCATION
    endpoint: str | None = None

    @classmethod
    def from_settings(cls, settings: BigQuerySettings) -> BigQueryWarehouse:
        return cls(
            project=settings.project,
            dataset=settings.dataset,
            location=settings.location,
            endpoint=settings.endpoint,
        )

    @property
    def source_id(self) -> str:
        where = f"@{self.endpoint}" if self.endpoint else ""
        return f"bigquery:{self.project}.{self.dataset}{where}"

    def client(self) -> bigquery.Client:
        """A client for this warehouse; the caller closes it."""
        from google.cloud import bigquery

        if self.endpoint:
            from google.auth.credentials import AnonymousCredentials

            return bigquery.Client(
                project=self.project,
                location=self.location,
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options={"api_endpoint": self.endpoint},
            )
        info = service_account_info()
        if info is not None:
            from google.oauth2 import service_account

            credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
            )
            return bigquery.Client(project=self.project, location=self.location, credentials=credentials)
        return bigquery.Client(project=self.project, location=self.location)

    def exists(self) -> bool:
        return True

    def freshness_token(self) -> str:
        # No cheap file stat in the cloud: re-check at most once a minute.
        return str(int(time.time() // 60))

    def fetch(self, queries: Mapping[str, str]) -> dict[str, pd.DataFrame | None]:
        """Start every query of the batch, then collect the answers: BigQuery runs a page's
        queries side by side instead of one after another."""
        from google.api_core.exceptions import NotFound

        client = self.client()
        jobs: dict[str, bigquery.QueryJob | None] = {}
        out: dict[str, pd.DataFrame | None] = {}
        try:
            for name, sql in queries.items():
                try:
                    jobs[name] = client.query(to_bigquery(sql, self.project, self.dataset))
                except NotFound:
                    jobs[name] = None  # a table this dataset does not have
            for name, job in jobs.items():
                try:
                    # DATE as datetime64, as DuckDB returns it (the pages were written against that).
                    arrow = None if job is None else job.result().to_arrow(create_bqstorage_client=False)
                    out[name] = None if arrow is None else arrow.to_pandas(date_as_object=False)
                except NotFound:
                    out[name] = None
        finally:
            client.close()
        return out


def from_env(environ: Mapping[str, str] | None = None) -> Warehouse:
    """The warehouse this deployment reads: BigQuery in cloud mode, else the DuckDB snapshot.

    Local or cloud, the paths and the BigQuery variables come from ``settings.load_settings``, the
    Dagster-free half of the pipeline's resource factory (``spotify_assets/deployments.py``), so
    the dashboard reads exactly the warehouse the pipeline writes (a missing variable raises
    ``settings.MissingSettings`` naming it). Only what a reader needs is required: project
    and dataset, not the pipeline's bucket or staging dataset.
    """
    env = os.environ if environ is None else environ
    settings = load_settings(env)
    if settings.bigquery is not None:
        return BigQueryWarehouse.from_settings(settings.bigquery)
    return DuckDBSnapshot(default_snapshot_path(env))

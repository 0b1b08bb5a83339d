"""What a table module asks of the warehouse: a connection and a lock, in one of two dialects.

A table's operations (``tables/gaps.py``, ``tables/plays.py``...) take the warehouse resource and
ask it for its ``backend()``: a DuckDB file behind a writer lock (``DuckDBBackend``) or a BigQuery
dataset with its client and job plumbing (``BigQueryBackend``). Each operation then runs its own
dialect's statements, both side by side in the table's module. The protocols live here, below
``resources/``, so the resources implement them and the table modules never import a resource
(the layers point one way: ``resources`` -> ``tables``).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import pandas as pd

from spotify_assets.schema import TableName, conform, empty_frame

if TYPE_CHECKING:
    import duckdb
    from google.cloud import bigquery

_J = TypeVar("_J", bound="bigquery.job._AsyncJob")


class DuckDBBackend(Protocol):
    """One DuckDB file: writes in a transaction under the writer lock, reads from the snapshot."""

    @property
    def dialect(self) -> Literal["duckdb"]: ...

    def writer(self, *, publish: bool = True) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """One write in its own transaction, holding the writer lock (inside the current batch)."""
        ...

    def reader(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A read-only connection to the published snapshot (the batch's own inside a batch)."""
        ...

    def rewriter(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """One transaction after which the file is rewritten without its free blocks (deletion)."""
        ...


class BigQueryBackend(Protocol):
    """One BigQuery dataset (and its staging dataset): the client, table ids and job plumbing."""

    @property
    def dialect(self) -> Literal["bigquery"]: ...

    @property
    def job_timeout_s(self) -> float: ...

    @property
    def api_endpoint(self) -> str | None: ...

    def client(self) -> bigquery.Client: ...

    def table_id(self, table: str) -> str: ...

    def staging_id(self, name: str) -> str: ...

    def ensure_tables(self) -> None: ...

    def count(self, table: str) -> int: ...

    def rows(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame: ...

    def run_dml(self, sql: str, params: list[Any]) -> bigquery.QueryJob: ...

    def query_job(self, sql: str, job_id: str, params: list[Any] | None = None) -> bigquery.QueryJob: ...

    def load_config(self, table: TableName, source_format: str) -> bigquery.LoadJobConfig: ...

    def staging_exists(self, job: bigquery.LoadJob) -> bool: ...

    def run_once(
        self, base_job_id: str, submit: Callable[[str], _J], valid: Callable[[_J], bool] | None = None
    ) -> tuple[_J, bool]: ...


class LakeFiles(Protocol):
    """The lake as a merge reads it (``resources/lake.py``): a file's bytes, and its URI."""

    def read_bytes(self, path: str) -> bytes: ...

    def uri(self, path: str) -> str: ...


def read_frames(lake: LakeFiles, paths: list[str], table: TableName) -> pd.DataFrame:
    """These lake files' rows as one frame conformed to ``table`` (empty but typed for none)."""
    frames = [pd.read_parquet(io.BytesIO(lake.read_bytes(p))) for p in paths]
    return conform(pd.concat(frames, ignore_index=True), table) if frames else empty_frame(table)


class Warehouse(Protocol):
    """The warehouse resource as the table modules see it (``resources/warehouse.py``)."""

    def backend(self) -> DuckDBBackend | BigQueryBackend: ...

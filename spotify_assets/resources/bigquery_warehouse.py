"""The warehouse on BigQuery (cloud mode): the same exactly-once contract as DuckDB, in BigQuery SQL.

How a batch of plays gets in exactly once:

1. a **load job** copies the batch's lake files (``gs://`` Parquet) into a staging table
   ``<staging_dataset>.plays_<batch>`` with the explicit schema from ``schemas/plays.json``
   and ``WRITE_TRUNCATE`` (a rerun rewrites staging, never appends to it);
2. a **MERGE** inserts the staged rows whose ``play_key`` is not in ``<dataset>.bq_plays``
   (``WHEN NOT MATCHED THEN INSERT ROW`` only; rows already there are never touched, and
   duplicates inside one batch are collapsed first because MERGE would insert both).

Both jobs get **deterministic job ids** derived from the batch (BigQuery job ids are unique
per project). A retried step or a rerun therefore asks BigQuery to create a job that already
exists, gets 409 Conflict, and waits for / reuses that job instead of loading twice; two
overlapping runs end up waiting on the same job. If the existing job *failed*, the next id
in a fixed sequence (``..._r1``, ``..._r2``) is used, so a failure is retryable without
giving up determinism. Exactly-once does not depend on the ids (the MERGE is idempotent on
its own); the ids make reruns free and keep concurrent runs from doing the work twice.

Why ``google.cloud.bigquery.Client`` directly rather than dagster-gcp's ``BigQueryResource``:
that resource builds ``Client(project, location)`` only, with no way to pass
``client_options`` (an API endpoint), and ``SPOTIFY_BQ_ENDPOINT`` (``resources/cloud.py``)
points the real client at a BigQuery emulator (``make cloud-demo``, the tests) or a test double. Credentials are the same either way:
Application Default Credentials (a service account on Cloud Run/GCE, or
``gcloud auth application-default login``); anonymous only when ``api_endpoint`` is set.

The statements of each table (the plays MERGE above, the upserts, the deletes) live in
``spotify_assets/tables/``; this resource is the client, the table ids, the DDL and the job plumbing.

Datasets are created by Terraform (location, staging table expiry, IAM); the tables are
created here if missing, from the schema files, so a fresh dataset works on the first run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar

import pandas as pd
import pyarrow as pa
from google.api_core.exceptions import Conflict, GoogleAPICallError, NotFound
from google.cloud import bigquery
from pydantic import Field, PrivateAttr

from spotify_assets.resources.warehouse import WarehouseResource
from spotify_assets.schema import (
    FEATURES_TABLE,
    PLAYS_CLUSTERING,
    PLAYS_TABLE,
    TRACK_METADATA_TABLE,
    TableName,
    load_schema,
)
from spotify_assets.settings import DEFAULT_BQ_LOCATION
from spotify_assets.tables import admin
from spotify_assets.tables.backends import BigQueryBackend

#: How often a deterministic job id may be superseded after failed attempts (``_r1`` ...).
MAX_JOB_ATTEMPTS = 5

_J = TypeVar("_J", bound=bigquery.job._AsyncJob)


def bq_schema(table: TableName) -> list[bigquery.SchemaField]:
    """``schemas/<table>.json`` as BigQuery ``SchemaField``s (the load jobs' explicit schema)."""
    return [
        bigquery.SchemaField(f.name, f.type, mode=f.mode, description=f.description)
        for f in load_schema(table)
    ]


def _pandas_type(arrow_type: pa.DataType) -> Any:
    """Nullable pandas dtypes for Arrow integers, booleans and strings (None: pandas' default)."""
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype()
    return None


class BigQueryWarehouseResource(WarehouseResource):
    """Plays, features and marts in ``<project>.<dataset>``; staging tables in ``staging_dataset``."""

    project: str = Field(description="GCP project holding the datasets and running the jobs.")
    dataset: str = Field(description="Dataset with bq_plays, track_features, top_ten_tracks.")
    staging_dataset: str = Field(description="Dataset for per-batch staging tables (give it a table expiry).")
    location: str = Field(
        default=DEFAULT_BQ_LOCATION, description="BigQuery location of both datasets and all jobs."
    )
    api_endpoint: str | None = Field(
        default=None,
        description="Override the BigQuery API endpoint (tests, emulators); uses anonymous credentials.",
    )
    job_timeout_s: float = Field(default=1800.0, description="Longest wait for one BigQuery job.")

    dialect: ClassVar[Literal["bigquery"]] = "bigquery"

    _client: bigquery.Client | None = PrivateAttr(default=None)
    _tables_ready: bool = PrivateAttr(default=False)

    def backend(self) -> BigQueryBackend:
        return self

    # -- plumbing ----------------------------------------------------------------------
    def client(self) -> bigquery.Client:
        if self._client is None:
            if self.api_endpoint:
                from google.auth.credentials import AnonymousCredentials

                self._client = bigquery.Client(
                    project=self.project,
                    location=self.location,
                    credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                    client_options={"api_endpoint": self.api_endpoint},
                )
            else:
                self._client = bigquery.Client(project=self.project, location=self.location)
        return self._client

    def table_id(self, table: str) -> str:
        return f"{self.project}.{self.dataset}.{table}"

    def staging_id(self, name: str) -> str:
        return f"{self.project}.{self.staging_dataset}.{name}"

    def ensure_tables(self) -> None:
        """Create the warehouse tables from the schema files if missing (Terraform normally has).

        ``bq_plays`` is partitioned by DAY on ``played_at`` (time-range queries read only
        their days) and clustered by ``schema.PLAYS_CLUSTERING`` (listener, then track). A
        table of an older layout gets the columns and the clustering it lacks.
        """
        if self._tables_ready:
            return
        client = self.client()
        specs: list[tuple[str, list[bigquery.SchemaField]]] = [
            *((table, bq_schema(schema)) for table, schema, _ in admin.DATA_TABLES),
        ]
        for name, schema in specs:
            try:
                existing = client.get_table(self.table_id(name))
            except NotFound:
                pass
            else:
                if existing.schema:  # a table we cannot see the columns of is left as it is
                    self._upgrade(existing, name, schema)
                continue
            table = bigquery.Table(self.table_id(name), schema=schema)
            if name == PLAYS_TABLE:
                table.time_partitioning = bigquery.TimePartitioning(
                    type_=bigquery.TimePartitioningType.DAY, field="played_at"
                )
                table.clustering_fields = list(PLAYS_CLUSTERING)
            elif name in (FEATURES_TABLE, TRACK_METADATA_TABLE):
                table.clustering_fields = ["track_id"]
            client.create_table(table, exists_ok=True)  # exists_ok: a concurrent run may win the race
        self._tables_ready = True

    def _upgrade(self, existing: bigquery.Table, name: str, schema: list[bigquery.SchemaField]) -> None:
        """Bring a table of an older layout up to its schema file (and ``bq_plays`` to its clustering)."""
        client = self.client()
        # A table of an older layout (plays without user_id) gets the columns it lacks,
        # as NULLABLE (BigQuery adds no REQUIRED column to a table with rows), by DDL:
        # the statement every BigQuery implementation runs, not a metadata patch.
        have = {f.name for f in existing.schema}
        for f in (f for f in schema if f.name not in have):
            client.query(
                f"ALTER TABLE `{self.table_id(name)}` ADD COLUMN IF NOT EXISTS `{f.name}` {f.field_type}"
            ).result(timeout=self.job_timeout_s)
        if any(f.name not in have for f in schema):
            existing = client.get_table(self.table_id(name))
            # BigQuery shows the new column in the table's metadata at once; an emulator
            # may change only its data, so the metadata is patched to match when needed.
            listed = {f.name for f in existing.schema}
            lacking = [f for f in schema if f.name not in listed]
            if lacking:
                existing.schema = [
                    *existing.schema,
                    *(bigquery.SchemaField(f.name, f.field_type, "NULLABLE") for f in lacking),
                ]
                existing = client.update_table(existing, ["schema"])
        if name == PLAYS_TABLE and list(existing.clustering_fields or []) != list(PLAYS_CLUSTERING):
            existing.clustering_fields = list(PLAYS_CLUSTERING)
            client.update_table(existing, ["clustering_fields"])

    def run_once(
        self, base_job_id: str, submit: Callable[[str], _J], valid: Callable[[_J], bool] | None = None
    ) -> tuple[_J, bool]:
        """Run the job ``base_job_id`` at most once; returns (finished job, reused an existing job).

        Submits with the deterministic id. On 409 the job exists (a retry, a rerun, or an
        overlapping run): fetch it and wait for it instead of submitting again. Only if that
        job failed (or ``valid`` rejects it, e.g. its staging table expired) is the next id of
        the sequence tried.
        """
        client = self.client()
        for attempt in range(MAX_JOB_ATTEMPTS):
            job_id = base_job_id if attempt == 0 else f"{base_job_id}_r{attempt}"
            try:
                job = submit(job_id)
            except Conflict:
                existing = client.get_job(job_id)
                try:
                    existing.result(timeout=self.job_timeout_s)
                except GoogleAPICallError:
                    if existing.done() and existing.error_result:
                        continue  # that attempt failed for good; try the next id
                    raise
                if valid is not None and not valid(existing):  # type: ignore[arg-type]
                    continue
                return existing, True  # type: ignore[return-value]
            job.result(timeout=self.job_timeout_s)
            return job, False
        raise RuntimeError(
            f"BigQuery job {base_job_id} failed in {MAX_JOB_ATTEMPTS} attempts; see its job history"
        )

    def load_config(self, table: TableName, source_format: str) -> bigquery.LoadJobConfig:
        return bigquery.LoadJobConfig(
            schema=bq_schema(table),
            source_format=source_format,
            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
            create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
        )

    def staging_exists(self, job: bigquery.LoadJob) -> bool:
        try:
            self.client().get_table(job.destination)
        except NotFound:
            return False
        return True

    def query_job(self, sql: str, job_id: str, params: list[Any] | None = None) -> bigquery.QueryJob:
        config = bigquery.QueryJobConfig(query_parameters=params or [])
        return self.client().query(sql, job_config=config, job_id=job_id, job_retry=None)

    def rows(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """The result as a frame typed by the query's schema, also when it has no rows.

        Typed from BigQuery's result schema through Arrow (TIMESTAMP -> ``datetime64[us, UTC]``,
        INT64 -> ``Int64``...), never from the row values: an empty result built from row dicts
        has untyped columns, and DuckDB, which the import dedupe runs over this frame, then
        cannot tell a timestamp from NULL (the first run of ``raw_recent_tracks`` used to crash
        so). A query job (``jobs.insert``), not ``jobs.query``: the job carries the default
        dataset and reports a bad statement as a job error on every BigQuery implementation.
        """
        config = bigquery.QueryJobConfig(
            default_dataset=f"{self.project}.{self.dataset}", query_parameters=params or []
        )
        self.ensure_tables()
        job = self.client().query(sql, job_config=config)
        rows = job.result(timeout=self.job_timeout_s)
        return rows.to_arrow(create_bqstorage_client=False).to_pandas(types_mapper=_pandas_type)

    def query(self, sql: str) -> pd.DataFrame:
        """GoogleSQL; unqualified table names resolve in ``dataset`` (so ``count("bq_plays")`` works)."""
        return self.rows(sql)

    # -- DML --------------------------------------------------------------------------
    def run_dml(self, sql: str, params: list[Any]) -> bigquery.QueryJob:
        self.ensure_tables()
        job = self.client().query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params))
        job.result(timeout=self.job_timeout_s)
        return job

"""``track_features`` and ``track_metadata``: one row per track id, upserted by the same rule.

The rule, both dialects: a row for a new track is inserted; a stored row is replaced unless it
is ``ok`` and the incoming one is not (a provider that answered once is never overwritten by a
later refusal or outage). Rows of one batch are deduplicated first, the last one kept.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd

from spotify_assets.encoding import parquet_bytes
from spotify_assets.schema import FEATURES_TABLE, TRACK_METADATA_TABLE, TableName, column_names, conform
from spotify_assets.tables.backends import BigQueryBackend, LakeFiles, Warehouse, read_frames
from spotify_assets.tables.merge_result import MergeResult
from spotify_assets.tables.sql import bigquery_insert_all, frame_digest

if TYPE_CHECKING:
    import duckdb


def merge_features(warehouse: Warehouse, features: pd.DataFrame) -> MergeResult:
    """Upsert ``track_features`` rows by ``track_id``; an ``ok`` row is never replaced by a worse status."""
    return _upsert(warehouse, features, "track_features", FEATURES_TABLE)


def merge_features_from_lake(warehouse: Warehouse, lake: LakeFiles, paths: list[str]) -> MergeResult:
    """The features of these lake files (``rebuild-warehouse``), by the same rule."""
    return merge_features(warehouse, read_frames(lake, paths, "track_features"))


def merge_metadata(warehouse: Warehouse, metadata: pd.DataFrame) -> MergeResult:
    """Upsert ``track_metadata`` rows by ``track_id`` (``ok`` replaced only by ``ok``)."""
    return _upsert(warehouse, metadata, "track_metadata", TRACK_METADATA_TABLE)


def features_of(warehouse: Warehouse, track_ids: Iterable[str]) -> pd.DataFrame:
    """Stored feature rows for ``track_ids`` (conformed to ``track_features``)."""
    ids = sorted(set(track_ids))
    side = warehouse.backend()
    if side.dialect == "bigquery":
        from google.cloud import bigquery

        df = side.rows(
            bigquery_rows_for_sql(side.table_id(FEATURES_TABLE)),
            [bigquery.ArrayQueryParameter("ids", "STRING", ids)],
        )
    else:
        with side.reader() as con:
            df = duckdb_rows_for(con, FEATURES_TABLE, ids)
    return conform(df, "track_features")


def prepared(frame: pd.DataFrame, schema: TableName) -> pd.DataFrame:
    """The batch as the upsert takes it: conformed, one row per track id (the last one)."""
    return conform(frame, schema).drop_duplicates("track_id", keep="last")


def _upsert(warehouse: Warehouse, frame: pd.DataFrame, schema: TableName, table: str) -> MergeResult:
    frame = prepared(frame, schema)
    side = warehouse.backend()
    if side.dialect == "bigquery":
        return bigquery_upsert(side, frame, schema, table)
    with side.writer() as con:
        before = _duckdb_count(con, table)
        duckdb_upsert(con, frame, table)
        after = _duckdb_count(con, table)
    return MergeResult(inserted=after - before, duplicates=len(frame) - (after - before), total_rows=after)


# -- DuckDB -------------------------------------------------------------------------------------
def _duckdb_count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def duckdb_upsert(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame, table: str) -> None:
    """``frame`` (``prepared``) into ``table`` by the rule, in the caller's transaction."""
    if not len(frame):
        return
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in frame.columns if c != "track_id")
    con.register("incoming_rows", frame)
    try:
        con.execute(
            f"INSERT INTO {table} BY NAME SELECT * FROM incoming_rows "
            f"ON CONFLICT (track_id) DO UPDATE SET {updates} "
            f"WHERE {table}.status <> 'ok' OR excluded.status = 'ok'"
        )
    finally:
        con.unregister("incoming_rows")


def duckdb_rows_for(con: duckdb.DuckDBPyConnection, table: str, track_ids: list[str]) -> pd.DataFrame:
    return con.execute(
        f"SELECT * FROM {table} WHERE track_id IN (SELECT unnest(?::VARCHAR[]))", [track_ids]
    ).df()


# -- BigQuery -----------------------------------------------------------------------------------
def bigquery_upsert(bq: BigQueryBackend, frame: pd.DataFrame, schema: TableName, table: str) -> MergeResult:
    """The ``prepared`` batch loaded into staging, then ``bigquery_upsert_sql``."""
    from google.cloud import bigquery

    if frame.empty:
        return MergeResult(inserted=0, duplicates=0, total_rows=bq.count(table))
    bq.ensure_tables()
    before = bq.count(table)
    data = parquet_bytes(frame.reset_index(drop=True), schema)
    # Upserts are not insert-only, so skipping a "seen" content would be wrong (A, B, A
    # again must end at A): plain unique job ids here; the MERGE itself is idempotent.
    load = bq.client().load_table_from_file(
        io.BytesIO(data),
        bq.staging_id(f"{schema}_{frame_digest(frame)}"),
        size=len(data),
        job_id_prefix=f"spotify_load_{schema}_",
        job_config=bq.load_config(schema, bigquery.SourceFormat.PARQUET),
    )
    load.result(timeout=bq.job_timeout_s)
    dest = load.destination
    merge = bq.client().query(
        bigquery_upsert_sql(schema, bq.table_id(table), f"{dest.project}.{dest.dataset_id}.{dest.table_id}"),
        job_id_prefix=f"spotify_merge_{schema}_",
    )
    merge.result(timeout=bq.job_timeout_s)
    total = bq.count(table)
    # dmlStats splits inserts from updates; without it (some BigQuery implementations omit
    # it) the growth of the table is the number inserted by this upsert.
    inserted = int(merge.dml_stats.inserted_row_count) if merge.dml_stats else max(total - before, 0)
    return MergeResult(inserted=inserted, duplicates=len(frame) - inserted, total_rows=total)


def bigquery_upsert_sql(schema: TableName, table_id: str, staging_table: str) -> str:
    """The same rule as a MERGE from a staging table holding the ``prepared`` batch."""
    sets = ", ".join(f"`{c}` = S.`{c}`" for c in column_names(schema) if c != "track_id")
    return (
        f"MERGE `{table_id}` AS T\n"
        f"USING `{staging_table}` AS S\n"
        f"ON T.track_id = S.track_id\n"
        f"WHEN MATCHED AND (T.status <> 'ok' OR S.status = 'ok') THEN UPDATE SET {sets}\n"
        f"WHEN NOT MATCHED THEN {bigquery_insert_all(schema)}"
    )


def bigquery_rows_for_sql(table_id: str) -> str:
    """Stored rows of the track ids in the ``@ids`` array parameter."""
    return f"SELECT * FROM `{table_id}` WHERE track_id IN UNNEST(@ids)"

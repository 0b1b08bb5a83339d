"""``bq_plays``: every play once, keyed by ``play_key`` (user id + ``played_at`` + track).

Both dialects of each statement side by side. Who may call the writes is listed in
``plays_writes`` (the ``bq_plays`` merge and two operator commands); these are the statements.

* **merge**: insert only keys the table lacks (DuckDB ``INSERT OR IGNORE`` on the primary key;
  BigQuery an insert-only ``MERGE`` from a staging table, duplicates within the batch collapsed
  first), so a batch merged twice adds nothing.
* **adopt**: the single-user layout's rows (no ``user_id``) become the owner's: keys prefixed
  (``normalize.user_play_key``); a legacy row whose prefixed key is already there goes.
* **delete**: every row of one listener (an operator command's, ``users remove --delete-data``).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from spotify_assets.encoding import arrow_parquet_bytes, content_digest, parquet_bytes
from spotify_assets.play_sources import SCROBBLE_SOURCES
from spotify_assets.schema import PLAY_KEY, PLAYS_TABLE, arrow_schema, column_names, conform, load_schema
from spotify_assets.spotify.normalize import user_play_key
from spotify_assets.tables.backends import BigQueryBackend, LakeFiles, Warehouse, read_frames
from spotify_assets.tables.merge_result import MergeResult
from spotify_assets.tables.sql import bigquery_insert_all, frame_digest, safe_id

if TYPE_CHECKING:
    import duckdb
    from google.cloud import bigquery


def legacy_waiting_sql(table: str = PLAYS_TABLE) -> str:
    """How many rows of the single-user layout wait for their owner (both dialects; ``table``:
    BigQuery's quoted table id)."""
    return f"SELECT count(*) AS n FROM {table} WHERE user_id IS NULL"


def legacy_prefix(user_id: str) -> str:
    """What adoption puts in front of a legacy key: the owner's, as every key of theirs has."""
    return user_play_key(user_id, "")


# -- DuckDB -------------------------------------------------------------------------------------
def duckdb_max_played_at(con: duckdb.DuckDBPyConnection, user_id: str | None) -> Any:
    if user_id is None:
        return con.execute(f"SELECT max(played_at) FROM {PLAYS_TABLE}").fetchall()[0][0]
    return con.execute(f"SELECT max(played_at) FROM {PLAYS_TABLE} WHERE user_id = ?", [user_id]).fetchall()[
        0
    ][0]


def duckdb_count(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute(f"SELECT count(*) FROM {PLAYS_TABLE}").fetchall()[0][0])


def duckdb_insert_ignoring(
    con: duckdb.DuckDBPyConnection, incoming: pd.DataFrame | pa.Table
) -> tuple[int, int]:
    """Insert plays whose key is new; return (rows inserted, rows in the table after).

    INSERT OR IGNORE on the primary key: exactly-once even if the same batch arrives twice in
    one frame or from two overlapping runs.
    """
    before = duckdb_count(con)
    con.register("incoming_plays", incoming)
    try:
        con.execute(f"INSERT OR IGNORE INTO {PLAYS_TABLE} BY NAME SELECT * FROM incoming_plays")
    finally:
        con.unregister("incoming_plays")
    after = duckdb_count(con)
    return after - before, after


#: DuckDB's memory during a merge from the lake. Unbounded, a million-play import's merge (the
#: insert and its key index) holds ~1.4 GB; bounded, DuckDB spills to the database's temporary
#: directory and the process stays under 1 GiB on a household's laptop, for a few seconds more.
MERGE_MEMORY_LIMIT = "400MB"


#: A batch's local Parquet files as DuckDB reads them (parameter ``$files``): the lake's folder
#: names (``user_id=...``) are not columns, and files older than a column lack it (null).
PARQUET_SCAN = "read_parquet($files, hive_partitioning = false, union_by_name = true)"


def duckdb_insert_from_parquet(con: duckdb.DuckDBPyConnection, files: list[str]) -> tuple[int, int, int]:
    """Insert the plays of these local Parquet files whose key is new, in one scan of them all;
    return (rows in the files, rows inserted, rows in the table after).

    One ``read_parquet`` over the list: DuckDB reads the files in parallel, with no per-file round
    trip through Python, within ``MERGE_MEMORY_LIMIT`` (the connection's own limit is restored
    after). The lake's folder names (``user_id=...``, ``played_date=...``) are not columns: every
    column is in the file (``hive_partitioning = false``).
    """
    scan = PARQUET_SCAN
    incoming = int(con.execute(f"SELECT count(*) FROM {scan}", {"files": files}).fetchall()[0][0])
    before = duckdb_count(con)
    limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    con.execute(f"SET memory_limit = '{MERGE_MEMORY_LIMIT}'")
    try:
        con.execute(f"INSERT OR IGNORE INTO {PLAYS_TABLE} BY NAME SELECT * FROM {scan}", {"files": files})
    finally:
        con.execute(f"SET memory_limit = '{limit}'")
    after = duckdb_count(con)
    return incoming, after - before, after


def duckdb_adopt(con: duckdb.DuckDBPyConnection, user_id: str) -> int:
    """Adopt the legacy rows as ``user_id``'s, in the caller's transaction; returns how many."""
    prefix = legacy_prefix(user_id)
    con.execute(
        f"DELETE FROM {PLAYS_TABLE} WHERE user_id IS NULL AND (? || play_key) IN "
        f"(SELECT play_key FROM {PLAYS_TABLE} WHERE user_id = ?)",
        [prefix, user_id],
    )
    adopted = con.execute(
        f"UPDATE {PLAYS_TABLE} SET user_id = ?, play_key = ? || play_key WHERE user_id IS NULL",
        [user_id, prefix],
    ).fetchall()[0][0]
    return int(adopted)


def duckdb_delete_user(con: duckdb.DuckDBPyConnection, user_id: str) -> int:
    return int(con.execute(f"DELETE FROM {PLAYS_TABLE} WHERE user_id = ?", [user_id]).fetchall()[0][0])


# -- BigQuery -----------------------------------------------------------------------------------
def bigquery_merge_sql(table_id: str, staging_table: str) -> str:
    """Insert-only MERGE on ``play_key``; duplicates within the staged batch collapse to one row."""
    return (
        f"MERGE `{table_id}` AS T\n"
        f"USING (\n"
        f"  SELECT * FROM `{staging_table}`\n"
        f"  WHERE TRUE\n"
        f"  QUALIFY ROW_NUMBER() OVER (PARTITION BY {PLAY_KEY} ORDER BY ingested_at, batch_id) = 1\n"
        f") AS S\n"
        f"ON T.{PLAY_KEY} = S.{PLAY_KEY}\n"
        f"WHEN NOT MATCHED THEN {bigquery_insert_all('plays')}"
    )


def bigquery_max_played_at_sql(table_id: str, by_user: bool) -> str:
    return f"SELECT MAX(played_at) AS m FROM `{table_id}`" + (" WHERE user_id = @user_id" if by_user else "")


def bigquery_adopt_sql(table_id: str) -> tuple[str, str]:
    """The two DML statements of an adoption (parameters ``@prefix``, ``@user_id``), in order."""
    return (
        f"DELETE FROM `{table_id}` WHERE user_id IS NULL AND CONCAT(@prefix, play_key) IN "
        f"(SELECT play_key FROM `{table_id}` WHERE user_id = @user_id)",
        f"UPDATE `{table_id}` SET user_id = @user_id, play_key = CONCAT(@prefix, play_key) WHERE user_id IS NULL",
    )


def bigquery_delete_user_sql(table_id: str) -> str:
    return f"DELETE FROM `{table_id}` WHERE user_id = @user_id"


# -- cross-source merge (``scrobbles/merge.py`` plans it; these read and write) -----------------
#: How far from the batch's times the warehouse's rows are read: a Spotify play's start is its end
#: minus what it played, and a scrobble may start ``matching.MAX_PAUSE`` before that. A day covers every
#: stream shorter than 23 hours (longer ones are podcasts nobody scrobbles).
PAD = timedelta(days=1)

#: The warehouse columns the planner reads of the rows already there.
EXISTING_COLUMNS = (
    "play_key",
    "user_id",
    "played_at",
    "track_id",
    "source",
    "primary_artist_name",
    "track_name",
    "ms_played",
    "duration_ms",
    "sources",
    "scrobbled_at",
)


@dataclass
class Plan:
    """What to write: ``deletes`` (keys replaced), ``updates`` (key -> new sources and
    scrobbled_at), ``inserts`` (rows, conformed later), and what each batch's rows were."""

    deletes: list[str] = field(default_factory=list)
    updates: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    #: batch_id -> {"added": n, "duplicates": n, "matched": n}
    by_batch: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, batch_id: str, what: str) -> None:
        counts = self.by_batch.setdefault(str(batch_id), {"added": 0, "duplicates": 0, "matched": 0})
        counts[what] += 1

    def total(self, what: str) -> int:
        return sum(c[what] for c in self.by_batch.values())


#: What plans a batch's merge across sources: ``scrobbles/merge.plan`` (``matching.py``'s rules,
#: which sit above this layer, so the merge's caller hands it over: ``plays_writes``), given the
#: batch's rows and the table's rows of its listeners within ``PAD``.
Planner = Callable[[pd.DataFrame, pd.DataFrame], Plan]


class PlannerMissing(RuntimeError):
    """A batch that needs the cross-source plan was merged without a planner: merged insert-only,
    its scrobbles would be counted twice, so the merge refuses."""


def duckdb_spans_sql(scan: str) -> str:
    """Per listener of a batch (``scan``: its rows), the span of its times and how many of its
    rows are scrobbles (``padded_spans`` widens the span by ``merge.PAD``)."""
    scrobble = ", ".join(f"'{s}'" for s in SCROBBLE_SOURCES)
    return (
        f"SELECT user_id, min(played_at) AS lo, max(played_at) AS hi, "
        f"count_if(source IN ({scrobble})) AS scrobbles FROM {scan} GROUP BY user_id"
    )


def rows_near_sql(table: str, spans: str, *, idless_only: bool) -> str:
    """The table's rows of each span's listener within ``merge.PAD`` of its times (both dialects:
    ``spans`` a table of ``user_id, lo, hi``); ``idless_only``: only plays no Spotify record holds."""
    scrobble = ", ".join(f"'{s}'" for s in SCROBBLE_SOURCES)
    columns = ", ".join(f"p.{c}" for c in EXISTING_COLUMNS)
    what = "count(*) AS n" if idless_only else columns
    return (
        f"SELECT {what} FROM {table} AS p JOIN {spans} AS s "
        f"ON (p.user_id = s.user_id OR (p.user_id IS NULL AND s.user_id IS NULL)) "
        f"AND p.played_at BETWEEN s.lo AND s.hi" + (f" WHERE p.source IN ({scrobble})" if idless_only else "")
    )


def padded_spans(spans: pd.DataFrame) -> pd.DataFrame:
    """``duckdb_spans_sql``'s answer widened by ``merge.PAD`` on both sides."""
    return pd.DataFrame(
        {
            "user_id": spans["user_id"].astype("object"),
            "lo": pd.to_datetime(spans["lo"], utc=True) - PAD,
            "hi": pd.to_datetime(spans["hi"], utc=True) + PAD,
        }
    )


def duckdb_apply_plan(con: duckdb.DuckDBPyConnection, plan: Plan) -> None:
    """The plan's writes, in the caller's transaction: replaced rows out, sources updated, rows in."""
    if plan.deletes:
        con.execute(
            f"DELETE FROM {PLAYS_TABLE} WHERE play_key IN (SELECT unnest($keys))", {"keys": plan.deletes}
        )
    if plan.updates:
        updates = pd.DataFrame(
            [(k, s, a) for k, (s, a) in plan.updates.items()], columns=["play_key", "sources", "scrobbled_at"]
        )
        con.register("plan_updates", updates)
        try:
            con.execute(
                f"UPDATE {PLAYS_TABLE} AS p SET sources = u.sources, scrobbled_at = u.scrobbled_at "
                f"FROM plan_updates AS u WHERE p.play_key = u.play_key"
            )
        finally:
            con.unregister("plan_updates")
    if plan.inserts:
        rows = conform(pd.DataFrame(plan.inserts).drop(columns=["_scrobble"], errors="ignore"), "plays")
        con.register("plan_inserts", rows)
        try:
            con.execute(f"INSERT OR IGNORE INTO {PLAYS_TABLE} BY NAME SELECT * FROM plan_inserts")
        finally:
            con.unregister("plan_inserts")


def result_of_plan(incoming: int, inserted: int, total_rows: int, planned: Plan) -> MergeResult:
    """A merge across sources as a ``MergeResult``: what the plan matched and replaced, per batch."""
    return MergeResult(
        inserted=inserted,
        duplicates=planned.total("duplicates"),
        total_rows=total_rows,
        matched=planned.total("matched"),
        replaced=len(planned.deletes),
        by_batch=planned.by_batch,
    )


def duckdb_merge_across_sources(
    con: duckdb.DuckDBPyConnection, scan: str, params: dict[str, Any], planner: Planner | None
) -> tuple[int, int, int, Plan] | None:
    """Merge the batch ``scan`` reads through ``merge.plan`` when it needs one (it holds scrobbles,
    or plays without a Spotify id lie near it); None when a plain insert of new keys is the merge.
    Returns (rows in the batch, rows inserted, rows in the table after, the plan)."""
    spans = con.execute(duckdb_spans_sql(scan), params).df()
    if spans.empty:
        return None
    near = padded_spans(spans)
    con.register("merge_spans", near)
    try:
        idless = int(
            con.execute(rows_near_sql(PLAYS_TABLE, "merge_spans", idless_only=True)).fetchall()[0][0]
        )
        if not int(spans["scrobbles"].sum()) and not idless:
            return None
        existing = con.execute(rows_near_sql(PLAYS_TABLE, "merge_spans", idless_only=False)).df()
    finally:
        con.unregister("merge_spans")
    incoming = con.execute(f"SELECT * FROM {scan}", params).df()
    for column in ("sources", "scrobbled_at"):  # files landed before the columns existed
        if column not in incoming.columns:
            incoming[column] = None
    if planner is None:
        raise PlannerMissing("this batch holds scrobbles or lies near plays without a Spotify id")
    planned = planner(incoming, existing)
    before = duckdb_count(con)
    duckdb_apply_plan(con, planned)
    after = duckdb_count(con)
    return len(incoming), after - before + len(planned.deletes), after, planned


#: The column of a plan's staged rows that says what each does (``bigquery_plan_merge_sql``).
PLAN_ACTION = "plan_action"


def plan_actions(planned: Plan) -> pd.DataFrame:
    """A plan as rows for one BigQuery ``MERGE``: each insert a whole row, each update a key and its
    new ``sources``/``scrobbled_at``, each delete a key; ``PLAN_ACTION`` says which."""
    inserts = conform(pd.DataFrame(planned.inserts), "plays") if planned.inserts else None
    updates = pd.DataFrame(
        [(k, s, a) for k, (s, a) in planned.updates.items()], columns=["play_key", "sources", "scrobbled_at"]
    )
    deletes = pd.DataFrame({"play_key": pd.Series(planned.deletes, dtype="object")})
    parts = [
        frame.assign(**{PLAN_ACTION: action})
        for frame, action in ((inserts, "insert"), (updates, "update"), (deletes, "delete"))
        if frame is not None and len(frame)
    ]
    columns = [*column_names("plays"), PLAN_ACTION]
    return pd.concat(parts, ignore_index=True).reindex(columns=columns)


def bigquery_spans(staging_table: str) -> str:
    """Per listener of a staged batch, the span of its times widened by ``merge.PAD`` (a subquery)."""
    pad = int(PAD.total_seconds())
    return (
        f"(SELECT user_id, TIMESTAMP_SUB(MIN(played_at), INTERVAL {pad} SECOND) AS lo, "
        f"TIMESTAMP_ADD(MAX(played_at), INTERVAL {pad} SECOND) AS hi FROM `{staging_table}` GROUP BY user_id)"
    )


def bigquery_needs_plan_sql(table_id: str, staging_table: str) -> str:
    """How many scrobbles the staged batch holds plus how many plays without a Spotify id lie near
    it (``n``): none, and the insert-only ``MERGE`` is the merge."""
    scrobble = ", ".join(f"'{s}'" for s in SCROBBLE_SOURCES)
    near = rows_near_sql(f"`{table_id}`", bigquery_spans(staging_table), idless_only=True)
    return f"SELECT (SELECT COUNTIF(source IN ({scrobble})) FROM `{staging_table}`) + ({near}) AS n"


def bigquery_plan_merge_sql(table_id: str, actions_table: str) -> str:
    """A plan's writes in one statement (atomic, as DuckDB's transaction is): replaced rows out,
    sources updated, new rows in."""
    return (
        f"MERGE `{table_id}` AS T\n"
        f"USING `{actions_table}` AS S\n"
        f"ON T.{PLAY_KEY} = S.{PLAY_KEY}\n"
        f"WHEN MATCHED AND S.{PLAN_ACTION} = 'delete' THEN DELETE\n"
        f"WHEN MATCHED AND S.{PLAN_ACTION} = 'update' THEN UPDATE SET "
        f"sources = S.sources, scrobbled_at = S.scrobbled_at\n"
        f"WHEN NOT MATCHED AND S.{PLAN_ACTION} = 'insert' THEN {bigquery_insert_all('plays')}"
    )


# -- the operations: each takes the warehouse and runs its dialect's statements ------------------
def max_played_at(warehouse: Warehouse, user_id: str | None = None) -> datetime | None:
    """Newest ``played_at`` of ``user_id``'s plays (of any play for None): the polling cursor
    (None when there are none)."""
    side = warehouse.backend()
    if side.dialect == "duckdb":
        with side.reader() as con:
            value = duckdb_max_played_at(con, user_id)
    else:
        from google.cloud import bigquery

        params = [] if user_id is None else [bigquery.ScalarQueryParameter("user_id", "STRING", user_id)]
        sql = bigquery_max_played_at_sql(side.table_id(PLAYS_TABLE), by_user=user_id is not None)
        value = side.rows(sql, params)["m"].iloc[0]
    return None if value is None or pd.isna(value) else pd.Timestamp(value).tz_convert("UTC").to_pydatetime()


def export_plays_for_spark(warehouse: Warehouse, dest_dir: str) -> str:
    """Make all plays readable by the Spark job; returns the job's ``--input``.

    DuckDB: one Parquet file under ``dest_dir``. BigQuery: nothing to export, the job's driver
    reads ``bq_plays`` itself (``spark/top_ten.py``): ``bigquery:<project>.<dataset>.bq_plays``,
    with ``?endpoint=<api_endpoint>`` when the warehouse talks to an endpoint of its own (an
    emulator), so the job reads the same BigQuery the pipeline writes; ``dest_dir`` is unused.
    """
    side = warehouse.backend()
    if side.dialect == "bigquery":
        spec = f"bigquery:{side.table_id(PLAYS_TABLE)}"
        return f"{spec}?endpoint={side.api_endpoint}" if side.api_endpoint else spec
    out = Path(dest_dir) / "plays.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    with side.reader() as con:
        con.execute(f"COPY (SELECT * FROM {PLAYS_TABLE}) TO '{out}' (FORMAT parquet)")
    return str(out)


def merge_plays(warehouse: Warehouse, plays: pd.DataFrame, planner: Planner | None = None) -> MergeResult:
    """Insert the plays of a frame (conformed to ``plays``) whose ``play_key`` is new.

    With a ``planner`` a batch that holds scrobbles or lies near plays without a Spotify id is
    merged across sources, in both dialects alike; without one a frame is a plain insert of new
    keys (only the lake path, the pipeline's, refuses such a batch without a planner).
    """
    plays = conform(plays, "plays")
    side = warehouse.backend()
    if side.dialect == "bigquery":
        return bigquery_merge_frame(side, plays, planner)
    incoming = len(plays)
    with side.writer() as con:
        if incoming and planner is not None:
            across = _merge_registered_across_sources(con, plays, planner)
            if across is not None:
                return result_of_plan(*across)
        inserted, after = duckdb_insert_ignoring(con, plays) if incoming else (0, duckdb_count(con))
    return MergeResult(inserted=inserted, duplicates=incoming - inserted, total_rows=after)


def _merge_registered_across_sources(
    con: duckdb.DuckDBPyConnection, incoming: pd.DataFrame | pa.Table, planner: Planner | None
) -> tuple[int, int, int, Plan] | None:
    """``duckdb_merge_across_sources`` over ``incoming`` registered as a view for the call."""
    con.register("incoming_batch", incoming)
    try:
        return duckdb_merge_across_sources(con, "incoming_batch", {}, planner)
    finally:
        con.unregister("incoming_batch")


def merge_plays_from_lake(
    warehouse: Warehouse, lake: LakeFiles, paths: list[str], batch_id: str, planner: Planner | None = None
) -> MergeResult:
    """Merge a batch's Parquet files from the lake in one read (``plays_writes.merge_plays_files``).

    A batch that needs ``planner`` (it holds scrobbles or lies near plays without a Spotify id)
    and has none is refused (``PlannerMissing``), never merged insert-only. DuckDB reads local
    files with one ``read_parquet`` over the list, any other lake as Arrow (several at once);
    BigQuery loads files in GCS itself (one load job), any other lake through a frame.
    """
    side = warehouse.backend()
    uris = [lake.uri(p) for p in paths]
    if side.dialect == "bigquery":
        if uris and all(u.startswith("gs://") for u in uris):
            return merge_plays_from_uris(side, uris, batch_id, planner)
        return merge_plays(warehouse, read_frames(lake, paths, "plays"), planner)
    if not paths:
        return merge_plays(warehouse, read_frames(lake, paths, "plays"), planner)
    if all(u.startswith("file://") for u in uris):
        files = [url2pathname(urlparse(u).path) for u in uris]
        with side.writer() as con:
            con.execute("SET enable_progress_bar = false")  # a long insert must not draw on stdout
            across = duckdb_merge_across_sources(con, PARQUET_SCAN, {"files": files}, planner)
            if across is not None:
                return result_of_plan(*across)
            incoming, inserted, after = duckdb_insert_from_parquet(con, files)
        return MergeResult(inserted=inserted, duplicates=incoming - inserted, total_rows=after)

    def read(path: str) -> pa.Table:
        return pq.ParquetFile(pa.BufferReader(lake.read_bytes(path))).read(use_threads=False)

    with ThreadPoolExecutor(4, thread_name_prefix="lake-read") as pool:
        tables = list(pool.map(read, paths))
    incoming_plays = pa.concat_tables(tables, promote_options="default")
    with side.writer() as con:
        con.execute("SET enable_progress_bar = false")
        across = _merge_registered_across_sources(con, incoming_plays, planner)
        if across is not None:
            return result_of_plan(*across)
        inserted, after = duckdb_insert_ignoring(con, incoming_plays)
    return MergeResult(inserted=inserted, duplicates=incoming_plays.num_rows - inserted, total_rows=after)


# -- BigQuery: staged loads and MERGEs, each job at most once (``BigQueryBackend.run_once``) ------
def merge_plays_from_uris(
    bq: BigQueryBackend, uris: list[str], batch_id: str, planner: Planner | None = None
) -> MergeResult:
    """Load ``uris`` (Parquet or CSV in GCS) into staging and MERGE them into ``bq_plays``, at most once."""
    from google.cloud import bigquery

    if not uris:
        return MergeResult(inserted=0, duplicates=0, total_rows=bq.count(PLAYS_TABLE))
    fmt = (
        bigquery.SourceFormat.CSV if all(u.endswith(".csv") for u in uris) else bigquery.SourceFormat.PARQUET
    )
    key = safe_id(batch_id)

    def submit(job_id: str) -> bigquery.LoadJob:
        config = bq.load_config("plays", fmt)
        if fmt == bigquery.SourceFormat.CSV:
            config.skip_leading_rows = 1
        return bq.client().load_table_from_uri(
            sorted(uris), bq.staging_id(f"plays_{key}"), job_id=job_id, job_config=config
        )

    return _bigquery_merge_staged(bq, key, submit, planner)


def bigquery_merge_frame(bq: BigQueryBackend, plays: pd.DataFrame, planner: Planner | None) -> MergeResult:
    """Upload the conformed frame as Parquet into staging, then the same MERGE (job ids from its
    content); as DuckDB's frame path, a plain insert of new keys unless a planner is given."""
    from google.cloud import bigquery

    if plays.empty:
        return MergeResult(inserted=0, duplicates=0, total_rows=bq.count(PLAYS_TABLE))
    data = parquet_bytes(plays, "plays")
    key = f"df_{frame_digest(plays)}"

    def submit(job_id: str) -> bigquery.LoadJob:
        return bq.client().load_table_from_file(
            io.BytesIO(data),
            bq.staging_id(f"plays_{key}"),
            size=len(data),
            job_id=job_id,
            job_config=bq.load_config("plays", bigquery.SourceFormat.PARQUET),
        )

    return _bigquery_merge_staged(bq, key, submit, planner, plan_required=False)


def _bigquery_merge_staged(
    bq: BigQueryBackend,
    key: str,
    submit: Callable[[str], bigquery.LoadJob],
    planner: Planner | None,
    *,
    plan_required: bool = True,
) -> MergeResult:
    bq.ensure_tables()
    load, _ = bq.run_once(f"spotify_load_plays_{key}", submit, valid=bq.staging_exists)
    staged = int(load.output_rows or 0)
    staging_table = f"{load.destination.project}.{load.destination.dataset_id}.{load.destination.table_id}"
    across = (
        _bigquery_merge_across_sources(bq, staging_table, staged, planner)
        if plan_required or planner is not None
        else None
    )
    if across is not None:
        return across
    sql = bigquery_merge_sql(bq.table_id(PLAYS_TABLE), staging_table)
    merge, reused = bq.run_once(f"spotify_merge_plays_{key}", lambda job_id: bq.query_job(sql, job_id))
    # A reused MERGE job was an earlier call's work: this call inserted nothing new (the
    # same answer DuckDB gives when a batch is merged twice).
    inserted = 0 if reused else int(merge.num_dml_affected_rows or 0)
    return MergeResult(inserted=inserted, duplicates=staged - inserted, total_rows=bq.count(PLAYS_TABLE))


def _bigquery_merge_across_sources(
    bq: BigQueryBackend, staging_table: str, staged: int, planner: Planner | None
) -> MergeResult | None:
    """The staged batch through ``scrobbles/merge.plan`` when it needs one (see the DuckDB side,
    ``duckdb_merge_across_sources``), applied in one ``MERGE``; None when the insert-only MERGE
    is the merge."""
    from google.cloud import bigquery

    table_id = bq.table_id(PLAYS_TABLE)
    need = bq.rows(bigquery_needs_plan_sql(table_id, staging_table))
    if not int(need["n"].iloc[0] or 0):
        return None
    spans = bigquery_spans(staging_table)
    if planner is None:
        raise PlannerMissing("this batch holds scrobbles or lies near plays without a Spotify id")
    existing = bq.rows(rows_near_sql(f"`{table_id}`", spans, idless_only=False))
    incoming = bq.rows(f"SELECT * FROM `{staging_table}`")
    planned = planner(incoming, existing)
    inserted = 0
    if planned.inserts or planned.updates or planned.deletes:
        actions = plan_actions(planned)
        schema = [
            *(bigquery.SchemaField(f.name, f.type, mode="NULLABLE") for f in load_schema("plays")),
            bigquery.SchemaField(PLAN_ACTION, "STRING", mode="NULLABLE"),
        ]
        arrow = pa.Table.from_pandas(
            actions,
            schema=pa.schema(
                [*(f.with_nullable(True) for f in arrow_schema("plays")), pa.field(PLAN_ACTION, pa.string())]
            ),
            preserve_index=False,
        )
        data = arrow_parquet_bytes(arrow)
        key = f"plan_{content_digest(data)}"

        def submit(job_id: str) -> bigquery.LoadJob:
            config = bigquery.LoadJobConfig(
                schema=schema,
                source_format=bigquery.SourceFormat.PARQUET,
                write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
                create_disposition=bigquery.CreateDisposition.CREATE_IF_NEEDED,
            )
            return bq.client().load_table_from_file(
                io.BytesIO(data),
                bq.staging_id(f"plays_{key}"),
                size=len(data),
                job_id=job_id,
                job_config=config,
            )

        load, _ = bq.run_once(f"spotify_load_plays_{key}", submit, valid=bq.staging_exists)
        actions_table = (
            f"{load.destination.project}.{load.destination.dataset_id}.{load.destination.table_id}"
        )
        sql = bigquery_plan_merge_sql(table_id, actions_table)
        _, reused = bq.run_once(f"spotify_merge_plays_{key}", lambda job_id: bq.query_job(sql, job_id))
        inserted = 0 if reused else len(planned.inserts)
    return result_of_plan(staged, inserted, bq.count(PLAYS_TABLE), planned)

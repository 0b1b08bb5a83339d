"""The top-ten Spark job: the most played tracks of a listening history.

This file is shipped to a cluster on its own (``spark-submit spark/top_ten.py``), so it
imports nothing but PySpark and the standard library: the output columns of
``spotify_assets/schemas/top_ten_tracks.json`` are embedded below as :data:`TOP_TEN_SCHEMA`
and a test keeps the two equal.

Usage::

    # Parquet in, Parquet out (a file, a directory or a glob; any Hadoop filesystem URL)
    spark-submit spark/top_ten.py --input 'lake/plays/*.parquet' --output out/top_ten [--n 10]
    python -m spark.top_ten --input plays.parquet --output out/top_ten --master 'local[2]'

    # BigQuery in (cloud mode), Parquet out
    spark-submit spark/top_ten.py --input bigquery:project.dataset.bq_plays --output out/top_ten

    # BigQuery in, BigQuery out through the spark-bigquery connector (not used by the pipeline)
    spark-submit \\
      --packages com.google.cloud.spark:spark-bigquery-with-dependencies_2.13:<version> \\
      spark/top_ten.py --input-format bigquery \\
        --input-table project.dataset.bq_plays \\
        --output-table project.dataset.top_ten_tracks \\
        --temporary-gcs-bucket my-staging-bucket

How cloud mode reads the plays (``--input bigquery:<project>.<dataset>.<table>[?endpoint=URL]``):
the **driver** reads the table with the ``google-cloud-bigquery`` client (``tabledata.list``,
or the Storage Read API when ``google-cloud-bigquery-storage`` is installed and no endpoint is
given), hands the Arrow table to Spark, and the executors rank it; the ten-row result is
collected and written by the driver too. Why not the spark-bigquery connector: it is a Maven
jar that this project cannot fetch or test offline, and a job that needs it fails on
any cluster without it. Why not an extract to ``gs://``: the executors would need the GCS
connector (also a jar). Reading in the driver needs only Python packages the image already
has, runs the same code on ``local[*]``, a standalone cluster and Dataproc (client deploy
mode, the only one PySpark has on standalone), and needs no storage shared between the
driver and the workers. The cost: the plays pass through the driver's memory (one person's
history, about 100 MB of Arrow per million plays). The ``endpoint`` (``SPOTIFY_BQ_ENDPOINT``)
points the client at an emulator, anonymously; without it Application Default Credentials
are used, and the caller needs ``bigquery.tables.getData`` on the table.

``--input-format bigquery`` mode needs two things on the classpath that this project cannot
download or test offline, so they are named here rather than bundled:

* the spark-bigquery connector built for Scala 2.13 (PySpark 4 is Scala 2.13 only):
  Maven ``com.google.cloud.spark:spark-bigquery-with-dependencies_2.13``; Dataproc images
  already ship it;
* the Cloud Storage connector for Hadoop 3 (``com.google.cloud.bigdataoss:gcs-connector``,
  ``hadoop3-*`` shaded jar), because the connector's indirect write stages Parquet files in
  ``--temporary-gcs-bucket`` before a BigQuery load job. Without a bucket the job uses the
  connector's direct write (Storage Write API) instead, which needs no GCS connector.

Credentials come from Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS`` or
the cluster's service account); this job never reads or logs a key.

Progress goes to stderr as ``[top_ten] ...`` lines. Exit status: 0 on success, 2 on bad
input (missing columns, no such path, bad arguments), 3 when the BigQuery connector is
missing, each with a one-line reason. An input without rows is not an error: it yields an
empty output with the full schema.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pyspark.errors import AnalysisException, PySparkRuntimeError
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

if TYPE_CHECKING:
    import pandas

#: The output table, column for column as in ``schemas/top_ten_tracks.json``
#: (INT64 -> LongType, FLOAT64 -> DoubleType, TIMESTAMP -> TimestampType).
TOP_TEN_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType(), nullable=False),
        T.StructField("rank", T.LongType(), nullable=False),
        T.StructField("track_id", T.StringType()),
        T.StructField("track_name", T.StringType()),
        T.StructField("artist_names", T.StringType()),
        T.StructField("album_name", T.StringType()),
        T.StructField("album_image_url", T.StringType()),
        T.StructField("plays", T.LongType(), nullable=False),
        T.StructField("minutes_listened", T.DoubleType(), nullable=False),
        T.StructField("first_played_at", T.TimestampType(), nullable=False),
        T.StructField("last_played_at", T.TimestampType(), nullable=False),
        T.StructField("computed_at", T.TimestampType(), nullable=False),
    ]
)
TOP_TEN_COLUMNS: tuple[str, ...] = tuple(TOP_TEN_SCHEMA.fieldNames())

#: ``user_id`` of the rows that rank every listener's plays together (the household's top
#: ten), beside each listener's own rows. The same value as ``ALL_LISTENERS`` in
#: ``spotify_assets/schema.py`` (a test keeps them equal); see that constant for why a marker
#: string and not a null.
ALL_USERS = "*"

#: The columns of ``schemas/plays.json`` this job reads, with the types it reads them as.
#: Only these are selected, so BigQuery and Parquet readers can prune the rest.
PLAYS_INPUT_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("played_at", T.TimestampType()),
        T.StructField("track_id", T.StringType()),
        T.StructField("track_name", T.StringType()),
        T.StructField("artist_names", T.StringType()),
        T.StructField("primary_artist_name", T.StringType()),
        T.StructField("album_name", T.StringType()),
        T.StructField("album_image_url", T.StringType()),
        T.StructField("duration_ms", T.LongType()),
        T.StructField("ms_played", T.LongType()),
        T.StructField("content_type", T.StringType()),
        T.StructField("is_play", T.BooleanType()),
    ]
)
PLAYS_INPUT_COLUMNS: tuple[str, ...] = tuple(PLAYS_INPUT_SCHEMA.fieldNames())
#: Input columns a history of the single-user layout may lack (read as null: no known listener).
_OPTIONAL_INPUT_COLUMNS = frozenset({"user_id"})

#: Descriptive columns taken from a track's most recent play (names can change over time).
_LATEST_COLUMNS = ("track_name", "artist_names", "album_name", "album_image_url")

#: The numbers of one (scope, track), as the first pass computes them and the second keeps them.
#: A track is its ``track_id``, or for a play without one its ``name_key`` (:func:`name_key`).
_WINNERS_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType(), nullable=False),
        T.StructField("rank", T.LongType(), nullable=False),
        T.StructField("track_id", T.StringType()),
        T.StructField("name_key", T.StringType()),
        T.StructField("plays", T.LongType(), nullable=False),
        T.StructField("listened_ms", T.LongType(), nullable=False),
        T.StructField("first_played_us", T.LongType(), nullable=False),
        T.StructField("last_played_us", T.LongType(), nullable=False),
    ]
)

EXIT_BAD_INPUT = 2
EXIT_SETUP = 3


class InputError(ValueError):
    """The input cannot be read as plays (missing path or columns); main() exits 2 with it."""


class SetupError(RuntimeError):
    """The Spark installation lacks something the job needs (a connector jar); main() exits 3."""


def _log(message: str) -> None:
    print(f"[top_ten] {message}", file=sys.stderr, flush=True)


def select_plays(frame: DataFrame) -> DataFrame:
    """The columns the job needs, cast to the types it expects, or :class:`InputError`.

    Casting makes the job indifferent to how a writer stored integers (INT32 vs INT64) or
    timestamps (with or without a time zone), which varies between pandas, DuckDB and BigQuery.
    A history without ``user_id`` (the single-user layout) is read as plays of no known
    listener: they count in everyone's top ten only.
    """
    present = set(frame.columns)
    missing = [c for c in PLAYS_INPUT_COLUMNS if c not in present and c not in _OPTIONAL_INPUT_COLUMNS]
    if missing:
        raise InputError(f"input lacks plays column(s) {missing}; it has {sorted(present)}")
    return frame.select(
        [
            (F.col(f.name) if f.name in present else F.lit(None)).cast(f.dataType).alias(f.name)
            for f in PLAYS_INPUT_SCHEMA.fields
        ]
    )


def _micros(ts: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC (the project's clock)."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    delta = ts - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def name_key() -> Column:
    """What names a track played without a Spotify id: its primary artist and title, lower-cased,
    as ``artist|title`` (null for a play with an id, or without both names).

    The dashboard's grouping key (``app/queries.py`` ``TRACK_KEY``, the track page's ``?key=``)
    for the same plays, so a mart row of such a track and the Top page's row agree. A play with
    an id is still ranked by its id alone, as before: names can change over a track's life ("A
    old", then "A new") and must not split it. Hence a track that has plays with an id and
    scrobbles without one (a listen no Spotify play matched) is two rows here; the Top page,
    which groups everything by names, shows one.
    """
    names = F.concat(F.lower(F.col("primary_artist_name")), F.lit("|"), F.lower(F.col("track_name")))
    return F.when(F.col("track_id").isNull(), names)


def _track_plays(plays: DataFrame) -> DataFrame:
    """Real track plays only: ``is_play``, ``content_type`` 'track', and a known ``track_id`` or,
    without one (a scrobble, a local file), both names: :func:`name_key` is added."""
    return (
        select_plays(plays)
        .withColumn("name_key", name_key())
        .where(
            F.col("is_play")
            & (F.col("content_type") == F.lit("track"))
            & (F.col("track_id").isNotNull() | F.col("name_key").isNotNull())
        )
    )


def rank_winners(plays: DataFrame, n: int = 10) -> DataFrame:
    """The first pass: the numbers of the ``n`` best tracks of each listener and of everyone.

    Only ids, counts, sums and timestamps are aggregated, all fixed-width, so Spark runs a
    *hash* aggregate; carrying the names (variable-width strings) through the aggregation
    turned it into a sort aggregate that sorted every play by track id, most of the job's
    time at 10M plays (``bench/RESULTS.md`` section 3). Everyone's numbers are the per-listener
    groups summed again (about tracks x listeners rows, not the plays). Plays without a known
    listener (``user_id`` null) count in everyone's ranking only: their own scope is ranked
    too and dropped by the caller (a filter here would be pushed below the aggregates into
    the scan, and everyone's numbers would lose those plays).
    """
    listened_ms = F.coalesce(F.col("ms_played"), F.col("duration_ms"), F.lit(0)).cast(T.LongType())
    per_user = (
        _track_plays(plays)
        .groupBy("user_id", "track_id", "name_key")
        .agg(
            F.count(F.lit(1)).alias("plays"),
            F.sum(listened_ms).alias("listened_ms"),
            F.min("played_at").alias("first_played_at"),
            F.max("played_at").alias("last_played_at"),
        )
    )
    # Everyone's groups and the listeners' own from one grouping-sets aggregate over the
    # per-listener groups: a union of two aggregates would read the plays twice (Spark does not
    # reuse the shuffle across the union's two branches).
    scopes = per_user.groupingSets(
        [["user_id", "track_id", "name_key"], ["track_id", "name_key"]], "user_id", "track_id", "name_key"
    ).agg(
        F.grouping("user_id").alias("everyone"),
        F.sum("plays").alias("plays"),
        F.sum("listened_ms").alias("listened_ms"),
        F.min("first_played_at").alias("first_played_at"),
        F.max("last_played_at").alias("last_played_at"),
    )
    scopes = scopes.withColumn(
        "user_id", F.when(F.col("everyone") == 1, F.lit(ALL_USERS)).otherwise(F.col("user_id"))
    )
    order: list[Column] = [
        F.col("plays").desc(),
        F.col("listened_ms").desc(),
        F.col("last_played_at").desc(),
        F.col("track_id").asc(),
        F.col("name_key").asc(),
    ]
    # row_number() <= n per scope: Spark plans a group limit before the window's shuffle, so
    # only n rows per scope and input split are sorted and moved.
    ranked = scopes.withColumn("rank", F.row_number().over(Window.partitionBy("user_id").orderBy(*order)))
    # Instants leave Spark as microseconds: a Python datetime would pass through the local
    # zone, where an hour repeated at a clock change maps two instants to one.
    return ranked.where(F.col("rank") <= n).select(
        "user_id",
        "rank",
        "track_id",
        "name_key",
        "plays",
        "listened_ms",
        F.unix_micros("first_played_at").alias("first_played_us"),
        F.unix_micros("last_played_at").alias("last_played_us"),
    )


def top_ten_tracks(plays: DataFrame, n: int = 10, computed_at: datetime | None = None) -> DataFrame:
    """The ``n`` most played tracks of each listener and of everyone, in one frame.

    Rows whose ``user_id`` is :data:`ALL_USERS` rank every play; the others rank one
    listener's. Only real track plays count: ``is_play`` true and ``content_type`` 'track'
    (episodes and skips under 30 s are not tracks one can rank). A play without a Spotify id
    (a scrobble no Spotify play matched, a local file) counts too, grouped with the plays of
    the same artist and title (:func:`name_key`); its row has no ``track_id``. Ranks are 1..n
    within each scope, without ties: plays desc, then minutes listened desc, then the most
    recent play, then track id (then the names' key), so the same history always gives the
    same table. Names and the album image come from the track's most recent play in that scope;
    should two plays share that instant, the greatest values win, which is still deterministic.

    Two passes, and the first one runs here (one Spark job, a few rows collected): the
    numbers of the winners (:func:`rank_winners`), then their names from only the plays at
    their last-played instants. Those instants are handed to the second read as literals, so
    the Parquet reader skips every row group whose ``played_at`` range holds none of them
    (a history is stored roughly in time order and winners tend to be recent), instead of
    decoding every play's names. The returned frame is the lazy second pass.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    stamp = _micros(computed_at or datetime.now(UTC))
    spark = plays.sparkSession
    winners = [r for r in rank_winners(plays, n).collect() if r["user_id"] is not None]
    ranked = spark.createDataFrame([tuple(r) for r in winners], _WINNERS_SCHEMA)
    track_ids = sorted({r["track_id"] for r in winners if r["track_id"] is not None})
    name_keys = sorted({r["name_key"] for r in winners if r["name_key"] is not None})
    # timestamp_micros of a literal folds to a timestamp literal, which the reader pushes down.
    instants = [F.timestamp_micros(F.lit(us)) for us in sorted({r["last_played_us"] for r in winners})]
    latest_plays = (
        _track_plays(plays)
        .where(
            (F.col("track_id").isin(track_ids) | F.col("name_key").isin(name_keys))
            & F.col("played_at").isin(instants)
        )
        .select(
            F.col("user_id").alias("play_user_id"),
            F.col("track_id").alias("play_track_id"),
            F.col("name_key").alias("play_name_key"),
            F.col("played_at"),
            *_LATEST_COLUMNS,
        )
    )
    matches = (
        latest_plays["play_track_id"].eqNullSafe(ranked["track_id"])
        & latest_plays["play_name_key"].eqNullSafe(ranked["name_key"])
        & (latest_plays["played_at"] == F.timestamp_micros(ranked["last_played_us"]))
        & ((ranked["user_id"] == F.lit(ALL_USERS)) | (latest_plays["play_user_id"] == ranked["user_id"]))
    )
    # max() of a struct compares field by field: the greatest names among a tie at the instant.
    latest = F.max(F.struct(*[F.col(c) for c in _LATEST_COLUMNS]))
    named = (
        F.broadcast(ranked)
        .join(latest_plays, matches, "left")
        .groupBy(*_WINNERS_SCHEMA.fieldNames())
        .agg(latest.alias("latest"))
    )
    values: dict[str, Column] = {
        "user_id": F.col("user_id"),
        "rank": F.col("rank"),
        "track_id": F.col("track_id"),
        **{c: F.col(f"latest.{c}") for c in _LATEST_COLUMNS},
        "plays": F.col("plays"),
        "minutes_listened": F.col("listened_ms") / F.lit(60000.0),
        "first_played_at": F.timestamp_micros(F.col("first_played_us")),
        "last_played_at": F.timestamp_micros(F.col("last_played_us")),
        "computed_at": F.timestamp_micros(F.lit(stamp)),
    }
    return named.select(
        [values[f.name].cast(f.dataType).alias(f.name) for f in TOP_TEN_SCHEMA.fields]
    ).orderBy("user_id", "rank")


def _local_path(path: str) -> str | None:
    """The filesystem path of a local ``path`` (bare or ``file:``), or None for gs://, hdfs://..."""
    if path.startswith("file:"):
        return path.removeprefix("file:").removeprefix("//")
    return None if "://" in path or path.startswith("bigquery:") else path


def check_local_input(path: str) -> None:
    """Fail on a local input path that does not exist, without asking Spark.

    Spark would log a Java stack trace before saying the same, and :func:`main` calls this
    before it starts a session, so a typo costs no cluster resources. Globs and remote URLs
    are left to Spark.
    """
    local = _local_path(path)
    is_glob = any(ch in path for ch in "*?[{")
    if local is not None and not is_glob and not os.path.exists(local):
        raise InputError(f"input path does not exist: {path}")


def read_parquet_plays(spark: SparkSession, path: str, log: Callable[[str], None] = _log) -> DataFrame:
    """Plays from Parquet at ``path`` (file, directory or glob).

    A directory without any Parquet file is an empty history (Spark cannot infer a schema
    from nothing, so the embedded one is used); a path that does not exist is an input error.
    """
    check_local_input(path)
    try:
        frame = spark.read.parquet(path)
    except AnalysisException as exc:
        condition = exc.getCondition() or ""
        if condition == "UNABLE_TO_INFER_SCHEMA":
            log(f"no Parquet files under {path}; treating the input as empty")
            return spark.createDataFrame([], PLAYS_INPUT_SCHEMA)
        if condition == "PATH_NOT_FOUND":
            raise InputError(f"input path does not exist: {path}") from exc
        if condition == "PARQUET_TYPE_ILLEGAL":
            # Typically pandas' default nanosecond timestamps; the plays schema is microseconds.
            reason = str(exc).splitlines()[0]
            raise InputError(f"cannot read {path}: {reason} (plays timestamps must be microseconds)") from exc
        raise
    return select_plays(frame)


def write_parquet(result: DataFrame, path: str) -> None:
    """One Parquet file (the result is at most n rows) under the directory ``path``, replaced.

    Timestamps are written as INT64 microseconds adjusted to UTC, the logical type pandas,
    DuckDB and BigQuery all read as UTC instants (Spark's INT96 default is a legacy type).
    """
    result.sparkSession.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    result.coalesce(1).write.mode("overwrite").parquet(path)


#: ``--input bigquery:<project>.<dataset>.<table>[?endpoint=URL]``: the plays table, read by
#: the driver (see the module docstring).
BIGQUERY_INPUT_PREFIX = "bigquery:"


def parse_bigquery_input(spec: str) -> tuple[str, str | None]:
    """``bigquery:p.d.t?endpoint=URL`` -> (``p.d.t``, ``URL``); the endpoint is optional."""
    body = spec.removeprefix(BIGQUERY_INPUT_PREFIX)
    table, _, query = body.partition("?")
    endpoint = None
    for pair in query.split("&") if query else []:
        key, _, value = pair.partition("=")
        if key == "endpoint" and value:
            endpoint = value
    if table.count(".") != 2 or not all(table.split(".")):
        raise InputError(f"BigQuery input must name project.dataset.table, got {table!r}")
    return table, endpoint


def read_bigquery_plays(spark: SparkSession, spec: str, log: Callable[[str], None] = _log) -> DataFrame:
    """The plays columns of a BigQuery table, read by the driver and handed to Spark as Arrow.

    Imports ``google.cloud.bigquery`` only here, so Parquet mode still needs nothing but
    PySpark. An empty table is an empty history with the full schema.
    """
    from google.cloud import bigquery

    table, endpoint = parse_bigquery_input(spec)
    project = table.split(".")[0]
    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        client = bigquery.Client(
            project=project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": endpoint},
        )
    else:
        client = bigquery.Client(project=project)
    try:
        schema = client.get_table(table).schema
        fields = [f for f in schema if f.name in PLAYS_INPUT_COLUMNS]
        missing = sorted(set(PLAYS_INPUT_COLUMNS) - {f.name for f in fields})
        if missing:
            raise InputError(f"BigQuery table {table} lacks plays column(s) {missing}")
        arrow = client.list_rows(table, selected_fields=fields).to_arrow(
            create_bqstorage_client=endpoint is None
        )
    finally:
        client.close()
    log(f"read {arrow.num_rows} play(s) from BigQuery table {table}")
    if arrow.num_rows == 0:
        return spark.createDataFrame([], PLAYS_INPUT_SCHEMA)
    return select_plays(spark.createDataFrame(arrow))


def read_plays(spark: SparkSession, input_path: str, log: Callable[[str], None] = _log) -> DataFrame:
    """Plays from Parquet, or from BigQuery for a ``bigquery:`` input (see the module docstring)."""
    log(f"reading plays from {input_path.partition('?')[0]}")
    if input_path.startswith(BIGQUERY_INPUT_PREFIX):
        return read_bigquery_plays(spark, input_path, log)
    return read_parquet_plays(spark, input_path, log)


def collect(
    spark: SparkSession,
    input_path: str,
    n: int = 10,
    computed_at: datetime | None = None,
    log: Callable[[str], None] = _log,
) -> pandas.DataFrame:
    """The ranking as a pandas frame in this (driver) process: one Spark job, no output files.

    What the Dagster resource runs when its driver is in-process or a Spark Connect client:
    the answer is at most ``n`` rows, and writing then re-reading Parquet would cost two more
    jobs (the cache, the count, the write), which on a warm server is most of the run.
    """
    frame = top_ten_tracks(read_plays(spark, input_path, log), n=n, computed_at=computed_at).toPandas()
    listeners = len(set(frame["user_id"]) - {ALL_USERS})
    log(f"ranked {len(frame)} row(s): everyone's and {listeners} listener(s)' top {n}")
    return frame


def run(
    spark: SparkSession,
    input_path: str,
    output_path: str,
    n: int = 10,
    computed_at: datetime | None = None,
    log: Callable[[str], None] = _log,
) -> int:
    """Plays (Parquet, or ``bigquery:`` in cloud mode) to Parquet; returns the number of ranked
    rows written. Used by :func:`main` and by the Dagster resource's in-process mode (which
    passes its logger as ``log``), so both run exactly the same code."""
    plays = read_plays(spark, input_path, log)
    # Cached so the count for the log and the write share one computation (each Spark job
    # costs seconds on a cold cluster, the data itself is tiny).
    result = top_ten_tracks(plays, n=n, computed_at=computed_at).cache()
    try:
        rows = result.count()
        log(f"writing {rows} ranked row(s) to {output_path}")
        write_parquet(result, output_path)
    finally:
        result.unpersist()
    return rows


def run_bigquery(
    spark: SparkSession,
    input_table: str,
    output_table: str,
    n: int = 10,
    temporary_gcs_bucket: str | None = None,
) -> int:
    """BigQuery to BigQuery through the spark-bigquery connector (see the module docstring)."""
    _log(f"reading plays from BigQuery table {input_table}")
    try:
        raw = spark.read.format("bigquery").option("table", input_table).load()
    except Exception as exc:
        # Arrives as a raw Py4JJavaError (SparkClassNotFoundException), so match the condition.
        if "DATA_SOURCE_NOT_FOUND" in str(exc):
            raise SetupError(
                "the spark-bigquery connector is not on the classpath; submit with --packages "
                "com.google.cloud.spark:spark-bigquery-with-dependencies_2.13:<version> (see the module docstring)"
            ) from exc
        raise
    result = top_ten_tracks(select_plays(raw), n=n).cache()
    rows = result.count()
    _log(f"writing {rows} ranked track(s) to BigQuery table {output_table}")
    writer = result.write.format("bigquery").option("table", output_table).mode("overwrite")
    if temporary_gcs_bucket:
        writer = writer.option("writeMethod", "indirect").option("temporaryGcsBucket", temporary_gcs_bucket)
    else:
        writer = writer.option("writeMethod", "direct")
    writer.save()
    result.unpersist()
    return rows


def _existing_session() -> SparkSession | None:
    """The session already running in this process, if any (any thread's default session)."""
    try:
        return SparkSession.active()
    except PySparkRuntimeError:
        return None


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="top_ten", description="Rank the most played tracks of a listening history."
    )
    parser.add_argument("--input-format", choices=("parquet", "bigquery"), default="parquet")
    parser.add_argument("--input", help="Parquet file, directory or glob of plays (parquet format)")
    parser.add_argument("--output", help="output directory for the Parquet result (parquet format)")
    parser.add_argument("--input-table", help="project.dataset.bq_plays (bigquery format)")
    parser.add_argument("--output-table", help="project.dataset.top_ten_tracks (bigquery format)")
    parser.add_argument("--temporary-gcs-bucket", help="staging bucket for the BigQuery indirect write")
    parser.add_argument("--n", type=int, default=10, help="how many tracks to rank (default 10)")
    parser.add_argument("--master", help="Spark master URL; spark-submit's --master when omitted")
    parser.add_argument("--app-name", help="Spark application name (default: spark-submit's --name)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    if args.input_format == "parquet" and not (args.input and args.output):
        parser.error("--input and --output are required with --input-format parquet")
    if args.input_format == "bigquery" and not (args.input_table and args.output_table):
        parser.error("--input-table and --output-table are required with --input-format bigquery")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status.

    An already running session (a test's, or the Dagster resource's in-process one) is used
    and left running; a session this function had to start is stopped before it returns.
    """
    args = _parse_args(argv)
    if args.input_format == "parquet":
        try:
            check_local_input(args.input)
        except InputError as exc:
            _log(f"error: {exc}")
            return EXIT_BAD_INPUT
    existing = _existing_session()
    if existing is not None:
        spark = existing
    else:
        builder = SparkSession.builder
        # Without --app-name the name is spark-submit's --name (or the script's file name).
        if args.app_name:
            builder = builder.appName(args.app_name)
        if args.master:
            builder = builder.master(args.master)
        spark = builder.getOrCreate()
        if not spark.sparkContext.getConf().contains("spark.sql.shuffle.partitions"):
            # One person's history is small: Spark's default 200 shuffle tasks cost more than
            # the data. A value given with --conf is kept.
            spark.conf.set("spark.sql.shuffle.partitions", str(max(2, spark.sparkContext.defaultParallelism)))
    _log(f"Spark {spark.version}, master {spark.sparkContext.master}")
    try:
        if args.input_format == "bigquery":
            run_bigquery(spark, args.input_table, args.output_table, args.n, args.temporary_gcs_bucket)
        else:
            run(spark, args.input, args.output, args.n)
    except InputError as exc:
        _log(f"error: {exc}")
        return EXIT_BAD_INPUT
    except SetupError as exc:
        _log(f"error: {exc}")
        return EXIT_SETUP
    finally:
        if existing is None:
            spark.stop()
    _log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())

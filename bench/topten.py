"""The top-ten aggregation three ways on the same Parquet plays, in its own process.

    python -m bench.topten --engine spark|spark-connect|duckdb|pandas --input plays.parquet --out DIR --repeats R

* ``spark``: ``spark.top_ten.run`` (the job the pipeline ships) on an in-process ``local[*]``
  session configured by ``SparkResource``; reports the session start-up and each run (read
  Parquet, aggregate, write Parquet) separately. Start-up + first run is the cold case.
* ``spark-connect``: the same job sent to a warm Spark Connect server (``spark/connect_server.py``,
  ``local[*]``): the warm case, as ``make dev`` runs it.
* ``duckdb``: the same aggregation as one SQL statement (filter, group by listener and track,
  ``max(struct)`` for the latest names, everyone's groups summed, a ranked window) from Parquet
  to Parquet.
* ``pandas``: ``read_parquet`` of the needed columns, a filter, a sort by time and a groupby per
  scope.

Every engine computes what the pipeline's job does: the top ten of each listener and of
everyone (``user_id`` '*'), in one table. A play without a Spotify id (a scrobble no Spotify
play matched, a local file) counts too, grouped by its lower-cased primary artist and title
(``spark.top_ten.name_key``); its row has no track id. Prints one JSON line with
``startup_seconds`` (0 for the in-process engines), ``runs`` (seconds each) and ``ranking``
(scope, rank, track of every row: its id, or ``name:`` and its lower-cased names), so run.py can
check that the four agree.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

COMPUTED_AT = datetime(2026, 1, 1, tzinfo=UTC)

#: The job's answer in one statement: each listener's ten and everyone's ('*'), names from the
#: latest play of the scope (``max(struct)``, which DuckDB hash-aggregates), same tie-breaking.
#: A play without an id is keyed by ``name_key`` (NULL for a play with one); the tie-break orders
#: NULLs first, as Spark's ascending sort does.
DUCKDB_SQL = """
COPY (
    WITH k AS (
        SELECT user_id, track_id, played_at, track_name, artist_names, album_name, album_image_url,
               coalesce(ms_played, duration_ms, 0) AS ms, is_play, content_type,
               CASE WHEN track_id IS NULL THEN lower(primary_artist_name) || '|' || lower(track_name) END
                   AS name_key
        FROM read_parquet('{input}')
    ),
    t AS (
        SELECT * FROM k
        WHERE is_play AND content_type = 'track' AND (track_id IS NOT NULL OR name_key IS NOT NULL)
    ),
    u AS (
        SELECT user_id, track_id, name_key, count(*) AS plays, sum(ms) AS ms,
               min(played_at) AS first_played_at, max(played_at) AS last_played_at,
               max(struct_pack(played_at, track_name, artist_names, album_name, album_image_url)) AS latest
        FROM t GROUP BY user_id, track_id, name_key
    ),
    g AS (
        SELECT * FROM u WHERE user_id IS NOT NULL
        UNION ALL
        SELECT '*', track_id, name_key, sum(plays), sum(ms), min(first_played_at), max(last_played_at),
               max(latest)
        FROM u GROUP BY track_id, name_key
    )
    SELECT user_id,
           row_number() OVER (PARTITION BY user_id
                              ORDER BY plays DESC, ms DESC, last_played_at DESC, track_id NULLS FIRST,
                                       name_key NULLS FIRST) AS rank,
           track_id, latest.track_name, latest.artist_names, latest.album_name, latest.album_image_url,
           plays, ms / 60000.0 AS minutes_listened, first_played_at, last_played_at,
           TIMESTAMPTZ '{computed_at}' AS computed_at
    FROM g QUALIFY rank <= {n} ORDER BY user_id, rank
) TO '{output}' (FORMAT parquet)
"""

#: What run.py compares between engines: (scope, rank, track) of every row (``RANKING_SQL``).
Ranking = list[list[Any]]
#: The ranking read back from an engine's output: a row without an id is named by its latest
#: names, lower-cased (the group's key up to the artist list, which is the primary artist for a
#: scrobble).
RANKING_SQL = (
    "SELECT user_id, rank, coalesce(track_id, 'name:' || lower(artist_names) || '|' || lower(track_name)) "
    "FROM read_parquet('{output}') ORDER BY 1, 2"
)


def ranking(output: Path | str) -> Ranking:
    """(scope, rank, track) of every row of an engine's output (a Parquet file or folder)."""
    import duckdb

    path = f"{output}/*.parquet" if Path(output).is_dir() else str(output)
    with duckdb.connect() as con:
        return [list(r) for r in con.execute(RANKING_SQL.format(output=path)).fetchall()]


def run_duckdb(input_path: str, out: Path, repeats: int) -> dict[str, Any]:
    import duckdb

    runs = []
    target = out / "duckdb.parquet"
    for _ in range(repeats):
        t0 = time.perf_counter()
        with duckdb.connect() as con:
            con.execute(
                DUCKDB_SQL.format(input=input_path, output=target, n=10, computed_at=COMPUTED_AT.isoformat())
            )
        runs.append(time.perf_counter() - t0)
    return {"startup_seconds": 0.0, "runs": runs, "ranking": ranking(target)}


def _pandas_top(df: Any, scope: str) -> Any:
    """The ten of one scope from plays sorted by time (so ``last`` is the latest play); a track
    is its id or, without one, its ``name_key`` (the other of the two is null, kept as a key)."""
    g = df.groupby(["track_id", "name_key"], sort=False, dropna=False).agg(
        plays=("ms", "size"),
        ms=("ms", "sum"),
        first_played_at=("played_at", "first"),
        last_played_at=("played_at", "last"),
        track_name=("track_name", "last"),
        artist_names=("artist_names", "last"),
        album_name=("album_name", "last"),
        album_image_url=("album_image_url", "last"),
    )
    # Ties as Spark breaks them: ids ascending with the id-less (null) ones first, then the names.
    g = g.reset_index()
    top = (
        g.assign(has_id=g["track_id"].notna(), tid=g["track_id"].fillna(""), key=g["name_key"].fillna(""))
        .sort_values(
            ["plays", "ms", "last_played_at", "has_id", "tid", "key"],
            ascending=[False, False, False, True, True, True],
        )
        .drop(columns=["has_id", "tid", "key", "name_key"])
        .head(10)
    )
    top["minutes_listened"] = top.pop("ms") / 60000.0
    top.insert(0, "rank", range(1, len(top) + 1))
    top.insert(0, "user_id", scope)
    return top


def run_pandas(input_path: str, out: Path, repeats: int) -> dict[str, Any]:
    import pandas as pd

    cols = [
        "user_id",
        "track_id",
        "played_at",
        "track_name",
        "artist_names",
        "primary_artist_name",
        "album_name",
        "album_image_url",
        "ms_played",
        "duration_ms",
        "content_type",
        "is_play",
    ]
    runs = []
    top = pd.DataFrame()
    for _ in range(repeats):
        t0 = time.perf_counter()
        df = pd.read_parquet(input_path, columns=cols)
        names = df["primary_artist_name"].str.lower() + "|" + df["track_name"].str.lower()
        df = df.assign(name_key=names.where(df["track_id"].isna()))
        df = df[
            df["is_play"]
            & (df["content_type"] == "track")
            & (df["track_id"].notna() | df["name_key"].notna())
        ]
        # A stable sort: plays sharing an instant keep file order (the engines take the
        # greatest names then; the benchmark's plays never share one).
        df = df.assign(ms=df["ms_played"].fillna(df["duration_ms"]).fillna(0)).sort_values(
            "played_at", kind="stable"
        )
        scopes = [_pandas_top(df, "*")]
        scopes += [_pandas_top(own, str(uid)) for uid, own in df.groupby("user_id", sort=True)]
        top = pd.concat(scopes, ignore_index=True)
        top["computed_at"] = COMPUTED_AT
        top.to_parquet(out / "pandas.parquet", index=False)
        runs.append(time.perf_counter() - t0)
    return {"startup_seconds": 0.0, "runs": runs, "ranking": ranking(out / "pandas.parquet")}


def run_spark_connect(input_path: str, out: Path, repeats: int, remote: str = "") -> dict[str, Any]:
    """The same job as a client of a warm Spark Connect server (how ``make dev`` runs it).

    ``startup_seconds`` is the server's start (paid once per ``make dev``, not per run); each
    run opens a fresh client session, as each pipeline run is a process of its own. With
    ``remote`` (a server already running, whose start the caller timed) none is started here
    and ``startup_seconds`` is 0.
    """
    from spark.connect_server import SparkConnectServer

    if remote:
        return {"startup_seconds": 0.0, **_connect_runs(remote, input_path, out, repeats)}
    t0 = time.perf_counter()
    server = SparkConnectServer(master="local[*]", log_path=out / "connect-server.log", driver_memory="2g")
    with server:
        startup = time.perf_counter() - t0
        return {"startup_seconds": startup, **_connect_runs(server.url, input_path, out, repeats)}


def _connect_runs(url: str, input_path: str, out: Path, repeats: int) -> dict[str, Any]:
    from pyspark.sql import SparkSession

    from spark.top_ten import run

    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        spark = SparkSession.builder.remote(url).getOrCreate()
        run(spark, input_path, str(out / "spark-connect"), computed_at=COMPUTED_AT, log=lambda _m: None)
        runs.append(time.perf_counter() - t0)
        spark.stop()
    return {"runs": runs, "ranking": ranking(out / "spark-connect")}


def run_spark(input_path: str, out: Path, repeats: int) -> dict[str, Any]:
    t0 = time.perf_counter()

    from spark.top_ten import run
    from spotify_assets.resources.spark import SparkResource

    # The pipeline's in-process fallback, configured as the resource configures it.
    spark = SparkResource(master="local[*]", app_name="bench-top-ten").get_session()
    spark.sparkContext.setLogLevel("ERROR")
    startup = time.perf_counter() - t0
    runs = []
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            run(spark, input_path, str(out / "spark"), computed_at=COMPUTED_AT, log=lambda _m: None)
            runs.append(time.perf_counter() - t0)
    finally:
        spark.stop()
    return {"startup_seconds": startup, "runs": runs, "ranking": ranking(out / "spark")}


ENGINES = {"spark": run_spark, "spark-connect": run_spark_connect, "duckdb": run_duckdb, "pandas": run_pandas}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--engine", choices=sorted(ENGINES), required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--remote", default="", help="spark-connect: a server already running (sc://...)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.engine == "spark-connect":
        result = run_spark_connect(args.input, out, args.repeats, args.remote)
    else:
        result = ENGINES[args.engine](args.input, out, args.repeats)
    print(json.dumps({"engine": args.engine, **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

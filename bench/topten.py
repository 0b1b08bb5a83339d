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
everyone (``user_id`` '*'), in one table. Prints one JSON line with ``startup_seconds`` (0 for
the in-process engines), ``runs`` (seconds each) and ``ranking`` (scope, rank, track id of every
row), so run.py can check that the four agree.
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
DUCKDB_SQL = """
COPY (
    WITH t AS (
        SELECT user_id, track_id, played_at, track_name, artist_names, album_name, album_image_url,
               coalesce(ms_played, duration_ms, 0) AS ms
        FROM read_parquet('{input}')
        WHERE is_play AND content_type = 'track' AND track_id IS NOT NULL
    ),
    u AS (
        SELECT user_id, track_id, count(*) AS plays, sum(ms) AS ms,
               min(played_at) AS first_played_at, max(played_at) AS last_played_at,
               max(struct_pack(played_at, track_name, artist_names, album_name, album_image_url)) AS latest
        FROM t GROUP BY user_id, track_id
    ),
    g AS (
        SELECT * FROM u WHERE user_id IS NOT NULL
        UNION ALL
        SELECT '*', track_id, sum(plays), sum(ms), min(first_played_at), max(last_played_at), max(latest)
        FROM u GROUP BY track_id
    )
    SELECT user_id,
           row_number() OVER (PARTITION BY user_id
                              ORDER BY plays DESC, ms DESC, last_played_at DESC, track_id) AS rank,
           track_id, latest.track_name, latest.artist_names, latest.album_name, latest.album_image_url,
           plays, ms / 60000.0 AS minutes_listened, first_played_at, last_played_at,
           TIMESTAMPTZ '{computed_at}' AS computed_at
    FROM g QUALIFY rank <= {n} ORDER BY user_id, rank
) TO '{output}' (FORMAT parquet)
"""

#: What run.py compares between engines: (scope, rank, track id) of every row.
Ranking = list[list[Any]]


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
    with duckdb.connect() as con:
        ids = [
            list(r)
            for r in con.execute(f"SELECT user_id, rank, track_id FROM '{target}' ORDER BY 1, 2").fetchall()
        ]
    return {"startup_seconds": 0.0, "runs": runs, "ranking": ids}


def _pandas_top(df: Any, scope: str) -> Any:
    """The ten of one scope from plays sorted by time (so ``last`` is the latest play)."""
    g = df.groupby("track_id", sort=False).agg(
        plays=("ms", "size"),
        ms=("ms", "sum"),
        first_played_at=("played_at", "first"),
        last_played_at=("played_at", "last"),
        track_name=("track_name", "last"),
        artist_names=("artist_names", "last"),
        album_name=("album_name", "last"),
        album_image_url=("album_image_url", "last"),
    )
    top = (
        g.reset_index()
        .sort_values(["plays", "ms", "last_played_at", "track_id"], ascending=[False, False, False, True])
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
        df = df[df["is_play"] & (df["content_type"] == "track") & df["track_id"].notna()]
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
    ranking = [[u, int(r), t] for u, r, t in top[["user_id", "rank", "track_id"]].itertuples(index=False)]
    return {"startup_seconds": 0.0, "runs": runs, "ranking": ranking}


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
    ids: Ranking = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        spark = SparkSession.builder.remote(url).getOrCreate()
        run(spark, input_path, str(out / "spark-connect"), computed_at=COMPUTED_AT, log=lambda _m: None)
        runs.append(time.perf_counter() - t0)
        ids = [
            [r["user_id"], r["rank"], r["track_id"]]
            for r in spark.read.parquet(str(out / "spark-connect")).orderBy("user_id", "rank").collect()
        ]
        spark.stop()
    return {"runs": runs, "ranking": ids}


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
        ids = [
            [r["user_id"], r["rank"], r["track_id"]]
            for r in spark.read.parquet(str(out / "spark")).orderBy("user_id", "rank").collect()
        ]
    finally:
        spark.stop()
    return {"startup_seconds": startup, "runs": runs, "ranking": ids}


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

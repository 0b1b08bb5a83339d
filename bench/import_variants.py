"""One history-import variant in its own process, so its peak RSS is its own.

    python -m bench.import_variants --variant ours|duckdb_floor|pandas_csv|dlt --export DIR --work DIR

Prints one JSON line: ``{"variant", "rows", "seconds", "peak_rss_mb", ...}``. ``rows`` is the
number of plays in the warehouse table afterwards (all but the floor must agree; the floor keeps
the rows ours quarantines).

* ``ours``: ``spotify-assets import``'s own path (``spotify_assets.import_run.run_import``) into a
  local deployment under ``--work``: parse, dedupe joins and landing by month in the lake in the
  run's ``history_import`` step, then one merge of all the landed files (one DuckDB scan) in its
  ``bq_plays`` step, the run recorded on the data directory's Dagster instance.
* ``pandas_csv``: the seed project's way, done well: ``pd.read_json`` per file, vectorised
  column work in pandas, ``DataFrame.to_csv``, then the CSV bulk-loaded with DuckDB's
  ``read_csv`` (INSERT OR IGNORE) into the same table - the best ordinary CSV load.
* ``pandas_csv_rowwise``: the same, but the CSV loaded row-wise as the seed did (DuckDB
  ``executemany``, one transaction), stopped after ``ROWWISE_ROWS`` rows; its rate is reported.
* ``duckdb_floor``: the engine's floor, nothing else: DuckDB ``read_json`` of the same files
  (auto-detected, as a user would type it) into a table keyed on ``ts`` + the URI (or name)
  with ``INSERT OR IGNORE``. No validation, no quarantine, no lake, no dedupe window, so it
  keeps the no-content rows ours quarantines; ours is judged as a ratio to it.
* ``dlt``: a ``dlt`` pipeline to the duckdb destination, ``write_disposition="merge"`` with
  ``primary_key="play_key"``, fed the rows the project's own parser produces (dlt has no
  Spotify-export reader, and this gives it the same row transform).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from spotify_assets.schema import PLAYS_TABLE, column_names

RUN_AT = datetime(2026, 1, 1, tzinfo=UTC)
#: Rows the row-wise loader inserts before stopping: DuckDB's executemany runs at ~50 rows/s on this
#: table (primary key, 32 columns), so 1M rows would take hours; its rate is measured on a sample.
ROWWISE_ROWS = 500


def _audio_files(export: Path) -> list[Path]:
    return sorted(export.rglob("Streaming_History_Audio_*.json"))


def run_ours(export: Path, work: Path) -> dict[str, Any]:
    from spotify_assets.deployments import deployment_settings
    from spotify_assets.import_run import run_import
    from spotify_assets.resources.warehouse import DuckDBWarehouseResource

    os.environ.pop("DAGSTER_HOME", None)  # the work folder's own instance, never the developer's
    settings = deployment_settings("local", data=work)
    t0 = time.perf_counter()
    report = run_import(export, settings)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "rows": DuckDBWarehouseResource(path=str(settings.data.warehouse)).count(PLAYS_TABLE),
        "lookup_seconds": report.lookup_seconds,
        "landing_seconds": report.landing_seconds,
        "merge_seconds": report.merge_seconds,
        "raw_copy_seconds": report.raw_copy_seconds,
        "read_wait_seconds": report.read_wait_seconds,
        "quarantined": report.quarantined,
        "lake_plays_files": sum(1 for _ in (settings.data.lake / "plays").rglob("*.parquet")),
    }


def run_duckdb_floor(export: Path, work: Path) -> dict[str, Any]:
    files = [str(f) for f in _audio_files(export)]
    t0 = time.perf_counter()
    with duckdb.connect(str(work / "floor.duckdb")) as con:
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        con.execute(f"CREATE TEMP VIEW src AS SELECT * FROM read_json([{listed}], format = 'array')")
        con.execute("CREATE TABLE plays_floor AS SELECT ''::VARCHAR AS play_key, * FROM src LIMIT 0")
        con.execute("ALTER TABLE plays_floor ADD PRIMARY KEY (play_key)")
        con.execute(
            "INSERT OR IGNORE INTO plays_floor SELECT ts || '|' || coalesce(spotify_track_uri, "
            "spotify_episode_uri, master_metadata_track_name, episode_name, ''), * FROM src"
        )
        con.execute("CHECKPOINT")
        rows = int(con.execute("SELECT count(*) FROM plays_floor").fetchall()[0][0])
    return {"seconds": time.perf_counter() - t0, "rows": rows}


def run_pandas_csv(export: Path, work: Path, rowwise_rows: int = 0) -> dict[str, Any]:
    import pandas as pd

    from spotify_assets.resources.warehouse import DuckDBWarehouseResource
    from spotify_assets.schema import empty_frame
    from spotify_assets.tables import plays as plays_table

    db = work / "warehouse.duckdb"
    t0 = time.perf_counter()
    raw = pd.concat([pd.read_json(f, dtype=False) for f in _audio_files(export)], ignore_index=True)
    has_track = raw["master_metadata_track_name"].notna() | raw["spotify_track_uri"].notna()
    has_episode = raw["episode_name"].notna() | raw["spotify_episode_uri"].notna()
    raw = raw[has_track | has_episode].reset_index(drop=True)  # rows with no content are dropped
    track = raw["master_metadata_track_name"].notna() | raw["spotify_track_uri"].notna()
    played_at = pd.to_datetime(raw["ts"], utc=True)
    track_id = raw["spotify_track_uri"].str.extract(r"^spotify:track:([0-9A-Za-z]{22})$")[0]
    episode_id = raw["spotify_episode_uri"].str.extract(r"^spotify:episode:([0-9A-Za-z]{22})$")[0]
    tid = track_id.where(track, episode_id)
    name = raw["master_metadata_track_name"].where(track, raw["episode_name"])
    artist = raw["master_metadata_album_artist_name"].where(track, raw["episode_show_name"])
    stamp = played_at.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    name_key = (
        "name:" + artist.fillna("").str.strip().str.lower() + "|" + name.fillna("").str.strip().str.lower()
    )
    df = pd.DataFrame(
        {
            "play_key": stamp + "|" + tid.fillna(name_key),
            "played_at": played_at,
            "track_id": tid,
            "track_name": name,
            "track_uri": raw["spotify_track_uri"].where(track, raw["spotify_episode_uri"]),
            "artist_names": artist,
            "primary_artist_name": artist,
            "album_name": raw["master_metadata_album_album_name"].where(track),
            "ms_played": raw["ms_played"],
            "skipped": raw["skipped"],
            "shuffle": raw["shuffle"],
            "reason_start": raw["reason_start"],
            "reason_end": raw["reason_end"],
            "platform": raw["platform"],
            "conn_country": raw["conn_country"],
            "offline": raw["offline"],
            "incognito_mode": raw["incognito_mode"],
            "content_type": track.map({True: "track", False: "episode"}),
            "is_play": track & (raw["ms_played"] >= 30_000),
            "source": "extended_export",
            "batch_id": "pandas-csv",
            "ingested_at": RUN_AT,
        }
    )
    csv_path = work / "plays.csv"
    df.to_csv(csv_path, index=False)
    del raw, df
    plays_table.merge_plays(DuckDBWarehouseResource(path=str(db)), empty_frame("plays"))  # same DDL as ours
    con = duckdb.connect(str(db))
    loaded = 0
    t_load = time.perf_counter()
    if rowwise_rows:
        # Row-wise, as the seed did: only the first ``rowwise_rows`` rows (it is too slow for 1M).
        with csv_path.open(newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            sql = (
                f"INSERT OR IGNORE INTO {PLAYS_TABLE} ({', '.join(header)}) "
                f"VALUES ({', '.join('?' * len(header))})"
            )
            con.execute("BEGIN TRANSACTION")
            batch: list[list[Any]] = []
            for row in reader:
                batch.append([None if v == "" else v for v in row])
                loaded += 1
                if len(batch) >= 1_000 or loaded >= rowwise_rows:
                    con.executemany(sql, batch)
                    batch = []
                if loaded >= rowwise_rows:
                    break
            con.execute("COMMIT")
    else:
        con.execute(
            f"INSERT OR IGNORE INTO {PLAYS_TABLE} BY NAME SELECT * FROM read_csv(?, header = true)",
            [str(csv_path)],
        )
    load_seconds = time.perf_counter() - t_load
    rows = int(con.execute(f"SELECT count(*) FROM {PLAYS_TABLE}").fetchall()[0][0])
    con.close()
    return {"seconds": time.perf_counter() - t0, "rows": rows, "load_seconds": load_seconds, "loaded": loaded}


def run_dlt(export: Path, work: Path) -> dict[str, Any]:
    import dlt

    from spotify_assets.imports.parsers import JsonArray, Reject, normalize_extended, play_key

    names = set(column_names("plays"))

    def plays() -> Iterator[dict[str, Any]]:
        for f in _audio_files(export):
            for obj in JsonArray(f.read_bytes()):
                try:
                    row = normalize_extended(obj, RUN_AT)
                except Reject:
                    continue
                row["play_key"] = play_key(
                    row["played_at"], row["track_id"], row["primary_artist_name"], row["track_name"]
                )
                row.update(source="extended_export", batch_id="dlt", ingested_at=RUN_AT)
                yield {k: v for k, v in row.items() if k in names}

    db = work / "warehouse.duckdb"
    t0 = time.perf_counter()
    pipeline = dlt.pipeline(
        pipeline_name="bench_import",
        destination=dlt.destinations.duckdb(str(db)),
        dataset_name="main",
        pipelines_dir=str(work / "dlt_pipelines"),
    )
    resource_ = dlt.resource(plays, name=PLAYS_TABLE, write_disposition="merge", primary_key="play_key")
    pipeline.run(resource_)
    seconds = time.perf_counter() - t0
    with duckdb.connect(str(db), read_only=True) as con:
        rows = int(con.execute(f"SELECT count(*) FROM main.{PLAYS_TABLE}").fetchall()[0][0])
    return {"seconds": seconds, "rows": rows}


VARIANTS = {
    "ours": run_ours,
    "duckdb_floor": run_duckdb_floor,
    "pandas_csv": run_pandas_csv,
    "pandas_csv_rowwise": lambda export, work: run_pandas_csv(export, work, rowwise_rows=ROWWISE_ROWS),
    "dlt": run_dlt,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True)
    parser.add_argument("--export", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--rowwise-rows", type=int, default=ROWWISE_ROWS)
    args = parser.parse_args(argv)
    work = Path(args.work)
    if args.variant == "pandas_csv_rowwise":
        VARIANTS[args.variant] = lambda export, work: run_pandas_csv(export, work, args.rowwise_rows)
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    out = VARIANTS[args.variant](Path(args.export), work)
    # Linux reports ru_maxrss in KiB; children (dlt may fork workers) are counted too.
    rss_kib = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    # The 1-minute load average beside the figure: above 1.5 on this 2-core machine the figure is
    # another process's as much as ours (and the multi-threaded floor suffers most), so re-run.
    load = {"load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}
    print(json.dumps({"variant": args.variant, **out, "peak_rss_mb": rss_kib / 1024, **load}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

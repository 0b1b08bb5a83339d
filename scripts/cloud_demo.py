"""``make cloud-demo``: the cloud deployment's whole stack on loopback, materialized end to end.

Starts, all on 127.0.0.1: the GCS emulator (objects on disk), the BigQuery emulator
(``scripts/bigquery-emulator.sh``; it reads ``gs://`` load URIs from the GCS emulator's disk
store), a Spark standalone master and worker (``spark-class`` from the pyspark wheel), a
PostgreSQL server for the Dagster instance (``scripts/postgres.sh`` + ``deploy/dagster.yaml``)
and the sandbox Spotify API. Then it runs the ``spotify_pipeline`` job with
``SPOTIFY_DEPLOYMENT=cloud`` and only the documented variables, prints the warehouse's play
count and the top ten read back from BigQuery, then renders every dashboard page against the
emulated BigQuery (``app/parity.py``: Streamlit's ``AppTest``, the warehouse chosen by the
app's own ``from_env``) and against a DuckDB copy of the same tables, and prints exactly one
line, ``dashboard on BigQuery: N pages rendered, figures equal to DuckDB's``, or fails
non-zero naming what differed. It stops everything it started, in reverse order, also on
Ctrl-C, SIGTERM or a failure.

Lake objects and BigQuery tables persist under ``$SPOTIFY_DATA_DIR/cloud-demo/`` (so a second
run finds the plays, adds 0 and skips downstream); the Postgres run history and the Spark
daemons' scratch are temporary. ``--fresh`` deletes the persisted state first.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

from spotify_sandbox.demo import demo_sandbox
from spotify_sandbox.processes import stop_groups

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "spotify-demo"
BUCKET = "spotify-demo-lake"
DATASET, STAGING = "spotify", "spotify_staging"
START_TIMEOUT_S = 180
QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def _say(msg: str) -> None:
    print(f"[cloud-demo] {msg}", flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(
    what: str, ready: Callable[[], bool], proc: subprocess.Popen[bytes] | None, log: Path | None
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log else ""
            raise RuntimeError(f"{what} exited during start-up:\n{tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {START_TIMEOUT_S}s")
        time.sleep(0.3)


def _answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return requests.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    return check


@contextlib.contextmanager
def _daemon(
    what: str, cmd: list[str], log: Path, env: dict[str, str], cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child in its own process group, stopped with the whole group on the way out."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        stop_groups([proc], signal.SIGTERM, grace_s=10)
        _say(f"stopped {what}")


@contextlib.contextmanager
def _script_service(
    what: str, script: str, start_args: list[str], stop_args: list[str], env: dict[str, str]
) -> Iterator[str]:
    """A service a project script starts (prints its URL) and stops."""
    try:
        started = subprocess.run(
            ["bash", str(ROOT / "scripts" / script), "start", *start_args],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        if started.returncode != 0:
            raise RuntimeError(f"{script} start failed ({started.returncode}):\n{started.stderr}")
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(
            ["bash", str(ROOT / "scripts" / script), "stop", *stop_args],
            env=env,
            timeout=120,
            capture_output=True,
        )
        _say(f"stopped {what}")


def duckdb_copy(source: Any, folder: Path) -> Path:
    """The BigQuery warehouse's tables written into a fresh DuckDB by the pipeline's own DuckDB
    writer; returns the snapshot the dashboard reads."""
    from spotify_assets.resources.warehouse import DuckDBWarehouseResource
    from spotify_assets.schema import (
        FEATURES_TABLE,
        PLAYS_TABLE,
        TOP_TEN_TABLE,
        TRACK_METADATA_TABLE,
        conform,
    )
    from spotify_assets.tables import plays as plays_table
    from spotify_assets.tables import top_ten as top_ten_table
    from spotify_assets.tables import tracks as tracks_table

    folder.mkdir(parents=True, exist_ok=True)
    snapshot = folder / "warehouse.snapshot.duckdb"
    copy = DuckDBWarehouseResource(path=str(folder / "warehouse.duckdb"), snapshot_path=str(snapshot))
    plays_table.merge_plays(copy, conform(source.query(f"SELECT * FROM {PLAYS_TABLE}"), "plays"))
    tracks_table.merge_features(
        copy, conform(source.query(f"SELECT * FROM {FEATURES_TABLE}"), "track_features")
    )
    tracks_table.merge_metadata(
        copy, conform(source.query(f"SELECT * FROM {TRACK_METADATA_TABLE}"), "track_metadata")
    )
    top_ten_table.replace(copy, conform(source.query(f"SELECT * FROM {TOP_TEN_TABLE}"), "top_ten_tracks"))
    return snapshot


def dashboard_on_bigquery(source: Any, folder: Path) -> str:
    """Render every page on the emulated BigQuery and on a DuckDB copy; the one line, or RuntimeError.

    The BigQuery side is what the deployed dashboard would read: ``app.warehouse.from_env``
    with this process's cloud variables (``SPOTIFY_BQ_ENDPOINT`` among them).
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # ``app`` is not an installed package (Streamlit runs it from the repo)
    from app import parity
    from app.warehouse import BigQueryWarehouse, DuckDBSnapshot, from_env

    bigquery = from_env()
    if not isinstance(bigquery, BigQueryWarehouse):
        raise RuntimeError(f"the dashboard would read {bigquery.source_id}, not BigQuery")
    duckdb = DuckDBSnapshot(duckdb_copy(source, folder))
    params = parity.page_params(bigquery)
    recorded = {"bigquery": parity.RecordingWarehouse(bigquery), "duckdb": parity.RecordingWarehouse(duckdb)}
    pages = {side: parity.render_pages(wh, params) for side, wh in recorded.items()}
    failed = {p.page: p.exceptions for p in pages["bigquery"] + pages["duckdb"] if p.exceptions}
    if failed:
        raise RuntimeError(f"dashboard pages raised: {failed}")
    shown = parity.figure_differences(pages["bigquery"], pages["duckdb"])
    if shown:
        raise RuntimeError(f"dashboard figures differ (BigQuery, DuckDB): {shown}")
    result = parity.compare(recorded["bigquery"].batches, bigquery, duckdb)
    if not result.equal:
        raise RuntimeError(f"dashboard queries differ on BigQuery: {result.differences}")
    figures = sum(len(p.metrics) for p in pages["bigquery"])
    _say(f"{result.compared} distinct queries ({result.rows} rows) and {figures} page figures compared")
    return f"dashboard on BigQuery: {len(pages['bigquery'])} pages rendered, figures equal to DuckDB's"


def run(fresh: bool) -> int:
    started = time.monotonic()
    from spotify_assets.settings import data_dir

    state = data_dir() / "cloud-demo"
    if fresh and state.exists():
        shutil.rmtree(state)
    gcs_base, bq_data = state / "gcs", state / "bigquery"
    for d in (gcs_base, bq_data):
        d.mkdir(parents=True, exist_ok=True)
    scratch = Path(
        tempfile.mkdtemp(prefix="spotify-cloud-demo-", dir="/tmp")
    )  # postgres needs a /tmp dir as root
    env = {
        k: v for k, v in os.environ.items() if k not in ("STORAGE_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST")
    }
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, scratch, True)
        # 1. GCS emulator, objects on disk under state/gcs/objects/<bucket>/<name>
        gcs_port = _free_port()
        gcs_url = f"http://127.0.0.1:{gcs_port}"
        exe = Path(sys.executable).with_name("gcp-storage-emulator")
        proc = stack.enter_context(
            _daemon(
                "the GCS emulator",
                [str(exe), "start", "--host=127.0.0.1", f"--port={gcs_port}", "--quiet"],
                scratch / "gcs.log",
                {**env, "STORAGE_BASE": str(gcs_base), "STORAGE_DIR": "objects"},
                cwd=gcs_base,
            )
        )
        _wait("the GCS emulator", _answers(f"{gcs_url}/storage/v1/b"), proc, scratch / "gcs.log")
        _say(f"GCS emulator at {gcs_url} (objects in {gcs_base / 'objects'})")

        # 2. BigQuery emulator, tables persisted in state/bigquery
        t0 = time.monotonic()
        bq_url = stack.enter_context(
            _script_service(
                "the BigQuery emulator",
                "bigquery-emulator.sh",
                [
                    str(scratch / "bq"),
                    str(_free_port()),
                    str(_free_port()),
                    str(gcs_base / "objects"),
                    PROJECT,
                ],
                [str(scratch / "bq")],
                {**env, "BQEMU_DATA_DIR": str(bq_data)},
            )
        )
        _say(f"BigQuery emulator at {bq_url} (started in {time.monotonic() - t0:.1f}s)")

        # 3. Postgres for the Dagster instance (as root the server runs as "postgres", which
        # needs a directory of its own directly under /tmp, not inside the private scratch)
        pg_dir = Path(tempfile.mkdtemp(prefix="spotify-cloud-demo-pg-", dir="/tmp"))
        stack.callback(shutil.rmtree, pg_dir, True)
        pg_url = stack.enter_context(
            _script_service(
                "PostgreSQL",
                "postgres.sh",
                [str(pg_dir), str(_free_port()), "dagster"],
                [str(pg_dir)],
                env,
            )
        )
        _say(f"PostgreSQL for the Dagster instance at {pg_url.rsplit('@', 1)[-1]}")

        # 4. Spark standalone master + worker
        from spotify_assets.resources.spark import spark_home

        spark_port, spark_ui, worker_ui = _free_port(), _free_port(), _free_port()
        spark_env = {
            **env,
            "SPARK_HOME": str(spark_home()),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_DAEMON_MEMORY": "256m",
            "SPARK_DAEMON_JAVA_OPTS": QUICK_JVM,
            "SPARK_WORKER_DIR": str(scratch / "spark-worker"),
            "SPARK_LOG_DIR": str(scratch / "spark-logs"),
        }
        spark_class = str(spark_home() / "bin" / "spark-class")
        master = stack.enter_context(
            _daemon(
                "the Spark master",
                [
                    spark_class,
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(spark_port),
                    "--webui-port",
                    str(spark_ui),
                ],
                scratch / "spark-master.log",
                spark_env,
            )
        )
        master_url = f"spark://127.0.0.1:{spark_port}"
        _wait(
            "the Spark master",
            _answers(f"http://127.0.0.1:{spark_ui}/json/"),
            master,
            scratch / "spark-master.log",
        )
        worker = stack.enter_context(
            _daemon(
                "the Spark worker",
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    "1",
                    "--memory",
                    "1g",
                    "--webui-port",
                    str(worker_ui),
                    master_url,
                ],
                scratch / "spark-worker.log",
                spark_env,
            )
        )

        def worker_alive() -> bool:
            try:
                status = requests.get(f"http://127.0.0.1:{spark_ui}/json/", timeout=2).json()
            except (requests.RequestException, ValueError):
                return False
            return any(w.get("state") == "ALIVE" for w in status.get("workers", []))

        _wait("the Spark worker", worker_alive, worker, scratch / "spark-worker.log")
        _say(f"Spark master {master_url} with one worker")

        # 5. The sandbox Spotify API, on the demos' clock: its history ends today (a first visit's
        # "Last 4 weeks" is full) and stands still all day (a second demo finds no new plays).
        sandbox = stack.enter_context(demo_sandbox())
        _say(f"sandbox Spotify API at {sandbox.url}")

        # 6. Bucket and datasets (Terraform's job in the cloud), then the documented variables only
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery, storage

        gcs = storage.Client(
            project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": gcs_url}
        )
        if gcs.lookup_bucket(BUCKET) is None:
            gcs.create_bucket(BUCKET)
        bq = bigquery.Client(
            project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": bq_url}
        )
        for name in (DATASET, STAGING):
            bq.create_dataset(name, exists_ok=True)
        dagster_home = scratch / "dagster_home"
        dagster_home.mkdir()
        shutil.copyfile(ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
        from urllib.parse import urlsplit

        pg = urlsplit(pg_url)
        os.environ.update(
            {
                "SPOTIFY_DEPLOYMENT": "cloud",
                "SPOTIFY_GCP_PROJECT": PROJECT,
                "SPOTIFY_GCS_BUCKET": BUCKET,
                "SPOTIFY_BQ_DATASET": DATASET,
                "SPOTIFY_BQ_STAGING_DATASET": STAGING,
                "SPOTIFY_GCS_ENDPOINT": gcs_url,
                "SPOTIFY_BQ_ENDPOINT": bq_url,
                "SPOTIFY_SPARK_MASTER": master_url,
                "SPOTIFY_SANDBOX_URL": sandbox.url,
                "SPARK_LOCAL_IP": "127.0.0.1",
                "PYSPARK_PYTHON": sys.executable,
                "DAGSTER_HOME": str(dagster_home),
                "DAGSTER_POSTGRES_USER": pg.username or "postgres",
                "DAGSTER_POSTGRES_PASSWORD": "unused",  # trust auth on loopback
                "DAGSTER_POSTGRES_HOST": pg.hostname or "127.0.0.1",
                "DAGSTER_POSTGRES_PORT": str(pg.port),
                "DAGSTER_POSTGRES_DB": pg.path.lstrip("/"),
            }
        )
        for name in ("STORAGE_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST", "SPOTIFY_CLIENT_ID"):
            os.environ.pop(name, None)

        # 7. The job, exactly as the deployment's code location defines it
        import dagster as dg

        from spotify_assets.checks import clock_run_config
        from spotify_assets.definitions import defs
        from spotify_assets.schema import ALL_LISTENERS, PLAYS_TABLE, TOP_TEN_TABLE
        from spotify_sandbox.demo import single_user_partition
        from spotify_sandbox.demo_steps import print_table

        instance = stack.enter_context(dg.DagsterInstance.get())
        listener = single_user_partition(defs, instance)  # the sandbox listener's ``users`` partition
        if listener is None:
            return 1
        job = defs.resolve_job_def("spotify_pipeline")
        run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        run_config.update(
            clock_run_config(sandbox.now())
        )  # checks judge by the sandbox's "now", as make demo's
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config=run_config,
            partition_key=listener,
        )
        with contextlib.suppress(Exception):
            from pyspark.sql import SparkSession

            SparkSession.active().stop()  # before the cluster goes away
        if not result.success:
            for event in result.all_events:
                if event.is_failure and event.step_failure_data:
                    print(f"step {event.step_key} failed: {event.step_failure_data.error}", file=sys.stderr)
            print(f"Run {result.run_id} failed.", file=sys.stderr)
            return 1
        materialized = sorted(
            {
                e.asset_key.to_user_string()
                for e in result.all_events
                if e.is_step_materialization and e.asset_key
            }
        )
        skipped = sorted(e.step_key or "" for e in result.all_events if e.event_type_value == "STEP_SKIPPED")
        inserted = 0
        for mat in result.asset_materializations_for_node("bq_plays"):
            inserted = int(mat.metadata["plays_inserted"].value)  # type: ignore[arg-type]
        print(
            f"Run {result.run_id} (Dagster instance on PostgreSQL): materialized {', '.join(materialized) or 'nothing'}"
        )
        checks = result.get_asset_check_evaluations()
        if checks:
            verdicts = ", ".join(
                f"{c.check_name} {'passed' if c.passed else c.severity.value.lower()}" for c in checks
            )
            print(f"Data-quality checks on BigQuery: {verdicts}")
        if skipped:
            print(f"No new plays: skipped {', '.join(skipped)}.")
        with dg.build_resources({"warehouse": (defs.resources or {})["warehouse"]}) as built:
            plays = built.warehouse.count(PLAYS_TABLE)
            top = built.warehouse.query(
                f"SELECT rank, track_name, artist_names, plays, ROUND(minutes_listened, 1) AS minutes, "
                f"last_played_at FROM {TOP_TEN_TABLE} WHERE user_id = '{ALL_LISTENERS}' ORDER BY rank"
            )
        print(
            f"\n{PLAYS_TABLE}: {plays} plays in the warehouse ({inserted} added by this run). Top ten tracks (from BigQuery):\n"
        )
        print_table(list(top.itertuples(index=False, name=None)), list(top.columns))

        # 8. The dashboard, every page, on the emulated BigQuery and on DuckDB over the same tables
        t0 = time.monotonic()
        with dg.build_resources({"warehouse": (defs.resources or {})["warehouse"]}) as built:
            line = dashboard_on_bigquery(built.warehouse, scratch / "dashboard")
        print(f"\n{line}")
        _say(f"dashboard pages rendered and compared in {time.monotonic() - t0:.1f}s")
        print(f"\nDone in {time.monotonic() - started:.1f}s; stopping what was started.")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="make cloud-demo", description=__doc__)
    parser.add_argument("--fresh", action="store_true", help="delete the persisted lake and warehouse first")
    args = parser.parse_args()

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        return run(args.fresh)
    except KeyboardInterrupt:
        print("[cloud-demo] interrupted; everything started was stopped", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"[cloud-demo] failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The top-ten job as a real Spark application on a real standalone cluster.

A master and one worker are started on 127.0.0.1 with the pyspark wheel's ``spark-class``
(the wheel has no ``sbin/start-master.sh``), and ``SparkResource(deploy_mode="submit")``
runs ``spark-submit spark/top_ten.py`` against them: a separate driver, an executor started
by the worker, Parquet in and out. The master's JSON status proves the application ran there.
Every wait has a deadline and both daemons are killed with their process groups at the end.
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spotify_assets.resources.spark import SparkResource, spark_home
from spotify_assets_tests.test_spark_top_ten import expected, history, pandas_rows, write_plays_parquet

pytestmark = [pytest.mark.cluster, pytest.mark.spark, pytest.mark.timeout(240)]

START_TIMEOUT_S = 60
JOB_TIMEOUT_S = 150
#: Short-lived JVMs on 2 cores: the C1 compiler only and a single-threaded collector leave
#: the CPU to the work instead of to optimising code that runs for a few seconds.
QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def bound_ports(master_log: Path) -> tuple[int, int] | None:
    """(master port, web UI port) as the master reports them once bound, from its log.

    The daemons are started on port 0 and bind whatever is free, so no other process can take
    a port between its pick and its bind (a pick-release-bind race on a busy machine).
    """
    text = master_log.read_text(errors="replace") if master_log.exists() else ""
    master = re.search(r"Starting Spark master at spark://[\w.]+:(\d+)", text)
    webui = re.search(r"Successfully started service '?MasterUI'? on port (\d+)", text)
    return (int(master.group(1)), int(webui.group(1))) if master and webui else None


def start_daemon(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``spark-class <args>`` in its own process group, output to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(spark_home() / "bin" / "spark-class"), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group, then SIGKILL what is left; reaps the child either way."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    # The JVM is the group leader (spark-class execs java); nothing of the group may survive.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def master_status(webui_port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{webui_port}/json/", timeout=2) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


def wait_for(what: str, check: Any, procs: list[tuple[subprocess.Popen[bytes], Path]]) -> Any:
    """Poll ``check()`` until it returns something truthy, a daemon dies, or the deadline."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for proc, log in procs:
            if proc.poll() is not None:
                pytest.fail(f"{what}: {log.name} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        value = check()
        if value:
            return value
        time.sleep(0.5)
    logs = "\n".join(f"--- {log.name}\n{log.read_text()[-2000:]}" for _, log in procs)
    pytest.fail(f"{what}: not within {START_TIMEOUT_S}s\n{logs}")


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    """A master and a 1-core, 1 GB worker; yields (master URL, master web UI port, worker dir)."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_DAEMON_MEMORY": "256m",
        "SPARK_DAEMON_JAVA_OPTS": QUICK_JVM,
        # Keep the daemons' scratch (and the executors' logs) out of the pyspark install.
        "SPARK_WORKER_DIR": str(tmp_path / "worker"),
        "SPARK_LOG_DIR": str(tmp_path / "logs"),
    }
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        master_log = tmp_path / "master.log"
        master_args = ["--host", "127.0.0.1", "--port", "0", "--webui-port", "0"]
        procs.append(
            (
                start_daemon(["org.apache.spark.deploy.master.Master", *master_args], master_log, env),
                master_log,
            )
        )
        port, webui = wait_for("master ports", lambda: bound_ports(master_log), procs)
        wait_for("master web UI", lambda: master_status(webui), procs)

        url = f"spark://127.0.0.1:{port}"
        worker_log = tmp_path / "worker.log"
        worker_args = [
            url,
            "--cores",
            "1",
            "--memory",
            "1g",
            "--host",
            "127.0.0.1",
            "--webui-port",
            "0",
        ]
        worker_args += ["--work-dir", str(tmp_path / "worker")]
        procs.append(
            (
                start_daemon(["org.apache.spark.deploy.worker.Worker", *worker_args], worker_log, env),
                worker_log,
            )
        )

        def worker_alive() -> bool:
            status = master_status(webui) or {}
            return any(w.get("state") == "ALIVE" for w in status.get("workers", []))

        wait_for("worker registration", worker_alive, procs)
        yield url, webui, tmp_path / "worker"
    finally:
        for proc, _ in reversed(procs):
            stop_daemon(proc)


def cluster_resource(url: str, app_name: str) -> SparkResource:
    return SparkResource(
        master=url,
        deploy_mode="submit",
        app_name=app_name,
        submit_timeout_seconds=JOB_TIMEOUT_S,
        spark_conf={
            "spark.driver.memory": "512m",
            "spark.executor.memory": "512m",
            "spark.cores.max": "1",
            "spark.sql.shuffle.partitions": "2",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.extraJavaOptions": QUICK_JVM,
            "spark.executor.extraJavaOptions": QUICK_JVM,
        },
    )


def test_top_ten_runs_on_a_standalone_cluster(
    standalone_cluster: tuple[str, int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, webui, worker_dir = standalone_cluster
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    source = write_plays_parquet(tmp_path / "lake" / "plays.parquet", history())
    resource = cluster_resource(url, "top-ten-cluster-test")
    result = resource.run_top_ten(str(source), str(tmp_path / "top_ten"), n=5)

    assert pandas_rows(result) == expected(5)
    assert str(result["plays"].dtype) == "Int64" and str(result["computed_at"].dtype) == "datetime64[us, UTC]"
    assert len(list((tmp_path / "top_ten").glob("part-*.parquet"))) == 1
    # The master ran it: one finished application of ours, whose executor the worker started.
    status = master_status(webui) or {}
    apps = [a for a in status.get("completedapps", []) if a.get("name") == "top-ten-cluster-test"]
    assert len(apps) == 1 and apps[0].get("state") == "FINISHED", status
    assert any(worker_dir.glob(f"{apps[0]['id']}/*/stderr")), "the worker never started an executor"


def test_failed_application_is_reported_with_the_jobs_reason(
    standalone_cluster: tuple[str, int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver exits 2 on a missing input path (before it asks the master for anything);
    the resource raises with the job's own words."""
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    resource = cluster_resource(standalone_cluster[0], "top-ten-cluster-failure")
    with pytest.raises(RuntimeError, match=r"exited with status 2(.|\n)*input path does not exist"):
        resource.run_top_ten(str(tmp_path / "missing.parquet"), str(tmp_path / "out"))


def test_submit_timeout_kills_the_whole_application(tmp_path: Path) -> None:
    """A job over its time limit is killed with everything it started: no JVM is left behind."""
    marker = f"timeout-probe-{uuid.uuid4().hex}"
    source = write_plays_parquet(tmp_path / "plays.parquet", history())
    resource = SparkResource(
        master="local[1]", deploy_mode="submit", app_name=marker, submit_timeout_seconds=1
    )
    with pytest.raises(RuntimeError, match="did not finish within 1s"):
        resource.run_top_ten(str(source), str(tmp_path / "out"))
    survivors = [
        ln
        for ln in subprocess.run(
            ["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        if marker in ln
    ]
    assert survivors == []

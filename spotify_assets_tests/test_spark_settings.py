"""The warm Spark Connect server ``make dev`` keeps is sized for a household (``spark/settings.py``,
issue 28): the JVM ``spotify-assets dev`` starts gets the household's heap and options, a big
library's ``SPOTIFY_SPARK_DRIVER_MEMORY`` / ``SPOTIFY_SPARK_JAVA_OPTIONS`` reach it, and that lean
JVM still runs the top-ten job.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spark.settings import (
    HOUSEHOLD_DRIVER_MEMORY,
    HOUSEHOLD_JAVA_OPTIONS,
    LOCAL_SQL_CONF,
    WARM_SERVER_CONF,
    household_jvm,
)
from spotify_assets.resources.spark import SparkResource
from spotify_sandbox.processes import command_line, descendants

pytestmark = [pytest.mark.spark, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[1]


def test_the_household_jvm_and_a_big_librarys_overrides() -> None:
    assert household_jvm({}).driver_memory == HOUSEHOLD_DRIVER_MEMORY == "1g"
    assert household_jvm({}).java_options == HOUSEHOLD_JAVA_OPTIONS
    assert "-Xms64m" in HOUSEHOLD_JAVA_OPTIONS and "-Xmx" not in HOUSEHOLD_JAVA_OPTIONS  # Spark forbids it
    big = household_jvm({"SPOTIFY_SPARK_DRIVER_MEMORY": " 4g ", "SPOTIFY_SPARK_JAVA_OPTIONS": "-XX:+UseG1GC"})
    assert (big.driver_memory, big.java_options) == ("4g", "-XX:+UseG1GC")
    assert household_jvm({"SPOTIFY_SPARK_DRIVER_MEMORY": ""}).driver_memory == "1g"  # blank = unset


def test_the_in_process_spark_has_the_servers_sql_settings() -> None:
    """One home: a run's fallback session and the warm server agree on every SQL setting."""
    conf = SparkResource().effective_conf()
    assert {k: conf[k] for k in LOCAL_SQL_CONF} == LOCAL_SQL_CONF


def test_dev_starts_the_warm_server_with_the_household_jvm_and_it_runs_the_top_ten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spotify_sandbox.demo import _start_spark_connect

    monkeypatch.setenv("SPOTIFY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SPOTIFY_SPARK_REMOTE", "")  # none given: dev starts its own (and sets it)
    monkeypatch.delenv("SPOTIFY_SPARK_MASTER", raising=False)
    monkeypatch.setenv("SPOTIFY_SPARK_DRIVER_MEMORY", "600m")
    server = _start_spark_connect()
    assert server is not None and server.proc is not None
    try:
        url = server.wait_ready(timeout_s=240)
        java = [
            p for p in [server.proc.pid, *descendants(server.proc.pid)] if "SparkSubmit" in command_line(p)
        ]
        assert len(java) == 1, [command_line(p) for p in descendants(server.proc.pid)]
        argv = command_line(java[0])
        assert "-Xmx600m" in argv, argv
        for option in HOUSEHOLD_JAVA_OPTIONS.split():
            assert option in argv, (option, argv)
        for key, value in WARM_SERVER_CONF.items():
            assert f"{key}={value}" in argv, (key, argv)
        # The lean JVM runs the job the pipeline sends it (a client in its own process: pyspark
        # holds one kind of session per process).
        code = (
            "import os; from spark.connect_server import warm_up; warm_up(os.environ['SPOTIFY_SPARK_REMOTE'])"
        )
        env = {**os.environ, "SPOTIFY_SPARK_REMOTE": url, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        server.stop()

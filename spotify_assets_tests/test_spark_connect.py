"""The warm Spark path: the top-ten step as a client of a real Spark Connect server, the
fallback to an in-process session, and loopback-only binding of both.

The clients run in child processes: a process holding the shared classic ``spark`` session
cannot also hold a Connect session, and a run of the pipeline is a process of its own anyway
(``dagster dev`` starts one per run). The server is the session-wide ``spark_connect_server``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from spark.connect_server import SparkConnectServer, free_port, server_command
from spotify_assets.deployments import spark_resource
from spotify_assets.resources.spark import SparkResource, connect_endpoint, connect_session, redact
from spotify_assets_tests.fixtures.sockets import is_loopback, listening_sockets, process_tree
from spotify_assets_tests.test_spark_top_ten import EXPECTED, history, write_plays_parquet

pytestmark = [pytest.mark.spark, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[1]
#: EXPECTED as it comes through the client's JSON line.
EXPECTED_JSON = json.loads(json.dumps([list(r) for r in EXPECTED], default=str))

#: A pipeline step's Spark work in a fresh process: the resource as the pipeline builds it
#: (``spark_resource()`` from the environment), one top-ten run, then a JSON line saying where
#: it ran. With ``hold``, it then waits for a line on stdin, so the test can look at the
#: sockets of the process tree (the in-process JVM included) while the session is alive.
CLIENT = textwrap.dedent(
    """
    import json, logging, sys, time
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    from spotify_assets.deployments import spark_resource
    from spotify_assets.resources.spark import is_connect_session
    resource = spark_resource().process_config_and_initialize()  # resolves the EnvVar, as a run does
    log = logging.getLogger("client")
    t0 = time.perf_counter()
    frame = resource.run_top_ten(sys.argv[1], sys.argv[2], n=10, log=log)
    seconds = time.perf_counter() - t0
    session = resource.get_session(log)
    from spotify_assets_tests.test_spark_top_ten import pandas_rows
    ranking = [list(r) for r in pandas_rows(frame)]
    print(json.dumps({"connect": is_connect_session(session), "rows": len(frame), "seconds": seconds,
                      "ranking": ranking}, default=lambda v: v.item() if hasattr(v, "item") else str(v)), flush=True)
    if sys.argv[3] == "hold":
        sys.stdin.readline()
    """
)


def client_env(remote: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPOTIFY_SPARK_MASTER": "local[2]"}
    for var in (
        "SPARK_REMOTE",
        "SPARK_CONNECT_MODE_ENABLED",
        "SPARK_LOCAL_IP",
        "SPARK_CONNECT_AUTHENTICATE_TOKEN",
    ):
        env.pop(var, None)
    env["SPOTIFY_SPARK_REMOTE"] = remote
    return env


def run_client(remote: str, source: Path, out: Path) -> tuple[dict[str, object], str]:
    proc = subprocess.run(
        [sys.executable, "-c", CLIENT, str(source), str(out), "once"],
        env=client_env(remote),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def assert_loopback_only(pid: int, what: str) -> list[tuple[str, int]]:
    sockets = listening_sockets(process_tree(pid))
    assert sockets, f"{what}: no listening socket found at all (is the process tree right?)"
    exposed = [(addr, port) for addr, port in sockets if not is_loopback(addr)]
    assert not exposed, f"{what} listens beyond loopback: {exposed} (all: {sockets})"
    return sockets


def test_the_pipeline_step_runs_on_the_warm_server(
    spark_connect_server: SparkConnectServer, tmp_path: Path
) -> None:
    source = write_plays_parquet(tmp_path / "plays.parquet", history())
    report, log = run_client(spark_connect_server.url, source, tmp_path / "top")
    assert report["connect"] is True, log[-3000:]
    assert "Running top-ten on the Spark Connect server" in log
    assert spark_connect_server.token and spark_connect_server.token not in log  # the URL is redacted
    assert report["ranking"] == EXPECTED_JSON
    # A second run is the warm case: same server, same answer.
    report, _ = run_client(spark_connect_server.url, source, tmp_path / "top2")
    assert report["connect"] is True and report["rows"] == len(EXPECTED)


def test_without_the_token_the_run_falls_back_and_everything_binds_loopback_only(
    spark_connect_server: SparkConnectServer, tmp_path: Path
) -> None:
    """A server that refuses us means an in-process session, not a failed run; and neither
    that session's JVM nor the Connect server listens on anything but loopback."""
    source = write_plays_parquet(tmp_path / "plays.parquet", history())
    assert spark_connect_server.port is not None
    wrong = f"sc://localhost:{spark_connect_server.port}/;token=not-the-token"
    proc = subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(source), str(tmp_path / "top"), "hold"],
        env=client_env(wrong),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read()[-3000:] if proc.stderr else "no output"
        report = json.loads(line)
        assert report["connect"] is False
        assert report["ranking"] == EXPECTED_JSON
        # The run's process is alive and holds its JVM (py4j gateway, block manager, ...).
        local = assert_loopback_only(proc.pid, "the in-process Spark session")
        assert len(local) >= 2, local
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=120)
        stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, stderr[-3000:]
    assert "did not answer" in stderr and "using an in-process session" in stderr
    assert spark_connect_server.proc is not None
    served = assert_loopback_only(spark_connect_server.proc.pid, "the Spark Connect server")
    assert ("127.0.0.1", spark_connect_server.port) in served


def test_a_closed_port_is_found_quickly_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The 2 s limit is the probe's: pyspark's import (seconds when cold, and paid once per run
    process whatever the probe finds) is done before the clock starts."""
    import pyspark.sql  # noqa: F401 - imported here, outside the timed part

    log = logging.getLogger("connect-probe")
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="connect-probe"):
        assert connect_session("sc://127.0.0.1:1/;token=secret", log) is None
    assert time.monotonic() - t0 < 2
    assert any("sc://127.0.0.1:1 not reachable" in m and "in-process" in m for m in caplog.messages)
    assert not any("secret" in m for m in caplog.messages)


def test_connect_urls_are_parsed_and_redacted() -> None:
    assert connect_endpoint("sc://localhost:15003/;token=abc") == ("localhost", 15003)
    assert connect_endpoint("sc://spark-connect") == ("spark-connect", 15002)
    assert redact("sc://localhost:15003/;token=abc;use_ssl=false") == "sc://localhost:15003"
    with pytest.raises(ValueError, match="not a Spark Connect URL"):
        connect_endpoint("http://localhost:15002/;token=abc")


def test_the_remote_comes_from_the_environment_as_a_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPOTIFY_SPARK_REMOTE", raising=False)
    assert spark_resource().remote == ""
    monkeypatch.setenv("SPOTIFY_SPARK_REMOTE", "sc://localhost:15002/;token=abc")
    resource = spark_resource()
    # An EnvVar: the definitions (and the Dagster UI) hold the variable's name, never the token;
    # a run resolves it.
    assert resource.remote == "SPOTIFY_SPARK_REMOTE"
    assert resource.process_config_and_initialize().remote == "sc://localhost:15002/;token=abc"


def test_local_masters_bind_loopback_and_clusters_do_not() -> None:
    local = SparkResource(master="local[*]").effective_conf()
    assert local["spark.driver.bindAddress"] == local["spark.driver.host"] == "127.0.0.1"
    assert local["spark.ui.enabled"] == "false"
    cluster = SparkResource(master="spark://spark-master:7077").effective_conf()
    assert "spark.driver.host" not in cluster and "spark.driver.bindAddress" not in cluster


def test_the_server_command_binds_loopback_and_keeps_the_token_off_argv() -> None:
    server = SparkConnectServer(master="local[2]")
    cmd = server_command(server.master, 0, server.conf)
    assert "spark.connect.grpc.binding.address=127.0.0.1" in cmd
    assert "spark.driver.bindAddress=127.0.0.1" in cmd and "spark.ui.enabled=false" in cmd
    assert server.token and not any(server.token in part for part in cmd)


def test_a_given_token_is_used_and_none_means_none() -> None:
    """The compose test stack hands the server its token (SPARK_CONNECT_AUTHENTICATE_TOKEN) and
    the code location the same one; a private-network server runs without one."""
    given = SparkConnectServer(token="from-the-env-file", port=15002)
    assert given.token == "from-the-env-file"
    assert given.url == "sc://localhost:15002/;token=from-the-env-file"
    assert SparkConnectServer(token=False, port=15002).url == "sc://localhost:15002"
    generated = SparkConnectServer(port=15002).token
    assert generated and generated != SparkConnectServer(port=15002).token


def test_the_warm_up_job_runs_on_the_server(spark_connect_server: SparkConnectServer) -> None:
    """What ``make dev`` and the compose stack run before they report the server ready: one small
    top-ten job, in a process of its own (this one holds the classic shared session)."""
    code = "import sys; from spark.connect_server import warm_up; print(warm_up(sys.argv[1]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, spark_connect_server.url],
        env=client_env(spark_connect_server.url),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert float(proc.stdout.strip().splitlines()[-1]) > 0


def test_the_servers_log_is_capped_and_rotated_between_lines(tmp_path: Path) -> None:
    """The JVM's output passes through ``copy_capped``: past the cap the log moves to ``.1``
    (the older ``.1`` is dropped), so disk use stays under twice the cap however long it runs."""
    import io

    from spark.connect_server import copy_capped

    lines = [f"line {i:03d} {'x' * 20}\n".encode() for i in range(100)]  # 30 bytes each
    echo = io.BytesIO()
    log = tmp_path / "server.log"
    copy_capped(io.BytesIO(b"".join(lines)), log, max_bytes=300, echo=echo)
    backup = tmp_path / "server.log.1"
    assert log.read_bytes() == b"".join(lines[90:])  # the last ten lines, whole
    assert backup.read_bytes() == b"".join(lines[80:90])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.log", "server.log.1"]
    assert echo.getvalue() == b"".join(lines)  # the container's stdout gets everything


def test_two_devs_started_at_once_get_ports_of_their_own() -> None:
    """``dev``'s Connect server port (``free_port``) is the system's pick, not Spark's 15002 when it is
    free: two ``dev`` trees started at once both took 15002, the second's server could not bind it,
    and its runs reached the first's server, which refused their token (the s34 soaks)."""
    chosen = [free_port() for _ in range(5)]
    assert len(set(chosen)) == len(chosen), chosen

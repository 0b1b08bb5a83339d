"""``spotify-assets dev`` keeps its servers running: a dead one is named in the log and restarted (issue 27).

The soak found that a code server killed under ``dev`` was never restarted: its code location
stayed in error, so the sensor never ticked again and the UI showed no project, until someone
restarted everything. Here a real ``spotify-assets dev`` (sandbox, warm Spark, ``dagster dev``)
loses, one after the other, the code server (SIGKILL of ``dagster api grpc``), the daemon and
the Spark Connect server; after each the log says what died and that it restarted, the UI's
GraphQL API answers for the project again and the sensor's next tick runs (or the Connect
server answers on its port again). All waits are conditions.

And the supervisor's policy on real short-lived processes: a child that keeps dying is
restarted with a growing delay, then everything stops with a message naming it; a child that
is not essential (the Connect server: runs fall back to an in-process Spark) is left stopped.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from spotify_assets_tests.test_dev_command_stop import _alive, _cmdline, _free_port, _tree, _ui_up
from spotify_sandbox.supervisor import (
    CODE_SERVER_NAME,
    DAGSTER_DEV_NAME,
    Backoff,
    Child,
    GaveUp,
    Supervisor,
    restarted_line,
)

#: Starts whole ``spotify-assets dev`` trees and times them: one file after another (conftest.PROCESS_TREES).
pytestmark = pytest.mark.process_tree

START_TIMEOUT_S = 240.0
#: A kill, the restart, then a sensor tick (once a minute) on a busy machine.
RECOVERY_TIMEOUT_S = 240.0
LOCATION = "spotify_assets"  # workspace.yaml
#: The supervisor's resident memory, at most (it imports neither Dagster nor pandas nor Spark).
SUPERVISOR_RSS_KIB = 80 * 1024
SENSOR = "new_plays_sensor"


def _graphql(port: int, query: str) -> dict[str, Any]:
    body = json.dumps({"query": query}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
    return answer


def _last_tick(port: int) -> tuple[float, str] | None:
    """(timestamp, status) of the sensor's latest tick, as the UI reads it; None while the UI
    cannot show the project's sensor (its code location in error, the webserver down)."""
    query = (
        "query { sensorOrError(sensorSelector: {repositoryLocationName: "
        f'"{LOCATION}", repositoryName: "__repository__", sensorName: "{SENSOR}"}}) '
        "{ __typename ... on Sensor { sensorState { ticks(limit: 1) { timestamp status } } } } }"
    )
    try:
        sensor = _graphql(port, query)["data"]["sensorOrError"]
    except (OSError, KeyError, TypeError, ValueError):
        return None
    if sensor.get("__typename") != "Sensor":
        return None
    ticks = sensor["sensorState"]["ticks"]
    return (float(ticks[0]["timestamp"]), str(ticks[0]["status"])) if ticks else None


def _ticked_since(port: int, since: float) -> bool:
    """The sensor evaluated to the end after ``since`` (a tick that failed does not count)."""
    tick = _last_tick(port)
    return tick is not None and tick[0] > since and tick[1] in ("SKIPPED", "SUCCESS")


def _pids(root: int, piece: str) -> list[int]:
    return [pid for pid in _tree(root) if piece in _cmdline(pid)]


def _port_answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _until(condition: Any, timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, (
            f"{what} within {timeout_s:g} s; log:\n" + log.read_text(errors="replace")[-4000:]
        )
        time.sleep(1)  # the interval between two looks


@pytest.mark.slow
def test_dev_restarts_a_killed_code_server_daemon_and_spark_server(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "DAGSTER_"))}
    env["SPOTIFY_DATA_DIR"] = str(tmp_path / "data")
    log_path = tmp_path / "dev.log"
    log = log_path.open("wb")
    dev = subprocess.Popen(
        [str(Path(sys.executable).with_name("spotify-assets")), "dev", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    tree: set[int] = set()
    try:
        _until(
            lambda: _ui_up(port) and _pids(dev.pid, " api grpc") and _ticked_since(port, 0.0),
            START_TIMEOUT_S,
            "dev did not come up with a sensor tick",
            log_path,
        )

        # The code server: SIGKILL, as the out-of-memory killer would.
        (code_server,) = _pids(dev.pid, " api grpc")
        killed_at = datetime.now(UTC).timestamp()
        os.kill(code_server, signal.SIGKILL)
        # The sensor can tick again before dev's reload call returns (the daemon reloads the location
        # on its own): both are waited for (CI-s34, load 17: the tick came first).
        _until(
            lambda: (
                _ticked_since(port, killed_at)
                and restarted_line(CODE_SERVER_NAME) in log_path.read_text(errors="replace")
            ),
            RECOVERY_TIMEOUT_S,
            "the sensor did not tick again, or dev did not say it restarted the code server",
            log_path,
        )
        text = log_path.read_text(errors="replace")
        assert f"the code server (pid {code_server}) died" in text, text[-3000:]
        assert restarted_line(CODE_SERVER_NAME) in text, text[-3000:]
        assert dev.poll() is None

        # The daemon: dagster dev stops with it and is started again, UI on the same port.
        (daemon,) = _pids(dev.pid, "dagster._daemon run")
        killed_at = datetime.now(UTC).timestamp()
        os.kill(daemon, signal.SIGKILL)
        _until(
            lambda: (
                _ticked_since(port, killed_at)
                and _pids(dev.pid, "dagster._daemon run")
                and restarted_line(DAGSTER_DEV_NAME) in log_path.read_text(errors="replace")
            ),
            RECOVERY_TIMEOUT_S,
            "the sensor did not tick again, or dev did not say it restarted dagster dev",
            log_path,
        )
        text = log_path.read_text(errors="replace")
        assert f"the Dagster daemon (pid {daemon}) died" in text, text[-3000:]
        assert restarted_line(DAGSTER_DEV_NAME) in text, text[-3000:]

        # The Spark Connect server: started again on the port (and token) the runs were given.
        spark = [pid for pid in _tree(dev.pid) if "SparkConnectServer" in _cmdline(pid)]
        assert spark, "no Spark Connect server in the tree"
        spark_port = int(_cmdline(spark[0]).split("spark.connect.grpc.binding.port=")[1].split()[0])
        for pid in spark:
            os.kill(pid, signal.SIGKILL)
        _until(
            lambda: (
                "the Spark Connect server restarted" in log_path.read_text(errors="replace")
                and _port_answers(spark_port)
            ),
            RECOVERY_TIMEOUT_S,
            "the Spark Connect server did not answer again",
            log_path,
        )
        assert dev.poll() is None
        # Supervising costs little memory, however long it lasts (issue 28; it held ~250 MiB).
        rss_kib = next(
            int(line.split()[1])
            for line in Path(f"/proc/{dev.pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        assert rss_kib < SUPERVISOR_RSS_KIB, f"spotify-assets dev holds {rss_kib // 1024} MiB"
        tree = _tree(dev.pid)
        dev.send_signal(signal.SIGTERM)
        assert dev.wait(timeout=30) == 0
    finally:
        for pid in _alive(tree | _tree(dev.pid) | {dev.pid}):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            dev.wait(timeout=10)
        log.close()


def _python(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def _fast() -> Backoff:
    return Backoff(first_s=0.05, max_s=0.2, stable_s=30.0, give_up_after=3)


def test_a_child_that_keeps_dying_is_restarted_with_backoff_then_everything_stops() -> None:
    said: list[str] = []
    starts: list[float] = []

    def crashing() -> subprocess.Popen[bytes]:
        starts.append(time.monotonic())
        return _python("raise SystemExit(3)")

    supervisor = Supervisor(say=said.append, interval_s=0.02)
    steady = supervisor.add(Child("the steady one", start=lambda: _python("import time; time.sleep(60)")))
    supervisor.add(Child("the crashing one", start=crashing, backoff=_fast()))
    try:
        with pytest.raises(GaveUp, match=r"the crashing one exited \(status 3\).*3 restarts in a row"):
            supervisor.watch()
        assert len(starts) == 4  # the start, then 3 restarts
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2, gaps  # 0.05, 0.1, 0.2 s
        assert sum("the crashing one exited (status 3); restarting it in" in line for line in said) == 3
        assert sum("the crashing one restarted (pid" in line for line in said) == 3
        assert steady.proc is not None and steady.proc.poll() is None  # untouched
    finally:
        for proc in supervisor.procs():
            proc.kill()
            proc.wait()


def test_a_child_that_is_not_essential_is_left_stopped_and_the_rest_go_on() -> None:
    said: list[str] = []
    supervisor = Supervisor(say=said.append, interval_s=0.02)
    spark = Child(
        "the Spark Connect server",
        start=lambda: _python("raise SystemExit(1)"),
        backoff=_fast(),
        essential=False,
        without_it="runs use an in-process Spark",
    )
    supervisor.add(spark)
    supervisor.add(Child("the sandbox API", start=lambda: _python("import time; time.sleep(60)")))
    try:
        deadline = time.monotonic() + 20
        while spark in supervisor.children:
            assert time.monotonic() < deadline, said
            supervisor.check()
            time.sleep(0.02)
        assert said[-1].endswith("left stopped: runs use an in-process Spark"), said
        assert [c.name for c in supervisor.children] == ["the sandbox API"]
    finally:
        for proc in supervisor.procs():
            proc.kill()
            proc.wait()


def test_a_child_that_stayed_up_is_forgiven_its_earlier_deaths() -> None:
    backoff = Backoff(first_s=1.0, max_s=8.0, stable_s=60.0, give_up_after=3)
    assert [backoff.delay_after(1.0) for _ in range(3)] == [1.0, 2.0, 4.0]
    assert backoff.delay_after(1.0) is None
    assert backoff.delay_after(120.0) == 1.0  # it had stayed up two minutes: a fresh start

"""What the soak found in ``spotify-assets dev``'s supervisor, and the process tree it reads.

- Stop signals: ``dev`` holds SIGINT, SIGTERM and SIGHUP back while it starts a child, so a stop
  that arrives meanwhile finds the child recorded and stops it too. The hold leaked into every
  child: it blocked the signals (``pthread_sigmask``), a signal mask survives ``fork`` and
  ``exec``, so ``dagster dev``, the daemon, the code server, each run worker and every process
  they started had the three signals blocked for good. A stop's polite signal did nothing (only
  the SIGKILL after the grace ended them), and Dagster's compute-log capture, which ends its
  ``tail -F`` with SIGTERM and waits up to 30 s for it, made a run take 68 s instead of 9 and
  left two ``tail`` processes behind per run. The hold must also work from a thread.
- Servers by their place: a server's child carries the server's command line from ``fork``
  until it ``exec``s; taken for the webserver, its exit read as the webserver's death, and the
  supervisor then ignored every later death below ``dagster dev`` (a killed code server stayed
  dead).
- ``spotify_sandbox.processes``: the tree below a process, from ``/proc``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from spotify_sandbox.processes import command_line, descendants, live_processes
from spotify_sandbox.supervisor import (
    STOP_SIGNALS,
    Child,
    GraphQL,
    Supervisor,
    dagster_processes,
    stop_signals_held,
)


def _blocked(pid: int) -> set[signal.Signals]:
    """The signals ``pid`` has blocked (``SigBlk`` in ``/proc/<pid>/status``)."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    mask = int(next(line for line in status if line.startswith("SigBlk:")).split()[1], 16)
    return {sig for sig in signal.Signals if mask & (1 << (sig - 1))}


def test_a_child_started_while_stop_signals_are_held_still_hears_them() -> None:
    # As Dagster's compute-log capture does: start ``tail -F``, end it with SIGTERM, wait for it.
    code = (
        "import subprocess, sys\n"
        "tail = subprocess.Popen(['tail', '-F', '/dev/null'])\n"
        "tail.terminate()\n"
        "try:\n"
        "    tail.wait(timeout=5)\n"
        "except subprocess.TimeoutExpired:\n"
        "    tail.kill()\n"
        "    sys.exit('tail did not end on SIGTERM')\n"
        "import time; time.sleep(60)\n"
    )
    child = Child(
        "a server", start=lambda: subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    )
    child.launch()
    proc = child.proc
    assert proc is not None
    try:
        assert not _blocked(proc.pid) & set(STOP_SIGNALS), "the child starts with stop signals blocked"
        time.sleep(0.2)  # not a wait for a condition: the grandchild's check is what may fail here
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == -signal.SIGTERM, "the child did not end on SIGTERM"
    finally:
        proc.kill()
        proc.wait()


class _Stop(BaseException):
    pass


def _raise_stop(signum: int, _frame: object) -> None:
    raise _Stop(signum)


@pytest.mark.parametrize("sig", STOP_SIGNALS)
def test_a_stop_signal_during_the_hold_comes_after_it_with_the_child_recorded(sig: signal.Signals) -> None:
    previous = signal.signal(sig, _raise_stop)
    recorded: list[subprocess.Popen[bytes]] = []
    try:
        with pytest.raises(_Stop), stop_signals_held():
            proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
            signal.raise_signal(sig)  # a stop arrives while the child is being started
            for _ in range(1000):  # bytecodes enough for a handler to run, if one were let through
                pass
            recorded.append(proc)
        assert recorded, "the stop interrupted the start before the child was recorded"
        # Once the hold ends, the handler is the caller's again.
        assert signal.getsignal(sig) is _raise_stop
    finally:
        signal.signal(sig, previous)
        for proc in recorded:
            proc.kill()
            proc.wait()


def test_descendants_are_the_whole_tree_below_a_process_with_their_parents() -> None:
    # A child that starts a grandchild; both must be found, each with its parent, by command line.
    code = "import subprocess, time; subprocess.Popen(['sleep', '61']); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while len(found := descendants(os.getpid())) < 2 or not any(
            command_line(pid) == "sleep 61 " for pid in found
        ):
            assert time.monotonic() < deadline, found
            time.sleep(0.05)
        assert found[proc.pid] == os.getpid()
        grandchild = next(pid for pid in found if command_line(pid) == "sleep 61 ")
        assert found[grandchild] == proc.pid
        assert command_line(proc.pid).startswith(sys.executable)
        assert proc.pid in live_processes() and grandchild in live_processes()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_child_started_from_another_thread_under_the_hold_starts_and_hears_stop_signals() -> None:
    # dev's Spark warm-up starts its helper from a thread: the hold must neither fail there
    # ("signal only works in main thread") nor block the signals the child inherits.
    started: list[subprocess.Popen[bytes]] = []
    failed: list[BaseException] = []

    def start() -> None:
        try:
            with stop_signals_held():
                started.append(subprocess.Popen(["sleep", "60"], start_new_session=True))
        except BaseException as exc:  # reported below, in the test's thread
            failed.append(exc)

    thread = threading.Thread(target=start)
    thread.start()
    thread.join(timeout=30)
    try:
        assert not failed, failed
        assert len(started) == 1
        assert not _blocked(started[0].pid) & set(STOP_SIGNALS)
    finally:
        for proc in started:
            proc.kill()
            proc.wait()


#: A stand-in for ``dagster dev``: a webserver and a daemon (their command lines hold the roles'
#: pieces), the webserver forking short-lived children that keep its command line, as a server's
#: child does from ``fork`` until it ``exec``s.
_FAKE_DAGSTER_DEV = """
import os, subprocess, sys, time
web = '''
import os, time
while True:
    pid = os.fork()
    if pid == 0:
        time.sleep(0.2)
        os._exit(0)
    os.waitpid(pid, 0)
'''
servers = [
    subprocess.Popen([sys.executable, "-c", web, "dagster_webserver"]),
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "dagster._daemon run"]),
]
time.sleep(120)
"""


def test_a_server_s_short_lived_child_is_not_taken_for_the_server() -> None:
    # The soak found dev saying "the Dagster webserver (pid N) died" at start-up while the
    # webserver lived on: N was a child of the webserver, under the same command line. The
    # supervisor then waited for dagster dev to exit and ignored every death below it, so the
    # code server killed minutes later was never restarted (the location stayed in error).
    said: list[str] = []
    supervisor = Supervisor(say=said.append, interval_s=0.02)
    dagster = supervisor.add_dagster(
        Child("dagster dev", start=lambda: _popen_session([sys.executable, "-c", _FAKE_DAGSTER_DEV])),
        GraphQL("http://127.0.0.1:9/graphql"),
    )
    assert dagster.proc is not None
    try:
        deadline = time.monotonic() + 30
        while {role for role, _ in dagster_processes(dagster.proc.pid).values()} != {
            "dagster_webserver",
            "dagster._daemon run",
        }:
            assert time.monotonic() < deadline, dagster_processes(dagster.proc.pid)
            time.sleep(0.05)
        for _ in range(100):  # 2 s of looks, while the webserver forks a child every 0.2 s
            supervisor.check()
            time.sleep(0.02)
        assert not [line for line in said if "died" in line], said
    finally:
        os.killpg(dagster.proc.pid, signal.SIGKILL)
        dagster.proc.wait()


def _popen_session(cmd: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, start_new_session=True)

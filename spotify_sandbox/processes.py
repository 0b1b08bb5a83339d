"""Stopping child process groups promptly and completely.

Development commands (``spotify-assets dev``, ``make cloud-demo``) start servers that start
servers of their own (``dagster dev`` → webserver, daemon, code servers). Each child is started
as the leader of its own process group, so one ``killpg`` reaches every descendant (Dagster
starts none in a new session). Stopping is two-phase: a polite signal to every group at once,
then SIGKILL to whatever is left when the grace period ends: on a loaded machine a graceful
shutdown can take a minute, and a developer's Ctrl-C must not leave servers behind.

The polite signal only helps if the children do not ignore it, and a child inherits an ignored
signal across ``exec`` (a caught one is reset to its default): start them while the caller
catches it, as ``spotify-assets dev`` does even when a shell started it with SIGINT ignored.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence


def stop_groups(
    procs: Sequence[subprocess.Popen[bytes]],
    first_signal: signal.Signals = signal.SIGTERM,
    grace_s: float = 8.0,
    kill_grace_s: float = 5.0,
) -> None:
    """Signal each process group, wait up to ``grace_s`` for all of them, then SIGKILL the rest.

    Every ``proc`` must have been started with ``start_new_session=True`` (its pid is its group id).
    Returns when every leader is reaped and its group has been sent SIGKILL if it outlived the grace.
    """
    for sig, grace in ((first_signal, grace_s), (signal.SIGKILL, kill_grace_s)):
        for proc in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
        deadline = time.monotonic() + grace
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        if all(proc.poll() is not None and not _group_alive(proc.pid) for proc in procs):
            return


def _group_alive(pgid: int) -> bool:
    """Whether any process is still in group ``pgid`` (signal 0 probes without delivering)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True

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
from pathlib import Path

from spotify_assets.proc_stat import stat_fields


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


def live_processes() -> dict[int, int]:
    """pid -> parent pid of every live (non-zombie) process, from ``/proc`` (Linux)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat_fields(entry.name)
                if fields is not None and fields[0] != "Z":
                    parents[int(entry.name)] = int(fields[1])
    return parents


def command_line(pid: int) -> str:
    """``pid``'s command line, its arguments joined by spaces ("" once it is gone)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return ""


def descendants(root: int) -> dict[int, int]:
    """pid -> parent pid of every live process below ``root`` (children, theirs, and so on)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in live_processes().items():
        children.setdefault(ppid, []).append(pid)
    found: dict[int, int] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for child in children.get(parent, []):
            if child not in found:
                found[child] = parent
                frontier.append(child)
    return found


def caught_signals(pid: int) -> set[signal.Signals]:
    """The signals ``pid`` has a handler of its own for (``SigCgt`` in ``/proc/<pid>/status``)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return set()
    mask = next((int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:")), 0)
    return {sig for sig in signal.Signals if mask & (1 << (sig - 1))}


class MakeSignals:
    """Tells when the ``make`` that started this process was sent a stop signal it does not pass on.

    ``make dev`` runs the command as make's child. GNU make passes SIGTERM on to it, but on
    SIGINT or SIGHUP it only waits for its child to end before dying of the signal itself: a
    ``kill -INT`` or ``kill -HUP`` of make's pid (a script's ``kill``, a closed session) would
    wait forever on a command that never heard it. What make does on the way is visible: its
    handler puts the signal back to its default first (GNU make 4's ``fatal_error_signal``), so
    a stop signal make caught when this process started and no longer catches is one it
    received. Nothing is watched when the parent is not make, or ignores the signal (a shell's
    background job ignores SIGINT: then so does make, and nothing was sent to pass on).
    """

    def __init__(self, signals: tuple[signal.Signals, ...]) -> None:
        self.parent = os.getppid()
        try:
            name = Path(f"/proc/{self.parent}/comm").read_text().strip()
        except OSError:
            name = ""
        self.watched = caught_signals(self.parent) & set(signals) if name in ("make", "gmake") else set()

    def received(self) -> signal.Signals | None:
        """A watched signal make has received (its handler is gone), or None."""
        if not self.watched or os.getppid() != self.parent:
            return None
        gone = self.watched - caught_signals(self.parent)
        return min(gone) if gone else None

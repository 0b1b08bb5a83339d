"""The local instance's run launcher: Dagster's own, which also tells run monitoring whether a
run's worker still lives.

A run's worker is a process the code server starts. When ``dagster dev`` goes down mid-run (its
daemon or webserver killed, the out-of-memory killer, a laptop's shutdown) the worker goes with
it and nothing records the end: the run stays STARTED. Dagster's ``DefaultRunLauncher`` cannot
say whether a worker lives, so run monitoring could only fail such a run after its maximum
runtime (half an hour for the pipeline), and all that time the new-plays sensor leaves the
listener to that run: their plays could leave the API's 50-play window unpolled (a 48-hour soak
lost 20 of dave's that way, issue 27).

Here the worker is the process that wrote the run's ``RUN_START`` event (every Dagster event
carries its process id). The daemon's run monitoring asks about every STARTED run each
``poll_interval_seconds``; a worker that is gone (no such process, a zombie, or a process of
that id started after the run did, the id reused) makes the run fail at once, with the reason in
its log, and the sensor asks for the listener again from their newest merged play.

This holds for one machine, which is what the local instance is (the compose stack keeps
Dagster's launcher: its workers live in another container). Without ``/proc`` (macOS) a live
process id counts as the worker, with no check of its start time.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from spotify_assets.proc_stat import stat_fields
from spotify_assets.users.dagster_internals import CheckRunHealthResult, WorkerStatus

#: How much later than its run's ``RUN_START`` a worker's process may seem to start (the kernel
#: counts start times in clock ticks, the boot time in whole seconds) before it counts as
#: another process that took a reused id.
START_TIME_SLACK_S = 2.0


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def process_started_at(pid: int) -> tuple[float, bool] | None:
    """When process ``pid`` started (epoch seconds) and whether it is a zombie; ``None`` when no
    such process exists. Without ``/proc``: ``(-inf, False)`` for any live process."""
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # it exists, owned by someone else
        return float("-inf"), False
    fields = stat_fields(pid)
    if fields is None:
        return None
    state, start_ticks = fields[0], int(fields[19])
    return _boot_time() + start_ticks / os.sysconf("SC_CLK_TCK"), state in ("Z", "X")


def worker_status(started_pid: int | None, started_at: float) -> tuple[WorkerStatus, str]:
    """Whether the worker that started a run at ``started_at`` (process ``started_pid``) lives."""
    if started_pid is None:
        return WorkerStatus.UNKNOWN, "the run's start event names no process"
    seen = process_started_at(started_pid)
    if seen is None:
        return WorkerStatus.FAILED, f"its worker (pid {started_pid}) is gone"
    began, zombie = seen
    if zombie:
        return WorkerStatus.FAILED, f"its worker (pid {started_pid}) has exited"
    if began > started_at + START_TIME_SLACK_S:
        return (
            WorkerStatus.FAILED,
            f"its worker (pid {started_pid}) is gone (the id now belongs to a later process)",
        )
    return WorkerStatus.RUNNING, f"its worker (pid {started_pid}) is running"


class LocalRunLauncher(dg.DefaultRunLauncher):
    """``DefaultRunLauncher`` (runs launched through the code server, as before) that answers
    run monitoring's health check from the worker's process (module docstring)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        records = self._instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.RUN_START, limit=1
        ).records
        if not records:
            # STARTED is written with RUN_START; without one the start timeout is what applies.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run has not recorded its start")
        entry = records[0].event_log_entry
        pid = entry.dagster_event.pid if entry.dagster_event is not None else None
        status, why = worker_status(pid, entry.timestamp)
        if status == WorkerStatus.UNKNOWN:
            # Nothing to judge by: leave the run to its maximum runtime, as Dagster's launcher does.
            status = WorkerStatus.RUNNING
        return CheckRunHealthResult(status, why)

"""A run whose worker was killed does not block its listener for good (issue 27).

The new-plays sensor leaves a listener to their own run while that run is going, so a run that
stays STARTED forever (its worker killed together with the code server that launched it: ``dev``
stopped or killed mid-run, the out-of-memory killer) would leave the listener unpolled for good.
The instance the project writes (``instance_config.py``) turns on Dagster's run monitoring.

On the real parts: the project's ``dagster.yaml``, a real pipeline run against the sandbox in a
process of its own, SIGKILLed once the run has started; the real ``dagster-daemon`` started on
that instance. The sensor leaves the listener alone while the orphan stands; the daemon marks it
failed at its first look, since the project's launcher (``run_launcher.py``) tells it the worker
is gone, not after the job's half-hour runtime (a 48-hour soak lost plays while such a run
stood); the sensor's next tick asks for the listener again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from spotify_assets.definitions import defs
from spotify_assets.instance_config import PIPELINE_MAX_RUNTIME_S, RUN_MONITORING, prepare_local_home
from spotify_assets.jobs import spotify_pipeline_job
from spotify_assets.partitions import USERS_PARTITIONS_NAME
from spotify_assets.resources.lake import LocalLakeResource
from spotify_assets.run_launcher import process_started_at, worker_status
from spotify_assets.sensors import new_plays_sensor
from spotify_assets.settings import dagster_home
from spotify_assets.users.dagster_internals import WorkerStatus
from spotify_assets.users.run_history import PARTITION_TAG
from spotify_assets_tests.test_household_runs import _register
from spotify_sandbox import SandboxServer
from spotify_sandbox.resource import SandboxSpotifyResource

#: The run worker: the real job for one listener, in this process.
_RUN_WORKER = """
import sys
import dagster as dg
from spotify_assets.definitions import defs
defs.resolve_job_def("spotify_pipeline").execute_in_process(
    instance=dg.DagsterInstance.get(), partition_key=sys.argv[1], raise_on_error=False,
)
"""


def _latest_run(instance: dg.DagsterInstance, user_id: str) -> dg.DagsterRun | None:
    records = instance.get_run_records(
        dg.RunsFilter(job_name=spotify_pipeline_job.name, tags={PARTITION_TAG: user_id}), limit=1
    )
    return records[0].dagster_run if records else None


def _tick(instance: dg.DagsterInstance, sandbox: SandboxServer, data_dir: Path) -> dg.SensorResult:
    resources = {
        "spotify": SandboxSpotifyResource(url=sandbox.url),
        "lake": LocalLakeResource(root=str(data_dir / "lake")),
    }
    with dg.build_sensor_context(instance=instance, cursor=None, resources=resources) as ctx:
        result = new_plays_sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    return result


def test_the_project_instance_monitors_runs_and_bounds_a_pipeline_run(data_dir: Path) -> None:
    home = prepare_local_home(dagster_home(data_dir))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_runtime_seconds > 0
    tags = defs.resolve_job_def(spotify_pipeline_job.name).tags
    assert tags["dagster/max_runtime"] == str(PIPELINE_MAX_RUNTIME_S)


def test_a_dagster_yaml_an_earlier_version_wrote_is_brought_up_to_date_an_edited_one_kept(
    tmp_path: Path,
) -> None:
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "dagster.yaml").write_text(
        "# Written by spotify-assets\nretention:\n  schedule:\n    purge_after_days: 90\n  sensor:\n"
        "    purge_after_days:\n      skipped: 1\n      failure: 30\n      success: 30\n"
        "telemetry:\n  enabled: false\n"
    )
    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")
    for home in (earlier, edited):
        prepare_local_home(home)
    assert "run_monitoring" in (earlier / "dagster.yaml").read_text()
    assert (edited / "dagster.yaml").read_text() == "telemetry:\n  enabled: true\n"


def test_a_run_whose_worker_was_killed_is_failed_and_its_listener_polled_again(
    pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    home = prepare_local_home(dagster_home(data_dir))
    (alice,) = _register(pipeline_sandbox, data_dir, "alice")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "DAGSTER_"))}
    env |= {
        "SPOTIFY_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(home),
        "SPOTIFY_SANDBOX_URL": pipeline_sandbox.url,
    }
    daemon: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, [alice.user_id])
        try:
            with (data_dir.parent / "worker.log").open("wb") as log:
                worker = subprocess.Popen(
                    [sys.executable, "-c", _RUN_WORKER, alice.user_id],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            deadline = time.monotonic() + 120
            while (
                run := _latest_run(instance, alice.user_id)
            ) is None or run.status != dg.DagsterRunStatus.STARTED:
                assert worker.poll() is None, "the run worker ended before its run was seen started"
                assert time.monotonic() < deadline, "the run did not start"
                time.sleep(0.05)  # the interval between two looks
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
            orphan = run.run_id
            still = _latest_run(instance, alice.user_id)
            assert still is not None and still.status == dg.DagsterRunStatus.STARTED  # nobody will end it

            waiting = _tick(instance, pipeline_sandbox, data_dir)
            assert not waiting.run_requests
            reason = (waiting.skip_reason.skip_message if waiting.skip_reason else None) or ""
            assert f"run {orphan[:8]} started" in reason, reason

            daemon = subprocess.Popen(
                [str(Path(sys.executable).with_name("dagster-daemon")), "run", "--empty-workspace"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            # The daemon's start, then one look (poll_interval_seconds): far below the runtime bound.
            within_s = 60 + RUN_MONITORING["poll_interval_seconds"]
            assert within_s < PIPELINE_MAX_RUNTIME_S / 10
            deadline = time.monotonic() + within_s
            while (
                failed := instance.get_run_by_id(orphan)
            ) is None or failed.status != dg.DagsterRunStatus.FAILURE:
                assert daemon.poll() is None, "the daemon exited"
                assert time.monotonic() < deadline, (
                    f"the orphaned run is still {failed.status if failed else None} after {within_s} s"
                )
                time.sleep(1)  # the interval between two looks
            (failure,) = instance.all_logs(orphan, of_type=dg.DagsterEventType.RUN_FAILURE)
            assert "is gone" in (failure.message or ""), failure.message

            deadline = time.monotonic() + 120  # the sensor waits a minute after a run's poll
            while not (again := _tick(instance, pipeline_sandbox, data_dir)).run_requests:
                assert time.monotonic() < deadline, again.skip_reason
                time.sleep(2)
            assert [r.partition_key for r in again.run_requests or []] == [alice.user_id]
        finally:
            for proc in (worker, daemon):
                if proc is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGTERM if proc is daemon else signal.SIGKILL)
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()


def test_the_worker_status_tells_a_live_worker_from_a_gone_a_finished_and_a_reused_id() -> None:
    """``run_launcher.worker_status`` on real processes: the answers the daemon acts on."""
    now = time.time()
    assert worker_status(os.getpid(), now)[0] == WorkerStatus.RUNNING
    assert worker_status(None, now)[0] == WorkerStatus.UNKNOWN
    # This process started after a run that began an hour ago: its id was reused.
    status, why = worker_status(os.getpid(), now - 3600)
    assert status == WorkerStatus.FAILED and "later process" in why
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert worker_status(gone.pid, now)[0] == WorkerStatus.FAILED
    exited = subprocess.Popen([sys.executable, "-c", "pass"])  # not reaped: a zombie until wait()
    try:
        deadline = time.monotonic() + 30
        while (seen := process_started_at(exited.pid)) is None or not seen[1]:
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.05)  # the interval between two looks
        status, why = worker_status(exited.pid, now)
        assert status == WorkerStatus.FAILED and "has exited" in why
    finally:
        exited.wait()

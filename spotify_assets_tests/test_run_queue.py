"""A run the daemon takes from the queue while the code server is away waits for it (issue 27).

Two 168-hour soaks lost plays to runs Dagster failed the moment the daemon took them from the
queue, because the code server (killed, restarting, slow on a loaded machine) did not answer:
the listener's poll was that run, and the sensor had left the listener to it. The project's
instances (``instance_config.RUN_QUEUE_USER_CODE_RETRIES``, ``deploy/dagster.yaml``) make the
queue retry instead.

On the real parts: the project's ``dagster.yaml``, a real code server (``dagster api grpc``) on a
port of its own, a run queued through ``dagster job launch`` with no daemon running, the code
server then SIGKILLed, the real ``dagster-daemon`` started (its dequeue fails and the run goes
back to the queue), the code server started again on the same port: the run then runs, once,
and its listener's plays reach the warehouse.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import yaml

from spotify_assets.instance_config import RUN_QUEUE_USER_CODE_RETRIES, prepare_local_home
from spotify_assets.jobs import spotify_pipeline_job
from spotify_assets.partitions import USERS_PARTITIONS_NAME
from spotify_assets.settings import dagster_home
from spotify_assets.users.run_history import PARTITION_TAG
from spotify_assets_tests.fixtures.sockets import free_port
from spotify_assets_tests.test_household_runs import _register
from spotify_sandbox import SandboxServer

DEPLOY_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "deploy" / "dagster.yaml"

#: What Dagster says when it puts a run back into the queue (``queued_run_coordinator_daemon``).
_REQUEUED = "re-submitting the run into the queue"


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``args`` in a session of its own; SIGKILLed with its children when the block ends."""
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _code_server(
    port: int, env: dict[str, str], log: Path
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    return _process(
        [
            _bin("dagster"),
            "api",
            "grpc",
            "-m",
            "spotify_assets.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env,
        log,
    )


def _wait_serving(port: int, server: subprocess.Popen[bytes], env: dict[str, str]) -> None:
    deadline = time.monotonic() + 180
    while (
        subprocess.run(
            [_bin("dagster"), "api", "grpc-health-check", "-h", "127.0.0.1", "-p", str(port)],
            env=env,
            capture_output=True,
        ).returncode
        != 0
    ):
        assert server.poll() is None, "the code server exited"
        assert time.monotonic() < deadline, "the code server did not start serving"
        time.sleep(1)  # the interval between two looks


def queue_retries(instance: dg.DagsterInstance) -> dict[str, int]:
    """The instance's run queue's two user-code retry numbers (zeros when it has no queue)."""
    queue = instance.get_concurrency_config().run_queue_config
    return {
        "max_user_code_failure_retries": queue.max_user_code_failure_retries if queue else 0,
        "user_code_failure_retry_delay": queue.user_code_failure_retry_delay if queue else 0,
    }


def _engine_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.message or "" for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)]


def test_both_instances_retry_a_dequeue_the_code_server_missed_with_the_same_numbers(data_dir: Path) -> None:
    home = prepare_local_home(dagster_home(data_dir))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert queue_retries(instance) == RUN_QUEUE_USER_CODE_RETRIES
    # Patient for minutes, not seconds: a code server's restart on a loaded machine takes one or two.
    patience_s = (
        RUN_QUEUE_USER_CODE_RETRIES["max_user_code_failure_retries"]
        * RUN_QUEUE_USER_CODE_RETRIES["user_code_failure_retry_delay"]
    )
    assert 180 <= patience_s <= 900
    deployed = yaml.safe_load(DEPLOY_DAGSTER_YAML.read_text())["run_coordinator"]["config"]
    assert {key: deployed[key] for key in RUN_QUEUE_USER_CODE_RETRIES} == RUN_QUEUE_USER_CODE_RETRIES


def test_a_run_dequeued_while_the_code_server_is_away_runs_once_it_is_back(
    pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    home = prepare_local_home(dagster_home(data_dir))
    (alice,) = _register(pipeline_sandbox, data_dir, "alice")
    port = free_port()
    workspace = data_dir.parent / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {"grpc_server": {"host": "127.0.0.1", "port": port, "location_name": "spotify_assets"}}
                ]
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPOTIFY_", "DAGSTER_"))}
    env |= {
        "SPOTIFY_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(home),
        "SPOTIFY_SANDBOX_URL": pipeline_sandbox.url,
    }
    logs = data_dir.parent
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, [alice.user_id])
        with _code_server(port, env, logs / "code-server-1.log") as server:
            _wait_serving(port, server, env)
            subprocess.run(
                [
                    *(
                        _bin("dagster"),
                        "job",
                        "launch",
                        "-w",
                        str(workspace),
                        "-j",
                        spotify_pipeline_job.name,
                    ),
                    *("--tags", json.dumps({PARTITION_TAG: alice.user_id})),
                ],
                env=env,
                check=True,
                capture_output=True,
            )
        # No daemon yet: the run waits in the queue, and now its code server is gone.
        (record,) = instance.get_run_records(dg.RunsFilter(job_name=spotify_pipeline_job.name))
        run_id = record.dagster_run.run_id
        assert record.dagster_run.status == dg.DagsterRunStatus.QUEUED

        daemon_args = [_bin("dagster-daemon"), "run", "-w", str(workspace)]
        with _process(daemon_args, env, logs / "daemon.log") as daemon:
            deadline = time.monotonic() + 120
            while not any(_REQUEUED in m for m in _engine_messages(instance, run_id)):
                assert daemon.poll() is None, "the daemon exited"
                run = instance.get_run_by_id(run_id)
                # STARTING while the daemon's launch call is out; then QUEUED again, never failed.
                waiting = (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING)
                assert run is not None and run.status in waiting, (
                    f"the run is {run.status if run else None}, not back in the queue: {_engine_messages(instance, run_id)}"
                )
                assert time.monotonic() < deadline, "the daemon did not try to dequeue the run"
                time.sleep(1)  # the interval between two looks

            with _code_server(port, env, logs / "code-server-2.log") as server:
                _wait_serving(port, server, env)
                # The next try comes after the retry delay; the run itself takes a minute or two.
                deadline = time.monotonic() + 300
                while (run := instance.get_run_by_id(run_id)) is None or not run.is_finished:
                    assert daemon.poll() is None, "the daemon exited"
                    assert time.monotonic() < deadline, f"the run is still {run.status if run else None}"
                    time.sleep(1)  # the interval between two looks
                assert run.status == dg.DagsterRunStatus.SUCCESS, _engine_messages(instance, run_id)

        # Back in the queue at least once (what the soak's clock waits on: ``Runs.requeued``).
        assert len(instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED)) >= 2
        # Launched once: one worker, one start (a run whose worker had started is not re-queued).
        assert len(instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START)) == 1
        assert len(instance.get_run_records(dg.RunsFilter(job_name=spotify_pipeline_job.name))) == 1
        materialized = instance.fetch_materializations(dg.AssetKey("bq_plays"), limit=10).records
        assert [m.run_id for m in materialized] == [run_id]

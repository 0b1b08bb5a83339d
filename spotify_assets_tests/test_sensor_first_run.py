"""A listener's first run brings every play the platform was shown (issue 27, found by the soaks).

A listener added to a running platform has no cursor and no merged play. The sensor used to ask
the API for their latest 50 plays (to learn whether there were any), then requested a run; the run
polls on its own, later, and by then the plays that ended in between had pushed the oldest of the
50 the sensor was shown out of Spotify's window. Those were lost for good: the 48-hour soak lost
the 6 oldest plays of the listener it added mid-soak, the short soak in CI 5 (a run starts tens of
seconds after its request; on the soak's clock that is half an hour of music, in real time a play
now and then). The promise is checked as the soak's verdict checks it: every play of every page
the sandbox answered the listener is in the warehouse. On the real parts: the sandbox API, the real
pipeline into DuckDB, a real Dagster instance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from bench.soak_verdict import judge_listener
from spotify_assets.definitions import defs
from spotify_assets.jobs import spotify_pipeline_job
from spotify_assets.partitions import USERS_PARTITIONS_NAME
from spotify_assets.schema import PLAYS_TABLE
from spotify_assets.users.run_history import PARTITION_TAG
from spotify_assets_tests.test_household_runs import _register, _run
from spotify_assets_tests.test_sensor_minute import _calls, _tick
from spotify_sandbox import SandboxServer


def _lost(sandbox: SandboxServer, warehouse: Any, name: str, user_id: str) -> list[int]:
    """The soak's verdict for one listener: played_at (ms) shown to the platform and not merged."""
    held = warehouse.query(f"SELECT played_at FROM {PLAYS_TABLE} WHERE user_id = '{user_id}'")
    held_ms = [int(pd.Timestamp(t).timestamp() * 1000) for t in held["played_at"]]
    verdict = judge_listener(
        user_id, sandbox.listener_for(name), sandbox.shown_at().get(user_id, []), held_ms
    )
    assert not verdict.duplicated and not verdict.unexpected, verdict
    return verdict.lost


def failed_run(
    instance: dg.DagsterInstance,
    user_id: str,
    run_config: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    """Record a pipeline run of ``user_id``'s that failed before it merged (as the daemon would)."""
    job = defs.resolve_job_def(spotify_pipeline_job.name)
    instance.create_run_for_job(
        job,
        run_config=run_config,
        tags={**(tags or {}), PARTITION_TAG: user_id},
        status=dg.DagsterRunStatus.FAILURE,
    )


def test_a_new_listeners_first_run_brings_every_play_the_platform_was_shown(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path
) -> None:
    (alice,) = _register(pipeline_sandbox, data_dir, "alice")
    resources = {"spotify": local_resources["spotify"], "lake": local_resources["lake"]}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, [alice.user_id])
        first = _tick(instance, None, resources)
        assert [r.partition_key for r in first.run_requests or []] == [alice.user_id]
        # The run starts a while after its request: plays end in between.
        pipeline_sandbox.advance(40 * 60)
        assert _run(local_resources, alice, instance).success
        assert _lost(pipeline_sandbox, local_resources["warehouse"], "alice", alice.user_id) == []


def test_the_retry_of_a_failed_first_run_brings_every_play_the_platform_was_shown(
    local_resources: dict[str, Any], pipeline_sandbox: SandboxServer, data_dir: Path, monkeypatch: Any
) -> None:
    from spotify_assets import sensors

    monkeypatch.setattr(sensors, "POLL_INTERVAL_S", 0)  # the retry's wait is not what is tested
    (alice,) = _register(pipeline_sandbox, data_dir, "alice")
    resources = {"spotify": local_resources["spotify"], "lake": local_resources["lake"]}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, [alice.user_id])
        first = _tick(instance, None, resources)
        # The first run failed before it merged anything (the disk full, its worker killed).
        failed_run(instance, alice.user_id)
        calls = _calls(pipeline_sandbox)
        again = _tick(instance, first.cursor, resources)
        assert [r.partition_key for r in again.run_requests or []] == [alice.user_id], again.skip_reason
        assert _calls(pipeline_sandbox) == calls  # the retry asks nothing: its run polls
        assert json.loads(again.cursor or "{}").get(alice.user_id) == json.loads(first.cursor or "{}").get(
            alice.user_id
        )
        pipeline_sandbox.advance(40 * 60)
        assert _run(local_resources, alice, instance).success
        assert _lost(pipeline_sandbox, local_resources["warehouse"], "alice", alice.user_id) == []

"""A listener whose run failed is asked again on the next tick, not only once they play again
(issue 27, found by the soak's full disk and killed run worker).

The sensor moves its cursor when it requests a run. When that run fails (the lake's disk full,
its worker killed), the plays it was started for were never merged; asking "after the cursor"
then finds nothing new until the listener plays again, so a listener who stopped listening kept
them out of the warehouse until the hourly schedule's next run (in the soak: past its end). On
the real parts: the sandbox API, the real pipeline into DuckDB, a real Dagster instance.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from spotify_assets import sensors
from spotify_assets.definitions import defs
from spotify_assets.jobs import spotify_pipeline_job
from spotify_assets.partitions import USERS_PARTITIONS_NAME
from spotify_assets.spotify.client import played_at_ms
from spotify_assets.users.run_history import PARTITION_TAG
from spotify_assets_tests.test_household_runs import _plays_of, _register, _run
from spotify_assets_tests.test_sensor_minute import _iso, _tick
from spotify_sandbox import SandboxServer


def test_a_listener_whose_run_failed_is_asked_again_though_they_played_nothing_since(
    local_resources: dict[str, Any],
    pipeline_sandbox: SandboxServer,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The failed run below started just now: the minute between two calls is not what is tested.
    monkeypatch.setattr(sensors, "POLL_INTERVAL_S", 0)
    (alice,) = _register(pipeline_sandbox, data_dir, "alice")
    resources = {"spotify": local_resources["spotify"], "lake": local_resources["lake"]}
    job = defs.resolve_job_def(spotify_pipeline_job.name)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(USERS_PARTITIONS_NAME, [alice.user_id])
        # Her first run merged her window (``test_sensor_first_run``: a failed first run); she played on.
        assert _run(local_resources, alice, instance).success
        first_oldest = min(played_at_ms(i) or 0 for i in pipeline_sandbox.recently_played_truth("alice"))
        pipeline_sandbox.advance(30 * 60)
        first = _tick(instance, None, resources)
        (request,) = first.run_requests or []
        # The run the tick asked for fails (its lake write found the disk full, its worker was killed).
        instance.create_run_for_job(
            job, tags={PARTITION_TAG: alice.user_id}, status=dg.DagsterRunStatus.FAILURE
        )
        # alice plays nothing more: the same window, nothing after the cursor.
        again = _tick(instance, first.cursor, resources)
        assert [r.partition_key for r in again.run_requests or []] == [alice.user_id], again.skip_reason
        (retry,) = again.run_requests or []
        assert retry.run_key != request.run_key  # Dagster would drop a request under a used key
        assert (
            json.loads(again.cursor or "{}")[alice.user_id] == json.loads(first.cursor or "{}")[alice.user_id]
        )
        # Failed again: the next retry waits twice the minute (a failure that persists is not a run a minute).
        monkeypatch.setattr(sensors, "POLL_INTERVAL_S", 60)
        instance.create_run_for_job(
            job, tags={PARTITION_TAG: alice.user_id}, status=dg.DagsterRunStatus.FAILURE
        )
        failed = sensors._failed_run(sensors._latest_runs(instance, alice.user_id), time.time() + 61)
        assert failed is not None and 55 < failed[1] <= 60, failed
        # The retry merges what the failed run was started for: every play since her first window.
        assert _run(local_resources, alice, instance).success
        since_first = pipeline_sandbox.plays_between(_iso(first_oldest - 1), pipeline_sandbox.now(), "alice")
        assert _plays_of(local_resources["warehouse"], alice.user_id) == len(since_first)
